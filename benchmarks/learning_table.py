"""One Markdown row per learning-speed run (benchmarks/learning_speed.py), for docs/lab/learning.md.

    python benchmarks/learning_table.py DIR [DIR ...]     # every learning.json under the directories
    python benchmarks/learning_table.py DIR --docs docs/lab/learning.md   # also write the table into the file,
                                                                      # between its learning-table markers

Columns: task, model, seed, what the run changed (its --set options other than the benchmark's own
logging / evaluation settings, with the trunk's input options as the run's config.json recorded them,
so a row means the same whatever the preset's default was when it ran: an option shown is on, one not
shown is off), steps trained, exact match at the last point, the best point, the
steps at which exact match first reached 50% and 95% (time to solve, with the minutes of training on
one core it took; "-" = not within the steps trained), and the probes at the last point (src / goal / twin / pog / par / chi = copy_source /
copy_goal / twin_copy / parent_of_goal / parent_lookup / child_lookup; "." where a probe does not
apply), and the failure kinds at the last point (occ / par / chi / none / len = the wrong output's first
wrong decision needed a parent read at the other occurrence / another parent / a child / no neighbour
known / another length; empty for runs made before they were recorded), and the generation order at the
last point (``dec``: Spearman's correlation of the greedy sampler's unmasking / insertion step with the
distance from the junction, positive = source first, negative = goal first; ``post``: the same for IP's
posterior orders, where recorded). Rows are grouped by rung, model, change and seed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from insertgen.nn.backbone_config import BackboneConfig

OWN = {"eval_every", "log_every", "checkpoint_every"}
INPUT_OPTIONS = tuple(BackboneConfig().input_options())  # token_shift, absolute_positions, ...
FAILURE_SHORT = {"parent (other occurrence)": "occ", "parent (other)": "par", "child": "chi", "none": "none",
                 "length": "len"}
SHORT = {"copy_source": "src", "copy_goal": "goal", "twin_copy": "twin", "parent_of_goal": "pog",
         "parent_lookup": "par", "child_lookup": "chi"}


def changes(s: dict, path: Path) -> dict:
    """The --set options (without the benchmark's own) of the run whose learning.json is ``path`` and
    settings ``s``, and its trunk input options that are on."""
    changed = {k: v for k, v in s["overrides"].items() if k not in OWN and k not in INPUT_OPTIONS}
    config_path = path.parent / "run" / "config.json"
    model_config = json.loads(config_path.read_text()).get("model_config", {}) if config_path.exists() else \
        {k: v for k, v in s["overrides"].items() if k in INPUT_OPTIONS}
    changed.update({k: model_config[k] for k in INPUT_OPTIONS if model_config.get(k)})
    return changed


def row(path: Path) -> str:
    record = json.loads(path.read_text())
    s, points = record["settings"], record["points"]
    last = points[-1]
    best = max(points, key=lambda p: p["exact_match"])
    change = ", ".join(f"{k}={v}" for k, v in sorted(changes(s, path).items())) or "-"
    solve = record.get("time_to_solve", {})
    seconds = {p["step"]: p.get("seconds") for p in points}
    cells = [(f"{solve[t]['step']:,}" + (f" ({seconds[solve[t]['step']] / 60:.0f} min)"
                                          if seconds.get(solve[t]["step"]) is not None else ""))
             if solve.get(t) else "-" for t in ("0.5", "0.95")]
    probes = " ".join(f"{SHORT[k]} {v:.2f}" if v is not None else f"{SHORT[k]} ." for k, v in last["probes"].items())
    failures = (" ".join(f"{FAILURE_SHORT[k]} {n}" for k, n in last["failures"].items())
                if last.get("failures") else "")
    order_corr = " ".join(f"{name} {last[key]:+.2f}" if last[key] is not None and last[key] == last[key]
                          else f"{name} ."  # undefined (null, or NaN in files written before null)
                          for name, key in (("dec", "order_corr_unmask"), ("post", "posterior_order_corr"))
                          if key in last)
    return (f"| {s['task']} | {s['model']} | {s['seed']} | {change} | {last['step']:,} | {last['exact_match']:.1%} | "
            f"{best['exact_match']:.1%} ({best['step']:,}) | {cells[0]} | {cells[1]} | {probes} | {failures} | "
            f"{order_corr} |")


RUNGS = ("star-tiny", "star-small", "star-easy", "star-medium", "star-hard")


def order(path: Path):
    """Rows grouped by rung (smallest first), model, change, seed."""
    s = json.loads(path.read_text())["settings"]
    rung = RUNGS.index(s["task"]) if s["task"] in RUNGS else len(RUNGS)
    return rung, s["model"], sorted((k, str(v)) for k, v in changes(s, path).items()), s["seed"]


BEGIN, END = "<!-- learning-table:begin -->", "<!-- learning-table:end -->"


def table(dirs: list[str]) -> list[str]:
    paths = sorted((p for d in dirs for p in Path(d).rglob("learning.json")), key=order)
    return ["| task | model | seed | change | steps | exact match | best (step) | 50% at | 95% at | probes (last) | "
            "failures (last) | order (last) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|", *(row(p) for p in paths)]


def write_docs(path: Path, lines: list[str]) -> None:
    """Replace the text between the learning-table markers of ``path`` by ``lines``."""
    text = path.read_text()
    if BEGIN not in text or END not in text or text.index(END) < text.index(BEGIN):
        raise SystemExit(f"{path}: no {BEGIN} ... {END} markers to write the table between")
    path.write_text(text[: text.index(BEGIN) + len(BEGIN)] + "\n" + "\n".join(lines) + "\n" + text[text.index(END):])


def main(argv: list[str]) -> None:
    docs = None
    if "--docs" in argv:
        at = argv.index("--docs")
        if at + 1 >= len(argv):
            raise SystemExit("--docs needs a Markdown file")
        docs, argv = Path(argv[at + 1]), argv[:at] + argv[at + 2:]
    lines = table(argv or ["."])
    print("\n".join(lines))
    if docs is not None:
        write_docs(docs, lines)


if __name__ == "__main__":
    main(sys.argv[1:])
