"""insertgen reproduce: budgets, the grid's files, resuming, the aggregates and the claim checks."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from conftest import TINY_GRID_ARGS
from insertgen.apps.reproduce.budget import Budget
from insertgen.apps.reproduce.claims import compare, evaluate_claims, sign
from insertgen.apps.reproduce.summary import spread, update_docs
from insertgen.core.errors import InsertgenError

CELLS = ("star-easy--flexmdm--seed0", "star-easy--arm--seed0")


@pytest.mark.parametrize("text,kind,value", [("240s", "seconds", 240.0), ("4m", "seconds", 240.0),
                                             ("1.5h", "seconds", 5400.0), ("2e13flop", "flops", 2e13),
                                             ("3E9FLOPS", "flops", 3e9), ("preset", "preset", None)])
def test_budget_forms(text, kind, value):
    budget = Budget.parse(text)
    assert (budget.kind, budget.value) == (kind, value)
    assert Budget.parse(str(budget)) == budget  # the form written to reproduce.json reads back


@pytest.mark.parametrize("text", ["240", "ten minutes", "-5s", "0s", "5 steps", ""])
def test_budget_rejects_other_forms(text):
    with pytest.raises(InsertgenError, match="--budget"):
        Budget.parse(text)


def test_grid_choices_are_checked(cli, tmp_path):
    for args, message in ((["--tasks", "star-nope"], "unknown task 'star-nope'"),
                          (["--models", "flexmdm,gpt"], "unknown model 'gpt'"),
                          (["--seeds", "0,x"], "comma-separated integers"),
                          (["--models", "arm,arm"], "must not repeat"),
                          (["--budget", "soon"], "--budget")):
        code, _, err = cli("reproduce", "--out", tmp_path / "g", *args)
        assert code == 2 and message in err, (args, err)
    assert not (tmp_path / "g").exists()  # nothing written for a refused grid
    code, _, err = cli("reproduce", "--out", tmp_path / "g", "--summary-only")
    assert code == 2 and "is not a reproduce directory" in err and not (tmp_path / "g").exists()
    for args in (["report", tmp_path / "missing"], ["report"], ["report", tmp_path, "--run", tmp_path]):
        code, _, err = cli(*args)
        assert code == 2 and ("is not a directory" in err or "either as the argument or as --run" in err), err


def test_scales_resolve_to_presets(tmp_path):
    """Every default cell of both scales has its preset: the CPU presets, and the papers' sizes and steps."""
    from insertgen.apps.reproduce.grid import make_grid
    from insertgen.engine.presets import get_preset

    cpu = make_grid(tmp_path, "cpu")
    assert len(cpu.cells()) == 6 * 6 * 2 and cpu.eval_n == 500
    assert cpu.budget("star-easy") == Budget("flops", 4.5e13) and cpu.budget("safe") == Budget("flops", 1.2e13)
    assert {c["budget"] for c in cpu.cells() if c["task"] == "star-tiny"} == {"8e+12flop"}
    assert {c["preset"] for c in cpu.cells() if c["task"] == "star-tiny"} >= {"star-tiny-cpu", "star-tiny-ao-ip-cpu"}
    assert make_grid(tmp_path, "cpu", tasks=["star-medium"]).budget("star-medium") == Budget("flops", 5e12)
    assert {c["preset"] for c in cpu.cells() if c["task"] == "smiles"} >= {"smiles-cpu", "smiles-ip-cpu"}
    assert all(c["overrides"] == {"task.train_size": 20_000} for c in cpu.cells() if c["task"] == "safe")
    assert all(not c["overrides"] for c in cpu.cells() if c["task"] == "smiles")  # the preset's 100,000 molecules
    assert cpu.budget("smiles") == Budget("flops", 1.6e14)
    paper = make_grid(tmp_path, "paper")
    assert paper.budget("star-hard").kind == "preset" and paper.eval_n is None
    assert make_grid(tmp_path, "cpu", budget="1m").budget("smiles") == Budget("seconds", 60.0)
    presets = {(c["task"], c["model"]): c["preset"] for c in paper.cells()}
    assert presets[("star-easy", "flexmdm")] == "star-easy-paper-gpu"
    assert presets[("maze-braided-paper", "loflexmdm")] == "maze-braided-paper-loflexmdm-gpu"
    assert get_preset(presets[("star-hard", "ip")])["model_config"]["d_model"] == 768
    assert get_preset(presets[("safe", "flexmdm")])["train"]["steps"] == 50_000


def test_tiny_grid_writes_every_file(tiny_grid):
    """Each cell: a run directory usable by the other commands, its evaluation with every sampler of the
    family, the order figure; the grid: settings, results.json / results.md, the headline figure."""
    for name in ("reproduce.json", "results.json", "results.md", "figures/headline.png"):
        assert (tiny_grid / name).is_file(), name
    for key in CELLS:
        cell = json.loads((tiny_grid / "cells" / f"{key}.json").read_text())
        model = cell["model"]
        run = tiny_grid / "runs" / "star-easy" / model / "seed0"
        for name in ("config.json", "checkpoint.safetensors", "trained.json", "eval-test.json", "order.png"):
            assert (run / name).is_file(), (key, name)
        assert set(cell["samplers"]) == ({"joint", "insert_first"} if model == "flexmdm" else {"left_to_right"})
        assert cell["best_sampler"] in cell["samplers"] and cell["headline"] == "exact_match"
        assert all(m["n"] == 12 for m in cell["samplers"].values())
        training = cell["training"]
        assert training["steps"] >= 1 and training["train_flops"] == pytest.approx(
            training["flops_per_step"] * training["steps"])
    results = json.loads((tiny_grid / "results.json").read_text())
    assert results["cells"] == 2 and set(results["summary"]["star-easy"]) == {"flexmdm", "arm"}
    md = (tiny_grid / "results.md").read_text()
    assert "| star-easy (exact_match) |" in md and "| **flexmdm** |" in md and "| **arm** |" in md
    assert "1 s of training wall-clock per cell" in md


def _mtimes(root):
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file() and p.suffix in (".json", ".safetensors")
            and p.name not in ("results.json", "reproduce.json")}


def test_rerun_skips_done_cells_and_evaluates_trained_ones(cli, tiny_grid, tmp_path):
    grid = tmp_path / "grid"
    shutil.copytree(tiny_grid, grid)
    before = _mtimes(grid)
    code, out, err = cli(*TINY_GRID_ARGS, "--out", grid)
    assert code == 0, err
    assert "2 already done, 0 to run" in out
    assert _mtimes(grid) == before  # nothing retrained or re-evaluated

    # a cell whose training finished but whose evaluation did not: evaluated, not retrained
    flex = grid / "runs" / "star-easy" / "flexmdm" / "seed0"
    (grid / "cells" / f"{CELLS[0]}.json").unlink()
    checkpoint = (flex / "checkpoint.safetensors").stat().st_mtime_ns
    trained = (flex / "trained.json").read_text()
    code, out, err = cli(*TINY_GRID_ARGS, "--out", grid)
    assert code == 0 and "1 already done, 1 to run" in out, err
    assert (flex / "checkpoint.safetensors").stat().st_mtime_ns == checkpoint and (flex / "trained.json").read_text() == trained
    assert json.loads((grid / "cells" / f"{CELLS[0]}.json").read_text())["training"] == json.loads(trained)

    # a cell interrupted during wall-clock training: trained again from step 0
    arm = grid / "runs" / "star-easy" / "arm" / "seed0"
    (grid / "cells" / f"{CELLS[1]}.json").unlink()
    (arm / "trained.json").unlink()
    code, out, err = cli(*TINY_GRID_ARGS, "--out", grid)
    assert code == 0 and "1 to run" in out, err
    assert "training it again from step 0" in (grid / "runs" / "star-easy" / "arm" / "seed0.log").read_text()
    assert (arm / "trained.json").is_file() and (grid / "cells" / f"{CELLS[1]}.json").is_file()

    # a run directory trained under another budget (left by an earlier grid) is not reused
    (grid / "cells" / f"{CELLS[1]}.json").unlink()
    trained = json.loads((arm / "trained.json").read_text())
    (arm / "trained.json").write_text(json.dumps({**trained, "budget": "999s"}))
    code, out, err = cli(*TINY_GRID_ARGS, "--out", grid)
    assert code == 0 and "1 to run" in out, err
    assert "trained under budget '999s'" in (grid / "runs" / "star-easy" / "arm" / "seed0.log").read_text()
    assert json.loads((arm / "trained.json").read_text())["budget"] == "1s"


def test_rerun_with_other_settings_is_refused(cli, tiny_grid, tmp_path):
    grid = tmp_path / "grid"
    shutil.copytree(tiny_grid, grid)
    args = [a if a != "1s" else "2s" for a in TINY_GRID_ARGS]
    code, _, err = cli(*args, "--out", grid)
    assert code == 2 and "other settings" in err and "'1s' there, '2s' now" in err


def test_step_budgets(cli, tmp_path):
    """'preset' trains the preset's steps (here set to 3); a FLOP budget trains floor(budget / FLOPs per
    step) steps, the FLOPs of a step counted as insertgen bench counts them."""
    base = ["reproduce", "--tasks", "star-easy", "--models", "ip", "--seeds", "1", "--eval-n", "4",
            "--set", "d_model=32", "--set", "n_layers=1", "--set", "n_heads=2", "--set", "batch_size=8",
            "--set", "posterior_d_model=32", "--set", "posterior_n_layers=1"]
    code, _, err = cli(*base, "--budget", "preset", "--set", "steps=3", "--out", tmp_path / "p")
    assert code == 0, err
    cell = json.loads((tmp_path / "p" / "cells" / "star-easy--ip--seed1.json").read_text())
    assert cell["training"]["steps"] == 3
    flops = cell["training"]["flops_per_step"]
    budget = 4.5 * flops
    code, _, err = cli(*base, "--budget", f"{budget:.6e}flop", "--out", tmp_path / "f")
    assert code == 0, err
    trained = json.loads((tmp_path / "f" / "cells" / "star-easy--ip--seed1.json").read_text())["training"]
    assert trained["steps"] == math.floor(float(f"{budget:.6e}") / trained["flops_per_step"])
    assert trained["flops_per_step"] == pytest.approx(flops, rel=0.2)


def test_spread_is_mean_and_sample_std():
    xs = [0.1, 0.4, 0.25]
    s = spread(xs + [None, float("nan")])
    assert s["n"] == 3 and s["mean"] == pytest.approx(np.mean(xs)) and s["std"] == pytest.approx(np.std(xs, ddof=1))
    assert (s["min"], s["max"]) == (0.1, 0.4)
    assert spread([0.3])["std"] == 0.0 and spread([])["n"] == 0


def _entry(values: list[float], metric: str = "exact_match", headline: str = "exact_match", **extra):
    stat = spread(values)
    samplers = {"s": {metric: stat, **{k: spread(v) for k, v in extra.items()}}}
    return {"headline": headline, "best_sampler": "s", "samplers": samplers, "seeds": list(range(len(values)))}


def test_claim_verdicts():
    assert compare(spread([0.5, 0.6]), spread([0.1, 0.4])) == "holds"
    assert compare(spread([0.1, 0.4]), spread([0.5, 0.6])) == "reversed"
    assert compare(spread([0.3, 0.6]), spread([0.1, 0.4])) == "not shown"
    assert compare(spread([0.0, 0.0]), spread([0.0, 0.0])) == "not shown"
    # 3 of 500 against 2 of 500 is evaluation noise; 60% against 40% of 500 is not
    assert compare(spread([0.006]), spread([0.004]), 500, 500) == "not shown"
    assert compare(spread([0.006]), spread([0.004])) == "holds"  # no example counts: no noise check
    assert compare(spread([0.6]), spread([0.4]), 500, 500) == "holds"
    assert compare(spread([0.4]), spread([0.6]), 500, 500) == "reversed"
    # the noise of a mean over k seeds of n examples: sqrt(p (1 - p) / (n k))
    from insertgen.apps.reproduce.claims import proportion_se
    assert proportion_se(spread([0.2, 0.3]), 100) == pytest.approx(math.sqrt(0.25 * 0.75 / 200))
    assert sign(spread([-0.3, -0.15])) == "holds" and sign(spread([0.2, 0.15])) == "reversed"
    assert sign(spread([-0.2, 0.15])) == "not shown" and sign(spread([-0.05, -0.04])) == "not shown"
    loflex = _entry([0.5, 0.6], order_corr_unmask=[0.3, 0.4])
    loflex["samplers"]["joint"] = {"exact_match": spread([0.0, 0.0]), "order_corr_unmask": spread([-0.4, -0.2])}
    summary = {
        "star-easy": {"loflexmdm": loflex,
                      "flexmdm": _entry([0.1, 0.2]), "ip": _entry([0.3, 0.35]), "arm": _entry([0.7, 0.8]),
                      "mdm": _entry([0.0, 0.0])},
        "smiles": {"ip": _entry([0.2, 0.3], "validity", "validity", scaffold_minus_atom=[-0.21, -0.12]),
                   "ao-ip": _entry([0.25, 0.5], "validity", "validity")},
        "safe": {"loflexmdm": _entry([0.7, 0.8], "validity", "validity", quality_all=[0.5, 0.6]),
                 "flexmdm": _entry([0.4, 0.5], "validity", "validity", quality_all=[0.55, 0.7]),
                 "ip": _entry([0.3, 0.4], "validity", "validity", scaffold_minus_atom=[-0.2, 0.05])},
    }
    verdicts = {(c["claim"].split(" (")[0], c["task"]): c["verdict"] for c in evaluate_claims(summary)
                if c["task"] != "safe" or not c["claim"].startswith("LoFlexMDM")}  # two on safe: checked below
    assert verdicts == {("LoFlexMDM > FlexMDM", "star-easy"): "holds",
                        ("LoFlexMDM's learned order is endpoints first", "star-easy"): "holds",
                        ("IP > AO-IP", "smiles"): "not shown",
                        ("IP writes the skeleton first", "smiles"): "holds",  # both seeds below -0.1
                        ("IP writes the skeleton first", "safe"): "not shown",  # one seed is not
                        ("insertion models > ARM and MDM", "star-easy"): "reversed"}
    by_metric = {c["claim"]: c["verdict"] for c in evaluate_claims(summary) if c["task"] == "safe"}
    assert by_metric["LoFlexMDM > FlexMDM (validity)"] == "holds"
    assert by_metric["LoFlexMDM > FlexMDM (quality_all)"] == "not shown"


def test_docs_section_is_replaced_in_place(cli, tiny_grid, tmp_path):
    """--docs writes the tables between the reproduce markers; the rest of the file is kept, and a second
    run replaces the block instead of adding one."""
    from insertgen.apps.reproduce.summary import BEGIN, END

    grid = tmp_path / "grid"
    shutil.copytree(tiny_grid, grid)
    docs = tmp_path / "docs" / "results.md"
    docs.parent.mkdir()
    docs.write_text("# Results\n\nhand-written intro\n")
    for _ in range(2):
        code, out, err = cli(*TINY_GRID_ARGS, "--out", grid, "--summary-only", "--docs", docs)
        assert code == 0 and "2 finished cells" in out, err
    text = docs.read_text()
    assert text.startswith("# Results\n\nhand-written intro\n") and text.count(BEGIN) == 1 and text.count(END) == 1
    assert "| star-easy (exact_match) |" in text and "](figures/reproduce-cpu-headline.png)" in text
    assert (docs.parent / "figures" / "reproduce-cpu-headline.png").is_file()
    docs.write_text(text + "\nafter the block\n")
    results = json.loads((grid / "results.json").read_text())
    update_docs(docs, grid, results["settings"], results["summary"], ["star-easy"], ["flexmdm"], [])
    text = docs.read_text()
    assert text.endswith("after the block\n") and "| arm |" not in text.split(BEGIN)[1]


def test_a_grid_grown_by_tasks_describes_the_budget_of_every_task(tmp_path):
    """A second invocation with other tasks joins them to reproduce.json, whose budget line (the tables'
    "Grid: ... budget" sentence) then names every task the directory holds, not just the last ones run."""
    from insertgen.apps.reproduce.grid import SETTINGS, check_settings, make_grid

    check_settings(make_grid(tmp_path, "cpu", tasks=("star-tiny",)))
    first = json.loads((tmp_path / SETTINGS).read_text())
    assert "star-tiny 8e+12" in first["budget"] and "smiles" not in first["budget"]
    check_settings(make_grid(tmp_path, "cpu", tasks=("smiles",)))
    grown = json.loads((tmp_path / SETTINGS).read_text())
    assert grown["tasks"] == ["star-tiny", "smiles"]
    assert "star-tiny 8e+12" in grown["budget"] and "smiles 1.6e+14" in grown["budget"]
