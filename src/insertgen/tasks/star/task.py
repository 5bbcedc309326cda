"""Star-graph traversal (ILM / LoFlexMDM "star" task; docs/methods/tasks.md#star-graphs).

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

Encoding (docs/methods/tasks.md#star-formats): the prompt is ``u1 v1 u2 v2 ... uE vE source goal`` (edges
in shuffled order, no separators); the target is the path as flattened edges
``p0 p1 p1 p2 ... p(L-2) p(L-1)`` (2(L-1) tokens). Node ``i`` is the data token ``str(i)``, whose id is
``i + vocab.num_special``.

Data: each level's splits train (50,000), validation (100) and test (5,000) are generated in that
order from one ``(numpy.random.RandomState(42), random.Random(42))`` pair and cached per process.
The generators draw from those explicit RNG objects exactly as the reference draws from NumPy's
global legacy RNG and Python's global ``random``, so the easy splits follow the reference draw
pattern of ILM/xlm-core with seed 42 (medium and hard restart from seed 42 here, whereas the
reference script continued one global stream across the levels).
"""


from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np

from insertgen.core.cache import cache_dir, load_arrays, save_arrays
from insertgen.core.errors import InsertgenError
from insertgen.core.vocab import Vocab
from insertgen.tasks.base import SPLITS, Example, Task, sequence_match
from insertgen.tasks.star.generator import (
    Graph,
    asymmetric_variable_arm_star_graph,
    simple_star_graph,
    star_sizes,
)
from insertgen.tasks.star.rng import BufferedRandint
from insertgen.tasks.star.solver import (
    TARGET_FORMATS,
    graph_of,
    is_valid_plan,
    path_node_index,
    path_nodes,
    path_tokens,
)

__all__ = ["SEED", "SPLIT_SIZES", "StarTask", "encode_graph"]


SEED = 42
SPLIT_SIZES = {"train": 50_000, "validation": 100, "test": 5_000}
# Per-process cache of generated splits, keyed by (level, sizes, split).
_SPLIT_CACHE: dict[tuple, list[Example]] = {}
# The version of the generated splits: bump it when the generators or the encoding change, so that splits
# kept on disk by an earlier version are generated again (tests/test_star.py compares the two).
SPLITS_FORMAT = 1


def pack_splits(splits: dict[str, list[Example]]) -> dict[str, np.ndarray]:
    """Each split's prompts and targets as flat integer arrays (int16 where the ids fit) with their offsets
    (``.npz`` contents)."""
    arrays = {}
    for name, examples in splits.items():
        for part in ("prompt", "target"):
            rows = [getattr(ex, part) for ex in examples]
            flat = np.fromiter((t for row in rows for t in row), dtype=np.int64)
            arrays[f"{name}_{part}"] = flat.astype(np.int16 if flat.size == 0 or flat.max() < 2**15 else np.int32)
            arrays[f"{name}_{part}_offsets"] = np.cumsum([0, *map(len, rows)], dtype=np.int64)
    return arrays


def read_splits(path: Path) -> dict[str, list[Example]] | None:
    """The splits kept in ``path`` by :func:`pack_splits`, or None when it is missing, fails its digest check
    (core/cache.py), or holds other sizes (then they are generated again)."""
    data = load_arrays(path)
    if data is None:
        return None
    try:
        splits = {}
        for name in SPLITS:
            parts = []
            for part in ("prompt", "target"):
                flat, offsets = data[f"{name}_{part}"].tolist(), data[f"{name}_{part}_offsets"].tolist()
                parts.append([tuple(flat[a:b]) for a, b in zip(offsets, offsets[1:])])
            if not len(parts[0]) == len(parts[1]) == SPLIT_SIZES[name]:
                return None
            splits[name] = [Example(p, t) for p, t in zip(*parts)]
        return splits
    except (ValueError, KeyError):
        return None




def encode_graph(graph: Graph, offset: int, target_format: str = "edges") -> Example:
    """``(edges, source, goal, path)`` -> Example of ids (node ``i`` has id ``i + offset``)."""
    edges, source, goal, path = graph
    prompt = [n + offset for edge in edges for n in edge]
    prompt.append(source + offset)
    prompt.append(goal + offset)
    return Example(tuple(prompt), tuple(path_tokens([n + offset for n in path], target_format)))




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
        order, from one RNG pair seeded with 42) on first use and kept for the process and on disk
        (:meth:`splits_cache_path`; 2-5 s to generate, about 0.1 s to read)."""
        if split not in SPLITS:
            raise InsertgenError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
        key = (self.level, self.sizes, self.target_format, split)
        if key not in _SPLIT_CACHE:
            try:
                path = self.splits_cache_path()
            except InsertgenError:  # no cache directory can be used here: generate every time
                path = None
            splits = read_splits(path) if path is not None else None
            if splits is None:
                np_rng, py_rng = self._rngs(SEED)
                splits = {name: self._generate(SPLIT_SIZES[name], np_rng, py_rng) for name in SPLITS}
                if path is not None:
                    save_arrays(path, pack_splits(splits))
            for name in SPLITS:
                _SPLIT_CACHE[key[:-1] + (name,)] = splits[name]
        return list(_SPLIT_CACHE[key])

    def splits_cache_path(self) -> Path:
        """Where the generated splits are kept: named by everything they depend on (the generator's
        parameters, the target format, the seed, the split sizes and :data:`SPLITS_FORMAT`)."""
        key = json.dumps([SPLITS_FORMAT, self.level, self.params, self.target_format, SEED, SPLIT_SIZES],
                         sort_keys=True)
        return cache_dir() / f"star-splits-{self.level}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"

    def fresh_examples(self, n: int, seed) -> list[Example]:
        """``n`` new graphs from the RNG pair of ``seed`` (:meth:`_rngs`; seed 42 reproduces the start of
        the train split, so pass another seed for held-out graphs)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        return self._generate(n, *self._rngs(seed))

    def held_out_key(self, example: Example):
        """A graph problem is its edge set, source and goal (the prompt's edge order is arbitrary)."""
        edges, source, goal = graph_of(example.prompt)
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
            same, accuracy = sequence_match(list(ex.target), output)
            exact += same
            acc += accuracy
            edges, source, goal = graph_of(ex.prompt)
            if is_valid_plan(edges, source, goal, output, self.target_format):
                valid += 1
        denom = max(n, 1)
        return {
            "n": n,
            "exact_match": float(exact / denom),
            "token_accuracy": float(acc / denom),
            "plan_validity": float(valid / denom),
        }

    order_reference_label = "distance from the junction (path nodes)"

    def order_reference(self, prompt: list[int], output: list[int]) -> list[int] | None:
        """Distance of each output token's node from the junction, counted in path nodes.

        The output ``p0 p1 p1 p2 ...`` is read as edges: token i is node ``(i + 1) // 2`` of the path
        (node format: node i). The junction is the node of the prompt's graph with out-degree > 1 (the
        centre of the star; the source for star-easy). None when the output is not an even-length edge
        list (node format: shorter than 2) or misses the junction.
        """
        edges, _, _ = graph_of(prompt)
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
