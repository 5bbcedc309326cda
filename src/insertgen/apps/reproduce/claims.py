"""The papers' claims checked against a reproduce grid's aggregates (:func:`summary.aggregate`).

* LoFlexMDM beats FlexMDM on star graphs (exact match): LoFlexMDM paper, star-graph table.
* The learned order is endpoints first on star graphs: LoFlexMDM's generation order with its own
  schedule (the joint tau-leaping sampler; Spearman correlation of the unmasking step with the distance
  from the junction, the papers' "order correlation", below 0) and IP's posterior order (correlation of
  the posterior rank with that distance below 0).
* IP beats AO-IP on molecule validity: IP paper, de novo molecules.
* IP writes a molecule's skeleton first (ring-closure digits and branches before atoms: the mean normalised
  step of ring and branch tokens minus the atoms', ``scaffold_minus_atom``, below ``-MIN_CORR``): IP paper.
* LoFlexMDM beats FlexMDM on molecule validity and quality: LoFlexMDM paper, bracket-SAFE de novo table.
* Insertion models (FlexMDM, LoFlexMDM, AO-IP, IP) beat ARM and MDM on star graphs: both papers.

A comparison *holds* when every seed of the claimed winner is above every seed of the other side
(``min(a) > max(b)``) and the difference of the means is more than twice its standard error from the
finite evaluation (a proportion ``p`` measured on ``n`` examples per seed over ``k`` seeds has standard
error ``sqrt(p (1 - p) / (n k))``), is *reversed* when the same holds the other way round,
and is *not shown* otherwise. A sign claim holds when every seed's correlation is below ``-MIN_CORR``
(is *reversed* when every seed's is above ``+MIN_CORR``): a correlation of a few hundredths is no
order. Claims whose cells are not in the grid are left out.
"""

from __future__ import annotations

import math

from insertgen.apps.reproduce.formatting import PERCENT, number_format
from insertgen.models.registry import get_family, model_ids

MIN_CORR = 0.1
BASELINES = ("arm", "mdm")  # the papers' baselines; the insertion models are the families with a "trajectory"


def _stat(summary: dict, task: str, model: str, metric: str, sampler: str | None = None) -> dict | None:
    """The spread of ``metric`` for ``model`` on ``task`` with ``sampler`` (default: its best one)."""
    entry = summary.get(task, {}).get(model)
    if not entry:
        return None
    stat = entry["samplers"].get(sampler or entry["best_sampler"], {}).get(metric)
    return stat if stat and stat.get("n") else None


def _examples(summary: dict, task: str, model: str) -> int:
    return int((summary.get(task, {}).get(model) or {}).get("eval_examples") or 0)


def _show(model: str, stat: dict, metric: str) -> str:
    number = number_format(metric)
    text = f"{model} {number(stat['mean'])}{'%' if metric in PERCENT else ''}"
    if stat["n"] > 1:
        text += f" [{number(stat['min'])}, {number(stat['max'])}]"
    return text


def proportion_se(stat: dict, examples: int) -> float:
    """Standard error of a mean proportion over ``stat["n"]`` seeds of ``examples`` evaluations each."""
    if not examples:
        return 0.0
    p = min(max(stat["mean"], 0.0), 1.0)
    return math.sqrt(p * (1 - p) / (examples * stat["n"]))


def difference_noise(a: dict, b: dict, examples_a: int = 0, examples_b: int = 0) -> float:
    """Twice the standard error of the difference of the two sides' mean proportions (0 without example counts)."""
    return 2 * math.sqrt(proportion_se(a, examples_a) ** 2 + proportion_se(b, examples_b) ** 2)


def compare(a: dict, b: dict, examples_a: int = 0, examples_b: int = 0) -> str:
    """``holds`` / ``reversed`` / ``not shown`` for "a > b" (module docstring); the example counts give
    the evaluation noise of proportions (0: not a proportion, no noise check)."""
    noise = difference_noise(a, b, examples_a, examples_b)
    if a["min"] > b["max"] and a["mean"] - b["mean"] > noise:
        return "holds"
    if b["min"] > a["max"] and b["mean"] - a["mean"] > noise:
        return "reversed"
    return "not shown"


def sign(stat: dict, negative: bool = True, margin: float = MIN_CORR) -> str:
    below, above = stat["max"] < -margin, stat["min"] > margin
    if below if negative else above:
        return "holds"
    if above if negative else below:
        return "reversed"
    return "not shown"


def evaluate_claims(summary: dict) -> list[dict]:
    claims = []
    star_tasks = [t for t in summary if t.startswith("star-")]
    molecule_tasks = [t for t in summary if t in ("smiles", "safe") or t.startswith("fragment-")]
    for task in star_tasks:
        a, b = _stat(summary, task, "loflexmdm", "exact_match"), _stat(summary, task, "flexmdm", "exact_match")
        if a and b:
            claims.append({"claim": "LoFlexMDM > FlexMDM (exact match)", "task": task,
                           "evidence": f"{_show('loflexmdm', a, 'exact_match')} vs {_show('flexmdm', b, 'exact_match')}",
                           "verdict": compare(a, b, _examples(summary, task, "loflexmdm"),
                                              _examples(summary, task, "flexmdm"))})
    for task in star_tasks:
        stat = _stat(summary, task, "loflexmdm", "order_corr_unmask", sampler="joint")
        if stat:
            claims.append({"claim": f"LoFlexMDM's learned order is endpoints first (joint sampler's order corr. "
                                    f"< -{MIN_CORR})", "task": task,
                           "evidence": _show("loflexmdm", stat, "rho"), "verdict": sign(stat)})
        posterior = (summary.get(task, {}).get("ip") or {}).get("posterior")
        if posterior and posterior["rank_distance_corr"]["n"]:
            stat = posterior["rank_distance_corr"]
            claims.append({"claim": f"IP's posterior order is endpoints first (rank-distance corr. < -{MIN_CORR})",
                           "task": task, "evidence": _show("ip", stat, "rho"), "verdict": sign(stat)})
    for task in molecule_tasks:
        a, b = _stat(summary, task, "ip", "validity"), _stat(summary, task, "ao-ip", "validity")
        if a and b:
            claims.append({"claim": "IP > AO-IP (validity)", "task": task,
                           "evidence": f"{_show('ip', a, 'validity')} vs {_show('ao-ip', b, 'validity')}",
                           "verdict": compare(a, b, _examples(summary, task, "ip"), _examples(summary, task, "ao-ip"))})
    for task in molecule_tasks:
        stat = _stat(summary, task, "ip", "scaffold_minus_atom")
        if stat:
            claims.append({"claim": f"IP writes the skeleton first (ring and branch minus atom step < -{MIN_CORR})",
                           "task": task, "evidence": _show("ip", stat, "scaffold_minus_atom"), "verdict": sign(stat)})
        for metric in ("validity", "quality_all"):
            a, b = _stat(summary, task, "loflexmdm", metric), _stat(summary, task, "flexmdm", metric)
            if a and b:
                claims.append({"claim": f"LoFlexMDM > FlexMDM ({metric})", "task": task,
                               "evidence": f"{_show('loflexmdm', a, metric)} vs {_show('flexmdm', b, metric)}",
                               "verdict": compare(a, b, _examples(summary, task, "loflexmdm"),
                                                  _examples(summary, task, "flexmdm"))})
    for task in star_tasks:
        inserted = {m: s for m in model_ids() if get_family(m).can("trajectory")
                    and (s := _stat(summary, task, m, "exact_match"))}
        baseline = {m: s for m in BASELINES if (s := _stat(summary, task, m, "exact_match"))}
        if inserted and baseline:
            best_in = max(inserted, key=lambda m: inserted[m]["mean"])
            best_base = max(baseline, key=lambda m: baseline[m]["mean"])
            claims.append({"claim": "insertion models > ARM and MDM (exact match; best of each side)", "task": task,
                           "evidence": f"{_show(best_in, inserted[best_in], 'exact_match')} vs "
                                       f"{_show(best_base, baseline[best_base], 'exact_match')}",
                           "verdict": compare(inserted[best_in], baseline[best_base], _examples(summary, task, best_in),
                                              _examples(summary, task, best_base))})
    return claims
