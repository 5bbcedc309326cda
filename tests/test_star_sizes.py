"""Star graphs of any size (rungs ``star-tiny`` / ``star-small`` and ``--set task.KEY=VALUE``) and fresh
training batches drawn from the generator at every step (``train.fresh_data``)."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from conftest import call_main
from insertgen.core.data import FreshBatches
from insertgen.core.errors import InsertgenError
from insertgen.engine.training_run import prepare_run
from insertgen.tasks import get_task
from insertgen.tasks.star.generator import LEVELS
from insertgen.tasks.star.solver import solve
from insertgen.tasks.star.task import StarTask

# sha256 of every split of the paper levels, "prompt ids | target ids" per line, computed with the code
# before sizes became options (commit 403710f): the paper levels' data must not change by a byte.
PAPER_DIGESTS = {
    "easy": "c313e289fdd6c5c87de7105f22a72e815443d47688352053a352dac3a9c5d837",
    "medium": "256db80b81dd5c7b47ac2acb44c5e4847dcaef69a9ab027cd7e0d10ecd4aa0a3",
    "hard": "f25930ef649537cba2e1685b05804bec5b88aef3e8e52b77a146925ea8e3b7e0",
}


def digest(task: StarTask) -> str:
    h = hashlib.sha256()
    for split in ("train", "validation", "test"):
        for ex in task.examples(split):
            h.update((" ".join(map(str, ex.prompt)) + "|" + " ".join(map(str, ex.target)) + "\n").encode())
    return h.hexdigest()


@pytest.mark.parametrize("level", ["easy", "medium", "hard"])
def test_paper_levels_are_unchanged_byte_for_byte(level):
    task = StarTask(level)
    assert digest(task) == PAPER_DIGESTS[level]
    assert (task.prompt_block, task.target_block) == (LEVELS[level]["prompt_block"], LEVELS[level]["target_block"])
    # naming a paper size explicitly changes nothing either
    assert StarTask(level, degree=LEVELS[level]["degree"]).examples("test")[:50] == task.examples("test")[:50]


SIZES = [
    ("tiny", {}), ("small", {}), ("easy", {"degree": 2}), ("easy", {"arm_length": 3, "num_nodes": 7}),
    ("tiny", {"degree": 4, "arm_length": 4, "num_nodes": 30}), ("medium", {"degree": 2, "max_arm_length": 5}),
]


@pytest.mark.parametrize("level, sizes", SIZES)
def test_every_size_keeps_the_invariants(level, sizes):
    task = get_task(f"star-{level}", sizes)
    p = task.params
    assert task.config()["degree"] == p["degree"] and task.config()["num_nodes"] == p["num_nodes"]
    longest = p.get("arm_length", p.get("max_arm_length"))
    for ex in task.fresh_examples(300, seed=11) + task.examples("test")[:100]:
        ids = [i - task.vocab.num_special for i in ex.prompt]
        edges, source, goal = list(zip(ids[0:-2:2], ids[1:-2:2])), ids[-2], ids[-1]
        nodes = {n for e in edges for n in e}
        assert all(0 <= n < p["num_nodes"] for n in nodes)
        assert len(nodes) == len(edges) + 1 and len(set(edges)) == len(edges)  # a tree on distinct ids
        out_degree = {}
        for u, _ in edges:
            out_degree[u] = out_degree.get(u, 0) + 1
        assert sorted(out_degree.values())[-1] == p["degree"]  # one centre with degree arms
        assert list(ex.target) == solve(ex.prompt)  # the target is the unique source -> goal path
        if p["generator"] == "simple":
            assert source == max(out_degree, key=out_degree.get) and len(edges) == p["degree"] * (longest - 1)
            assert len(ex.target) == 2 * (longest - 1)
        assert len(ex.prompt) <= task.prompt_block and len(ex.target) <= task.target_block
        assert task.prompt_block == 2 * p["degree"] * (longest - 1) + 2


def test_rungs_are_tasks_with_their_own_data():
    tiny, small = get_task("star-tiny"), get_task("star-small")
    assert (tiny.prompt_block, tiny.target_block, len(tiny.vocab) - tiny.vocab.num_special) == (10, 4, 10)
    assert (small.prompt_block, small.target_block, len(small.vocab) - small.vocab.num_special) == (20, 6, 16)
    assert {len(tiny.examples(s)) for s in ("validation", "test")} == {100, 5000}
    assert get_task("star-easy", {"degree": 2}).examples("test")[0] != get_task("star-easy").examples("test")[0]


@pytest.mark.parametrize("level, sizes, message", [
    ("easy", {"degree": 1}, "task.degree=1"),
    ("tiny", {"num_nodes": 4}, "task.num_nodes=4: too few node ids"),
    ("easy", {"arm_length": 1}, "task.arm_length=1"),
    ("medium", {"arm_length": 4}, "task.arm_length: not a size of star-medium"),
    ("medium", {"min_plan_length": 3}, "task.min_plan_length=3"),
    ("hard", {"num_nodes": 40}, "task.num_nodes=40"),
    ("easy", {"degree": "3"}, "task.degree='3': give a whole number"),
])
def test_bad_sizes_are_refused_naming_the_option(level, sizes, message):
    with pytest.raises(InsertgenError, match=message.replace("[", r"\[")):
        get_task(f"star-{level}", sizes)


def test_a_bad_size_on_the_command_line_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert call_main(["train", "--task", "star-easy", "--model", "arm", "--set", "task.degree=1", "--steps", "1",
                      "--out", out, "--quiet"]) == 2
    assert "task.degree=1" in capsys.readouterr().err and not out.exists()


def test_fresh_batches_are_a_function_of_seed_and_step_and_avoid_the_evaluation_problems():
    task = get_task("star-tiny", {"num_nodes": 8})  # few distinct graphs: draws often hit test problems
    a, b = FreshBatches(task, 32, seed=5), FreshBatches(task, 32, seed=5)
    assert a.examples(3) == b.examples(3) and a.examples(3) != a.examples(4)
    assert a.examples(3) != FreshBatches(task, 32, seed=6).examples(3)
    held_out = {task.held_out_key(ex) for s in ("validation", "test") for ex in task.examples(s)}
    for step in range(20):
        assert len(a.examples(step)) == 32
        assert not {task.held_out_key(ex) for ex in a.examples(step)} & held_out
    assert a.dropped > 0  # the exclusion did something here
    # the training stream never uses the integer seeds of the splits and of fresh evaluation graphs
    assert a.examples(0) != task.fresh_examples(32, 5)


def test_fresh_data_needs_a_generator():
    class Corpus:
        name, generates_training_data = "corpus", False

    with pytest.raises(ValueError, match="no generator"):
        FreshBatches(Corpus(), 8, 0)
    exhausted = FreshBatches(get_task("star-tiny", {"num_nodes": 5}), 8, 0)  # the splits hold every problem
    with pytest.raises(InsertgenError, match="choose a larger size"):
        exhausted.examples(0)


TINY = {"d_model": 32, "n_layers": 1, "n_heads": 2, "batch_size": 8, "eval_every": 0, "checkpoint_every": 2,
        "log_every": 1, "fresh_data": True}


def _assert_resume_matches(straight, first, out, steps: int) -> None:
    """Train ``first`` (a run in ``out`` with fewer steps), resume it to ``steps`` and check it ends with the
    weights of ``straight``, trained to ``steps`` without a stop."""
    first.train(progress=False)
    _, resumed = prepare_run(task=None, model=None, preset=None, steps=steps, out=out, seed=None, overrides={},
                             resume=True)
    resumed.train(progress=False)
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_training_on_fresh_data_resumes_bit_exact(tmp_path):
    def run(path, steps, **extra):
        return prepare_run(task="star-small", model="flexmdm", preset=None, steps=steps, out=path, seed=3,
                           overrides={**TINY, **extra}, resume=False)[1]

    straight = run(tmp_path / "a", 5)
    straight.train(progress=False)
    _assert_resume_matches(straight, run(tmp_path / "b", 3), tmp_path / "b", 5)
    fixed = run(tmp_path / "c", 5, fresh_data=False)  # the same run on the fixed training split differs
    fixed.train(progress=False)
    assert any(not torch.equal(v, fixed.model.state_dict()[k]) for k, v in straight.model.state_dict().items())
    assert json.loads((tmp_path / "a" / "config.json").read_text())["train"]["fresh_data"] is True


def test_a_curriculum_trains_on_the_smaller_rung_first_and_resumes_bit_exact(tmp_path, monkeypatch):
    """``curriculum_task=star-small`` (drawn over star-easy's node ids) with ``curriculum_steps=2``: the
    first two batches are star-small graphs, the rest star-easy ones; a run stopped before the switch and
    resumed after it ends with the weights of an uninterrupted one."""
    import insertgen.engine.train as train_module

    prompts: list[set[int]] = []
    collate = train_module.collate
    monkeypatch.setattr(train_module, "collate", lambda ex, *a, **k: prompts.append({len(e.prompt) for e in ex})
                        or collate(ex, *a, **k))
    curriculum = {"curriculum_task": "star-small", "curriculum_steps": 2}

    def run(path, steps, **extra):
        return prepare_run(task="star-easy", model="flexmdm", preset=None, steps=steps, out=path, seed=3,
                           overrides={**TINY, **curriculum, **extra}, resume=False)[1]

    straight = run(tmp_path / "a", 4)
    straight.train(progress=False)
    small, easy = get_task("star-small", {"num_nodes": 20}), get_task("star-easy")
    # (with fresh data the fixed training split is never collated: every call is a training batch)
    assert prompts == [{len(small.examples("test")[0].prompt)}] * 2 + [{len(easy.examples("test")[0].prompt)}] * 2
    _assert_resume_matches(straight, run(tmp_path / "b", 1), tmp_path / "b", 4)
    plain = run(tmp_path / "c", 4, curriculum_task=None, curriculum_steps=0)  # without it the run differs
    plain.train(progress=False)
    assert any(not torch.equal(v, plain.model.state_dict()[k]) for k, v in straight.model.state_dict().items())


@pytest.mark.parametrize("overrides,message", [
    ({"curriculum_task": "star-small"}, "curriculum_task and curriculum_steps go together"),
    ({"curriculum_steps": 5}, "curriculum_task and curriculum_steps go together"),
    ({"curriculum_task": "star-small", "curriculum_steps": 5, "fresh_data": False}, "set fresh_data=true"),
    ({"curriculum_task": "star-medium", "curriculum_steps": 5}, "do not fit 'star-easy'"),
    ({"curriculum_task": "maze-perfect-easy", "curriculum_steps": 5}, "cannot be drawn over 'star-easy'"),
    ({"curriculum_task": "star-nope", "curriculum_steps": 5}, "unknown task 'star-nope'"),
])
def test_a_bad_curriculum_is_refused_with_a_message(tmp_path, overrides, message):
    with pytest.raises(InsertgenError, match=message):
        prepare_run(task="star-easy", model="flexmdm", preset=None, steps=2, out=tmp_path / "x", seed=0,
                    overrides={**TINY, **overrides}, resume=False)
    assert not (tmp_path / "x" / "checkpoint.safetensors").exists()


@pytest.mark.parametrize("level", ["tiny", "easy", "medium"])
def test_node_format_writes_the_same_paths_as_node_sequences(level):
    """``task.target_format=nodes``: the same graphs and prompts, the target the path's nodes (the edge
    target's first token and every edge's head), a tight target block, the oracle and the metrics in
    that format, and the edge format's data unchanged."""
    from insertgen.tasks.star.solver import solve

    edges_task, nodes_task = get_task(f"star-{level}"), get_task(f"star-{level}", {"target_format": "nodes"})
    for split in ("validation", "test"):
        for e, n in zip(edges_task.examples(split), nodes_task.examples(split)):
            assert e.prompt == n.prompt and list(n.target) == [e.target[0], *e.target[1::2]]
            assert len(n.target) <= nodes_task.target_block and solve(n.prompt, "nodes") == list(n.target)
    examples = nodes_task.examples("test")[:50]
    assert nodes_task.evaluate(examples, [list(ex.target) for ex in examples])["plan_validity"] == 1.0
    assert nodes_task.evaluate(examples, [list(ex.target[:-1]) for ex in examples])["plan_validity"] == 0.0
    fresh = nodes_task.fresh_examples(3, (7, 1))
    assert [list(ex.target) for ex in fresh] == [[e.target[0], *e.target[1::2]]
                                                 for e in edges_task.fresh_examples(3, (7, 1))]
    assert nodes_task.config()["target_format"] == "nodes" and "target_format" not in edges_task.config()
    distances = nodes_task.order_reference(list(examples[0].prompt), list(examples[0].target))
    assert distances is not None and len(distances) == len(examples[0].target)
    with pytest.raises(InsertgenError, match="task.target_format"):
        get_task("star-easy", {"target_format": "pairs"})
    with pytest.raises(InsertgenError, match="task.format: not a size .* task.target_format"):
        get_task("star-easy", {"format": "nodes"})


def test_a_curriculum_run_is_counted_at_its_tasks_step_cost(tmp_path):
    """FLOP budgets (reproduce, learning_speed) count a curriculum run's steps at the cost of a step of its
    task, not of the smaller rung it starts on."""
    from insertgen.apps.bench import count_step_flops

    def flops(task, name, **extra):
        return count_step_flops(prepare_run(task=task, model="ao-ip", preset=None, steps=5, out=tmp_path / name,
                                            seed=0, overrides={**TINY, **extra}, resume=False)[1])

    plain = flops("star-easy", "plain")
    assert flops("star-easy", "curriculum", curriculum_task="star-small", curriculum_steps=3) == plain
    assert flops("star-small", "rung", **{"task.num_nodes": 20}) < plain
