"""How the reproduce tables print a metric: percentages for the rates, two decimals for the rest."""

from __future__ import annotations

PERCENT = {"exact_match", "success", "optimal", "validity", "uniqueness", "novelty", "quality_all",
           "quality_unique", "termination_rate"}


def number_format(metric: str):
    """How a value of ``metric`` is printed: in % with one decimal for the metrics in PERCENT, else with
    two decimals."""
    return (lambda v: f"{100 * v:.1f}") if metric in PERCENT else (lambda v: f"{v:.2f}")


def fmt(stat: dict | None, metric: str, with_range: bool = False) -> str:
    if not stat or not stat.get("n"):
        return "—"
    f = number_format(metric)
    text = f"{f(stat['mean'])}" + (f" ± {f(stat['std'])}" if stat["n"] > 1 else "")
    if with_range and stat["n"] > 1:
        text += f" ({f(stat['min'])}–{f(stat['max'])})"
    return text
