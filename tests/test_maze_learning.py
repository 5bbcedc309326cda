"""The maze learning-speed benchmark (benchmarks/maze_learning.py): its smallest run and ladder write the
documented keys, continue when rerun, and refuse what is not a maze task."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from insertgen.tasks.maze.paths import FAILURE_KINDS

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--set", "d_model=32", "--set", "n_layers=1", "--set", "n_heads=2", "--set", "batch_size=8"]


def _run(args, cwd, check=True):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "maze_learning.py"), *args, "--threads", "1"],
                          check=False, capture_output=True, text=True, timeout=600, cwd=cwd)
    assert not check or proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_smallest_maze_run_writes_its_documented_keys_and_continues(tmp_path):
    out = tmp_path / "one"
    args = ["--task", "maze-perfect-7x7-k3", "--model", "ip", "--steps", "4", "--every", "2", "--eval-n", "8",
            *TINY, "--out", str(out)]
    _run(args, tmp_path)
    record = json.loads((out / "learning.json").read_text())
    assert set(record) == {"settings", "machine", "flops_per_step", "points", "time_to_solve"}
    assert record["settings"]["preset"] == "maze-perfect-7x7-k3-ip-cpu"  # the easy tier's, for this rung
    assert [p["step"] for p in record["points"]] == [0, 2, 4] and set(record["time_to_solve"]) == {"0.5", "0.95"}
    for point in record["points"]:
        assert {"success", "optimal", "exact_match", "token_accuracy", "model_evals_per_seq", "loss", "flops",
                *(f"failure_{k}" for k in FAILURE_KINDS)} <= set(point)
        assert all(0.0 <= point[f"failure_{k}"] <= 1.0 for k in FAILURE_KINDS)
        # every plan that is not a success has a fault other than being too long
        assert 1 - point["success"] <= sum(point[f"failure_{k}"] for k in FAILURE_KINDS if k != "too_long") + 1e-9
        corr = point.get("order_corr_unmask")
        assert corr is None or -1.0 <= corr <= 1.0
    assert "NaN" not in (out / "learning.json").read_text()
    assert (out / "learning.png").read_bytes()[:4] == b"\x89PNG"
    _run([*args[:5], "6", *args[6:]], tmp_path)  # a larger budget continues the run
    assert [p["step"] for p in json.loads((out / "learning.json").read_text())["points"]] == [0, 2, 4, 6]

    # the study table: one row for the run, written between the document's markers
    last = json.loads((out / "learning.json").read_text())["points"][-1]
    doc = tmp_path / "doc.md"
    doc.write_text("before\n<!-- maze-table:begin -->\nold\n<!-- maze-table:end -->\nafter\n"
                   "<!-- maze-frontier:begin -->\n<!-- maze-frontier:end -->\n")
    _table([str(tmp_path), "--docs", str(doc), "--figure", str(tmp_path / "t.png")], tmp_path)
    lines = doc.read_text().splitlines()
    assert lines[0] == "before" and lines[lines.index("after") - 1] == "<!-- maze-table:end -->" and "old" not in lines
    assert lines[lines.index("<!-- maze-frontier:begin -->") + 1].startswith("| model | largest maze planned")
    row = next(line for line in lines if line.startswith("| maze-perfect-7x7-k3 |")).split(" | ")
    assert row[1:5] == ["ip", "0", "batch_size=8, d_model=32, n_heads=2, n_layers=1", "6"]
    assert row[7] == f"{last['success']:.1%}"
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    no_markers = tmp_path / "plain.md"
    no_markers.write_text("nothing here\n")
    proc = _table([str(tmp_path), "--docs", str(no_markers)], tmp_path, check=False)
    assert proc.returncode != 0 and "no <!-- maze-table:begin --> / <!-- maze-frontier:begin -->" in proc.stderr
    assert no_markers.read_text() == "nothing here\n"


def _fake_run(root: Path, name: str, task: str, model: str, seed: int, curve: list[tuple[float, float]], **sets):
    """A learning.json with points (seconds, success), 1,000 steps apart, as the maze benchmark writes it."""
    points = [{"step": 1000 * (i + 1), "flops": 1e13 * (i + 1), "seconds": t, "success": v, "optimal": v}
              for i, (t, v) in enumerate(curve)]
    (root / name).mkdir(parents=True)
    (root / name / "learning.json").write_text(json.dumps({"settings": {
        "task": task, "model": model, "seed": seed, "overrides": {"log_every": 50, **sets}}, "points": points}))


def test_the_frontier_names_the_largest_maze_planned_at_90_percent_within_two_hours(tmp_path):
    """Z3's table: a maze reached only after two hours does not count, the largest of the rest does (size first,
    then subgoal cells), a family that never reaches 90% says so beside the largest maze it was tried on, and a
    warm-started run (whose clock leaves out its source's training) does not count."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from maze_table import frontier

    _fake_run(tmp_path, "a", "maze-perfect-easy", "ip", 0, [(600, 0.5), (1200, 0.93)], token_shift=True)
    _fake_run(tmp_path, "b", "maze-perfect-easy", "ip", 1, [(600, 0.4), (1500, 0.85)], token_shift=True)
    _fake_run(tmp_path, "c", "maze-perfect-7x7-k5", "ip", 0, [(300, 0.99)])
    _fake_run(tmp_path, "d", "maze-braided-medium", "ip", 0, [(3600, 0.6), (7000, 0.7), (7300, 0.95)])
    _fake_run(tmp_path, "e", "maze-perfect-easy", "flexmdm", 0, [(900, 0.3), (1800, 0.61)])
    _fake_run(tmp_path, "f", "maze-braided-medium", "flexmdm", 0, [(0, 0.95)], init_from="e/run")  # warm start
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in frontier(tmp_path).splitlines()[2:]}
    assert rows["ip"][1].startswith("maze-perfect-easy (9 x 9, <= 4 subgoal cells)")
    assert rows["ip"][2] == "a (seed 0, token_shift=True)" and rows["ip"][3] == "93.0%"
    assert rows["ip"][4] == "2,000 steps, 20 min" and rows["ip"][5] == "1 of 2"
    assert rows["ip"][6] == "maze-braided-medium (13 x 13, <= 5 subgoal cells): 70.0% |"  # 95% came after 2 h
    assert rows["flexmdm"][1:6] == ["none", "-", "-", "-", "-"] and rows["flexmdm"][6].endswith(": 61.0% |")


def test_a_run_given_another_preset_than_its_tasks_names_it_in_its_change():
    """The study tables' change column: a run trained with ``--preset`` other than its task's own says so (a
    hard-tier maze run with the medium tier's preset is not the hard tier's preset)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from study_table import change

    own = {"task": "maze-braided-hard", "model": "arm", "preset": "maze-braided-hard-arm-cpu",
           "overrides": {"log_every": 50}}
    assert change(own) == "(preset)"
    other = {**own, "preset": "maze-braided-medium-arm-cpu", "overrides": {"log_every": 50, "token_shift": True}}
    assert change(other) == "preset=maze-braided-medium-arm-cpu, token_shift=True"
    rung = {"task": "maze-braided-21x21-k7", "model": "arm", "preset": "maze-braided-21x21-k7-arm-cpu",
            "overrides": {}}
    assert change(rung) == "(preset)" and change({**rung, "preset": "maze-braided-medium-arm-cpu"}) != "(preset)"


def _table(args, cwd, check=True):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "maze_table.py"), *args],
                          check=False, capture_output=True, text=True, timeout=300, cwd=cwd)
    assert not check or proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_smallest_maze_ladder_reports_time_to_success(tmp_path):
    out = tmp_path / "ladder"
    _run(["--ladder", "maze-braided-7x7-k2", "--models", "arm", "--steps", "2", "--every", "2", "--eval-n", "8",
          *TINY, "--out", str(out)], tmp_path)
    summary = json.loads((out / "ladder.json").read_text())
    assert [(r["task"], r["model"]) for r in summary["rows"]] == [("maze-braided-7x7-k2", "arm")]
    assert "best_success" in summary["rows"][0] and summary["settings"]["headline"] == "success"
    assert (out / "maze-braided-7x7-k2" / "arm" / "learning.json").is_file()
    table = (out / "ladder.md").read_text().splitlines()
    assert table[0] == "| task | model | 50% success | 95% success | best (step) |" and len(table) == 3
    runs, frontier = _table([str(tmp_path)], tmp_path).stdout.split("\n\n")  # the study table reads the ladder's runs
    study = runs.splitlines()
    assert len(study) == 3 and study[2].startswith("| maze-braided-7x7-k2 | arm | 0 |")
    assert frontier.splitlines()[2].startswith("| arm | ")  # and so does the frontier


def test_the_maze_benchmark_refuses_other_tasks_and_bad_budgets(tmp_path):
    proc = _run(["--task", "star-tiny", "--model", "ip", "--steps", "2", "--every", "2", "--out", str(tmp_path / "x")],
                tmp_path, check=False)
    assert proc.returncode == 2 and "maze tasks only" in proc.stderr and not (tmp_path / "x").exists()
    proc = _run(["--task", "maze-perfect-easy", "--model", "ip", "--steps", "2", "--every", "2", "--stop-at", "2",
                 "--out", str(tmp_path / "x")], tmp_path, check=False)
    assert proc.returncode == 2 and "--stop-at" in proc.stderr


def test_the_decoding_sweep_measures_each_distinct_sampler_once(tmp_path):
    """benchmarks/maze_decoding.py: every combination that changes FlexMDM's sampler is one row; the ARM, whose
    sampler takes none of the choices, gets one row; a row's evaluations per plan stay within its steps."""
    for model in ("flexmdm", "arm"):
        _run(["--task", "maze-perfect-7x7-k3", "--model", model, "--steps", "2", "--every", "2", "--eval-n", "4",
              *TINY, "--out", str(tmp_path / model)], tmp_path)
    out = tmp_path / "decoding.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "maze_decoding.py"), "--run",
                           str(tmp_path / "flexmdm"), "--run", str(tmp_path / "arm"), "--steps", "3", "--steps", "6",
                           "--confidence", "none", "--confidence", "top_prob", "--grid", "uniform", "--grid", "unmask",
                           "-n", "6", "--threads", "1", "--out", str(out)],
                          check=False, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    flex = [r for r in rows if r["model"] == "flexmdm"]
    assert len(flex) == 8 and len({json.dumps(r["sampler"], sort_keys=True) for r in flex}) == 8
    assert [r["model"] for r in rows].count("arm") == 1
    for r in rows:
        assert r["n"] == 6 and 0 <= r["success"] <= r["exact_match"] + 1 and r["optimal"] <= r["success"]
        assert {f"failure_{kind}" for kind in FAILURE_KINDS} <= set(r)
    for r in flex:  # one evaluation a step, and at most one more to fill what is left
        assert r["model_evals_per_seq"] <= r["sampler"]["steps"] + 1
    assert "| success | optimal |" in proc.stdout
