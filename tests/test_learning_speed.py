"""The learning-speed benchmark (benchmarks/learning_speed.py) and the star sub-skill probes it records."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from insertgen.engine.star_probes import ARM_PROBES, FAILURE_KINDS, PROBES, probe, probe_plan
from insertgen.tasks import get_task

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--set", "d_model=32", "--set", "n_layers=1", "--set", "n_heads=2", "--set", "batch_size=8"]


class Oracle(torch.nn.Module):
    """A stand-in model of family ``model_id`` whose logits put all mass on ``answer(example, position)``
    at every target position: it finds the example by the prompt in the canvas it is given."""

    def __init__(self, model_id, task, examples, answer):
        super().__init__()
        self.model_id, self.vocab, self.answer = model_id, task.vocab, answer
        self.by_prompt = {tuple(ex.prompt): ex for ex in examples}
        self.width = task.prompt_block

    def _logits(self, tokens, causal):
        v = self.vocab
        out = torch.zeros(*tokens.shape, len(v))
        for i, row in enumerate(tokens.tolist()):
            bos = row.index(v.bos_id)
            ex = self.by_prompt[tuple(row[:bos])]
            for k in range(len(ex.target)):
                at = bos + k if causal else bos + 1 + k  # a causal model predicts position k from k - 1
                if at < len(row):
                    out[i, at, self.answer(ex, k)] = 1.0
        return out

    def forward(self, tokens, *args):
        if self.model_id == "arm":
            return torch.log_softmax(self._logits(tokens, causal=True) * 50, -1)
        if self.model_id == "mdm":
            return self._logits(tokens, causal=False)
        return self._logits(tokens, causal=False), None


def _stand_in(family, task, examples, answer):
    oracle = Oracle(family, task, examples, answer)
    if family != "mdm":
        return oracle
    from insertgen.models.registry import (  # a real MDM (its canvas), answering like the oracle
        build_model,
        task_defaults,
    )

    model = build_model("mdm", task.vocab, {**task_defaults("mdm", task), "d_model": 16, "n_layers": 1,
                                            "n_heads": 2})
    model.forward = lambda tokens, real, t: oracle._logits(tokens, causal=False)
    return model


@pytest.mark.parametrize("family", ["flexmdm", "loflexmdm", "mdm", "arm"])
def test_probes_ask_the_right_positions(family):
    task = get_task("star-easy")
    examples = task.examples("test")[:40]
    result = probe(_stand_in(family, task, examples, lambda ex, k: ex.target[k]), examples)
    asked = ARM_PROBES if family == "arm" else PROBES
    assert result == {name: (1.0 if name in asked else None) for name in PROBES}
    # a model that always says the goal solves the goal copy only
    result = probe(_stand_in(family, task, examples, lambda ex, k: ex.prompt[-1]), examples)
    assert all(result[name] == 0.0 for name in asked if name != "copy_goal")
    assert result["copy_goal"] == (None if family == "arm" else 1.0)


def test_probe_plans_match_the_edge_format():
    assert probe_plan(4) == {"copy_source": (set(), 0), "copy_goal": (set(), 7), "twin_copy": ({1}, 2),
                             "parent_of_goal": (set(), 6), "parent_lookup": ({5, 6, 7}, 4),
                             "child_lookup": ({0, 1, 2}, 3)}
    plan = probe_plan(2)  # star-tiny: p0 p1 p1 p2, no room for the two-step look-ups
    assert plan["parent_of_goal"] == (set(), 2) and plan["parent_lookup"] is None and plan["child_lookup"] is None


def test_unprobed_families_say_none():
    model = type("IP", (torch.nn.Module,), {"model_id": "ip"})()
    assert probe(model, get_task("star-tiny").examples("test")[:4]) == {name: None for name in PROBES}


def _run(args, tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "learning_speed.py"), *args, "--threads", "1"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_smallest_learning_run_writes_its_documented_keys_and_resumes(tmp_path):
    out = tmp_path / "one"
    args = ["--task", "star-tiny", "--model", "flexmdm", "--steps", "4", "--every", "2", "--eval-n", "8",
            *TINY, "--set", "fresh_data=true", "--out", str(out)]
    _run(args, tmp_path)
    record = json.loads((out / "learning.json").read_text())
    assert set(record) == {"settings", "machine", "flops_per_step", "points", "time_to_solve"}
    assert [p["step"] for p in record["points"]] == [0, 2, 4]
    assert record["settings"]["overrides"]["fresh_data"] is True and record["flops_per_step"] > 0
    for point in record["points"]:
        assert {"step", "flops", "loss", "seconds", "exact_match", "token_accuracy", "plan_validity",
                "probes", "failures"} <= set(point)
        assert set(point["probes"]) == set(PROBES)
        assert set(point["failures"]) == set(FAILURE_KINDS)  # every wrong output counted once
        assert sum(point["failures"].values()) == round((1 - point["exact_match"]) * 8)
        assert point["flops"] == pytest.approx(point["step"] * record["flops_per_step"])
        # FlexMDM's other tau-leaping order is scored too (the run's own is joint), on the same 8 graphs
        (other, value), = point["exact_match_other_samplers"].items()
        assert other == "insert_first" and round(value * 8) == pytest.approx(value * 8)
    assert set(record["time_to_solve"]) == {"0.5", "0.95"}
    assert (out / "learning.png").stat().st_size > 0
    _run([*args[:5], "6", *args[6:]], tmp_path)  # two more steps: continues, does not start again
    assert [p["step"] for p in json.loads((out / "learning.json").read_text())["points"]] == [0, 2, 4, 6]
    # stopped while scoring step 6 (its checkpoint written, its point not): the next invocation scores it first
    record = json.loads((out / "learning.json").read_text())
    record["points"].pop()
    (out / "learning.json").write_text(json.dumps(record))
    _run([*args[:5], "8", *args[6:]], tmp_path)
    points = json.loads((out / "learning.json").read_text())["points"]
    assert [p["step"] for p in points] == [0, 2, 4, 6, 8]
    assert points[3].get("seconds_estimated") is True and "seconds_estimated" not in points[4]
    assert points[3]["seconds"] == pytest.approx(points[2]["seconds"] * 6 / 4)
    table = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "learning_table.py"), str(tmp_path)],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    # the trunk's input options as config.json recorded them (the preset's token_shift), not only the --set ones
    assert "posterior_order_corr" not in record["points"][-1]  # no posterior: no posterior order
    assert len(table) == 3 and table[2].startswith("| star-tiny | flexmdm | 0 | batch_size=8, d_model=32, fresh_data=True, "
                                                   "n_heads=2, n_layers=1, token_shift=True | 8 |")
    # --docs writes the same table between the markers of a Markdown file, keeping the rest of it
    docs = tmp_path / "learning.md"
    docs.write_text("intro\n<!-- learning-table:begin -->\nold row\n<!-- learning-table:end -->\noutro\n")
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "learning_table.py"), str(tmp_path), "--docs", str(docs)],
                   capture_output=True, text=True, check=True)
    assert docs.read_text() == ("intro\n<!-- learning-table:begin -->\n" + "\n".join(table) +
                                "\n<!-- learning-table:end -->\noutro\n")
    docs.write_text("no markers\n")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "learning_table.py"), str(tmp_path), "--docs",
                           str(docs)], capture_output=True, text=True)
    assert proc.returncode != 0 and "markers" in proc.stderr and docs.read_text() == "no markers\n"


def test_a_run_trained_elsewhere_is_continued_from_its_step(tmp_path):
    """A run directory made by `insertgen train`, copied to OUT/run, is continued: the curve starts at
    that run's step (with its FLOPs), not at 0, and training goes on from there."""
    import shutil

    from insertgen.engine.training_run import prepare_run

    trained = tmp_path / "trained"
    _, trainer = prepare_run(task="star-tiny", model="flexmdm", preset="star-tiny-cpu", steps=4, out=trained, seed=0,
                             overrides={"d_model": 32, "n_layers": 1, "n_heads": 2, "batch_size": 8,
                                        "eval_every": 0, "checkpoint_every": 2}, resume=False)
    trainer.train(progress=False)
    out = tmp_path / "continued"
    shutil.copytree(trained, out / "run")
    _run(["--task", "star-tiny", "--model", "flexmdm", "--steps", "6", "--every", "2", "--eval-n", "8", *TINY,
          "--out", str(out)], tmp_path)
    record = json.loads((out / "learning.json").read_text())
    assert [p["step"] for p in record["points"]] == [4, 6]
    assert record["points"][0]["flops"] == pytest.approx(4 * record["flops_per_step"])


def test_smallest_ladder_reports_time_to_solve(tmp_path):
    out = tmp_path / "ladder"
    _run(["--ladder", "star-tiny,star-small", "--models", "arm", "--steps", "2", "--every", "2", "--eval-n", "8",
          *TINY, "--out", str(out)], tmp_path)
    summary = json.loads((out / "ladder.json").read_text())
    assert [(r["task"], r["model"]) for r in summary["rows"]] == [("star-tiny", "arm"), ("star-small", "arm")]
    table = (out / "ladder.md").read_text()
    assert table.count("\n") == 4 and ("not within 2 steps" in table or "step " in table)


def test_ip_points_record_the_posterior_order(tmp_path):
    """IP's points carry the rank-distance correlation of its posterior's orders, and the table shows it
    beside the sampler's own order; models without a posterior record none."""
    out = tmp_path / "ip"
    _run(["--task", "star-tiny", "--model", "ip", "--steps", "2", "--every", "2", "--eval-n", "8", *TINY,
          "--set", "posterior_d_model=16", "--set", "posterior_n_layers=1", "--out", str(out)], tmp_path)
    points = json.loads((out / "learning.json").read_text())["points"]
    assert all(-1.0 <= p["posterior_order_corr"] <= 1.0 for p in points)
    table = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "learning_table.py"), str(tmp_path)],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    assert " post " in table[2].split("|")[-2] and " dec " in table[2].split("|")[-2]


def test_stop_at_needs_two_points_in_a_row_and_a_fraction(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("learning_speed", ROOT / "benchmarks" / "learning_speed.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    points = lambda *xs: [{"exact_match": x} for x in xs]  # noqa: E731
    assert not bench.solved(points(0.0, 0.96), 0.95) and not bench.solved(points(0.96, 0.5, 0.97), 0.95)
    assert bench.solved(points(0.2, 0.95, 1.0), 0.95) and not bench.solved(points(0.99, 1.0), None)
    assert bench.default_preset("star-tiny", "ip") == "star-tiny-ip-cpu"
    assert bench.default_preset("star-easy", "flexmdm") == "star-easy-cpu"
    assert bench.default_preset("star-tiny", "flexmdm") == "star-tiny-cpu"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "learning_speed.py"), "--task", "star-tiny",
                           "--model", "arm", "--steps", "2", "--every", "2", "--stop-at", "1.5", "--out",
                           str(tmp_path / "x")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--stop-at" in proc.stderr and not (tmp_path / "x").exists()


def test_first_wrong_decision_and_its_lookup_kind():
    """Failure kinds: the first wrong token in decision order, and the look-up it needed (star-easy
    graph written by hand: arms 1-2-3-4-5 (the goal's), 1-6-7-8-9, 1-10-11-12-13)."""
    from insertgen.engine.star_probes import failure_kinds, first_wrong_decision, lookup_kind
    from insertgen.tasks.base import Example

    edges = [3, 4, 1, 6, 4, 5, 2, 3, 1, 2, 6, 7, 7, 8, 8, 9, 1, 10, 10, 11, 11, 12, 12, 13]
    prompt = edges + [1, 5]
    target = [1, 2, 2, 3, 3, 4, 4, 5]
    assert first_wrong_decision(target, target, list(range(8))) is None
    assert first_wrong_decision(target[:-1], target, list(range(7))) is None
    # decided from the goal backwards; 4 placed right, then the parent of 4 read at 4's other
    # occurrence ("4 5" is preceded by 6 in the edge list) instead of "3 4"
    out = [1, 2, 2, 6, 6, 4, 4, 5]
    steps = [7, 6, 5, 3, 2, 1, 0, 4]
    i = first_wrong_decision(out, target, steps)
    assert i == 4 and lookup_kind(prompt, target, out, steps, i) == "parent (other occurrence)"
    out2 = [1, 2, 2, 7, 7, 4, 4, 5]
    assert lookup_kind(prompt, target, out2, steps, 4) == "parent (other)"
    # decided from the source forwards: the child of the source is the junction's guess
    forward = list(range(8))
    out3 = [1, 6, 6, 7, 7, 8, 8, 5]
    assert first_wrong_decision(out3, target, forward) == 1
    assert lookup_kind(prompt, target, out3, forward, 1) == "child"
    # the first decision in the middle of the path: no neighbour known
    middle = [1, 5, 6, 0, 2, 3, 4, 7]
    out4 = [1, 2, 2, 9, 9, 4, 4, 5]
    assert first_wrong_decision(out4, target, middle) == 3
    assert lookup_kind(prompt, target, out4, middle, 3) == "none"
    # counted over sampler records whose rows are [prompt, BOS, output, EOS]
    ex = Example(prompt=tuple(prompt), target=tuple(target))
    record = lambda out, st: {"unmask_step": [-1] * (len(prompt) + 1) + st + [-1]}  # noqa: E731
    pairs = [(target, record(target, steps)), (out, record(out, steps)), (out3, record(out3, forward)),
             (target[:-1], record(target[:-1], steps[:-1]))]
    counts = failure_kinds([ex] * 4, pairs)
    assert counts == {"parent (other occurrence)": 1, "parent (other)": 0, "child": 1, "none": 0, "length": 1}


@pytest.mark.parametrize("family", ["flexmdm", "mdm", "arm"])
def test_probes_and_failure_kinds_read_the_node_format(family):
    """In the node format the probes ask for the same path nodes at their node positions (no twin), and a
    failure's look-up is read from node positions."""
    from insertgen.engine.star_probes import failure_kinds

    assert probe_plan(4, "nodes") == {"copy_source": (set(), 0), "copy_goal": (set(), 4), "twin_copy": None,
                                      "parent_of_goal": (set(), 3), "parent_lookup": ({3, 4}, 2),
                                      "child_lookup": ({0, 1}, 2)}
    task = get_task("star-easy", {"target_format": "nodes"})
    examples = task.examples("test")[:40]
    result = probe(_stand_in(family, task, examples, lambda ex, k: ex.target[k]), examples, "nodes")
    asked = [p for p in (ARM_PROBES if family == "arm" else PROBES) if p != "twin_copy"]
    assert result == {name: (1.0 if name in asked else None) for name in PROBES}
    ex = examples[0]
    wrong = list(ex.target)
    wrong[1] = ex.target[-1]  # the source's child decided first and wrong: the left-to-right look-up
    record = {"unmask_step": [-1] * (len(ex.prompt) + 1) + list(range(len(wrong))) + [-1]}
    assert failure_kinds([ex], [(wrong, record)], "nodes")["child"] == 1


def test_the_loss_axis_is_logarithmic_only_for_positive_losses():
    """A LoFlexMDM objective below zero is drawn on a linear axis (a log axis would drop it with a warning)."""
    import warnings

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from learning_speed import draw_training_loss

    for losses, scale in (([2.0, 0.5], "log"), ([0.3, -0.2], "linear")):
        _, ax = plt.subplots()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            twin = draw_training_loss(ax, [{"step": 0, "loss": None}] + [{"step": i + 1, "loss": v}
                                                                         for i, v in enumerate(losses)])
        assert twin.get_yscale() == scale
        plt.close("all")
    assert draw_training_loss(plt.subplots()[1], [{"step": 0, "loss": None}]) is None

