"""Sub-skill probes of star-graph traversal: which parts of the path a model can already fill in.

Exact match says *that* a model fails; the probes say *why*. A path ``p_0 .. p_n`` is written as edges,
``p0 p1 | p1 p2 | ... | p_{n-1} p_n``: target position 2k holds the tail and 2k+1 the head of edge k.
Each probe shows the model the prompt and some target tokens, asks for the token at one target position
with one evaluation, and scores the arg-max over the examples:

    copy_source     nothing revealed; position 0 = p_0, the source (the second-to-last prompt token)
    copy_goal       nothing revealed; position 2n-1 = p_n, the goal (the last prompt token)
    twin_copy       position 1 revealed; position 2 = the same node again (the edge format's shortcut)
    parent_of_goal  nothing revealed; position 2n-2 = p_{n-1}: the u of the prompt edge (u, goal)
    parent_lookup   positions >= 2n-3 revealed; position 2n-4 = p_{n-2}: the parent of the revealed
                    p_{n-1} (a look-up through the graph, not a copy of a neighbour); needs n >= 3
    child_lookup    positions <= 2 revealed; position 3 = p_2: the child of the revealed p_1 on the
                    way to the goal (in the easy format p_1 is past the junction, so it has one child:
                    the left-to-right model's look-up); needs n >= 3

How each family is asked (one forward pass, no sampling):

* masked denoisers (FlexMDM, LoFlexMDM): the full-length canvas ``[prompt, BOS, target, EOS]`` with every
  unrevealed target token MASK, at time ``t = PROBE_TIME`` (almost everything masked);
* MDM: its fixed canvas ``[prompt, BOS, target, PAD...]``, unrevealed target tokens MASK (the PAD slots,
  i.e. the length, shown), at the same time;
* ARM (left to right): the prefix up to the queried position (so only probes whose revealed tokens all
  come before it: copy_source, twin_copy, child_lookup);
* IP / AO-IP: not probed yet (their policy inserts into slots of a partial canvas; ``None``).

In the node format (``task.target_format=nodes``, target ``p_0 .. p_n``) the same probes ask for the
same nodes at their node positions (source 0, goal n, parent of the goal n-1, parent_lookup reveals n-1
and n and asks n-2, child_lookup reveals 0 and 1 and asks 2); twin_copy has no twin to copy and is None.

A probe that does not apply to a family or a size is ``None``. Chance is about 1/(number of graph nodes)
for the look-ups.

**Failure kinds** (every family, IP / AO-IP included: :func:`failure_kinds`) read sampled outputs instead:
for each wrong output, the wrong token decided first (by the sampler's unmasking / insertion step) and
the look-up that decision needed, given the path nodes known then (source and goal from the prompt, and
every token decided before): ``parent`` of a known node, split into ``parent (other occurrence)`` when the
wrong token is the one written just before the known node's other occurrence in the edge list (where it
is the first node of an edge: the wrong-occurrence error) and ``parent (other)``; ``child`` of a known
node; ``none`` (no neighbour known); ``length`` (an output of another length).
"""

from __future__ import annotations

from collections import Counter

import torch

from insertgen.core.data import collate
from insertgen.tasks.base import Example
from insertgen.tasks.star.solver import path_node_index, path_nodes

PROBES = ("copy_source", "copy_goal", "twin_copy", "parent_of_goal", "parent_lookup", "child_lookup")
PROBE_TIME = 0.95
ARM_PROBES = ("copy_source", "twin_copy", "child_lookup")


def probe_plan(n: int, target_format: str = "edges") -> dict[str, tuple[set[int], int] | None]:
    """For a path of ``n`` edges: probe -> (revealed target positions, queried position), or None when
    the probe needs a longer path (or, in the node format, has no twin)."""
    if target_format == "nodes":
        return {
            "copy_source": (set(), 0),
            "copy_goal": (set(), n),
            "twin_copy": None,
            "parent_of_goal": (set(), n - 1) if n >= 2 else None,
            "parent_lookup": ({n - 1, n}, n - 2) if n >= 3 else None,
            "child_lookup": ({0, 1}, 2) if n >= 3 else None,
        }
    last = 2 * n - 1
    return {
        "copy_source": (set(), 0),
        "copy_goal": (set(), last),
        "twin_copy": ({1}, 2) if n >= 2 else None,
        "parent_of_goal": (set(), last - 1) if n >= 2 else None,
        "parent_lookup": (set(range(last - 2, last + 1)), last - 3) if n >= 3 else None,
        "child_lookup": ({0, 1, 2}, 3) if n >= 3 else None,
    }


# How the probes ask each family (by id): "masked" (one evaluation of a masked model on the canvas with the
# queried positions masked), "masked_canvas" (MDM's fixed canvas), "next_token" (a left-to-right model's next
# token). A family not named here is not probed (IP and AO-IP: their policy picks positions and tokens together).
STAR_PROBE_KINDS = {"flexmdm": "masked", "loflexmdm": "masked", "arm": "next_token", "mdm": "masked_canvas"}


def probe_kind(model) -> str | None:
    """How the probes ask ``model``'s family (:data:`STAR_PROBE_KINDS`), or None when it is not probed."""
    return STAR_PROBE_KINDS.get(model.model_id)


def _masked_predictions(model, examples: list[Example], revealed: set[int], query: int) -> torch.Tensor:
    """Arg-max token at target position ``query`` of each example, from one evaluation of a masked model."""
    v = model.vocab
    t = torch.full((len(examples),), PROBE_TIME)
    if probe_kind(model) == "masked_canvas":
        tokens, real, slot = model.canvas([list(ex.prompt) for ex in examples], [list(ex.target) for ex in examples])
        first = slot.float().argmax(1)
    else:
        batch = collate(examples, v)
        tokens = batch.tokens
        first = (~batch.fixed & (tokens != v.pad_id)).float().argmax(1)
    rows = torch.arange(len(examples))
    lengths = torch.tensor([len(ex.target) for ex in examples])
    rel = torch.arange(tokens.shape[1])[None, :] - first[:, None]
    in_target = (rel >= 0) & (rel < lengths[:, None])
    keep = torch.zeros_like(in_target)
    for r in revealed:
        keep |= rel == r
    canvas = torch.where(in_target & ~keep, torch.full_like(tokens, v.mask_id), tokens)
    logits = model(canvas, real, t) if probe_kind(model) == "masked_canvas" else model(canvas, t)[0]
    return logits[rows, first + query].argmax(-1)


def _arm_predictions(model, examples: list[Example], query: int) -> torch.Tensor:
    """Arg-max next token after the prompt, BOS and the first ``query`` target tokens."""
    v = model.vocab
    rows = [list(ex.prompt) + [v.bos_id] + list(ex.target[:query]) for ex in examples]
    width = max(len(r) for r in rows)
    tokens = torch.full((len(rows), width), v.pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = torch.tensor(r)
    logp = model(tokens, tokens != v.pad_id)
    last = torch.tensor([len(r) - 1 for r in rows])
    return logp[torch.arange(len(rows)), last].argmax(-1)


@torch.no_grad()
def probe(model, examples: list[Example], target_format: str = "edges") -> dict[str, float | None]:
    """Accuracy of every probe of the module docstring on ``examples`` (all of one path length or not:
    each example is asked what its own length allows; a probe is None when no example allows it or the
    family is not probed); ``target_format``: the task's (``StarTask.target_format``)."""
    kind = probe_kind(model)
    if kind is None:
        return {name: None for name in PROBES}
    was_training = model.training
    model.eval()
    result: dict[str, float | None] = {}
    try:
        for name in PROBES:
            if kind == "next_token" and name not in ARM_PROBES:
                result[name] = None
                continue
            groups: dict[tuple, list[Example]] = {}
            for ex in examples:
                plan = probe_plan(len(path_nodes(ex.target, target_format)) - 1, target_format)[name]
                if plan is not None:
                    groups.setdefault((frozenset(plan[0]), plan[1]), []).append(ex)
            hits = total = 0
            for (revealed, query), group in groups.items():
                predicted = (_arm_predictions(model, group, query) if kind == "next_token"
                             else _masked_predictions(model, group, set(revealed), query))
                truth = torch.tensor([ex.target[query] for ex in group])
                hits += int((predicted == truth).sum())
                total += len(group)
            result[name] = round(hits / total, 4) if total else None
    finally:
        model.train(was_training)
    return result


FAILURE_KINDS = ("parent (other occurrence)", "parent (other)", "child", "none", "length")


def first_wrong_decision(output: list[int], target: list[int], steps: list[int]) -> int | None:
    """Index of the wrong token of ``output`` decided first (``steps``: the step each token was decided
    at; ties by position); None when the output is the target or has another length."""
    if list(output) == list(target) or len(output) != len(target):
        return None
    wrong = [i for i, (a, b) in enumerate(zip(output, target)) if a != b]
    return min(wrong, key=lambda i: (steps[i], i))


def lookup_kind(prompt: list[int], target: list[int], output: list[int], steps: list[int], i: int,
                target_format: str = "edges") -> str:
    """The look-up that the wrong decision at token ``i`` needed (one of FAILURE_KINDS but ``length``).
    Star format: prompt = edge pairs then source and goal; target ``p0 p1 p1 p2 ... pk``, token i naming
    path node ``(i + 1) // 2`` (node format: ``p0 p1 ... pk``, token i naming node i)."""
    path = path_nodes(target, target_format)
    edges = prompt[:-2]
    known = {path[0], path[-1]} | {output[j] for j in range(len(output)) if steps[j] < steps[i]}
    node = path_node_index(i, target_format)
    if node + 1 < len(path) and path[node + 1] in known:
        after = path[node + 1]
        other = any(edges[j] == after and j > 0 and edges[j - 1] == output[i] for j in range(0, len(edges), 2))
        return "parent (other occurrence)" if other else "parent (other)"
    if node > 0 and path[node - 1] in known:
        return "child"
    return "none"


def failure_kinds(examples: list[Example], pairs: list[tuple[list[int], dict]],
                  target_format: str = "edges") -> dict[str, int]:
    """Counts of FAILURE_KINDS over the wrong outputs; ``pairs`` = (output, sampler record) as
    :func:`insertgen.engine.evaluate.evaluate_model` returns them (the record's ``unmask_step`` row is
    ``[prompt, BOS, output, EOS]``)."""
    counts = Counter({kind: 0 for kind in FAILURE_KINDS})
    for ex, (output, record) in zip(examples, pairs):
        target = list(ex.target)
        if list(output) == target:
            continue
        start = len(ex.prompt) + 1
        steps = list(record["unmask_step"][start : start + len(output)])
        i = first_wrong_decision(output, target, steps) if len(steps) == len(output) else None
        counts["length" if i is None else lookup_kind(list(ex.prompt), target, list(output), steps, i,
                                                                           target_format)] += 1
    return dict(counts)
