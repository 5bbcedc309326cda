"""Star-graph traversal (ILM / LoFlexMDM "star" task; spec: data_and_deps.md §1, loflexmdm.md §6.1).

A directed star graph is given as a shuffled edge list plus a source and a goal; the answer is the
path from the source to the goal, written as its edges. Three levels:

=======  ===========================  ======  ===========  ======  ===  ============
level    generator                    degree  arm length   m       V    blocks
=======  ===========================  ======  ===========  ======  ===  ============
easy     simple                       3       exactly 5    --      20   28 / 14
medium   asymmetric variable-arm      3       U{3..6}      2       20   36 / 16
hard     asymmetric variable-arm      5       U{6..12}     5       56   116 / 28
=======  ===========================  ======  ===========  ======  ===  ============

(m = ``min_plan_length``, V = number of node ids, blocks = ``prompt_block`` / ``target_block``.)

Smaller rungs, for seeing a model learn on a laptop and for ladders of star sizes (same generator and
format as easy, so every skill of easy is present, in fewer steps):

=======  ===========================  ======  ===========  ===  ============
rung     generator                    degree  arm length   V    blocks
=======  ===========================  ======  ===========  ===  ============
tiny     simple                       2       exactly 3    10   10 / 4
small    simple                       3       exactly 4    16   20 / 6
=======  ===========================  ======  ===========  ===  ============

Every size is also an option (``--set task.KEY=VALUE``, :data:`SIZE_OPTIONS`): ``degree``, ``arm_length``
(simple generator) or ``min_arm_length`` / ``max_arm_length`` / ``min_plan_length`` (asymmetric),
``num_nodes``; a level with changed sizes gets the tight blocks ``2 * degree * (longest arm - 1) + 2`` /
``2 * (longest arm - 1)``, while the three paper levels keep the reference's blocks and data.

``task.target_format=nodes`` writes the target as the path's nodes ``p0 p1 ... p(L-1)`` instead of its
edges (:data:`TARGET_FORMATS`): the same graphs and prompts, a diagnostic of what the edge format's
repeated nodes do to learning (in the edge format every inner node is written twice, so one occurrence
can be copied from its twin, and a slot's place within its edge pair is one more thing to infer). The
papers' format, ``edges``, is the default.

Encoding (§1.5): the prompt is ``u1 v1 u2 v2 ... uE vE source goal`` (edges in shuffled order, no
separators); the target is the path as flattened edges ``p0 p1 p1 p2 ... p(L-2) p(L-1)`` (2(L-1)
tokens). Node ``i`` is the data token ``str(i)``, whose id is ``i + vocab.num_special``.

Data: each level's splits train (50,000), validation (100) and test (5,000) are generated in that
order from one ``(numpy.random.RandomState(42), random.Random(42))`` pair and cached per process.
The generators draw from those explicit RNG objects exactly as the reference draws from NumPy's
global legacy RNG and Python's global ``random``, so the easy splits follow the reference draw
pattern of ILM/xlm-core with seed 42 (medium and hard restart from seed 42 here, whereas the
reference script continued one global stream across the levels).
"""

from __future__ import annotations

import random
from collections import deque

import numpy as np

from insertgen.errors import InsertgenError
from insertgen.tasks.base import SPLITS, Example, Task
from insertgen.vocab import Vocab

__all__ = [
    "LEVELS",
    "SEED",
    "SPLIT_SIZES",
    "StarTask",
    "BufferedRandint",
    "asymmetric_variable_arm_star_graph",
    "encode_graph",
    "simple_star_graph",
    "solve",
    "TARGET_FORMATS",
    "path_node_index",
    "path_nodes",
    "path_tokens",
]

Graph = tuple[list[tuple[int, int]], int, int, list[int]]

SEED = 42
TARGET_FORMATS = ("edges", "nodes")  # the path as flattened edges (the papers') or as its node sequence
SPLIT_SIZES = {"train": 50_000, "validation": 100, "test": 5_000}

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

# Per-process cache of generated splits, keyed by (level, sizes, split).
_SPLIT_CACHE: dict[tuple, list[Example]] = {}


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


# ---------------------------------------------------------------------------------------------
# Generators
# ---------------------------------------------------------------------------------------------


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


class BufferedRandint:
    """A fast stand-in for ``RandomState.randint(low, high)`` scalar draws (legacy, int64 result).

    NumPy's legacy ``randint(low, high)`` with ``high - low - 1 = r < 2**32`` takes raw 32-bit
    Mersenne-Twister outputs ``u`` and returns ``low + (u & mask)`` for the first one with
    ``u & mask <= r``, where ``mask`` is the smallest ``2**k - 1 >= r`` (no draw when ``r == 0``).
    This class fetches the raw outputs in blocks (``randint(0, 2**32, size, dtype=uint32)``, one raw
    output per element) and replays that rule in Python, giving the same values as calling
    ``np_rng.randint`` each time, several times faster. It reads ahead, so ``np_rng`` must not be used
    directly afterwards: use it only where every draw goes through this object (the simple generator).
    """

    __slots__ = ("_rng", "_buf", "_pos", "_block")

    def __init__(self, np_rng: np.random.RandomState, block: int = 1 << 14):
        self._rng = np_rng
        self._buf: list[int] = []
        self._pos = 0
        self._block = block

    def randint(self, low: int, high: int) -> int:
        r = high - low - 1
        if r < 0 or r >= 1 << 32:
            raise ValueError(f"unsupported range [{low}, {high})")
        if r == 0:
            return low
        mask = (1 << r.bit_length()) - 1
        buf, pos = self._buf, self._pos
        while True:
            if pos == len(buf):
                buf = self._buf = self._rng.randint(0, 1 << 32, self._block, dtype=np.uint32).tolist()
                pos = 0
            value = buf[pos] & mask
            pos += 1
            if value <= r:
                self._pos = pos
                return low + value


# ---------------------------------------------------------------------------------------------
# Encoding and the oracle
# ---------------------------------------------------------------------------------------------


def path_tokens(nodes: list[int], target_format: str = "edges") -> list[int]:
    """A path's nodes ``p0 .. p(L-1)`` written in ``target_format``: ``p0 p1 p1 p2 ... p(L-2) p(L-1)``
    (edges) or ``p0 p1 ... p(L-1)`` (nodes)."""
    if target_format == "nodes":
        return list(nodes)
    return [n for a, b in zip(nodes, nodes[1:]) for n in (a, b)]


def path_nodes(tokens, target_format: str = "edges") -> list[int]:
    """The inverse of :func:`path_tokens`: the path's nodes named by a target (edges: its first token and
    every edge's head)."""
    tokens = [int(t) for t in tokens]
    return tokens if target_format == "nodes" else tokens[:1] + tokens[1::2]


def path_node_index(i: int, target_format: str = "edges") -> int:
    """The path node that target token ``i`` names: ``(i + 1) // 2`` in the edge format, ``i`` in the node
    format."""
    return i if target_format == "nodes" else (i + 1) // 2


def encode_graph(graph: Graph, offset: int, target_format: str = "edges") -> Example:
    """``(edges, source, goal, path)`` -> Example of ids (node ``i`` has id ``i + offset``)."""
    edges, source, goal, path = graph
    prompt = [n + offset for edge in edges for n in edge]
    prompt.append(source + offset)
    prompt.append(goal + offset)
    return Example(tuple(prompt), tuple(path_tokens([n + offset for n in path], target_format)))


def _graph_of(prompt_ids) -> tuple[set[tuple[int, int]], int, int]:
    """Prompt ids -> (edge set, source id, goal id)."""
    ids = [int(i) for i in prompt_ids]
    if len(ids) < 4 or len(ids) % 2:
        raise InsertgenError(
            f"a star prompt is 'u1 v1 ... uE vE source goal' (an even number >= 4 of tokens), "
            f"got {len(ids)} tokens"
        )
    edges = set(zip(ids[0:-2:2], ids[1:-2:2]))
    return edges, ids[-2], ids[-1]


def solve(prompt_ids, target_format: str = "edges") -> list[int]:
    """Graph-search oracle: the source->goal path of a prompt, as flattened edge ids (or node ids).

    Works directly on ids (any consistent numbering). Runs a BFS along directed edges from the source
    and returns ``p0 p1 p1 p2 ...`` (``nodes``: ``p0 p1 p2 ...``); raises InsertgenError when the goal is
    unreachable or the prompt is malformed. Returns ``[]`` when source == goal.
    """
    edges, source, goal = _graph_of(prompt_ids)
    adjacency: dict[int, list[int]] = {}
    for u, v in edges:
        adjacency.setdefault(u, []).append(v)
    parent = {source: source}
    queue = deque([source])
    while queue:
        node = queue.popleft()
        if node == goal:
            break
        for nxt in adjacency.get(node, ()):
            if nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    if goal not in parent:
        raise InsertgenError(f"no path from the source (id {source}) to the goal (id {goal})")
    nodes = [goal]
    while nodes[-1] != source:
        nodes.append(parent[nodes[-1]])
    nodes.reverse()
    if len(nodes) == 1:
        return []
    return path_tokens(nodes, target_format)


def _is_valid_plan(edges: set[tuple[int, int]], source: int, goal: int, output: list[int],
                   target_format: str = "edges") -> bool:
    if target_format == "nodes":
        return (len(output) >= 2 and output[0] == source and output[-1] == goal
                and all(pair in edges for pair in zip(output, output[1:])))
    if len(output) < 2 or len(output) % 2:
        return False
    pairs = list(zip(output[0::2], output[1::2]))
    if pairs[0][0] != source or pairs[-1][1] != goal:
        return False
    for j, pair in enumerate(pairs):
        if pair not in edges:
            return False
        if j + 1 < len(pairs) and pair[1] != pairs[j + 1][0]:
            return False
    return True


# ---------------------------------------------------------------------------------------------
# The task
# ---------------------------------------------------------------------------------------------


class StarTask(Task):
    """Star-graph traversal at level ``easy``, ``medium``, ``hard`` or rung ``tiny``, ``small`` (task id
    ``star-<level>``), with any size changed by the keyword options (:func:`star_sizes`)."""

    conditional = True
    headline_metrics = ("exact_match", "token_accuracy")
    generates_training_data = True

    def __init__(self, level: str = "easy", target_format: str = "edges", **sizes):
        if target_format not in TARGET_FORMATS:
            raise InsertgenError(f"task.target_format={target_format!r}: choose one of {', '.join(TARGET_FORMATS)}")
        self.level, self.target_format = level, target_format
        self.params = star_sizes(level, **sizes)
        self.sizes = tuple(sorted(sizes.items()))
        self.name = f"star-{level}"
        self.num_nodes: int = self.params["num_nodes"]
        self.vocab = Vocab(str(i) for i in range(self.num_nodes))
        self.prompt_block: int = self.params["prompt_block"]
        self.target_block: int = self.params["target_block"]
        if target_format == "nodes":  # L nodes instead of 2 (L - 1) tokens
            self.target_block = self.target_block // 2 + 1

    # -- data ------------------------------------------------------------------------------

    def generate_graph(self, np_rng: np.random.RandomState, py_rng: random.Random) -> Graph:
        """One graph of this level drawn from the given RNGs."""
        p = self.params
        if p["generator"] == "simple":
            return simple_star_graph(np_rng, py_rng, p["degree"], p["arm_length"], p["num_nodes"])
        return asymmetric_variable_arm_star_graph(
            np_rng,
            py_rng,
            p["degree"],
            p["min_arm_length"],
            p["max_arm_length"],
            p["min_plan_length"],
            p["num_nodes"],
        )

    def _rngs(self, seed):
        """The RNG pair for one generation run seeded with ``seed``: an integer (the splits: 42), or a
        tuple of non-negative integers (fresh training batches: ``RandomState(list)`` and a ``Random``
        seeded from the tuple's SeedSequence; never the same streams as an integer seed).

        The simple generator only calls ``randint(0, V)``, so for it NumPy's RNG is wrapped in a
        :class:`BufferedRandint` (same values, several times faster). The wrapper reads ahead, so the
        same pair must serve the whole run (all three splits, in order).
        """
        if isinstance(seed, tuple):
            np_rng = np.random.RandomState(list(seed))
            py_rng = random.Random(int(np.random.SeedSequence(list(seed)).generate_state(1, np.uint64)[0]))
        else:
            np_rng, py_rng = np.random.RandomState(seed), random.Random(seed)
        if self.params["generator"] == "simple":
            np_rng = BufferedRandint(np_rng)  # type: ignore[assignment]
        return np_rng, py_rng

    def _generate(self, n: int, np_rng, py_rng: random.Random) -> list[Example]:
        offset = self.vocab.num_special
        return [encode_graph(self.generate_graph(np_rng, py_rng), offset, self.target_format) for _ in range(n)]

    def examples(self, split: str) -> list[Example]:
        """The split's examples; all three splits are generated (train, validation, test, in that
        order, from one RNG pair seeded with 42) on first use and cached for the process."""
        if split not in SPLITS:
            raise InsertgenError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
        key = (self.level, self.sizes, self.target_format, split)
        if key not in _SPLIT_CACHE:
            np_rng, py_rng = self._rngs(SEED)
            for name in SPLITS:
                _SPLIT_CACHE[key[:-1] + (name,)] = self._generate(SPLIT_SIZES[name], np_rng, py_rng)
        return list(_SPLIT_CACHE[key])

    def fresh_examples(self, n: int, seed) -> list[Example]:
        """``n`` new graphs from the RNG pair of ``seed`` (:meth:`_rngs`; seed 42 reproduces the start of
        the train split, so pass another seed for held-out graphs)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        return self._generate(n, *self._rngs(seed))

    def held_out_key(self, example: Example):
        """A graph problem is its edge set, source and goal (the prompt's edge order is arbitrary)."""
        edges, source, goal = _graph_of(example.prompt)
        return frozenset(edges), source, goal

    # -- text --------------------------------------------------------------------------------

    def _node_ids(self, tokens: list[str]) -> list[int]:
        offset = self.vocab.num_special
        last = self.num_nodes - 1
        ids = []
        for tok in tokens:
            if tok.isascii() and (tok.isdigit() or (tok[0] in "+-" and tok[1:].isdigit())):
                value = int(tok)
            else:
                raise InsertgenError(
                    f"token {tok!r} is not an integer node id (node ids are 0..{last} for {self.name})"
                )
            if not 0 <= value <= last:
                raise InsertgenError(f"node id {tok!r} is outside 0..{last} for {self.name}")
            ids.append(value + offset)
        return ids

    def parse_prompt(self, text: str) -> list[int]:
        """``u1 v1 ... uE vE source goal`` -> ids. Raises InsertgenError on an empty prompt, a
        non-integer token, a node id outside this level's range, an odd number of edge tokens (or no
        edges), or more than ``prompt_block`` tokens."""
        tokens = text.split()
        if not tokens:
            raise InsertgenError(
                f"empty prompt: expected 'u1 v1 ... uE vE source goal' for {self.name}"
            )
        if len(tokens) > self.prompt_block:
            raise InsertgenError(
                f"prompt has {len(tokens)} tokens, more than the {self.prompt_block} allowed "
                f"for {self.name}"
            )
        ids = self._node_ids(tokens)
        n_edge = len(tokens) - 2
        if n_edge % 2:
            raise InsertgenError(
                f"odd number of edge tokens ({n_edge}) in the prompt: expected "
                f"'u1 v1 ... uE vE source goal' (pairs of nodes, then source and goal)"
            )
        if n_edge < 2:
            raise InsertgenError(
                f"prompt has no edges ({len(tokens)} tokens): expected 'u1 v1 ... uE vE source goal'"
            )
        return ids

    def parse_target(self, prompt: list[int], text: str) -> list[int]:
        """A path written as flattened edges (or nodes: ``task.target_format``) -> ids (may be empty); unknown tokens raise
        InsertgenError. The path is not checked against the prompt (that is :meth:`evaluate`'s job)."""
        return self._node_ids(text.split())

    # -- metrics -----------------------------------------------------------------------------

    def evaluate(self, examples: list[Example], outputs: list[list[int]]) -> dict[str, float]:
        """``n``, ``exact_match``, ``token_accuracy`` and ``plan_validity`` (means over examples).

        * exact_match: output ids equal the target ids (same length).
        * token_accuracy: positions ``i < len(target)`` with ``output[i] == target[i]``, divided by
          ``max(len(target), len(output))`` (missing and surplus tokens count as errors).
        * plan_validity: the output is a chain of edges of the prompt's graph from its source to its
          goal (even length >= 2, every pair an edge, consecutive pairs share their node, starts at
          the source, ends at the goal; in the node format: at least 2 nodes, from the source to the
          goal, every consecutive pair an edge). Any valid path counts, not only the target.

        With no examples, every metric is 0.0.
        """
        if len(examples) != len(outputs):
            raise InsertgenError(f"{len(examples)} examples but {len(outputs)} outputs")
        n = len(examples)
        exact = acc = valid = 0.0
        for ex, out in zip(examples, outputs):
            output = [int(i) for i in out]
            target = list(ex.target)
            if output == target:
                exact += 1
            hits = sum(1 for a, b in zip(output, target) if a == b)
            acc += hits / max(len(target), len(output), 1)
            edges, source, goal = _graph_of(ex.prompt)
            if _is_valid_plan(edges, source, goal, output, self.target_format):
                valid += 1
        denom = max(n, 1)
        return {
            "n": n,
            "exact_match": float(exact / denom),
            "token_accuracy": float(acc / denom),
            "plan_validity": float(valid / denom),
        }

    def order_reference(self, prompt: list[int], output: list[int]) -> list[int] | None:
        """Distance of each output token's node from the junction, counted in path nodes.

        The output ``p0 p1 p1 p2 ...`` is read as edges: token i is node ``(i + 1) // 2`` of the path
        (node format: node i). The junction is the node of the prompt's graph with out-degree > 1 (the
        centre of the star; the source for star-easy). None when the output is not an even-length edge
        list (node format: shorter than 2) or misses the junction.
        """
        edges, _, _ = _graph_of(prompt)
        out_degree: dict[int, int] = {}
        for u, _ in edges:
            out_degree[u] = out_degree.get(u, 0) + 1
        junctions = [u for u, d in out_degree.items() if d > 1]
        if len(output) < 2 or (len(output) % 2 and self.target_format == "edges") or len(junctions) != 1:
            return None
        nodes = path_nodes(output, self.target_format)
        if junctions[0] not in nodes:
            return None
        j = nodes.index(junctions[0])
        return [abs(path_node_index(i, self.target_format) - j) for i in range(len(output))]

    def vocabulary_options(self) -> dict:
        """Another star rung over this one's node ids and in its target format (a curriculum's rung)."""
        return {"num_nodes": self.num_nodes, **({"target_format": self.target_format}
                                                if self.target_format != "edges" else {})}

    def config(self) -> dict:
        p = self.params
        cfg: dict = {"task": self.name, "generator": p["generator"], "degree": p["degree"]}
        if p["generator"] == "simple":
            cfg["arm_length"] = p["arm_length"]
        else:
            cfg["min_arm_length"] = p["min_arm_length"]
            cfg["max_arm_length"] = p["max_arm_length"]
            cfg["min_plan_length"] = p["min_plan_length"]
        cfg.update(
            {
                "num_nodes": self.num_nodes,
                "seed": SEED,
                "rng": "numpy.random.RandomState(seed) + random.Random(seed); splits in order "
                "train, validation, test",
                "splits": dict(SPLIT_SIZES),
                "prompt_block": self.prompt_block,
                "target_block": self.target_block,
            }
        )
        if self.target_format != "edges":
            cfg["target_format"] = self.target_format
        return cfg
