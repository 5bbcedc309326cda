"""Star graphs: the sizes of each level and rung (:data:`LEVELS`, :func:`star_sizes`) and the two
generators, ``simple`` (every arm of one length) and ``asymmetric_variable_arm`` (arms of random lengths),
drawing from explicit RNG objects exactly as the reference code draws from the global ones (the
:mod:`insertgen.tasks.star.task` docstring gives the levels' table)."""

from __future__ import annotations

import random

import numpy as np

from insertgen.core.errors import InsertgenError

Graph = tuple[list[tuple[int, int]], int, int, list[int]]

LEVELS: dict[str, dict] = {
    "easy": {
        "generator": "simple",
        "degree": 3,
        "arm_length": 5,
        "num_nodes": 20,
        "prompt_block": 28,
        "target_block": 14,
    },
    "medium": {
        "generator": "asymmetric_variable_arm",
        "degree": 3,
        "min_arm_length": 3,
        "max_arm_length": 6,
        "min_plan_length": 2,
        "num_nodes": 20,
        "prompt_block": 36,
        "target_block": 16,
    },
    "hard": {
        "generator": "asymmetric_variable_arm",
        "degree": 5,
        "min_arm_length": 6,
        "max_arm_length": 12,
        "min_plan_length": 5,
        "num_nodes": 56,
        "prompt_block": 116,
        "target_block": 28,
    },
    "tiny": {"generator": "simple", "degree": 2, "arm_length": 3, "num_nodes": 10},
    "small": {"generator": "simple", "degree": 3, "arm_length": 4, "num_nodes": 16},
}
PAPER_LEVELS = ("easy", "medium", "hard")
SIZE_OPTIONS = {"simple": ("degree", "arm_length", "num_nodes"),
                "asymmetric_variable_arm": ("degree", "min_arm_length", "max_arm_length", "min_plan_length",
                                            "num_nodes")}



def star_sizes(level: str, **sizes) -> dict:
    """The generator parameters and blocks of ``level`` with ``sizes`` changed; every bad size is
    refused with an InsertgenError naming its option (``task.KEY``)."""
    if level not in LEVELS:
        raise InsertgenError(f"unknown star level {level!r}; known levels: {', '.join(LEVELS)}")
    params = dict(LEVELS[level])
    allowed = SIZE_OPTIONS[params["generator"]]
    for key, value in sizes.items():
        if key not in allowed:
            raise InsertgenError(f"task.{key}: not a size of star-{level} (its {params['generator']} generator "
                                 f"takes {', '.join('task.' + k for k in allowed)}; the target's format is "
                                 f"task.target_format)")
        if isinstance(value, bool) or not isinstance(value, int):
            raise InsertgenError(f"task.{key}={value!r}: give a whole number")
    changed = {k: v for k, v in sizes.items() if params[k] != v}
    params.update(sizes)
    if params["degree"] < 2:
        raise InsertgenError(f"task.degree={params['degree']}: a star needs at least 2 arms (one to the goal, "
                             f"one that is not)")
    if params["generator"] == "simple":
        if params["arm_length"] < 2:
            raise InsertgenError(f"task.arm_length={params['arm_length']}: an arm has at least 2 nodes")
        longest, nodes = params["arm_length"], params["degree"] * (params["arm_length"] - 1) + 1
    else:
        if not 1 <= params["min_plan_length"] < params["min_arm_length"] <= params["max_arm_length"]:
            raise InsertgenError(
                f"task.min_plan_length={params['min_plan_length']}, task.min_arm_length={params['min_arm_length']}, "
                f"task.max_arm_length={params['max_arm_length']}: need 1 <= min_plan_length < min_arm_length "
                f"<= max_arm_length")
        longest = params["max_arm_length"]
        nodes = params["degree"] * (longest - 1) + 1
    if params["num_nodes"] < nodes:
        raise InsertgenError(f"task.num_nodes={params['num_nodes']}: too few node ids for this star, which can "
                             f"have {nodes} distinct nodes (degree {params['degree']}, arms of up to {longest})")
    if changed or "prompt_block" not in params:
        params["prompt_block"] = 2 * params["degree"] * (longest - 1) + 2
        params["target_block"] = 2 * (longest - 1)
    return params




def simple_star_graph(
    np_rng: np.random.RandomState,
    py_rng: random.Random,
    degree: int = 3,
    arm_length: int = 5,
    num_nodes: int = 20,
) -> Graph:
    """A simple star: the source is the centre, ``degree`` arms of ``arm_length`` nodes each.

    Draw pattern (bit-exact with the reference ``simple_star_graph`` of ILM/xlm-core, with the
    global RNGs replaced by ``np_rng`` and ``py_rng``); every draw is
    ``np_rng.randint(0, num_nodes)``:

    1. ``source`` = draw; ``goal`` = draw, redrawn while ``goal == source``.
    2. ``path = [source]``; then ``arm_length - 2`` times: ``x`` = draw, redrawn while ``x`` is on the
       path or equals ``goal``; append ``x``. Finally append ``goal``.
    3. Edges ``(path[i], path[i+1])`` for ``i < arm_length - 1``.
    4. For each of the ``degree - 1`` extra arms: ``prev = source``; draw a candidate; until the arm
       has ``arm_length - 1`` new nodes: if the candidate is on no extra arm so far and not on the
       path, add edge ``(prev, candidate)`` and set ``prev = candidate``; then draw a new candidate
       (also after an acceptance), so each arm ends with one unused draw.
    5. ``py_rng.shuffle(edges)``.

    Result: ``1 + degree*(arm_length-1)`` distinct nodes, ``degree*(arm_length-1)`` edges, the
    source is the centre and the goal is the end of the path arm.

    ``np_rng`` may also be a :class:`BufferedRandint` (only ``randint(low, high)`` is called).

    Returns:
        ``(edges, source, goal, path)`` with python ints; ``path`` lists ``arm_length`` nodes.
    """
    if degree < 1 or arm_length < 2:
        raise ValueError(f"need degree >= 1 and arm_length >= 2, got {degree}, {arm_length}")
    if num_nodes < degree * (arm_length - 1) + 1:
        raise ValueError(
            f"num_nodes must be >= degree*(arm_length-1)+1 = {degree * (arm_length - 1) + 1}, "
            f"got {num_nodes}"
        )
    randint = np_rng.randint
    source = int(randint(0, num_nodes))
    goal = int(randint(0, num_nodes))
    while goal == source:
        goal = int(randint(0, num_nodes))

    path = [source]
    on_path = {source, goal}
    for _ in range(arm_length - 2):
        node = int(randint(0, num_nodes))
        while node in on_path:  # on the path so far, or the goal
            node = int(randint(0, num_nodes))
        path.append(node)
        on_path.add(node)
    path.append(goal)
    edges = [(path[i], path[i + 1]) for i in range(arm_length - 1)]

    used = set(on_path)  # path nodes plus nodes on extra arms
    for _ in range(degree - 1):
        prev = source
        candidate = int(randint(0, num_nodes))
        added = 1
        while added < arm_length:
            if candidate not in used:
                edges.append((prev, candidate))
                used.add(candidate)
                prev = candidate
                added += 1
            candidate = int(randint(0, num_nodes))

    py_rng.shuffle(edges)
    return edges, source, goal, path


def asymmetric_variable_arm_star_graph(
    np_rng: np.random.RandomState,
    py_rng: random.Random,
    degree: int = 3,
    min_arm_length: int = 3,
    max_arm_length: int = 6,
    min_plan_length: int = 2,
    num_nodes: int = 20,
) -> Graph:
    """An asymmetric star with variable arm lengths; every arm passes through one centre node.

    Draw pattern (bit-exact with the reference ``asymmetric_variable_armlength_star_graph``, with the
    global RNGs replaced by ``np_rng`` and ``py_rng``):

    1. ``L = np_rng.randint(min_arm_length, max_arm_length + 1, degree)`` (one vector call).
    2. For each arm ``i`` in order: ``j_i = np_rng.randint(L_i - min_plan_length)``, the position of
       the centre inside arm ``i`` (uniform on ``{0, ..., L_i - m - 1}``, so at least ``m`` nodes
       follow the centre).
    3. ``ids = np_rng.choice(num_nodes, sum(L) - degree + 1, replace=False)``; ``ids[0]`` is the
       centre, the rest are handed out in order.
    4. For each arm ``i``, positions ``0..L_i-1``: position ``j_i`` is the centre, every other
       position takes the next unused id; consecutive positions are joined by an edge from the lower
       to the higher position.
    5. Arm 0 is the query: ``source`` is its first node, ``goal`` its last, ``path`` all its nodes.
    6. ``py_rng.shuffle(edges)``.

    Result: ``sum(L) - degree + 1`` distinct nodes and ``sum(L_i - 1)`` edges; the centre has
    out-degree ``degree`` and in-degree ``#{i: j_i > 0}``; every other node has total degree <= 2.

    Returns:
        ``(edges, source, goal, path)`` with python ints; ``path`` lists ``L_0`` nodes.
    """
    if degree < 1:
        raise ValueError(f"need degree >= 1, got {degree}")
    if not 1 <= min_plan_length < min_arm_length <= max_arm_length:
        raise ValueError(
            "need 1 <= min_plan_length < min_arm_length <= max_arm_length, got "
            f"{min_plan_length}, {min_arm_length}, {max_arm_length}"
        )
    if num_nodes < max_arm_length * degree - degree + 1:
        raise ValueError(
            f"num_nodes must be >= max_arm_length*degree-degree+1 = "
            f"{max_arm_length * degree - degree + 1}, got {num_nodes}"
        )
    lengths = [int(x) for x in np_rng.randint(min_arm_length, max_arm_length + 1, degree)]
    joins = [int(np_rng.randint(length - min_plan_length)) for length in lengths]
    ids = np_rng.choice(num_nodes, sum(lengths) - degree + 1, replace=False).tolist()
    centre = ids[0]
    k = 1
    edges: list[tuple[int, int]] = []
    path: list[int] = []
    for arm, (length, join) in enumerate(zip(lengths, joins)):
        nodes = ids[k : k + length - 1]
        k += length - 1
        nodes.insert(join, centre)
        edges.extend(zip(nodes, nodes[1:]))
        if arm == 0:
            path = nodes
    py_rng.shuffle(edges)
    return edges, path[0], path[-1], path
