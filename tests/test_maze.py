"""Tests of the maze tasks (docs/methods/tasks.md#mazes): generator
invariants, shortest plans against an exact search, the plan validator, the splits and the CLI."""

from __future__ import annotations

import json
from collections import deque

import numpy as np
import pytest

from conftest import call_main
from insertgen.core.errors import InsertgenError
from insertgen.tasks import get_task
from insertgen.tasks.maze.generator import (
    FAMILIES,
    PERFECT_METHODS,
    bfs_distances,
    closed_passages,
    make_maze,
)
from insertgen.tasks.maze.paths import FAILURE_KINDS, ShortestPaths, plan_failures, plan_problem
from insertgen.tasks.maze.task import ENUMERATE_AT_MOST, SPLIT_SIZES, TIERS, MazeTask, tier_params

SIZES = (5, 9, 13, 17, 41)


# ----------------------------------------------------------------------------------------------
# generator invariants
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", PERFECT_METHODS)
@pytest.mark.parametrize("size", SIZES)
def test_perfect_maze_is_a_spanning_tree(method, size):
    for seed in range(3):
        maze = make_maze("perfect", size, seed, method=method)
        rooms = maze.rooms ** 2
        cells = len(maze.open_cells())
        assert cells == 2 * rooms - 1  # every room plus one passage per tree edge
        assert maze.edges() == cells - 1
        assert maze.is_connected()
        assert not maze.open[0, :].any() and not maze.open[:, -1].any()  # closed border
        assert not maze.open[::2, ::2].any()  # wall posts never open


@pytest.mark.parametrize("size", SIZES)
def test_braided_maze_has_no_dead_ends_and_extends_the_perfect_one(size):
    for seed in range(3):
        perfect, braided = make_maze("perfect", size, seed), make_maze("braided", size, seed)
        assert perfect.dead_ends(), "a perfect maze has leaves"
        assert braided.dead_ends() == []
        assert braided.is_connected()
        assert (braided.open >= perfect.open).all()  # only walls were opened


@pytest.mark.parametrize("size", SIZES[1:])
def test_imperfect_maze_has_cycles_and_opens_the_given_fraction(size):
    for seed in range(3):
        perfect, imperfect = make_maze("perfect", size, seed), make_maze("imperfect", size, seed)
        cells = len(imperfect.open_cells())
        assert imperfect.edges() > cells - 1  # more edges than a tree: cycles
        assert imperfect.is_connected()
        assert (imperfect.open >= perfect.open).all()
        opened = len(closed_passages(perfect)) - len(closed_passages(imperfect))
        assert opened == round(0.3 * len(closed_passages(perfect)))
    half = make_maze("imperfect", 13, 0, imperfect_fraction=0.5)
    assert len(closed_passages(half)) == len(closed_passages(make_maze("perfect", 13, 0))) - round(
        0.5 * len(closed_passages(make_maze("perfect", 13, 0))))


@pytest.mark.parametrize("family", FAMILIES)
def test_mazes_are_deterministic_under_a_seed(family):
    assert (make_maze(family, 17, 7).open == make_maze(family, 17, 7).open).all()
    assert any((make_maze(family, 17, 7).open != make_maze(family, 17, s).open).any() for s in (8, 9))


def test_bad_maze_options_are_refused():
    for kwargs, fragment in (({"family": "twisty"}, "family"), ({"size": 8}, "odd"), ({"size": 3}, ">= 5"),
                             ({"method": "prim"}, "method")):
        args = {"family": "perfect", "size": 9, "seed": 0, **kwargs}
        with pytest.raises(ValueError, match=fragment):
            make_maze(**args)
    with pytest.raises(ValueError, match="fraction"):
        make_maze("imperfect", 9, 0, imperfect_fraction=1.5)


# ----------------------------------------------------------------------------------------------
# shortest plans and the validator
# ----------------------------------------------------------------------------------------------


def exact_shortest_plan(maze, subgoals) -> int:
    """Cells of a shortest valid plan, by BFS over (cell, number of subgoals visited so far)."""
    start = (subgoals[0], 1)
    dist = {start: 1}
    queue = deque([start])
    while queue:
        cell, k = queue.popleft()
        if k == len(subgoals):
            return dist[(cell, k)]
        for nxt in maze.neighbours(cell):
            state = (nxt, k + 1 if nxt == subgoals[k] else k)
            if state not in dist:
                dist[state] = dist[(cell, k)] + 1
                queue.append(state)
    raise AssertionError("unreachable")


@pytest.mark.parametrize("family", FAMILIES)
def test_shortest_plans_match_an_exact_search(family):
    maze = make_maze(family, 13, 3)
    paths = ShortestPaths(maze)
    cells = maze.open_cells()
    rng = np.random.default_rng(0)
    for _ in range(60):
        subgoals = [cells[i] for i in rng.choice(len(cells), size=int(rng.integers(2, 6)), replace=False)]
        plan = paths.through(subgoals)
        assert plan_problem(maze, subgoals, plan) is None
        assert len(plan) == paths.optimal_length(subgoals) == exact_shortest_plan(maze, subgoals)
    source = cells[0]
    assert {c: paths.distance(source, c) for c in cells} == bfs_distances(maze, source)


@pytest.fixture(scope="module")
def maze_and_plan():
    maze = make_maze("perfect", 13, 1)
    paths = ShortestPaths(maze)
    cells = maze.open_cells()
    rng = np.random.default_rng(1)
    while True:  # three subgoals whose plan is long enough to cut
        subgoals = [cells[i] for i in rng.choice(len(cells), size=3, replace=False)]
        plan = paths.through(subgoals)
        if len(plan) > 8 and subgoals[1] not in paths.path(subgoals[0], subgoals[2]):
            return maze, paths, subgoals, plan


def test_validator_rejects_a_wall_crossing(maze_and_plan):
    maze, _, subgoals, plan = maze_and_plan
    r, c = maze.cell(plan[3])
    wall = next(maze.index(r + dr, c + dc) for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0))
                if not maze.open[r + dr, c + dc])
    bad = plan[:4] + [wall] + plan[3:]
    assert "wall" in plan_problem(maze, subgoals, bad)
    assert "outside" in plan_problem(maze, subgoals, plan[:4] + [maze.size ** 2 + 5] + plan[4:])


def test_validator_rejects_a_jump(maze_and_plan):
    maze, _, subgoals, plan = maze_and_plan
    i = next(i for i in range(1, len(plan) - 1) if plan[i] not in subgoals)
    assert "4-neighbour" in plan_problem(maze, subgoals, plan[:i] + plan[i + 1:])


def test_validator_rejects_a_skipped_subgoal(maze_and_plan):
    maze, paths, subgoals, _ = maze_and_plan
    direct = paths.path(subgoals[0], subgoals[2])
    assert "does not visit subgoal 1" in plan_problem(maze, subgoals, direct)
    # the right cells in the wrong order: the plan reaches subgoal 2 before subgoal 1, never after it
    cells = maze.open_cells()
    for goal in cells:
        if goal in subgoals:
            continue
        plan = paths.through([subgoals[0], subgoals[2], subgoals[1], goal])
        if subgoals[2] not in paths.path(subgoals[1], goal):
            assert "does not visit subgoal 2" in plan_problem(maze, subgoals[:3] + [goal], plan)
            break
    else:
        raise AssertionError("no wrong-order example found")


def test_failure_kinds_of_hand_made_plans(maze_and_plan):
    """Each fault is named, several at once where a plan has several, none for the shortest plan."""
    maze, paths, subgoals, plan = maze_and_plan
    shortest = len(plan)

    def kinds(p):
        return plan_failures(maze, subgoals, p, shortest)

    assert kinds(plan) == set()
    r, c = maze.cell(plan[3])
    wall = next(maze.index(r + dr, c + dc) for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0))
                if not maze.open[r + dr, c + dc])
    assert kinds(plan[:4] + [wall] + plan[3:]) == {"wall", "too_long"}  # a step into the wall and back
    assert kinds(plan[:-3]) == {"goal", "too_short"}  # stops short of the goal
    assert kinds(paths.path(subgoals[0], subgoals[2])) == {"subgoal", "too_short"}  # skips subgoal 1
    i = next(i for i in range(1, len(plan) - 1) if plan[i] not in subgoals)
    assert kinds(plan[:i] + plan[i + 1:]) == {"jump", "too_short"}
    assert kinds(plan[1:]) == {"start", "too_short"} and kinds([]) == {"empty", "too_short"}
    detour = [plan[0], maze.neighbours(plan[0])[0]] + plan
    assert kinds(detour) == {"too_long"} and plan_problem(maze, subgoals, detour) is None
    assert set().union(*(kinds(p) for p in ([], plan[:4] + [wall] + plan[3:], plan[1:], plan[:-3]))) <= set(FAILURE_KINDS)


def test_failure_kinds_agree_with_the_validator():
    """A plan is valid exactly when it has no fault but being too long (random edits of shortest plans)."""
    maze = make_maze("imperfect", 13, 5)
    paths = ShortestPaths(maze)
    cells, rng = maze.open_cells(), np.random.default_rng(2)
    valid = invalid = 0
    for _ in range(400):
        subgoals = [cells[i] for i in rng.choice(len(cells), size=int(rng.integers(2, 5)), replace=False)]
        plan = paths.through(subgoals)
        for _ in range(int(rng.integers(0, 3))):  # delete, duplicate, replace or detour at a random place
            i, edit = int(rng.integers(len(plan))), int(rng.integers(4))
            if edit == 0 and len(plan) > 1:
                plan = plan[:i] + plan[i + 1:]
            elif edit == 1:
                plan = plan[:i] + [plan[i]] + plan[i:]
            elif edit == 2:
                plan = plan[:i] + [int(rng.integers(maze.size ** 2))] + plan[i + 1:]
            else:
                plan = plan[:i + 1] + [maze.neighbours(plan[i])[0], plan[i]] + plan[i + 1:] if maze.is_open(plan[i]) else plan
        kinds = plan_failures(maze, subgoals, plan, paths.optimal_length(subgoals))
        ok = plan_problem(maze, subgoals, plan) is None
        assert ok == (kinds <= {"too_long"}), (subgoals, plan, kinds)
        valid, invalid = valid + ok, invalid + (not ok)
    assert valid > 50 and invalid > 50  # both sides of the equivalence were tried


def test_order_reference_is_the_distance_along_the_plan_to_a_subgoal():
    task = get_task("maze-perfect-easy")
    ex = task.examples("test")[0]
    target = list(ex.target)
    distances = task.order_reference(list(ex.prompt), target)
    visits = [i for i, tok in enumerate(target) if tok in ex.prompt]
    assert len(distances) == len(target) and [distances[i] for i in visits] == [0] * len(visits)
    assert distances[1] == 1 and max(distances) <= len(target) // 2
    assert task.order_reference(list(ex.prompt), [t for t in target if t not in ex.prompt]) is None


def test_validator_rejects_wrong_endpoints(maze_and_plan):
    maze, _, subgoals, plan = maze_and_plan
    assert "starts at" in plan_problem(maze, subgoals, plan[1:])
    assert "ends at" in plan_problem(maze, subgoals, plan[:-1])
    assert "empty" in plan_problem(maze, subgoals, [])


# ----------------------------------------------------------------------------------------------
# the task
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=FAMILIES)
def easy_task(request) -> MazeTask:
    return get_task(f"maze-{request.param}-easy")


def test_splits_sizes_disjoint_conditions_and_optimal_targets(easy_task):
    splits = {name: easy_task.examples(name) for name in SPLIT_SIZES}
    assert {k: len(v) for k, v in splits.items()} == SPLIT_SIZES
    conditions = [ex.prompt for v in splits.values() for ex in v]
    assert len(set(conditions)) == len(conditions)  # no subgoal list twice, within or across splits
    p = TIERS["easy"]
    test = splits["test"]
    metrics = easy_task.evaluate(test, [list(ex.target) for ex in test])
    assert metrics == {"n": len(test), "success": 1.0, "optimal": 1.0, "exact_match": 1.0, "token_accuracy": 1.0,
                       **{f"failure_{kind}": 0.0 for kind in FAILURE_KINDS}}
    assert all(p["min_subgoals"] <= len(ex.prompt) <= p["max_subgoals"] for ex in splits["train"])
    assert max(len(ex.target) for ex in splits["train"]) <= easy_task.target_block == p["max_plan"]
    assert easy_task.examples("test") == get_task(easy_task.name).examples("test")  # cached, but equal
    assert easy_task.fresh_examples(20, seed=5) == easy_task.fresh_examples(20, seed=5)
    assert easy_task.fresh_examples(20, seed=5) != easy_task.fresh_examples(20, seed=6)
    fresh = easy_task.fresh_examples(300, seed=7)  # the demo's problems: never trained, validated or tested on
    assert len({ex.prompt for ex in fresh}) == 300 and not {ex.prompt for ex in fresh} & set(conditions)
    assert easy_task.evaluate(fresh, [list(ex.target) for ex in fresh])["optimal"] == 1.0


def test_families_of_a_tier_share_the_perfect_maze():
    perfect, braided = get_task("maze-perfect-medium"), get_task("maze-braided-medium")
    assert (braided.maze.open >= perfect.maze.open).all()


def test_success_optimal_and_exact_match_are_different_things():
    task = get_task("maze-braided-easy")
    ex = task.examples("test")[0]
    target = list(ex.target)
    off = task.vocab.num_special
    step = task.maze.neighbours(target[0] - off)[0] + off
    detour = [target[0], step] + target  # step aside and back: still valid, two cells longer
    wrong_end = target[:-1]
    m = task.evaluate([ex, ex, ex], [target, detour, wrong_end])
    assert m["success"] == pytest.approx(2 / 3)
    assert m["optimal"] == pytest.approx(1 / 3)
    assert m["exact_match"] == pytest.approx(1 / 3)
    with pytest.raises(InsertgenError, match="2 outputs"):
        task.evaluate([ex], [target, target])


def test_text_formats_round_trip_and_bad_prompts_are_named():
    task = get_task("maze-perfect-easy")
    ex = task.examples("test")[0]
    prompt_text, target_text = task.format(ex.prompt), task.format(ex.target)
    assert all(tok.isdigit() for tok in (prompt_text + " " + target_text).split())
    assert task.parse_prompt(prompt_text) == list(ex.prompt)
    assert task.parse_target(list(ex.prompt), target_text) == list(ex.target)
    wall = next(i for i in range(task.size ** 2) if not task.maze.is_open(i))
    start = prompt_text.split()[0]
    for text, fragment in ((f"{start} {wall}", "is a wall"), (f"{start} x7", "'x7' is not a cell index"),
                           (f"{start} 81", "outside the 9x9 grid"), (start, "at least a start and a goal"),
                           (" ".join([start] * 5), "more than the 4 allowed"), (f"{start} -3", "'-3'")):
        with pytest.raises(InsertgenError, match=fragment):
            task.parse_prompt(text)
    with pytest.raises(InsertgenError, match="outside"):
        task.parse_target(list(ex.prompt), "3 500")


@pytest.mark.parametrize("model", ["flexmdm", "loflexmdm", "ip", "ao-ip", "arm", "mdm"])
def test_every_model_trains_samples_and_evaluates_on_a_maze(model, tmp_path, capsys):
    run = tmp_path / "run"
    code = call_main(["train", "--task", "maze-braided-easy", "--model", model, "--steps", "2", "--out", run,
                      "--set", "d_model=16", "--set", "n_layers=1", "--set", "n_heads=2", "--set", "batch_size=4",
                      "--set", "eval_every=0", "--quiet"])
    assert code == 0
    config = json.loads((run / "config.json").read_text())
    assert config["task_config"]["family"] == "braided" and config["task_config"]["maze"][0] == "#" * 9
    capsys.readouterr()
    assert call_main(["eval", "--run", run, "--limit", "6", "--steps", "4", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["n"] == 6 and set(metrics) >= {"success", "optimal", "exact_match", "token_accuracy"}
    assert json.loads((run / "eval-test.json").read_text())["sampler"]["top_k"] == 1  # greedy plans
    png = run / "eval-test.png"
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"


# ----------------------------------------------------------------------------------------------
# ladder rungs: maze-FAMILY-NxN-kK
# ----------------------------------------------------------------------------------------------


def test_a_rung_has_its_size_and_exactly_k_subgoal_cells():
    task = get_task("maze-braided-11x11-k3")
    assert task.size == 11 and task.prompt_block == 3 and task.target_block == 1 + 17 * 2
    train = task.examples("train")
    assert {len(ex.prompt) for ex in train} == {3} and max(len(ex.target) for ex in train) <= task.target_block
    test = task.examples("test")
    assert task.evaluate(test, [list(ex.target) for ex in test])["success"] == 1.0
    assert tier_params("9x9-k4")["max_plan"] == 43  # about the easy tier's 40 for 9 x 9 with up to 4 cells


def test_a_small_rung_lists_every_problem_once_and_splits_them():
    """7 x 7 with 3 subgoal cells has fewer ordered lists than the default splits hold: every one whose plan
    fits is used once, in disjoint splits of a fifth / a fiftieth / the rest."""
    task = get_task("maze-perfect-7x7-k3")
    n_open = len(task.maze.open_cells())
    assert n_open * (n_open - 1) * (n_open - 2) <= ENUMERATE_AT_MOST
    splits = {name: task.examples(name) for name in SPLIT_SIZES}
    keys = [ex.prompt for v in splits.values() for ex in v]
    fitting = sum(1 for ex in task._every_problem())
    assert len(set(keys)) == len(keys) == fitting
    assert len(splits["test"]) == fitting // 5 and len(splits["validation"]) == fitting // 50
    assert task.config()["splits"] == {name: len(v) for name, v in splits.items()}
    assert task.fresh_examples(0, seed=1) == []  # the splits hold every problem: none is left fresh
    with pytest.raises(InsertgenError, match="0 problems outside its splits, fewer than the 1 asked for"):
        task.fresh_examples(1, seed=1)


@pytest.mark.parametrize("name, fragment", [("maze-perfect-8x8-k2", "N odd"), ("maze-perfect-9x11-k2", "N x N"),
                                            ("maze-perfect-45x45-k2", "5 to 41"), ("maze-perfect-9x9-k1", "2 to 12"),
                                            ("maze-twisty-9x9-k2", "unknown task")])
def test_bad_rungs_are_named(name, fragment):
    with pytest.raises(InsertgenError, match=fragment):
        get_task(name)


def test_a_rung_trains_with_the_preset_of_the_nearest_tier(tmp_path):
    from insertgen.engine.presets import get_preset

    assert get_preset("maze-imperfect-15x15-k4-ip-cpu") == {
        **get_preset("maze-imperfect-medium-ip-cpu"), "task": "maze-imperfect-15x15-k4"}
    assert get_preset("maze-perfect-21x21-k2-cpu")["model_config"] == get_preset("maze-perfect-hard-cpu")["model_config"]
    run = tmp_path / "run"
    assert call_main(["train", "--task", "maze-perfect-7x7-k2", "--model", "arm", "--steps", "1", "--out", run,
                      "--set", "d_model=16", "--set", "n_layers=1", "--set", "batch_size=4", "--quiet"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["task"] == "maze-perfect-7x7-k2" and config["train"]["lr"] == get_preset(
        "maze-perfect-easy-arm-cpu")["train"]["lr"]
