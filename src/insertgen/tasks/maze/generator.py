"""Grid mazes: perfect, imperfect and braided (docs/methods/tasks.md#maze-families).

A maze is a ``size x size`` grid of cells (``size = 2m + 1`` odd), each open or wall. The cells at odd
(row, column) are the ``m x m`` *rooms*; the cell between two 4-adjacent rooms is the *passage* that
joins them when it is open; the cells at even (row, column) and the border are always walls. A path
moves between 4-adjacent open cells, so moving from one room to the next crosses the passage cell.

* **perfect**: the open rooms and passages form a spanning tree of the room grid (one path between any
  two cells). Built by recursive division (as the IP paper's maze task) or a randomised depth-first
  backtracker.
* **imperfect**: a perfect maze with a fraction ``p`` (default 0.3) of its remaining closed passages
  (the walls that separate two rooms) opened, chosen uniformly: it has cycles.
* **braided**: a perfect maze with every dead end (a room with one open passage) opened toward a
  neighbouring room, preferring a neighbour that is itself a dead end: no dead ends remain.

All randomness comes from one ``numpy.random.Generator``; the imperfect and braided mazes of a seed
start from the perfect maze of that seed, so the three families differ only by the passages opened.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

FAMILIES = ("perfect", "imperfect", "braided")
PERFECT_METHODS = ("recursive_division", "dfs")

# 4-neighbour moves in a fixed order (up, left, right, down): BFS ties break the same way every time.
MOVES = ((-1, 0), (0, -1), (0, 1), (1, 0))


@dataclass(frozen=True)
class Maze:
    """An open/wall grid. ``open[r, c]`` is True for open cells; cell ``(r, c)`` has index ``r * size + c``."""

    open: np.ndarray  # (size, size) bool

    @property
    def size(self) -> int:
        return int(self.open.shape[0])

    @property
    def rooms(self) -> int:
        """Rooms per side, ``m``."""
        return (self.size - 1) // 2

    def index(self, r: int, c: int) -> int:
        return r * self.size + c

    def cell(self, index: int) -> tuple[int, int]:
        return divmod(int(index), self.size)

    def is_open(self, index: int) -> bool:
        """True when ``index`` is a cell of the grid and open."""
        return 0 <= index < self.size * self.size and bool(self.open[divmod(int(index), self.size)])

    def open_cells(self) -> list[int]:
        """Indices of the open cells, in row-major order."""
        rows, cols = np.nonzero(self.open)
        return [int(r) * self.size + int(c) for r, c in zip(rows, cols)]

    def neighbours(self, index: int) -> list[int]:
        """Open 4-neighbours of cell ``index`` (in the order of :data:`MOVES`)."""
        r, c = self.cell(index)
        out = []
        for dr, dc in MOVES:
            rr, cc = r + dr, c + dc
            if 0 <= rr < self.size and 0 <= cc < self.size and self.open[rr, cc]:
                out.append(rr * self.size + cc)
        return out

    def edges(self) -> int:
        """Number of pairs of 4-adjacent open cells."""
        o = self.open
        return int((o[1:, :] & o[:-1, :]).sum() + (o[:, 1:] & o[:, :-1]).sum())

    def is_connected(self) -> bool:
        cells = self.open_cells()
        return bool(cells) and len(bfs_distances(self, cells[0])) == len(cells)

    def dead_ends(self) -> list[int]:
        """Open cells with exactly one open neighbour."""
        return [i for i in self.open_cells() if len(self.neighbours(i)) == 1]

    def to_text(self) -> str:
        """The maze as rows of ``#`` (wall) and ``.`` (open)."""
        return "\n".join("".join("." if v else "#" for v in row) for row in self.open)


def bfs_distances(maze: Maze, source: int) -> dict[int, int]:
    """Shortest-path length (in moves) from ``source`` to every reachable open cell."""
    dist = {source: 0}
    queue = deque([source])
    while queue:
        cell = queue.popleft()
        for nxt in maze.neighbours(cell):
            if nxt not in dist:
                dist[nxt] = dist[cell] + 1
                queue.append(nxt)
    return dist


def _closed_room_grid(m: int) -> np.ndarray:
    grid = np.zeros((2 * m + 1, 2 * m + 1), dtype=bool)
    grid[1::2, 1::2] = True
    return grid


def _passage(r0: int, c0: int, r1: int, c1: int) -> tuple[int, int]:
    """Grid cell of the passage between rooms (r0, c0) and (r1, c1) (room coordinates)."""
    return r0 + r1 + 1, c0 + c1 + 1


def _room_neighbours(m: int, r: int, c: int) -> list[tuple[int, int]]:
    return [(r + dr, c + dc) for dr, dc in MOVES if 0 <= r + dr < m and 0 <= c + dc < m]


def dfs_maze(m: int, rng: np.random.Generator) -> Maze:
    """Perfect maze by the randomised depth-first backtracker: from a random room, walk to a random
    unvisited neighbour (opening the passage), back up when there is none."""
    grid = _closed_room_grid(m)
    start = (int(rng.integers(m)), int(rng.integers(m)))
    visited = {start}
    stack = [start]
    while stack:
        r, c = stack[-1]
        options = [n for n in _room_neighbours(m, r, c) if n not in visited]
        if not options:
            stack.pop()
            continue
        nr, nc = options[int(rng.integers(len(options)))]
        grid[_passage(r, c, nr, nc)] = True
        visited.add((nr, nc))
        stack.append((nr, nc))
    return Maze(grid)


def recursive_division_maze(m: int, rng: np.random.Generator) -> Maze:
    """Perfect maze by recursive division: start with every passage open, split the chamber by a wall
    line across it with one random gap, and recurse into both halves until chambers are one room wide.

    Each split leaves exactly one passage between the halves, so by induction the result is a tree.
    The wall runs across the longer side (a coin decides for square chambers)."""
    grid = np.ones((2 * m + 1, 2 * m + 1), dtype=bool)
    grid[0, :] = grid[-1, :] = grid[:, 0] = grid[:, -1] = False
    grid[::2, ::2] = False
    chambers = [(0, 0, m, m)]  # rooms [r0, r1) x [c0, c1)
    while chambers:
        r0, c0, r1, c1 = chambers.pop()
        height, width = r1 - r0, c1 - c0
        if height < 2 and width < 2:
            continue
        horizontal = height > width if height != width else bool(rng.integers(2))
        if horizontal:  # wall between room rows k-1 and k, gap at column g
            k = int(rng.integers(r0 + 1, r1))
            g = int(rng.integers(c0, c1))
            for c in range(c0, c1):
                if c != g:
                    grid[2 * k, 2 * c + 1] = False
            chambers += [(r0, c0, k, c1), (k, c0, r1, c1)]
        else:  # wall between room columns k-1 and k, gap at row g
            k = int(rng.integers(c0 + 1, c1))
            g = int(rng.integers(r0, r1))
            for r in range(r0, r1):
                if r != g:
                    grid[2 * r + 1, 2 * k] = False
            chambers += [(r0, c0, r1, k), (r0, k, r1, c1)]
    return Maze(grid)


def closed_passages(maze: Maze) -> list[tuple[int, int]]:
    """Grid cells of the closed walls that separate two rooms (candidates for opening), row-major."""
    size = maze.size
    out = []
    for r in range(1, size - 1):
        for c in range(1, size - 1):
            if (r % 2) != (c % 2) and not maze.open[r, c]:
                out.append((r, c))
    return out


def open_fraction(maze: Maze, fraction: float, rng: np.random.Generator) -> Maze:
    """Open ``round(fraction * n)`` of the ``n`` closed room-separating walls, chosen uniformly."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"the fraction of walls to open must be in [0, 1], got {fraction}")
    candidates = closed_passages(maze)
    k = int(round(fraction * len(candidates)))
    grid = maze.open.copy()
    for j in rng.permutation(len(candidates))[:k]:
        grid[candidates[int(j)]] = True
    return Maze(grid)


def braid(maze: Maze, rng: np.random.Generator) -> Maze:
    """Open a wall at every dead-end room, toward a neighbouring dead end when there is one.

    Rooms are visited in a random order; a room that stopped being a dead end (because a neighbour
    opened toward it) is skipped."""
    m = maze.rooms
    grid = maze.open.copy()

    def degree(r: int, c: int) -> int:
        return sum(bool(grid[_passage(r, c, nr, nc)]) for nr, nc in _room_neighbours(m, r, c))

    rooms = [(r, c) for r in range(m) for c in range(m)]
    for j in rng.permutation(len(rooms)):
        r, c = rooms[int(j)]
        if degree(r, c) != 1:
            continue
        closed = [(nr, nc) for nr, nc in _room_neighbours(m, r, c) if not grid[_passage(r, c, nr, nc)]]
        preferred = [n for n in closed if degree(*n) == 1]
        pool = preferred or closed
        nr, nc = pool[int(rng.integers(len(pool)))]
        grid[_passage(r, c, nr, nc)] = True
    return Maze(grid)


def make_maze(family: str, size: int, seed: int, method: str = "recursive_division",
              imperfect_fraction: float = 0.3) -> Maze:
    """The maze of ``family`` on a ``size x size`` grid (odd, >= 5) from ``numpy.random.default_rng(seed)``.

    The perfect maze is drawn first from that generator; the imperfect and braided ones continue the
    same generator, so all three families of a seed share their perfect maze."""
    if family not in FAMILIES:
        raise ValueError(f"unknown maze family {family!r}; families: {', '.join(FAMILIES)}")
    if method not in PERFECT_METHODS:
        raise ValueError(f"unknown maze method {method!r}; methods: {', '.join(PERFECT_METHODS)}")
    if size < 5 or size % 2 == 0:
        raise ValueError(f"maze size must be odd and >= 5, got {size}")
    rng = np.random.default_rng(seed)
    m = (size - 1) // 2
    maze = recursive_division_maze(m, rng) if method == "recursive_division" else dfs_maze(m, rng)
    if family == "imperfect":
        maze = open_fraction(maze, imperfect_fraction, rng)
    elif family == "braided":
        maze = braid(maze, rng)
    return maze
