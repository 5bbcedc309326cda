"""``insertgen reproduce``: the model x task comparison under equal training budgets (grid), its tables,
figures and claim checks (summary, claims)."""

from insertgen.reproduce.budget import Budget
from insertgen.reproduce.grid import SCALES, make_grid, run_grid
from insertgen.reproduce.summary import write_summary

__all__ = ["Budget", "SCALES", "make_grid", "run_grid", "write_summary"]
