"""Goal-conditioned maze planning (IP paper Appendix D.1; docs/methods/tasks.md#mazes): task ids
``maze-{perfect,imperfect,braided}-{easy,medium,hard,paper}``.

One fixed maze per task (the model never sees it: it must learn it from the plans). The prompt is an
ordered list of subgoal cells (start, intermediate subgoals, goal); the target is the shortest plan
that visits them in order (the BFS shortest paths between consecutive subgoals, joined). Cell
``(r, c)`` is the token ``str(r * size + c)`` (wall cells are tokens too, so a model can write an
invalid plan and the metrics can say so).

=======  =====  ========  ==============  ============================================
tier     grid   subgoals  longest plan    notes
=======  =====  ========  ==============  ============================================
easy     9x9    2-4       40 cells        4 x 4 rooms; CPU scale
medium   13x13  2-5       80 cells        6 x 6 rooms; CPU scale
hard     17x17  2-6       128 cells       8 x 8 rooms; CPU scale
paper    41x41  4-12      400 cells       the IP / FlexMDM hard setting (GPU scale)
=======  =====  ========  ==============  ============================================

**Ladder rungs** (for learning-speed ladders over maze size and subgoal count): the tier ``NxN-kK``
(task id e.g. ``maze-perfect-11x11-k3``) is an N x N grid (N odd, 5 to 41) with exactly K subgoal
cells (start and goal included, 2 to 12) and plans of at most ``1 + ceil(1.5 N) (K - 1)`` cells (about
the named tiers' cap: 43 for 9 x 9 with 4 cells, where easy allows 40). Its CPU presets are those of
the named tier of the nearest size (engine/presets.py).

Data: the maze of a tier is ``make_maze(family, size, seed=42)`` (recursive division; imperfect
opens 30% of the remaining room walls; braided opens every dead end), so the three families of a tier
share their perfect maze. Examples come from ``numpy.random.default_rng(43)``: a subgoal count
uniform in the tier's range and that many open cells drawn uniformly, rejected when two coincide,
when the plan is longer than the tier allows or when the subgoal list was drawn before (so short
lists, of which there are few, are rarer than the uniform count suggests); train (50,000), validation (100) and test
(5,000) are drawn in that order from one stream, so no subgoal list appears in two splits. A tier with
few distinct subgoal lists (at most :data:`ENUMERATE_AT_MOST` ordered lists of distinct open cells, e.g.
a 7 x 7 rung) instead lists every one whose plan fits, shuffles them with the same generator and splits
them: test a fifth (at most 5,000), validation a fiftieth (1 to 100), train the rest (at most 50,000).

Order statistic (:meth:`MazeTask.order_reference`): a plan cell's distance, in moves along the plan, to
the nearest subgoal cell in it. A model that fills each segment from its two fixed ends decides cells
near the subgoals first (a positive correlation of generation step with that distance); a left-to-right
model none.
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import numpy as np

from insertgen.core.errors import InsertgenError
from insertgen.core.vocab import Vocab
from insertgen.tasks.base import SPLITS, Example, Task, sequence_match
from insertgen.tasks.maze.generator import FAMILIES, Maze, make_maze
from insertgen.tasks.maze.paths import FAILURE_KINDS, ShortestPaths, plan_failures, plan_problem
from insertgen.tasks.maze.plots import plot_maze_plans

MAZE_SEED = 42
EXAMPLE_SEED = 43
SPLIT_SIZES = {"train": 50_000, "validation": 100, "test": 5_000}
TIERS: dict[str, dict] = {
    "easy": {"size": 9, "min_subgoals": 2, "max_subgoals": 4, "max_plan": 40},
    "medium": {"size": 13, "min_subgoals": 2, "max_subgoals": 5, "max_plan": 80},
    "hard": {"size": 17, "min_subgoals": 2, "max_subgoals": 6, "max_plan": 128},
    "paper": {"size": 41, "min_subgoals": 4, "max_subgoals": 12, "max_plan": 400},
}

ENUMERATE_AT_MOST = 4 * sum(SPLIT_SIZES.values())  # ordered subgoal lists: below this, list them all
RUNG = re.compile(r"(\d+)x(\d+)-k(\d+)")

_SPLIT_CACHE: dict[str, dict[str, list[Example]]] = {}


def tier_params(tier: str) -> dict:
    """The parameters of a named tier (:data:`TIERS`) or of a ladder rung ``NxN-kK`` (module docstring);
    ValueError naming the problem for anything else."""
    if tier in TIERS:
        return dict(TIERS[tier])
    match = RUNG.fullmatch(tier)
    if match is None:
        raise ValueError(f"unknown maze tier {tier!r}; tiers: {', '.join(TIERS)}, or a rung NxN-kK "
                         "(e.g. 11x11-k3: an 11 x 11 grid, 3 subgoal cells)")
    size, other, cells = (int(g) for g in match.groups())
    if size != other or size % 2 == 0 or not 5 <= size <= 41:
        raise ValueError(f"maze rung {tier!r}: the grid is N x N with N odd, 5 to 41")
    if not 2 <= cells <= 12:
        raise ValueError(f"maze rung {tier!r}: K (subgoal cells, start and goal included) is 2 to 12")
    return {"size": size, "min_subgoals": cells, "max_subgoals": cells,
            "max_plan": 1 + (3 * size + 1) // 2 * (cells - 1)}  # 1 + ceil(1.5 N) (K - 1)


class MazeTask(Task):
    """Subgoal-conditioned planning in one fixed maze (task id ``maze-<family>-<tier>``)."""

    conditional = True
    headline_metrics = ("success", "optimal", "exact_match", "token_accuracy")
    generates_training_data = True

    def __init__(self, family: str, tier: str, imperfect_fraction: float = 0.3):
        if family not in FAMILIES:
            raise ValueError(f"unknown maze family {family!r}; families: {', '.join(FAMILIES)}")
        self.family, self.tier = family, tier
        self.params = tier_params(tier)
        self.name = f"maze-{family}-{tier}"
        self.size: int = self.params["size"]
        self.maze: Maze = make_maze(family, self.size, MAZE_SEED, imperfect_fraction=imperfect_fraction)
        self.imperfect_fraction = imperfect_fraction
        self.paths = ShortestPaths(self.maze)
        self.vocab = Vocab(str(i) for i in range(self.size * self.size))
        self.prompt_block: int = self.params["max_subgoals"]
        self.target_block: int = self.params["max_plan"]
        self._open = self.maze.open_cells()
        lists = sum(math.perm(len(self._open), k)
                    for k in range(self.params["min_subgoals"], self.params["max_subgoals"] + 1))
        self._enumerated = lists <= ENUMERATE_AT_MOST  # every subgoal list is listed (module docstring)
        self._split_keys: set[tuple[int, ...]] | None = None

    # -- data ------------------------------------------------------------------------------

    def _draw(self, rng: np.random.Generator, seen: set, exclude=frozenset()) -> tuple[list[int], list[int]]:
        """A subgoal list (and its plan) not in ``seen`` nor ``exclude``; it is added to ``seen``."""
        p = self.params
        while True:
            k = int(rng.integers(p["min_subgoals"], p["max_subgoals"] + 1))
            subgoals = [self._open[i] for i in rng.integers(len(self._open), size=k).tolist()]
            key = tuple(subgoals)
            if (len(set(key)) < k or key in seen or key in exclude
                    or self.paths.optimal_length(subgoals) > p["max_plan"]):
                continue
            seen.add(key)
            return subgoals, self.paths.through(subgoals)

    def _encode(self, subgoals: list[int], plan: list[int]) -> Example:
        offset = self.vocab.num_special
        return Example(tuple(c + offset for c in subgoals), tuple(c + offset for c in plan))

    def _every_problem(self) -> list[list[int]]:
        """Every subgoal list of the tier whose plan fits, in a fixed order (a small tier only)."""
        p = self.params
        return [list(key) for k in range(p["min_subgoals"], p["max_subgoals"] + 1)
                for key in itertools.permutations(self._open, k)
                if self.paths.optimal_length(list(key)) <= p["max_plan"]]

    def _splits(self) -> dict[str, list[Example]]:
        rng = np.random.default_rng(EXAMPLE_SEED)
        if not self._enumerated:
            seen: set = set()
            return {name: [self._encode(*self._draw(rng, seen)) for _ in range(SPLIT_SIZES[name])]
                    for name in SPLITS}
        problems = self._every_problem()
        order = rng.permutation(len(problems))
        test = min(SPLIT_SIZES["test"], len(problems) // 5)
        validation = min(SPLIT_SIZES["validation"], max(1, len(problems) // 50))
        sizes = {"train": min(SPLIT_SIZES["train"], len(problems) - test - validation), "validation": validation,
                 "test": test}
        out, start = {}, 0
        for name in SPLITS:
            chosen = [problems[i] for i in order[start : start + sizes[name]]]
            out[name] = [self._encode(subgoals, self.paths.through(subgoals)) for subgoals in chosen]
            start += sizes[name]
        return out

    def examples(self, split: str) -> list[Example]:
        """The split's examples (all three splits are drawn on first use and cached per process)."""
        if split not in SPLITS:
            raise InsertgenError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
        if self.name not in _SPLIT_CACHE:
            _SPLIT_CACHE[self.name] = self._splits()
        return list(_SPLIT_CACHE[self.name][split])

    @property
    def split_sizes(self) -> dict[str, int]:
        return {name: len(self.examples(name)) for name in SPLITS} if self._enumerated else dict(SPLIT_SIZES)

    def _split_lists(self) -> set[tuple[int, ...]]:
        """The subgoal lists (cells) of every split: what no fresh problem may be."""
        if self._split_keys is None:
            offset = self.vocab.num_special
            self._split_keys = {tuple(c - offset for c in e.prompt) for split in SPLITS for e in self.examples(split)}
        return self._split_keys

    def fresh_examples(self, n: int, seed: int) -> list[Example]:
        """``n`` subgoal lists from ``default_rng(seed)``, distinct from each other and from every problem of the
        splits (never trained, validated or tested on), drawn as the splits are. The splits took most of the
        short lists (there are few), so fresh problems have more subgoals than the tier's uniform count: like
        the test split's, which was drawn after the training split."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        taken = self._split_lists()
        if self._enumerated and n > (left := len(self._every_problem()) - len(taken)):
            raise InsertgenError(f"{self.name} has {left:,} problems outside its splits, fewer than the {n:,} asked for")
        rng, seen = np.random.default_rng(seed), set()
        return [self._encode(*self._draw(rng, seen, exclude=taken)) for _ in range(n)]

    # -- text --------------------------------------------------------------------------------

    def _cells(self, text: str, what: str) -> list[int]:
        last = self.size * self.size - 1
        cells = []
        for tok in text.split():
            if not (tok.isascii() and tok.isdigit()):
                raise InsertgenError(f"{what}: token {tok!r} is not a cell index (0..{last} for {self.name})")
            value = int(tok)
            if value > last:
                raise InsertgenError(f"{what}: cell {value} is outside the {self.size}x{self.size} grid "
                                     f"(0..{last} for {self.name})")
            cells.append(value)
        return cells

    def parse_prompt(self, text: str) -> list[int]:
        """``"s0 s1 ... sk"`` (start, subgoals, goal as cell indices) -> ids. Raises InsertgenError on
        fewer than 2 or more than ``prompt_block`` cells, a non-integer token, a cell outside the grid
        or a wall cell."""
        cells = self._cells(text, "prompt")
        if len(cells) < 2:
            raise InsertgenError(f"a maze prompt lists at least a start and a goal cell, got {len(cells)} cells")
        if len(cells) > self.prompt_block:
            raise InsertgenError(f"prompt has {len(cells)} subgoal cells, more than the {self.prompt_block} "
                                 f"allowed for {self.name}")
        for cell in cells:
            if not self.maze.is_open(cell):
                r, c = self.maze.cell(cell)
                raise InsertgenError(f"prompt cell {cell} (row {r}, column {c}) is a wall of the {self.name} maze")
        return [c + self.vocab.num_special for c in cells]

    def parse_target(self, prompt: list[int], text: str) -> list[int]:
        """A plan ``"p0 p1 ... pn"`` -> ids (may be empty; validity is :meth:`evaluate`'s job)."""
        return [c + self.vocab.num_special for c in self._cells(text, "plan")]

    # -- metrics -----------------------------------------------------------------------------

    def _cells_of(self, ids) -> list[int]:
        offset = self.vocab.num_special
        return [int(i) - offset for i in ids]

    def plan_problem(self, example: Example, output) -> str | None:
        """Why ``output`` (ids) is not a valid plan for the example's subgoals, or None."""
        return plan_problem(self.maze, self._cells_of(example.prompt), self._cells_of(output))

    def evaluate(self, examples: list[Example], outputs: list[list[int]]) -> dict[str, float]:
        """``n`` and the means over examples of

        * success: the output is a valid plan (module docstring of maze_paths): open cells, 4-neighbour
          moves, starts at the start, ends at the goal, visits the subgoals in order;
        * optimal: valid and no longer than the shortest plan through the subgoals;
        * exact_match: the output equals the reference plan (meaningful for perfect mazes only, where
          the shortest plan is unique);
        * token_accuracy: positions where output and reference agree over the longer of the two;
        * ``failure_<kind>`` for each kind of :data:`maze_paths.FAILURE_KINDS` (a wall broken, a move that
          is not a step, the wrong start or goal, a subgoal skipped, too short or too long): the share of
          outputs with that fault (an output may have several).
        """
        if len(examples) != len(outputs):
            raise InsertgenError(f"{len(examples)} examples but {len(outputs)} outputs")
        success = optimal = exact = acc = 0.0
        failures = dict.fromkeys(FAILURE_KINDS, 0)
        for ex, out in zip(examples, outputs):
            output = [int(i) for i in out]
            same, accuracy = sequence_match(list(ex.target), output)
            exact += same
            acc += accuracy
            subgoals, plan = self._cells_of(ex.prompt), self._cells_of(output)
            shortest = self.paths.optimal_length(subgoals)
            for kind in plan_failures(self.maze, subgoals, plan, shortest):
                failures[kind] += 1
            if plan_problem(self.maze, subgoals, plan) is None:
                success += 1
                optimal += len(output) <= shortest
        n = max(len(examples), 1)
        return {"n": len(examples), "success": success / n, "optimal": optimal / n,
                "exact_match": exact / n, "token_accuracy": acc / n,
                **{f"failure_{kind}": count / n for kind, count in failures.items()}}

    order_reference_label = "distance along the plan to the nearest subgoal (moves)"

    def order_reference(self, prompt: list[int], output: list[int]) -> list[int] | None:
        """Per plan cell, the moves along the plan to the nearest cell of it that is a subgoal (0 at the
        subgoals); None when the plan holds none."""
        subgoals = {int(t) for t in prompt}
        at = [i for i, tok in enumerate(output) if int(tok) in subgoals]
        if not at:
            return None
        return [min(abs(i - j) for j in at) for i in range(len(output))]

    def save_figure(self, examples: list[Example], outputs: list[list[int]], path: Path) -> Path | None:
        """A PNG of the maze with the first few generated plans drawn over it."""

        panels = []
        for ex, out in list(zip(examples, outputs))[:6]:
            problem = self.plan_problem(ex, out)
            panels.append({"subgoals": self._cells_of(ex.prompt), "plan": self._cells_of(out),
                           "reference": self._cells_of(ex.target), "problem": problem})
        return plot_maze_plans(self.maze, panels, path, title=self.name)

    def config(self) -> dict:
        return {"task": self.name, "family": self.family, "tier": self.tier, **self.params,
                "imperfect_fraction": self.imperfect_fraction, "maze_seed": MAZE_SEED,
                "maze_method": "recursive_division", "example_seed": EXAMPLE_SEED,
                "rng": "numpy.random.default_rng", "splits": self.split_sizes,
                "open_cells": len(self._open), "prompt_block": self.prompt_block, "target_block": self.target_block,
                "maze": self.maze.to_text().splitlines()}
