"""``insertgen reproduce``: the model x task comparison under equal training budgets (grid), its tables,
figures and claim checks (summary, claims)."""

from insertgen.apps.reproduce.budget import Budget
from insertgen.apps.reproduce.grid import SCALES, make_grid, run_grid
from insertgen.apps.reproduce.summary import write_summary

__all__ = ["Budget", "SCALES", "make_grid", "run_grid", "write_summary"]
