"""Paths in a maze: shortest paths through ordered subgoals, and the validity check of a plan.

A plan for subgoals ``s_0 (start), s_1, ..., s_k (goal)`` is a sequence of cells ``p_0 ... p_n`` with

* every ``p_i`` an open cell of the maze,
* every move ``p_i -> p_{i+1}`` to a 4-neighbour (open, so it goes through an open passage),
* ``p_0 = s_0`` and ``p_n = s_k``,
* ``s_0, ..., s_k`` a subsequence of the plan, in that order.

Its length is its number of cells. The shortest plan has ``1 + sum_i d(s_i, s_{i+1})`` cells, ``d``
the BFS distance (in moves): any plan splits at the first visits of the subgoals into segments each
at least as long as the shortest path between their ends, and the concatenated shortest paths attain
the bound. A plan is *optimal* when it is valid and no longer than that.

A plan that is not valid can be wrong in several ways at once; :func:`plan_failures` names each of them
(:data:`FAILURE_KINDS`), and says whether its length differs from the shortest plan's.
"""

from __future__ import annotations

from collections import deque
from itertools import pairwise

from insertgen.tasks.maze.generator import Maze


class ShortestPaths:
    """BFS shortest paths in one maze, with next-hop tables computed once per target cell.

    Ties between equally short paths break by the fixed move order of :data:`maze_generator.MOVES`,
    so the reference path between two cells is always the same one."""

    def __init__(self, maze: Maze):
        self.maze = maze
        self.adjacency = {cell: maze.neighbours(cell) for cell in maze.open_cells()}
        self._next_hop: dict[int, list[int]] = {}
        self._distance: dict[int, list[int]] = {}

    def _tables(self, target: int) -> tuple[list[int], list[int]]:
        if target not in self._next_hop:
            if target not in self.adjacency:
                raise ValueError(f"cell {target} is not an open cell of the maze")
            n = self.maze.size * self.maze.size
            hop, dist = [-1] * n, [-1] * n
            hop[target], dist[target] = target, 0
            queue = deque([target])
            while queue:
                cell = queue.popleft()
                for nxt in self.adjacency[cell]:
                    if dist[nxt] < 0:
                        dist[nxt] = dist[cell] + 1
                        hop[nxt] = cell  # from nxt, step to cell to get closer to target
                        queue.append(nxt)
            self._next_hop[target], self._distance[target] = hop, dist
        return self._next_hop[target], self._distance[target]

    def distance(self, source: int, target: int) -> int:
        """Moves on a shortest path from ``source`` to ``target`` (-1 when unreachable)."""
        return self._tables(target)[1][source]

    def path(self, source: int, target: int) -> list[int]:
        """The cells of the reference shortest path from ``source`` to ``target``, both included."""
        hop, dist = self._tables(target)
        if dist[source] < 0:
            raise ValueError(f"cell {target} is not reachable from cell {source}")
        cells = [source]
        while cells[-1] != target:
            cells.append(hop[cells[-1]])
        return cells

    def through(self, subgoals: list[int]) -> list[int]:
        """Shortest plan visiting ``subgoals`` in order: the consecutive shortest paths joined."""
        plan = [subgoals[0]]
        for a, b in pairwise(subgoals):
            plan.extend(self.path(a, b)[1:])
        return plan

    def optimal_length(self, subgoals: list[int]) -> int:
        """Cells in a shortest plan through ``subgoals``: ``1 + sum d(s_i, s_{i+1})``."""
        return 1 + sum(self.distance(a, b) for a, b in pairwise(subgoals))


def plan_problem(maze: Maze, subgoals: list[int], plan: list[int]) -> str | None:
    """Why ``plan`` is not a valid plan for ``subgoals`` in ``maze``, or None when it is valid."""
    if not plan:
        return "the plan is empty"
    for i, cell in enumerate(plan):
        if not maze.is_open(cell):
            return f"cell {cell} at position {i} is a wall or outside the maze"
    size = maze.size
    for i, (a, b) in enumerate(pairwise(plan)):
        (ra, ca), (rb, cb) = divmod(a, size), divmod(b, size)
        if abs(ra - rb) + abs(ca - cb) != 1:
            return f"move {i} from cell {a} to cell {b} is not a step to a 4-neighbour"
    if plan[0] != subgoals[0]:
        return f"the plan starts at cell {plan[0]}, not at the start {subgoals[0]}"
    if plan[-1] != subgoals[-1]:
        return f"the plan ends at cell {plan[-1]}, not at the goal {subgoals[-1]}"
    k = 0
    for cell in plan:
        if k < len(subgoals) and cell == subgoals[k]:
            k += 1
    if k < len(subgoals):
        return f"the plan does not visit subgoal {k} (cell {subgoals[k]}) after the ones before it"
    return None


# What can be wrong with a plan (:func:`plan_failures`); a plan may have several, or none.
FAILURE_KINDS = {
    "empty": "no cell at all",
    "wall": "a cell that is a wall or outside the grid (the plan breaks a wall)",
    "jump": "a move to a cell that is not a 4-neighbour",
    "start": "the first cell is not the start",
    "goal": "the last cell is not the goal (e.g. the plan stops short)",
    "subgoal": "an intermediate subgoal not visited in its turn (skipped, or visited out of order)",
    "too_short": "fewer cells than the shortest plan through the subgoals",
    "too_long": "more cells than the shortest plan (a valid plan that is not optimal has only this one)",
}


def plan_failures(maze: Maze, subgoals: list[int], plan: list[int], optimal_length: int) -> set[str]:
    """Every kind of :data:`FAILURE_KINDS` that ``plan`` has for ``subgoals`` (``optimal_length``: the cells
    of the shortest plan); the empty set exactly for an optimal plan. A plan is valid (``plan_problem`` None)
    exactly when it has no kind but ``too_long``: the intermediate subgoals in order, then the start and
    the goal at the ends, make every subgoal visited in its turn (the subgoals distinct, as in every drawn
    problem)."""
    if not plan:
        return {"empty", "too_short"}
    kinds = set()
    if any(not maze.is_open(cell) for cell in plan):
        kinds.add("wall")
    size = maze.size
    if any(abs(a // size - b // size) + abs(a % size - b % size) != 1 for a, b in pairwise(plan)):
        kinds.add("jump")
    if plan[0] != subgoals[0]:
        kinds.add("start")
    if plan[-1] != subgoals[-1]:
        kinds.add("goal")
    between, k = subgoals[1:-1], 0
    for cell in plan:
        if k < len(between) and cell == between[k]:
            k += 1
    if k < len(between):
        kinds.add("subgoal")
    if len(plan) != optimal_length:
        kinds.add("too_short" if len(plan) < optimal_length else "too_long")
    return kinds
