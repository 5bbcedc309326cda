"""The thread policy (insertgen/core/threads.py): it is in the environment before torch loads, in every entry
point and worker process; the user's own settings win; ``--threads`` is validated and recorded; and the
busy benchmark's smallest configuration runs, reports what it documents and leaves no neighbour behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY_TRAIN_ARGS, call_main
from insertgen.core.errors import InsertgenError
from insertgen.core.threads import (
    POLICY_VARIABLE,
    WAIT_VARIABLES,
    ThreadGovernor,
    allowed_cores,
    apply_thread_policy,
    machine_busy_seconds,
    policy_settings,
    resolve_threads,
)

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--set", "d_model=32", "--set", "n_layers=1", "--set", "n_heads=2", "--set", "batch_size=8"]

# Imported by every Python process started with this directory on PYTHONPATH: when a module named torch is
# first looked for, it writes the wait variables of the environment at that moment to RECORD_DIR/PID.json.
WATCHER = """
import importlib.abc, json, os, sys

class _TorchWatcher(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and "torch" not in sys.modules:
            record = os.path.join(os.environ["RECORD_DIR"], f"{os.getpid()}.json")
            if not os.path.exists(record):
                with open(record, "w") as f:
                    json.dump({"argv": sys.argv, **{k: os.environ.get(k) for k in
                               ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "INSERTGEN_THREAD_POLICY")}}, f)
        return None

sys.meta_path.insert(0, _TorchWatcher())
"""


def _watched_env(tmp_path: Path, **extra) -> tuple[dict, Path]:
    hook, records = tmp_path / "hook", tmp_path / "records"
    hook.mkdir()
    records.mkdir()
    (hook / "sitecustomize.py").write_text(WATCHER)
    env = {k: v for k, v in os.environ.items() if k not in (*WAIT_VARIABLES, POLICY_VARIABLE, "OMP_NUM_THREADS")}
    env.update(PYTHONPATH=os.pathsep.join([str(hook), str(ROOT / "src")]), RECORD_DIR=str(records), **extra)
    return env, records


def _records(records: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(records.glob("*.json"))]


ENTRY_POINTS = {
    "insertgen": [str(Path(sys.executable).parent / "insertgen")],
    "python -m insertgen": [sys.executable, "-m", "insertgen"],
    "python -m insertgen.apps.cli": [sys.executable, "-m", "insertgen.apps.cli"],
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("policy, expected", [
    (None, {"GOMP_SPINCOUNT": None, "OMP_WAIT_POLICY": None}),  # the default: the runtime's own wait policy
    ("passive", {"GOMP_SPINCOUNT": None, "OMP_WAIT_POLICY": "PASSIVE"}),
])
def test_the_policy_is_in_the_environment_when_torch_loads(tmp_path, entry, policy, expected):
    if not Path(ENTRY_POINTS[entry][0]).exists():
        pytest.skip(f"{ENTRY_POINTS[entry][0]} is not installed here")
    env, records = _watched_env(tmp_path, **({POLICY_VARIABLE: policy} if policy else {}))
    proc = subprocess.run([*ENTRY_POINTS[entry], "score", "--run", str(tmp_path / "no-run"), "--input", "x.jsonl"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "does not exist" in proc.stderr  # it got as far as loading the run
    seen = _records(records)
    assert seen, "torch was never imported"
    for record in seen:
        assert {k: record[k] for k in expected} == expected, record


@pytest.mark.parametrize("user, expected", [
    ({"GOMP_SPINCOUNT": "123"}, {"GOMP_SPINCOUNT": "123", "OMP_WAIT_POLICY": None}),
    ({"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": None, "OMP_WAIT_POLICY": "ACTIVE"}),
    ({POLICY_VARIABLE: "passive"}, {"GOMP_SPINCOUNT": None, "OMP_WAIT_POLICY": "PASSIVE"}),
    ({POLICY_VARIABLE: "runtime"}, {"GOMP_SPINCOUNT": None, "OMP_WAIT_POLICY": None}),
    ({POLICY_VARIABLE: "spin:500"}, {"GOMP_SPINCOUNT": "500", "OMP_WAIT_POLICY": None}),
])
def test_the_users_settings_win(tmp_path, user, expected):
    env, records = _watched_env(tmp_path, **user)
    proc = subprocess.run([sys.executable, "-m", "insertgen", "score", "--run", str(tmp_path / "no-run"),
                           "--input", "x.jsonl"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    seen = _records(records)
    assert seen and all({k: r[k] for k in expected} == expected for r in seen), seen


def test_reproduce_workers_load_torch_under_the_policy(tmp_path):
    env, records = _watched_env(tmp_path, **{POLICY_VARIABLE: "spin:1234"})
    proc = subprocess.run([sys.executable, "-m", "insertgen.apps.cli", "reproduce", "--tasks", "star-easy", "--models",
                           "flexmdm,arm", "--seeds", "0", "--budget", "1s", "--eval-n", "4", "--sampler-steps", "2",
                           *TINY, "--jobs", "2", "--out", str(tmp_path / "grid")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = _records(records)
    assert len(seen) >= 3  # the command and its two workers
    assert all(r["GOMP_SPINCOUNT"] == "1234" for r in seen), seen
    cells = [json.loads(p.read_text()) for p in (tmp_path / "grid" / "cells").glob("*.json")]
    assert len(cells) == 2 and all(c["training"]["threads"] == max(1, allowed_cores() // 2) for c in cells)


def test_policy_settings_and_refusals(monkeypatch):
    assert policy_settings("passive") == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert policy_settings("spin:0") == {"GOMP_SPINCOUNT": "0"}
    assert policy_settings("runtime") == {}
    for bad in ("fast", "bounded", "spin:", "spin:-3", "spin:1e4"):
        with pytest.raises(InsertgenError, match="unknown thread policy"):
            policy_settings(bad)
    import torch  # noqa: F401  (loaded: too late to set anything, so nothing is set)

    environ = {}
    assert apply_thread_policy(environ) == {} and environ == {}
    monkeypatch.delitem(sys.modules, "torch")
    environ = {POLICY_VARIABLE: "spin:77"}
    assert apply_thread_policy(environ) == {"GOMP_SPINCOUNT": "77"} and environ["GOMP_SPINCOUNT"] == "77"
    environ = {POLICY_VARIABLE: "nonsense"}
    assert apply_thread_policy(environ) == {}  # warned, the default (the runtime's own) used
    environ = {"OMP_WAIT_POLICY": "PASSIVE", POLICY_VARIABLE: "spin:77"}
    assert apply_thread_policy(environ) == {} and "GOMP_SPINCOUNT" not in environ  # the user's choice wins


def test_thread_counts_are_validated(monkeypatch):
    allowed = allowed_cores()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert resolve_threads(None) is None and resolve_threads("auto") is None  # adaptive
    assert resolve_threads(1) == 1 and resolve_threads("1") == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert resolve_threads(None) == 1  # the user's (or torchrun's) count is a fixed one
    for bad, message in ((0, "at least 1"), ("-2", "at least 1"), ("two", "whole number"),
                         (allowed + 1, f"at most {allowed}")):
        with pytest.raises(InsertgenError, match=message):
            resolve_threads(bad)


@pytest.mark.parametrize("bad, message", [("0", "at least 1"), ("-1", "at least 1"), ("999", "give at most"),
                                          ("two", "whole number"), ("1.5", "whole number")])
def test_bad_threads_are_refused_before_anything_is_written(tmp_path, capsys, bad, message):
    out = tmp_path / "run"
    assert call_main([*TINY_TRAIN_ARGS, "--out", out, "--threads", bad]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_threads_are_recorded_in_the_config_and_a_change_on_resume_is_said(tmp_path, capsys):
    import torch

    threads = torch.get_num_threads()
    out = tmp_path / "run"
    try:
        assert call_main([*TINY_TRAIN_ARGS, "--out", out, "--threads", "1"]) == 0
        config = json.loads((out / "config.json").read_text())
        assert config["threads"]["threads"] == 1 and config["threads"]["adaptive"] is False
        assert "threads_before" not in config
        logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        assert all(r["threads"] == 1 for r in logged if "loss" in r)
        if allowed_cores() < 2:
            return
        capsys.readouterr()
        assert call_main(["train", "--out", out, "--resume", "--steps", "6", "--threads", "2", "--quiet"]) == 0
        assert "continues with 2" in capsys.readouterr().out
        config = json.loads((out / "config.json").read_text())
        assert config["threads"]["threads"] == 2 and config["threads_before"][0]["threads"] == 1
    finally:
        torch.set_num_threads(threads)


def _busy_loops() -> list[int]:
    marker = "end = time.time() + "
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in (proc / "cmdline").read_bytes().decode(errors="replace"):
                pids.append(int(proc.name))
        except OSError:
            pass
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_busy_benchmark_smallest_configuration(tmp_path, capsys):
    save = tmp_path / "busy.json"
    assert call_main(["bench", "--busy", "--quick", "--json", "--preset",
                      "star-easy-cpu:d_model=32,n_layers=1,n_heads=2,batch_size=8", "--steps", "2",
                      "--condition", "idle", "--condition", "busy1", "--policy", "runtime@auto", "--policy",
                      "passive@1", "--save", save]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    rows = json.loads(save.read_text())
    assert len(printed) == len(rows) == 2 * 2 * 2  # policies x conditions x (one preset + sampling)
    for row in rows:
        assert {"policy", "condition", "what", "kind", "seconds", "ratio", "vs_runtime_idle", "threads",
                "neighbour_cores"} <= set(row)
        assert row["seconds"] > 0 and row["ratio"] > 0
        assert row.get("OMP_WAIT_POLICY") == ("PASSIVE" if row["policy"] == "passive@1" else None)
        # adaptive where the count is "auto" and there is more than one core to choose from (under `taskset -c N`
        # one core: nothing to adapt)
        assert row["adaptive"] == (row["policy"] == "runtime@auto" and allowed_cores() > 1)
        if row["policy"] == "passive@1":
            assert row["threads"] == 1
        if row["condition"] == "idle":
            assert row["ratio"] == 1.0
        else:
            assert row["neighbour_cores"] > 0.3  # the busy loop really ran beside the measurement
    assert not _busy_loops(), "a busy neighbour outlived the benchmark"


def test_busy_benchmark_refuses_options_it_does_not_use(capsys):
    assert call_main(["bench", "--busy", "--run", "somewhere"]) == 2
    assert "do not apply" in capsys.readouterr().err
    assert call_main(["bench", "--policy", "passive"]) == 2
    assert "with --busy only" in capsys.readouterr().err
    assert call_main(["bench", "--repeat", "2"]) == 2
    assert "with --busy only" in capsys.readouterr().err
    assert call_main(["bench", "--busy", "--policy", "sometimes"]) == 2
    assert "unknown thread policy" in capsys.readouterr().err
    assert call_main(["bench", "--busy", "--policy", "runtime@0"]) == 2
    assert "at least 1" in capsys.readouterr().err
    assert call_main(["bench", "--busy", "--policy", "runtime@1", "--threads", "1"]) == 2
    assert "inside each --policy" in capsys.readouterr().err


class _FakeMachine:
    """A clock, the machine's busy CPU seconds and this process's, advanced by hand."""

    def __init__(self):
        self.now = self.busy = self.own = 0.0

    def advance(self, seconds: float, others: float, own: float = 1.0) -> None:
        self.now += seconds
        self.own += own * seconds
        self.busy += (own + others) * seconds


def test_the_governor_gives_way_to_busy_neighbours_and_takes_cores_back_slowly():
    machine, set_to = _FakeMachine(), []
    governor = ThreadGovernor(2, cpus=[0, 1], interval=1.0, clock=lambda: machine.now,
                              busy=lambda cpus: machine.busy, own=lambda: machine.own, set_threads=set_to.append,
                              get_threads=lambda: set_to[-1] if set_to else 2)
    assert governor.tick() == 2  # the first tick only marks
    machine.advance(0.5, others=1.0)
    assert governor.tick() == 2 and set_to == []  # not a whole interval yet
    machine.advance(0.5, others=1.0)
    assert governor.tick() == 1 and set_to == [1]  # one core busy elsewhere: lower at once
    machine.advance(1.0, others=2.0)
    assert governor.tick() == 1 and set_to == [1]  # never below one
    machine.advance(1.0, others=0.1)
    assert governor.tick() == 1  # one quiet interval is not enough to grow
    machine.advance(1.0, others=0.9)
    assert governor.tick() == 1  # nor is a quiet one followed by a busy one
    machine.advance(1.0, others=0.2)
    assert governor.tick() == 1
    machine.advance(1.0, others=0.3)
    assert governor.tick() == 2 and set_to == [1, 2]  # two quiet intervals in a row
    machine.advance(1.0, others=0.45)
    assert governor.tick() == 2  # less than half a core elsewhere keeps both
    assert [c[1] for c in governor.changes] == [1, 2]
    set_to.append(1)  # someone else sets the count: the governor stands down for good
    machine.advance(1.0, others=2.0)
    assert governor.tick() == 2 and not governor.active
    machine.advance(1.0, others=2.0)
    governor.tick()
    assert set_to[-1] == 1 and [c[1] for c in governor.changes] == [1, 2]


def test_the_governor_never_exceeds_its_bound_or_acts_without_readings():
    machine, set_to = _FakeMachine(), []
    governor = ThreadGovernor(2, cpus=[0, 1, 2, 3], interval=1.0, clock=lambda: machine.now,
                              busy=lambda cpus: machine.busy, own=lambda: machine.own, set_threads=set_to.append,
                              get_threads=lambda: 2)
    for _ in range(4):
        governor.tick()
        machine.advance(1.0, others=0.0)
    assert governor.threads == 2 and set_to == []  # 4 free cores, but at most 2 threads
    blind = ThreadGovernor(2, cpus=[0, 1], interval=1.0, clock=lambda: machine.now, busy=lambda cpus: None,
                           own=lambda: machine.own, set_threads=set_to.append, get_threads=lambda: 2)
    for _ in range(3):
        blind.tick()
        machine.advance(1.0, others=2.0)
    assert blind.threads == 2 and set_to == []  # no /proc/stat: the count stays as it is


@pytest.mark.skipif(machine_busy_seconds([0]) is None or allowed_cores() < 2,
                    reason="needs /proc/stat and two cores")
def test_the_governor_sees_a_real_busy_loop():
    """A real single-threaded busy loop beside this process: within a few intervals the governor, ticking
    between matrix products, computes with one thread less."""
    import time

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(allowed_cores())
    loop = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 60\nwhile time.time() < end:\n"
                             "    pass\n"])
    try:
        governor = ThreadGovernor(allowed_cores(), interval=0.5)
        a = torch.randn(256, 256)
        deadline = time.monotonic() + 20
        while governor.threads == allowed_cores() and time.monotonic() < deadline:
            a = torch.tanh(a @ a)
            governor.tick()
        assert governor.threads == allowed_cores() - 1, governor.changes
        assert governor.changes and governor.changes[0][2] > 0.5  # it measured the loop's core
    finally:
        loop.kill()
        loop.wait()
        torch.set_num_threads(threads)
