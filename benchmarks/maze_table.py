"""The maze study's table: one row per run of benchmarks/maze_learning.py.

    python benchmarks/maze_table.py runs-in-progress/mazes [--docs docs/lab/learning-mazes.md] [--figure PNG]

Per run (a directory holding ``learning.json``; a ladder's rung directories are read one level deeper):
task, model, seed, the change (its ``--set`` options; "(preset)" for none), the last step, its training
FLOPs and minutes of training (one core, the run's own clock), success and optimal plans at the last point
(greedy decoding, the first 500 test problems), the best success and its step, the first step (FLOPs,
minutes) at which success reached 50% and 95%, the failure kinds at the last point (wall / jump / skipped
subgoal / too short / too long: the share of plans with each), the order statistic (Spearman's correlation of
decision step with distance to the nearest subgoal; positive = segments filled from their fixed ends) and
network evaluations per plan.

The frontier (target Z3 of issue 36), one row per model family: the largest maze (side length, then the most
subgoal cells) on which one of its runs planned at least 90% of the test problems within two hours of its
training clock (one core), the run and when, how many runs of that setting on that maze got there, and the
largest maze the family was tried on with the best success it reached there within the two hours. Runs
warm-started from another run (``init_from``) are left out of it: their clock does not count the training
their weights came from.

With ``--docs`` the tables replace the text between ``<!-- maze-table:begin -->`` and ``<!-- maze-table:end -->``
and between ``<!-- maze-frontier:begin -->`` and ``<!-- maze-frontier:end -->``; ``--figure`` draws success
against training FLOPs for every run.
"""

from __future__ import annotations

from pathlib import Path

from insertgen.tasks.maze.task import tier_params

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.maze_table
    from study_table import change, first_at, records, run_table_command
except ImportError:  # pragma: no cover
    from benchmarks.study_table import change, first_at, records, run_table_command

HEADER = ("| task | model | seed | change | steps | FLOPs | minutes | success | optimal | best (step) | "
          "50% success at | 95% success at | wall / jump / subgoal / short / long | order | evals / plan |")
FAILURES = ("wall", "jump", "subgoal", "too_short", "too_long")
FRONTIER_SUCCESS = 0.90  # Z3: plans at least this share of the test problems ...
FRONTIER_SECONDS = 2 * 3600  # ... within this much of the run's training clock
FRONTIER_HEADER = ("| model | largest maze planned >= 90% in 2 h | run | success | reached at | runs of that setting there | "
                   "largest maze tried: best in 2 h |")


def _when(point: dict | None) -> str:
    return "-" if point is None else f"{point['step']:,} ({point['flops']:.1e}, {point['seconds'] / 60:.0f} min)"


def row(record: dict) -> str:
    s, points = record["settings"], record["points"]
    last = points[-1]
    best = max(points, key=lambda p: p["success"])
    pct = lambda v: "-" if v is None else f"{v:.1%}"
    order = last.get("order_corr_unmask")
    return (f"| {s['task']} | {s['model']} | {s['seed']} | {change(s)} | {last['step']:,} | {last['flops']:.1e} | "
            f"{last['seconds'] / 60:.0f} | {pct(last['success'])} | {pct(last['optimal'])} | "
            f"{pct(best['success'])} ({best['step']:,}) | "
            f"{_when(first_at(points, 0.5, lambda p: p['success']))} | "
            f"{_when(first_at(points, 0.95, lambda p: p['success']))} | "
            + " / ".join(pct(last.get(f"failure_{k}")) for k in FAILURES)
            + f" | {'-' if order is None else f'{order:+.2f}'} | {last['model_evals_per_seq']:.1f} |")


def all_records(root: Path) -> list[dict]:
    """The runs under ``root``: its subdirectories' ``learning.json``, and a ladder's (``*/*/learning.json``)."""
    found = records(root)
    for ladder in sorted(p.parent for p in root.glob("*/ladder.json")):
        for rung in sorted(d for d in ladder.iterdir() if d.is_dir()):
            found += [{**r, "_dir": f"{ladder.name}/{rung.name}/{r['_dir']}"} for r in records(rung)]
    return found


def table(root: Path) -> str:
    rows = sorted(all_records(root), key=lambda r: (r["settings"]["task"], r["settings"]["model"],
                                                     change(r["settings"]), r["settings"]["seed"]))
    return "\n".join([HEADER, "|" + "---|" * HEADER.count(" | ") + "---|", *(row(r) for r in rows)])


def extent(task: str) -> tuple[int, int]:
    """A maze task's size for the frontier: (side length, most subgoal cells), from its tier or rung name."""
    params = tier_params(task.split("-", 2)[2])
    return params["size"], params["max_subgoals"]


def _describe(task: str) -> str:
    size, cells = extent(task)
    return f"{task} ({size} x {size}, <= {cells} subgoal cells)"


def within(record: dict) -> list[dict]:
    """The run's points measured within the frontier's two hours of training."""
    return [p for p in record["points"] if p["seconds"] <= FRONTIER_SECONDS]


def best_within(record: dict) -> dict | None:
    """The run's point of highest success within the frontier's two hours."""
    return max(within(record), key=lambda p: p["success"], default=None)


def frontier(root: Path) -> str:
    """The Z3 table (module docstring): per model family, the largest maze planned at 90% within two hours."""
    lines = [FRONTIER_HEADER, "|" + "---|" * FRONTIER_HEADER.count(" | ") + "---|"]
    runs = [r for r in all_records(root) if "init_from" not in r["settings"]["overrides"]]
    for model in sorted({r["settings"]["model"] for r in runs}):
        mine = [r for r in runs if r["settings"]["model"] == model]
        tried = max(mine, key=lambda r: extent(r["settings"]["task"]))
        tried_task = tried["settings"]["task"]
        there = [best_within(r) for r in mine if r["settings"]["task"] == tried_task]
        best_tried = max((p["success"] for p in there if p is not None), default=None)
        tried_text = f"{_describe(tried_task)}: {'-' if best_tried is None else f'{best_tried:.1%}'}"
        planned = []
        for r in mine:
            point = first_at(within(r), FRONTIER_SUCCESS, lambda p: p["success"])
            if point is not None:
                planned.append((extent(r["settings"]["task"]), -point["seconds"], r, point))
        if not planned:
            lines.append(f"| {model} | none | - | - | - | - | {tried_text} |")
            continue
        _, _, run, point = max(planned, key=lambda t: (t[0], t[1]))
        task, setting = run["settings"]["task"], change(run["settings"])
        same = [r for r in mine if r["settings"]["task"] == task and change(r["settings"]) == setting]
        reached = sum(1 for r in same if (b := best_within(r)) is not None and b["success"] >= FRONTIER_SUCCESS)
        lines.append(f"| {model} | {_describe(task)} | {run['_dir']} (seed {run['settings']['seed']}, {setting}) | "
                     f"{point['success']:.1%} | {point['step']:,} steps, {point['seconds'] / 60:.0f} min | "
                     f"{reached} of {len(same)} | {tried_text} |")
    return "\n".join(lines)


def figure(root: Path, path: Path) -> Path:
    """Success against training FLOPs, one line per run named by its directory (solid: success; dotted:
    optimal)."""
    from insertgen.core.figures import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 5))
    colors = plt.get_cmap("tab20")
    for k, record in enumerate(all_records(root)):
        points, color = record["points"], colors(k % 20)
        flops = [p["flops"] for p in points]
        ax.plot(flops, [p["success"] for p in points], color=color, marker=".", label=record["_dir"])
        ax.plot(flops, [p["optimal"] for p in points], color=color, ls=":")
    ax.set_xscale("symlog", linthresh=1e12)
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel("valid plans (500 test problems, greedy)")
    ax.set_ylim(0, 1)
    ax.set_title("maze planning against compute (solid: success, dotted: optimal)", fontsize=10)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> None:
    run_table_command(argv, __doc__, "maze-table", table, figure, "Also draw success against FLOPs here.",
                      more={"maze-frontier": frontier})


if __name__ == "__main__":
    main()
