"""Tests of the star-graph task (docs/methods/tasks.md#star-graphs)."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from insertgen.core.errors import InsertgenError
from insertgen.tasks import get_task
from insertgen.tasks.star.generator import (
    LEVELS,
    asymmetric_variable_arm_star_graph,
    simple_star_graph,
)
from insertgen.tasks.star.rng import BufferedRandint
from insertgen.tasks.star.solver import solve
from insertgen.tasks.star.task import StarTask

LEVEL_NAMES = ("easy", "medium", "hard")


@pytest.fixture(scope="module", params=LEVEL_NAMES)
def task(request) -> StarTask:
    return StarTask(request.param)


def raw_graphs(task: StarTask, n: int, seed: int):
    np_rng, py_rng = np.random.RandomState(seed), random.Random(seed)
    return [task.generate_graph(np_rng, py_rng) for _ in range(n)]


_GRAPHS: dict[tuple[str, int, int], list] = {}


def graphs(task: StarTask, n: int = 500, seed: int = 123):
    key = (task.level, n, seed)
    if key not in _GRAPHS:
        _GRAPHS[key] = raw_graphs(task, n, seed)
    return _GRAPHS[key]


def centre_of(edges, degree):
    out_deg = Counter(u for u, _ in edges)
    centres = [node for node, d in out_deg.items() if d == degree]
    assert len(centres) == 1
    return centres[0]


def branch_lengths(edges, centre):
    """Numbers of nodes on each chain leaving (out) and entering (in) the centre."""
    succ = {}
    pred = {}
    for u, v in edges:
        succ.setdefault(u, []).append(v)
        pred.setdefault(v, []).append(u)
    outs, ins = [], []
    for start in succ[centre]:
        n, node = 1, start
        while node in succ:
            (node,) = succ[node]
            n += 1
        outs.append(n)
    for start in pred.get(centre, []):
        n, node = 1, start
        while node in pred:
            (node,) = pred[node]
            n += 1
        ins.append(n)
    return outs, ins


# ------------------------------------------------------------------------------------------------
# Levels and config
# ------------------------------------------------------------------------------------------------


def test_levels_and_config(task):
    p = LEVELS[task.level]
    assert task.name == f"star-{task.level}"
    assert len(task.vocab) == task.vocab.num_special + p["num_nodes"]
    assert task.vocab.token_to_id("0") == task.vocab.num_special
    assert (task.prompt_block, task.target_block) == {
        "easy": (28, 14),
        "medium": (36, 16),
        "hard": (116, 28),
    }[task.level]
    cfg = task.config()
    assert cfg["task"] == task.name
    assert cfg["generator"] == ("simple" if task.level == "easy" else "asymmetric_variable_arm")
    assert cfg["seed"] == 42
    assert cfg["num_nodes"] == {"easy": 20, "medium": 20, "hard": 56}[task.level]
    assert cfg["degree"] == {"easy": 3, "medium": 3, "hard": 5}[task.level]
    assert cfg["splits"] == {"train": 50000, "validation": 100, "test": 5000}
    assert get_task(task.name).config() == cfg


def test_unknown_level():
    with pytest.raises(InsertgenError, match="unknown star level"):
        StarTask("extreme")


# ------------------------------------------------------------------------------------------------
# Generator invariants (docs/methods/tasks.md#star-generation)
# ------------------------------------------------------------------------------------------------


def test_generator_invariants(task):
    p = LEVELS[task.level]
    d, V = p["degree"], p["num_nodes"]
    for edges, source, goal, path in graphs(task):
        nodes = {n for e in edges for n in e}
        assert all(0 <= n < V for n in nodes)
        assert len(set(edges)) == len(edges)
        # a tree: distinct node ids, |E| = sum(L_i - 1) = #nodes - 1
        assert len(nodes) == len(edges) + 1
        centre = centre_of(edges, d)
        degree = Counter(n for e in edges for n in e)
        assert all(deg <= 2 for n, deg in degree.items() if n != centre)
        # the path is a directed walk source -> goal in the edge set, with distinct nodes
        assert path[0] == source and path[-1] == goal
        assert len(set(path)) == len(path)
        assert all(e in set(edges) for e in zip(path, path[1:]))
        assert all(u != goal for u, _ in edges)  # goal has out-degree 0
        assert centre in path
        outs, ins = branch_lengths(edges, centre)
        assert len(outs) == d
        if p["generator"] == "simple":
            assert len(edges) == d * (p["arm_length"] - 1) == 12
            assert len(nodes) == 13
            assert source == centre
            assert len(path) == p["arm_length"]
            assert outs == [p["arm_length"] - 1] * d and ins == []
        else:
            lo, hi, m = p["min_arm_length"], p["max_arm_length"], p["min_plan_length"]
            assert lo <= len(path) <= hi
            after = len(path) - 1 - path.index(centre)
            assert after >= m
            assert all(m <= n <= hi - 1 for n in outs)
            assert len(ins) <= d and all(1 <= n <= hi - m - 1 for n in ins)
            # |E| = sum over arms (L_i - 1) with L_i = in-part + 1 + out-part
            assert sum(ins) + sum(outs) == len(edges)
            assert d * (lo - 1) <= len(edges) <= d * (hi - 1)


def test_path_lengths_cover_the_range():
    for level in ("medium", "hard"):
        task = StarTask(level)
        p = LEVELS[level]
        lengths = {len(path) for _, _, _, path in graphs(task)}
        assert lengths == set(range(p["min_arm_length"], p["max_arm_length"] + 1))


@pytest.mark.parametrize("level", ["medium", "hard"])
def test_source_is_centre_fraction(level):
    p = LEVELS[level]
    task = StarTask(level)
    n = 2000 if level == "medium" else 500
    gs = graphs(task, n=n, seed=123)
    frac = np.mean([src == centre_of(e, p["degree"]) for e, src, _, _ in gs])
    m = p["min_plan_length"]
    lengths = range(p["min_arm_length"], p["max_arm_length"] + 1)
    expected = np.mean([1 / (L - m) for L in lengths])  # E[1/(L-m)]: 0.521 medium, 0.370 hard
    assert abs(frac - expected) < (0.04 if level == "medium" else 0.07)


def test_generators_reject_impossible_parameters():
    rs, rd = np.random.RandomState(0), random.Random(0)
    with pytest.raises(ValueError):
        simple_star_graph(rs, rd, degree=3, arm_length=8, num_nodes=20)
    with pytest.raises(ValueError):
        asymmetric_variable_arm_star_graph(rs, rd, 3, 3, 6, 3, 20)  # min_plan_length == min length
    with pytest.raises(ValueError):
        asymmetric_variable_arm_star_graph(rs, rd, 5, 6, 12, 5, 55)


# ------------------------------------------------------------------------------------------------
# Determinism, RNG replay and splits
# ------------------------------------------------------------------------------------------------


def test_fresh_examples_deterministic(task):
    a = task.fresh_examples(40, seed=7)
    assert a == task.fresh_examples(40, seed=7)
    assert a != task.fresh_examples(40, seed=8)
    assert len(a) == 40 and task.fresh_examples(0, seed=7) == []
    for ex in a:
        assert len(ex.prompt) <= task.prompt_block and len(ex.target) <= task.target_block
        assert len(ex.target) % 2 == 0 and len(ex.prompt) % 2 == 0


def test_buffered_randint_replays_randomstate():
    a, b = np.random.RandomState(3), BufferedRandint(np.random.RandomState(3), block=64)
    for high in (20, 2, 1, 56, 64, 65, 1000, 2**31 + 5, 20, 7):
        for _ in range(50):
            assert b.randint(0, high) == int(a.randint(0, high))
    assert b.randint(5, 9) == int(a.randint(5, 9))


def test_simple_generator_same_with_buffered_rng():
    rs, rd = np.random.RandomState(11), random.Random(11)
    ref = [simple_star_graph(rs, rd) for _ in range(300)]
    brs, brd = BufferedRandint(np.random.RandomState(11), block=100), random.Random(11)
    assert ref == [simple_star_graph(brs, brd) for _ in range(300)]


def test_easy_splits():
    task = StarTask("easy")
    val = task.examples("validation")  # generates (and caches) all easy splits, ~2 s
    assert len(val) == 100
    train, test = task.examples("train"), task.examples("test")
    assert len(train) == 50000 and len(test) == 5000
    # the splits are consecutive draws from one RNG pair seeded with 42 (generated again here, not the cache)
    drawn = task.fresh_examples(50_100, seed=42)
    assert drawn[:5] == train[:5] and drawn[50_000:] == val
    assert not set(test) & set(train)
    with pytest.raises(InsertgenError, match="unknown split"):
        task.examples("dev")


def test_splits_are_kept_on_disk_and_made_again_when_the_file_is_damaged_or_cannot_be_written(
        tmp_path, monkeypatch):
    """The generated splits go to $INSERTGEN_CACHE on first use and are read back identically by a later
    process (here: after the per-process cache is cleared); a damaged or truncated file, or one holding
    other split sizes, is generated again; a cache that cannot be written costs only time."""
    from insertgen.tasks.star import task as star_module

    monkeypatch.setenv("INSERTGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(star_module, "_SPLIT_CACHE", {})
    task = StarTask("tiny")
    generated = {name: task.examples(name) for name in ("train", "validation", "test")}
    path = task.splits_cache_path()
    assert path.is_file() and path.parent == tmp_path / "cache"
    assert star_module.read_splits(path) == generated
    star_module._SPLIT_CACHE.clear()
    assert StarTask("tiny").examples("test") == generated["test"]  # read from disk
    assert StarTask("tiny", target_format="nodes").splits_cache_path() != path  # another format, another file
    for damage in (b"", path.read_bytes()[: path.stat().st_size // 2], b"not an npz file"):
        path.write_bytes(damage)
        assert star_module.read_splits(path) is None
        star_module._SPLIT_CACHE.clear()
        assert StarTask("tiny").examples("validation") == generated["validation"]  # generated again ...
        assert star_module.read_splits(path) == generated  # ... and kept again
    smaller = {name: examples[:3] for name, examples in generated.items()}
    star_module.save_arrays(path, star_module.pack_splits(smaller))
    assert star_module.read_splits(path) is None  # other sizes: not these splits
    assert not star_module.save_arrays(Path("/proc/self/splits.npz"), {"a": np.zeros(2)})  # cannot be written
    monkeypatch.setenv("INSERTGEN_CACHE", "/proc/self/insertgen-cache")  # no cache directory can be made
    star_module._SPLIT_CACHE.clear()
    assert StarTask("tiny").examples("test") == generated["test"]


# ------------------------------------------------------------------------------------------------
# Oracle and metrics
# ------------------------------------------------------------------------------------------------


def test_oracle_scores_perfectly(task):
    exs = task.fresh_examples(300, seed=5)
    outs = [solve(ex.prompt) for ex in exs]
    assert outs == [list(ex.target) for ex in exs]
    metrics = task.evaluate(exs, outs)
    assert metrics == {"n": 300, "exact_match": 1.0, "token_accuracy": 1.0, "plan_validity": 1.0}
    assert isinstance(metrics["n"], int)
    assert all(isinstance(metrics[k], float) for k in ("exact_match", "token_accuracy", "plan_validity"))


def test_oracle_on_easy_validation():
    task = StarTask("easy")
    val = task.examples("validation")
    m = task.evaluate(val, [solve(ex.prompt) for ex in val])
    assert m["exact_match"] == m["plan_validity"] == m["token_accuracy"] == 1.0


def _reversed(target):
    flat = list(target)[::-1]
    return flat  # pairs (b, a): edges against their direction, from the goal to the source


def _wrong_arm(ex):
    """Leave the centre along an arm that does not lead to the goal, and follow it to its end."""
    prompt = list(ex.prompt)
    edges = list(zip(prompt[0:-2:2], prompt[1:-2:2]))
    succ = {}
    for u, v in edges:
        succ.setdefault(u, []).append(v)
    target = list(ex.target)
    path_nodes = [target[0]] + target[1::2]
    centre = max(succ, key=lambda n: len(succ[n]))
    i = path_nodes.index(centre)
    right = path_nodes[i + 1]
    other = next(v for v in succ[centre] if v != right)
    nodes = path_nodes[: i + 1] + [other]
    while nodes[-1] in succ:
        nodes.append(succ[nodes[-1]][0])
    out = []
    for a, b in zip(nodes, nodes[1:]):
        out += [a, b]
    return out


def test_wrong_answers_are_invalid(task):
    exs = task.fresh_examples(100, seed=9)
    for make in (lambda ex: _reversed(ex.target), _wrong_arm, lambda ex: list(ex.target)[:-2]):
        outs = [make(ex) for ex in exs]
        m = task.evaluate(exs, outs)
        assert m["plan_validity"] == 0.0 and m["exact_match"] == 0.0
    # a chain with a gap, and a pair that is not an edge
    ex = exs[0]
    t = list(ex.target)
    gap = t[:2] + t[4:] if len(t) >= 6 else [t[0], t[3]]
    swapped = [t[1], t[0]] + t[2:]
    m = task.evaluate([ex, ex], [gap, swapped])
    assert m["plan_validity"] == 0.0 and m["exact_match"] == 0.0


def test_token_accuracy_counts_length_errors():
    task = StarTask("easy")
    ex = task.fresh_examples(1, seed=3)[0]
    t = list(ex.target)
    assert len(t) == 8
    m = task.evaluate([ex], [t + [t[-1]]])
    assert m["token_accuracy"] == pytest.approx(8 / 9) and m["exact_match"] == 0.0
    assert m["plan_validity"] == 0.0
    m = task.evaluate([ex], [t + t])
    assert m["token_accuracy"] == pytest.approx(0.5)
    m = task.evaluate([ex], [[]])
    assert m == {"n": 1, "exact_match": 0.0, "token_accuracy": 0.0, "plan_validity": 0.0}
    wrong_last = t[:-1] + [t[0]]
    assert task.evaluate([ex], [wrong_last])["token_accuracy"] == pytest.approx(7 / 8)
    assert task.evaluate([ex], [t[:4]])["token_accuracy"] == pytest.approx(0.5)
    m = task.evaluate([ex, ex], [t, []])
    assert m["n"] == 2 and m["exact_match"] == 0.5 and m["token_accuracy"] == 0.5
    with pytest.raises(InsertgenError):
        task.evaluate([ex], [])
    assert task.evaluate([], [])["n"] == 0


def test_solve_errors():
    with pytest.raises(InsertgenError, match="no path"):
        solve([10, 11, 12, 13, 13, 10])
    with pytest.raises(InsertgenError):
        solve([10, 11, 10])


# ------------------------------------------------------------------------------------------------
# Text formats
# ------------------------------------------------------------------------------------------------


def test_format_round_trip(task):
    for ex in task.fresh_examples(50, seed=21):
        text = task.format(ex.prompt)
        assert task.parse_prompt(text) == list(ex.prompt)
        assert task.format(task.parse_prompt(text)) == text
        ttext = task.format(ex.target)
        assert task.parse_target(list(ex.prompt), ttext) == list(ex.target)
    assert task.parse_target([], "") == []
    assert task.parse_prompt("  1 2\n 1\t2 ") == [5, 6, 5, 6]


def test_parse_prompt_errors():
    easy, hard = StarTask("easy"), StarTask("hard")
    with pytest.raises(InsertgenError, match="empty prompt"):
        easy.parse_prompt("")
    with pytest.raises(InsertgenError, match="empty prompt"):
        easy.parse_prompt("   \n ")
    with pytest.raises(InsertgenError, match=r"node id '57' is outside 0\.\.55 for star-hard"):
        hard.parse_prompt("1 2 2 57 1 57")
    with pytest.raises(InsertgenError, match=r"node id '20' is outside 0\.\.19 for star-easy"):
        easy.parse_prompt("1 2 20 3")
    with pytest.raises(InsertgenError, match=r"node id '-1' is outside"):
        easy.parse_prompt("1 2 -1 3")
    with pytest.raises(InsertgenError, match="'a' is not an integer"):
        easy.parse_prompt("1 a 1 2")
    with pytest.raises(InsertgenError, match="'1.5' is not an integer"):
        easy.parse_prompt("1 1.5 1 2")
    with pytest.raises(InsertgenError, match="odd number of edge tokens"):
        easy.parse_prompt("1 2 3 1 3")
    with pytest.raises(InsertgenError, match="odd number of edge tokens"):
        easy.parse_prompt("1 2 3")
    with pytest.raises(InsertgenError, match="no edges"):
        easy.parse_prompt("1 2")
    with pytest.raises(InsertgenError, match="more than the 28 allowed for star-easy"):
        easy.parse_prompt(" ".join(["1"] * 30))
    assert len(easy.parse_prompt(" ".join(["1"] * 28))) == 28


def test_parse_target_errors():
    easy = StarTask("easy")
    with pytest.raises(InsertgenError, match="outside 0..19"):
        easy.parse_target([], "1 2 2 99")
    with pytest.raises(InsertgenError, match="not an integer"):
        easy.parse_target([], "1 2 [EOS]")
