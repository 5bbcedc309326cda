"""Long training runs watched for memory growth and slowing steps (issue 39, item 6).

    # start a training command and watch it (everything after -- is the command)
    python benchmarks/soak.py --label mdm --run-dir RUN_DIR --out benchmarks/results/soak-mdm.json -- \\
        taskset -c 0 insertgen train --task smiles --model mdm --time-budget 3900 --threads 1 --out RUN_DIR

    # or watch a run that is already going (a reproduce cell, a resumed study run)
    python benchmarks/soak.py --label mdm --pid PID --run-dir RUN_DIR --out benchmarks/results/soak-mdm.json

    # the table and the figure of every watched run
    python benchmarks/soak.py --table benchmarks/results/soak-*.json --docs docs/results.md \\
        --figure docs/figures/soak.png

Every ``--interval`` seconds (60) it records the process's age (seconds since it started, so a run watched from
its start and one watched from later share one clock), the resident memory of the process and its children (VmRSS from
/proc, summed) and the training step the run has logged (the last training record of RUN_DIR/metrics.jsonl),
and rewrites ``--out`` with every sample so far, so a watch cut short still leaves its figures. A sample whose
step moved on since the one before is a training sample; its step time is the seconds over the steps since the
sample five before it (one minute's count of logged steps is coarse: a run that logs every 50 steps shows 50 or
100). The last training sample is left out: training ended within its minute, and what came after (an
evaluation, saving) is not training.

The figures, over the training samples after ``--warmup`` minutes (10): the growth of RSS, the least-squares
slope of RSS against time as a percentage of the RSS at the window's start per hour (the issue's target: under
5% per hour), the same slope over the second half of that window (a leak keeps growing to the end; memory
that settles slowly after the warm-up, as the allocator's pools fill over a few evaluation cycles, does not), and
the drift of the step time, the slope of step time against time as a percentage of the median
step time per hour, in wall seconds and in the process's CPU seconds (which other work on the machine and a paused
process leave alone). Memory that grows with the run (a list of every loss kept, a cache that never evicts, a
graph held from step to step) shows as a positive slope that stays; the first minutes (allocator pools, the
data cache, compiled kernels) are the warm-up the window leaves out.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from insertgen.core.io import to_json, write_text_atomic
from insertgen.core.rundir import metrics_records

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.soak
    from study_table import splice
except ImportError:
    from benchmarks.study_table import splice

SPAN = 5  # samples a step time is measured over


# --- what is watched -------------------------------------------------------------------------------------------

def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc/PID/task/*/children)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                pass
    return found


def rss_mb(pid: int) -> float | None:
    """Resident memory of ``pid`` and its children in MiB (None when ``pid`` is gone)."""
    total, alive = 0, False
    for p in descendants(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        if match:
            total, alive = total + int(match.group(1)), True
    return total / 1024 if alive else None


def logged_step(run_dir: Path) -> int | None:
    """The step of the last training record in RUN_DIR/metrics.jsonl (validation records and damaged lines
    skipped; None before the first)."""
    for _, record in reversed(metrics_records(run_dir / "metrics.jsonl")):
        if "split" not in record and "skipped" not in record and "step" in record:
            return int(record["step"])
    return None


def age_and_cpu_s(pid: int) -> tuple[float, float]:
    """Seconds since ``pid`` started (so that a run watched from its start and one watched from later share one
    clock) and the CPU seconds it has used (user + system, its own threads; from /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    tick = os.sysconf("SC_CLK_TCK")
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime - int(fields[19]) / tick, (int(fields[11]) + int(fields[12])) / tick


def alive(pid: int, child: subprocess.Popen | None) -> bool:
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    return state != "Z"


def watch(label: str, pid: int, run_dir: Path, out: Path, interval: float, command: list[str] | None,
          child: subprocess.Popen | None) -> dict:
    record = {"label": label, "run_dir": str(run_dir), "pid": pid, "command": command, "interval_s": interval,
              "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "host": os.uname().nodename,
              "samples": []}
    while alive(pid, child):
        try:
            (age, cpu), rss, step = age_and_cpu_s(pid), rss_mb(pid), logged_step(run_dir)
        except OSError:  # gone between the check and the reads
            break
        if rss is not None:
            record["samples"].append({"t_s": round(age, 1), "cpu_s": round(cpu, 2), "rss_mb": round(rss, 1),
                                      "step": step})
            write_text_atomic(out, to_json(record, indent=1) + "\n")
            print(f"{label}: {age / 60:6.1f} min  RSS {rss:8.1f} MiB  step {step}", flush=True)
        deadline = time.time() + interval
        while time.time() < deadline and alive(pid, child):
            time.sleep(min(1.0, interval))
    record["exit"] = child.returncode if child is not None else None
    record["summary"] = summarise(record["samples"])
    write_text_atomic(out, to_json(record, indent=1) + "\n")
    return record


# --- the figures ------------------------------------------------------------------------------------------------

def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys against xs."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0


def training_samples(samples: list[dict], span: int = SPAN) -> list[dict]:
    """The samples whose logged step moved on since the sample before, each with its ``step_time_s`` (wall
    seconds per step over the last ``span`` samples, fewer at the start: the step is read from a log written
    every few dozen steps, so one minute's count is coarse) and, where CPU time was recorded, ``step_cpu_s``
    (CPU seconds per step: what the run's own arithmetic costs, unmoved by other work on the machine or a
    paused process)."""
    out = []
    for i in range(1, len(samples)):
        before, now = samples[i - 1], samples[i]
        if before["step"] is None or now["step"] is None or now["step"] <= before["step"]:
            continue
        first = next(j for j in range(max(0, i - span), i) if samples[j]["step"] is not None)
        start = samples[first]
        steps = now["step"] - start["step"]
        record = {**now, "step_time_s": (now["t_s"] - start["t_s"]) / steps}
        if "cpu_s" in now and "cpu_s" in start:
            record["step_cpu_s"] = (now["cpu_s"] - start["cpu_s"]) / steps
        out.append(record)
    return out


def summarise(samples: list[dict], warmup_min: float = 10.0) -> dict:
    """RSS growth and step-time drift (% per hour) over the training samples after ``warmup_min`` minutes."""
    train = training_samples(samples)
    train = train[:-1]  # the minute in which training ended: what followed it (an evaluation) is not training
    window = [s for s in train if s["t_s"] >= warmup_min * 60]
    summary = {"samples": len(samples), "training_samples": len(train), "window_samples": len(window),
               "warmup_min": warmup_min,
               "watched_min": round(samples[-1]["t_s"] / 60, 1) if samples else 0.0,
               "training_min": round((train[-1]["t_s"] - train[0]["t_s"]) / 60, 1) if train else 0.0,
               "peak_rss_mb": max((s["rss_mb"] for s in samples), default=None)}
    if len(window) < 3:
        return {**summary, "note": "fewer than 3 training samples after the warm-up: no figures"}
    hours = [s["t_s"] / 3600 for s in window]
    rss = [s["rss_mb"] for s in window]
    figures = {"window_min": round((window[-1]["t_s"] - window[0]["t_s"]) / 60, 1),
               "steps": [window[0]["step"], window[-1]["step"]], "rss_start_mb": rss[0], "rss_end_mb": rss[-1],
               "rss_growth_pct_per_h": 100 * slope(hours, rss) / rss[0]}
    half = len(window) // 2  # a leak grows to the end; an allocator settling after the warm-up does not
    if len(window) - half >= 3:
        figures["rss_growth_second_half_pct_per_h"] = 100 * slope(hours[half:], rss[half:]) / rss[0]
    for key, name in (("step_time_s", "step_time"), ("step_cpu_s", "step_cpu")):
        if all(key in s for s in window):
            values = [s[key] for s in window]
            median = statistics.median(values)
            figures[f"median_{name}_s"] = median
            figures[f"{name}_drift_pct_per_h"] = 100 * slope(hours, values) / median
    return {**summary, **figures}


# --- the table and the figure -----------------------------------------------------------------------------------

def table(records: list[dict]) -> str:
    rows = ["| run | watched | training after warm-up | RSS at its start -> end | RSS growth | its second half | "
            "step time (median) | step-time drift | CPU per step (median) | its drift |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        s = r["summary"]
        if "rss_growth_pct_per_h" not in s:
            rows.append(f"| {r['label']} | {s['watched_min']:.0f} min | {s.get('note', '')} | | | | | | | |")
            continue
        cpu = (f"{1000 * s['median_step_cpu_s']:.0f} ms | {s['step_cpu_drift_pct_per_h']:+.1f}% / h"
               if "median_step_cpu_s" in s else "| ")
        late = (f"{s['rss_growth_second_half_pct_per_h']:+.2f}% / h" if "rss_growth_second_half_pct_per_h" in s
                else "-")
        rows.append(f"| {r['label']} | {s['watched_min']:.0f} min | {s['window_min']:.0f} min (steps "
                    f"{s['steps'][0]:,}-{s['steps'][1]:,}) | {s['rss_start_mb']:,.0f} -> {s['rss_end_mb']:,.0f} MiB | "
                    f"{s['rss_growth_pct_per_h']:+.2f}% / h | {late} | {1000 * s['median_step_time_s']:.0f} ms | "
                    f"{s['step_time_drift_pct_per_h']:+.1f}% / h | {cpu} |")
    return "\n".join(rows)


def figure(records: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6 + 0.17 * len(records)), sharex=True)
    typical = []
    for r in records:
        samples = r["samples"]
        top.plot([s["t_s"] / 60 for s in samples], [s["rss_mb"] for s in samples], label=r["label"])
        train = training_samples(samples)
        if train:
            typical.append(statistics.median(s["step_time_s"] for s in train))
        line, = bottom.plot([s["t_s"] / 60 for s in train], [1000 * s["step_time_s"] for s in train], label=r["label"])
        cpu = [s for s in train if "step_cpu_s" in s]
        bottom.plot([s["t_s"] / 60 for s in cpu], [1000 * s["step_cpu_s"] for s in cpu], ls="--", lw=0.8,
                    color=line.get_color())
    warmup = records[0]["summary"]["warmup_min"] if records else 10
    for ax in (top, bottom):
        ax.axvline(warmup, color="grey", lw=0.8, ls=":")
        ax.grid(alpha=0.3)
    if typical:  # a run's first minutes (data built, nothing trained yet) would squash the rest
        bottom.set_ylim(0, 2500 * max(typical))
    top.set_ylabel("resident memory (MiB)")
    bottom.set_ylabel("ms per step (dashed: CPU)")
    bottom.set_xlabel("minutes (dotted: end of the warm-up)")
    top.set_title("Long training runs, one core each: memory and step time every minute")
    fig.tight_layout()
    # below the plots: with many runs a legend inside the axes hides their lines
    legend_height = (0.17 * len(records) + 0.3) / fig.get_figheight()
    fig.subplots_adjust(bottom=0.08 + legend_height)
    fig.legend(*top.get_legend_handles_labels(), loc="lower center", ncol=1, fontsize=8, frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = None
    if "--" in argv:
        command, argv = argv[argv.index("--") + 1:], argv[:argv.index("--")]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", help="the run's name in the table (a model family)")
    parser.add_argument("--run-dir", type=Path, help="the run directory whose metrics.jsonl gives the step")
    parser.add_argument("--pid", type=int, help="watch this running process instead of starting a command")
    parser.add_argument("--out", type=Path, help="the JSON file the samples go to")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between samples (60)")
    parser.add_argument("--warmup", type=float, default=10.0, help="minutes left out of the figures (10)")
    parser.add_argument("--table", type=Path, nargs="+", help="summarise these watch files instead of watching")
    parser.add_argument("--docs", type=Path, help="with --table: fill this page's soak section")
    parser.add_argument("--figure", type=Path, help="with --table: draw memory and step time to this picture")
    args = parser.parse_args(argv)
    if args.table:
        records = [json.loads(p.read_text()) for p in args.table]
        for r in records:  # recomputed, so a watch cut short and a changed --warmup are summarised alike
            r["summary"] = summarise(r["samples"], args.warmup)
        text = table(records)
        print(text)
        if args.docs:
            splice(args.docs, {"soak": text})
        if args.figure:
            figure(records, args.figure)
        return
    if not (args.label and args.run_dir and args.out) or (args.pid is None) == (command is None):
        parser.error("watching needs --label, --run-dir, --out and either --pid or a command after --")
    if args.interval <= 0 or args.warmup < 0:
        parser.error("--interval must be positive and --warmup not negative")
    child = subprocess.Popen(command) if command else None
    pid = child.pid if child else args.pid
    if not alive(pid, child):
        parser.error(f"no running process {pid}")
    record = watch(args.label, pid, args.run_dir, args.out, args.interval, command, child)
    print(json.dumps(record["summary"], indent=1))
    if child is not None and child.returncode:
        sys.exit(child.returncode)


if __name__ == "__main__":
    main()
