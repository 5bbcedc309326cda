"""Partial-progress signals of molecule strings (insertgen.tasks.molecules.progress) on hand-written
strings, and the molecule learning-speed benchmark's smallest run (benchmarks/molecule_learning.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rdkit")

from insertgen.tasks.molecules.progress import (
    attachments_matched,
    branches_balanced,
    capped,
    progress_signals,
    rings_paired,
    valences_legal,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("text, paired", [
    ("c1ccccc1", True), ("c1ccccc", False), ("C1CC2CC1C2", True), ("C1CC2CC1C", False),
    ("C1CC1C1CC1", True),  # a label reused after it closed
    ("C%12CC%12", True), ("C%12CC", False), ("", False), ("CxC", False)])
def test_ring_closures_pair_up(text, paired):
    assert rings_paired(text) is paired


@pytest.mark.parametrize("text, balanced", [
    ("CC(C)C", True), ("CC(C(O)N)C", True), ("CC(C", False), ("CC)(C", False), ("CC()C", False), ("C)C(C", False)])
def test_branches_balance(text, balanced):
    assert branches_balanced(text) is balanced


@pytest.mark.parametrize("text, legal", [
    ("CC(C)(C)C", True), ("CC(C)(C)(C)C", False),  # a pentavalent carbon
    ("O=C=O", True), ("C=O=C", False), ("c1ccccc1", True),
    ("c1ccccc", False),  # does not parse: an unclosed ring
    ("CC(C", False)])
def test_valences_are_legal(text, legal):
    assert valences_legal(text) is legal


def test_safe_attachment_points_match():
    assert attachments_matched("c1ccc<1>cc1.C<1>C")
    assert attachments_matched("C<1>C<2>.N<1>.O<2>")
    assert not attachments_matched("c1ccc<1>cc1.C<2>C")  # two unmatched points
    assert not attachments_matched("C<1>C<1>")  # both ends in one fragment
    assert not attachments_matched("C<1>.C<1>.C<1>")  # used three times
    assert attachments_matched("CCO")  # nothing to match


def test_safe_fragments_are_judged_on_their_own():
    """Each attachment is capped by a dummy atom, so a fragment whose partner is missing still parses, and a
    fragment with an impossible valence fails whatever it is attached to."""
    assert capped("c1ccc<1>cc1.C<2>") == "c1ccc%60cc1.C%61.*%60.*%61"
    assert valences_legal("c1ccc<1>cc1.C<2>")
    assert not valences_legal("C<1>(C)(C)(C)C.C<1>")
    assert rings_paired("c1ccc<1>cc1.C1CC1")
    assert not rings_paired("c1ccc<1>cc.C1CC1c1")  # each fragment pairs its own digits


def test_shares_over_samples():
    shares = progress_signals(["c1ccccc1", "c1ccccc", "CC(C", "CC(C)(C)(C)C"], safe=False)
    assert shares == {"rings_paired": 0.75, "branches_balanced": 0.75, "valences_legal": 0.25}
    assert progress_signals(["C<1>.C<1>", "C<1>"], safe=True)["attachments_matched"] == 0.5
    assert progress_signals([], safe=True)["valences_legal"] == 0.0


def test_every_valid_molecule_has_every_signal():
    from insertgen.tasks.molecules.metrics import canonical

    for smiles in ("CC(=O)Nc1ccc(O)cc1", "O=C(O)C1CCN(Cc2ccccc2)CC1", "Cc1ccc2[nH]ccc2c1"):
        assert canonical(smiles) is not None
        assert rings_paired(smiles) and branches_balanced(smiles) and valences_legal(smiles)


@pytest.mark.parametrize("task, model", [("smiles", "ip"), ("safe", "flexmdm")])
def test_benchmark_smallest_run_writes_its_keys(tmp_path, task, model):
    out = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "molecule_learning.py"), "--task", task, "--model", model,
           "--steps", "2", "--every", "1", "--eval-n", "12", "--likelihood-n", "4", "--sampler-steps", "4",
           "--threads", "1", "--out", str(out), "--set", "d_model=32", "--set", "n_layers=1", "--set", "n_heads=2",
           "--set", "batch_size=4", "--set", "task.train_size=200", "--set", "task.test_size=50",
           "--set", "task.novelty_reference=train", "--set", "task.kl_reference_size=200"]
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True, text=True)
    record = json.loads((out / "learning.json").read_text())
    assert [p["step"] for p in record["points"]] == [0, 1, 2]
    assert record["flops_per_step"] > 0 and set(record["time_to_solve"]) == {"0.5", "0.9"}
    point = record["points"][-1]
    keys = {"validity", "uniqueness", "novelty", "quality_all", "fcd", "fcd_n", "nats_per_token",
            "rings_paired", "branches_balanced", "valences_legal", "scaffold_minus_atom", "loss", "flops"}
    if task == "safe":
        keys.add("attachments_matched")
    assert keys <= set(point)
    assert all(0.0 <= point[k] <= 1.0 for k in ("validity", "rings_paired", "branches_balanced", "valences_legal"))
    assert point["valences_legal"] >= point["validity"]  # a valid molecule's valences are legal
    assert "NaN" not in (out / "learning.json").read_text()
    assert (out / "learning.png").stat().st_size > 0
    if task != "smiles":
        return  # resuming and the decoding sweep do not depend on the task: checked once, on smiles
    # rerunning with a larger budget continues the same run; an extra temperature is evaluation only
    subprocess.run([*cmd[:6], "--steps", "3", *cmd[8:], "--extra-temperature", "0.5"], check=True, cwd=ROOT,
                   capture_output=True, text=True)
    points = json.loads((out / "learning.json").read_text())["points"]
    assert [p["step"] for p in points] == [0, 1, 2, 3]
    assert "at_temperature" not in points[2] and 0 <= points[3]["at_temperature"]["0.5"]["validity"] <= 1
    # the decoding sweep reads the same directory: one row per setting, scored the same way
    sweep = tmp_path / "decoding.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "molecule_decoding.py"), "--run", str(out),
                    "--temperature", "1", "--temperature", "0.5", "--top-p", "0.9", "-n", "6", "--steps", "4",
                    "--threads", "1", "--out", str(sweep)], check=True, cwd=ROOT, capture_output=True, text=True)
    rows = json.loads(sweep.read_text())["rows"]
    assert [(r["temperature"], r["top_p"], r["step"]) for r in rows] == [(1.0, 0.9, 3), (0.5, 0.9, 3)]
    assert keys - {"loss", "flops", "nats_per_token"} <= set(rows[0])


def test_json_outputs_write_undefined_numbers_as_null():
    from insertgen.core.io import to_json

    text = to_json({"distance": float("nan"), "fcd": float("inf"), "groups": [1.0, float("-inf")],
                    "pair": (0.5, float("nan")), "nested": {"x": float("nan")}, "ok": 0.25})
    assert json.loads(text) == {"distance": None, "fcd": None, "groups": [1.0, None], "pair": [0.5, None],
                                "nested": {"x": None}, "ok": 0.25}
    assert "NaN" not in text and "Infinity" not in text


def test_benchmark_reports_each_fragment_task_of_the_mixture(tmp_path):
    """On fragment-all the learning benchmark's point keeps each task's metrics under its name, and its
    validity is their mean (what the per-task demos and the shipped fragment-all models are judged by)."""
    from insertgen.tasks.molecules.fragments import FRAGMENT_TASKS

    out = tmp_path / "run"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "molecule_learning.py"), "--task", "fragment-all",
                    "--model", "arm", "--steps", "1", "--every", "1", "--eval-n", "16", "--threads", "1",
                    "--out", str(out), "--set", "d_model=32", "--set", "n_layers=1", "--set", "n_heads=2",
                    "--set", "batch_size=4", "--set", "task.train_size=200"],
                   check=True, cwd=ROOT, capture_output=True, text=True)
    point = json.loads((out / "learning.json").read_text())["points"][-1]
    per_task = [point[f"{t}/validity"] for t in FRAGMENT_TASKS]
    assert all(0.0 <= v <= 1.0 for v in per_task)
    assert point["validity"] == pytest.approx(sum(per_task) / len(per_task))
    assert {f"{t}/uniqueness" for t in FRAGMENT_TASKS} <= set(point)
