"""The path a star graph asks for: its two written forms (:data:`TARGET_FORMATS`), the oracle
(:func:`solve`) and the check of a generated plan (:func:`is_valid_plan`)."""

from __future__ import annotations

from collections import deque

from insertgen.core.errors import InsertgenError

TARGET_FORMATS = ("edges", "nodes")  # the path as flattened edges (the papers') or as its node sequence



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


def graph_of(prompt_ids) -> tuple[set[tuple[int, int]], int, int]:
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
    edges, source, goal = graph_of(prompt_ids)
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


def is_valid_plan(edges: set[tuple[int, int]], source: int, goal: int, output: list[int],
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
