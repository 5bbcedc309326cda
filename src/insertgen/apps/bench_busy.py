"""Speed beside other work (``insertgen bench --busy``): the training step of each star-easy preset and the
sampling of the shipped star-easy FlexMDM, timed on an idle machine and beside neighbours this benchmark
starts itself, under one or more thread policies (insertgen/core/threads.py).

A policy is ``WAIT@THREADS``: the OpenMP wait policy (``runtime``, ``passive``, ``spin:N``) and the
thread count (``auto``: adaptive, the library's default; or a fixed N), e.g. ``runtime@2`` (what torch
does by itself on this 2-core machine), ``passive@2``, ``runtime@auto`` (insertgen's default).

Conditions, each measured in a fresh process (the policy's variables set before torch loads):

* ``idle``: nothing else runs (other than what the machine already runs: see ``load_before``);
* ``busy1`` / ``busy2``: one / two single-threaded busy loops (``while time() < deadline: pass`` in
  their own Python processes, deadline-bounded, terminated when the measurement ends);
* ``train``: a second ``insertgen train --preset star-easy-cpu`` run under the same policy (wait and
  thread count), time-bounded, started and warmed up (first metrics written) before the timing.

Per condition the worker times ``steps`` training steps of each preset after ``warmup`` steps (median
wall time of ``Trainer.train_step``, as ``insertgen bench``) and one sampling pass (``sample_n`` prompts,
``sample_steps`` sampler steps). ``ratio`` = the median step (or sampling time) under the condition /
the same policy's idle one; ``vs_runtime_idle`` = the same / the idle time under the runtime's own
defaults (policy ``runtime``), when that policy is among those measured.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from insertgen.apps.bench import measure_sampling, measure_training
from insertgen.apps.demo import pretrained_dir
from insertgen.core.errors import InsertgenError
from insertgen.core.threads import (
    POLICY_VARIABLE,
    WAIT_VARIABLES,
    allowed_cores,
    policy_settings,
    resolve_threads,
    thread_report,
    use_threads,
)
from insertgen.engine.run import load_run
from insertgen.models.registry import family_of

CONDITIONS = ("idle", "busy1", "busy2", "train")
STAR_EASY_SPECS = tuple(f"star-easy-{m}cpu" for m in ("", "loflexmdm-", "ip-", "ao-ip-", "arm-", "mdm-"))
QUICK_SPECS = ("star-easy-cpu", "star-easy-loflexmdm-cpu", "star-easy-ip-cpu")
NEIGHBOUR_SECONDS = 1800  # the longest a neighbour may live if this process dies without ending it
BUSY_LOOP = "import time\nend = time.time() + {seconds}\nwhile time.time() < end:\n    pass\n"


def parse_policy(policy: str) -> tuple[str, str]:
    """``WAIT@THREADS`` -> (wait policy, thread count or "auto"); a bare ``WAIT`` is adaptive."""
    wait, _, threads = policy.partition("@")
    policy_settings(wait)  # a bad wait policy is refused here
    threads = threads or "auto"
    if threads != "auto":
        resolve_threads(threads)
    return wait, threads


def policy_environment(policy: str, base=None) -> dict[str, str]:
    """``base`` (default os.environ) with the wait variables of ``policy`` only (the user's or an earlier
    policy's removed, so that each measured policy is exactly itself) and no OMP_NUM_THREADS."""
    wait, _ = parse_policy(policy)
    drop = (*WAIT_VARIABLES, "OMP_NUM_THREADS", POLICY_VARIABLE)
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in drop}
    env.update(policy_settings(wait), **{POLICY_VARIABLE: wait})
    return env


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux /proc), or 0 where it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class Neighbours:
    """The processes of one condition, started on entry and ended on exit (whatever happens)."""

    def __init__(self, condition: str, env: dict[str, str], workdir: Path, threads: str = "auto"):
        self.condition, self.env, self.workdir, self.threads = condition, env, workdir, threads
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> "Neighbours":
        try:
            if self.condition in ("busy1", "busy2"):
                for _ in range(int(self.condition[-1])):
                    self.procs.append(subprocess.Popen(
                        [sys.executable, "-c", BUSY_LOOP.format(seconds=NEIGHBOUR_SECONDS)], env=self.env))
            elif self.condition == "train":
                self._start_training()
            elif self.condition != "idle":
                raise InsertgenError(f"unknown condition {self.condition!r}; choose from {', '.join(CONDITIONS)}")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start_training(self) -> None:
        run = self.workdir / "neighbour-run"
        log = open(self.workdir / "neighbour.log", "w", encoding="utf-8")
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "insertgen.apps.cli", "train", "--preset", "star-easy-cpu", "--out", str(run),
             "--threads", self.threads,
             "--time-budget", str(NEIGHBOUR_SECONDS), "--quiet", "--set", "eval_every=0", "--set", "log_every=5",
             "--set", "checkpoint_every=1000000"], env=self.env, stdout=log, stderr=subprocess.STDOUT))
        log.close()
        deadline = time.time() + 300
        while not (run / "metrics.jsonl").is_file() or not (run / "metrics.jsonl").read_text().strip():
            if self.procs[0].poll() is not None:
                raise InsertgenError(f"the neighbour training run ended early (exit {self.procs[0].returncode}); "
                                     f"see {self.workdir / 'neighbour.log'}")
            if time.time() > deadline:
                raise InsertgenError("the neighbour training run wrote no metrics within 300 s")
            time.sleep(0.5)

    def cpu_seconds(self) -> float:
        return sum(_cpu_seconds(p.pid) for p in self.procs)

    def __exit__(self, *exc) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def measure_condition(policy: str, condition: str, specs, steps: int, warmup: int, sample_n: int,
                      sample_steps: int) -> list[dict]:
    """Start the neighbours of ``condition``, run one measuring process under ``policy``, end them. A
    neighbour training run uses the same policy as the measured process."""
    env = policy_environment(policy)
    job = {"specs": list(specs), "steps": steps, "warmup": warmup, "sample_n": sample_n,
           "sample_steps": sample_steps, "threads": parse_policy(policy)[1]}
    with tempfile.TemporaryDirectory(prefix="insertgen-busy-") as tmp:
        load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        with Neighbours(condition, env, Path(tmp), job["threads"]) as neighbours:
            start_cpu, start = neighbours.cpu_seconds(), time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "insertgen.apps.bench_busy", json.dumps(job)], env=env,
                                  capture_output=True, text=True)
            neighbour_cores = (neighbours.cpu_seconds() - start_cpu) / (time.perf_counter() - start)
        if proc.returncode != 0:
            raise InsertgenError(f"the measuring process failed under policy {policy!r}, condition {condition!r}:\n"
                                 f"{proc.stderr.strip()[-2000:]}")
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    for row in rows:
        row.update(policy=policy, condition=condition, neighbour_cores=neighbour_cores, load_before=load_before)
    return rows


def add_ratios(rows: list[dict]) -> list[dict]:
    """``ratio`` against the same policy's idle row and ``vs_runtime_idle`` against the idle row of the
    runtime's own behaviour (``runtime@N``, N every allowed core), when it was measured."""
    idle = {(r["policy"], r["what"]): r["seconds"] for r in rows if r["condition"] == "idle"}
    plain = f"runtime@{allowed_cores()}"
    for r in rows:
        base = idle.get((r["policy"], r["what"]))
        r["ratio"] = r["seconds"] / base if base else None
        runtime = idle.get((plain, r["what"]))
        r["vs_runtime_idle"] = r["seconds"] / runtime if runtime else None
    return rows


def run(policies=("runtime@auto",), conditions=CONDITIONS, quick: bool = False, specs=None,
        steps: int | None = None, repeat: int = 1, report=print) -> list[dict]:
    """Every (policy, condition) of the module docstring, ``repeat`` times over (the rounds interleaved,
    so that a slow spell of the machine does not fall on one policy); ``report`` gets each measurement as
    it is made. Returns one row per (policy, condition, measured thing): ``seconds`` is the median over
    the rounds (all of them in ``rounds``), with the ratios."""
    for condition in conditions:
        if condition not in CONDITIONS:
            raise InsertgenError(f"--condition {condition!r}: choose from {', '.join(CONDITIONS)}")
    for policy in policies:
        parse_policy(policy)  # a bad name fails before anything runs
    specs = list(specs or (QUICK_SPECS if quick else STAR_EASY_SPECS))
    steps = steps or (8 if quick else 20)
    measured: dict[tuple, dict] = {}
    for _ in range(repeat):
        for policy in policies:
            for condition in conditions:
                for row in measure_condition(policy, condition, specs, steps, warmup=5,
                                             sample_n=50 if quick else 100, sample_steps=64):
                    report(row)
                    key = (row["policy"], row["condition"], row["what"])
                    measured.setdefault(key, {**row, "rounds": []})["rounds"].append(row["seconds"])
    rows = list(measured.values())
    for row in rows:
        row["seconds"] = statistics.median(row["rounds"])
    return add_ratios(rows)


def format_table(rows: list[dict]) -> str:
    """One line per (policy, what): the idle time and each condition's ratio to it."""
    conditions = [c for c in CONDITIONS if any(r["condition"] == c for r in rows)]
    lines = [f"{'policy':<12} {'measured':<28} {'idle':>9}  " + "  ".join(f"{c:>7}" for c in conditions[1:])
             + ("  idle vs runtime" if any(r.get("vs_runtime_idle") for r in rows) else "")]
    keys = list(dict.fromkeys((r["policy"], r["what"]) for r in rows))
    for policy, what in keys:
        by_condition = {r["condition"]: r for r in rows if r["policy"] == policy and r["what"] == what}
        idle = by_condition.get("idle")
        line = f"{policy:<12} {what:<28} {idle['seconds'] * 1e3 if idle else float('nan'):7.1f}ms  "
        line += "  ".join(f"{by_condition[c]['ratio']:6.2f}x" if c in by_condition and by_condition[c]["ratio"]
                          else f"{'-':>7}" for c in conditions[1:])
        if idle and idle.get("vs_runtime_idle"):
            line += f"  {idle['vs_runtime_idle']:.3f}"
        lines.append(line)
    return "\n".join(lines)


def _worker(job: dict) -> None:
    """The measuring process: one JSON line per preset and one for sampling."""

    use_threads(job["threads"])
    for spec in job["specs"]:
        m = measure_training(spec, job["steps"], job["warmup"], peak=float("nan"), count_flops=False)
        print(json.dumps({"what": spec, "kind": "train", "seconds": m["median_step_s"], **thread_report()}),
              flush=True)
    model = load_run(pretrained_dir("flexmdm"))
    measure_sampling(model, 8, family_of(model).sampler_options({"steps": job["sample_steps"]}))  # warm-up
    m = measure_sampling(model, job["sample_n"], family_of(model).sampler_options({"steps": job["sample_steps"]}))
    print(json.dumps({"what": f"sample flexmdm n={job['sample_n']}", "kind": "sample", "seconds": m["wall_s"],
                      **thread_report()}), flush=True)


if __name__ == "__main__":
    _worker(json.loads(sys.argv[1]))
