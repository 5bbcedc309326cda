"""Where a star-graph model first goes wrong: the path position of the first wrong token.

    python benchmarks/first_error.py --run RUN_DIR [--n 1000] [--steps 64] [--name NAME]

For every greedy sampler of the run's model family (``_common.greedy_samplers``) it samples the first
``--n`` test graphs and, for each output that is not the target, finds the first token where the two
differ (an output that stops early errs at its end). The output ``p0 p1 p1 p2 ...`` names path node
``(i + 1) // 2`` at token i; the junction is the node with out-degree > 1 (the source on star-easy). It
reports how far the first wrong node is from the junction along the path (0 = the junction itself,
measured on the target) and which side of it (toward the source or the goal), and the share of failures
whose first wrong node is **the one right after the junction**: the branch choice that a left-to-right
model can only guess ('Clever Hans' failure).

It also finds the first wrong token **in the order the sampler decided the tokens** (unmasking or
insertion step) and names the look-up that decision needed, given the path nodes known at that moment
(the source and the goal, read off the prompt, and every token decided before): the parent of a known
node (split by whether the wrong token is the one written just before the known node's *other*
occurrence in the edge list, where it is the first node of an edge: the wrong-occurrence error), the
child of a known node, or neither. ``--confidence top_prob`` samples with confidence-chosen slots
instead. Writes benchmarks/results/first_error-NAME.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import greedy_samplers, save  # noqa: E402

from insertgen import load_run  # noqa: E402
from insertgen.evaluate import generate  # noqa: E402


def first_error(output: list[int], target: list[int]) -> int | None:
    """Index of the first token where ``output`` departs from ``target`` (None when equal)."""
    if list(output) == list(target):
        return None
    for i, (a, b) in enumerate(zip(output, target)):
        if a != b:
            return i
    return min(len(output), len(target))


def first_wrong_decision(output: list[int], target: list[int], steps: list[int]) -> int | None:
    """Index of the wrong token of ``output`` decided first (``steps``: the step each was decided at);
    None when the output is the target or has another length."""
    if list(output) == list(target) or len(output) != len(target):
        return None
    wrong = [i for i, (a, b) in enumerate(zip(output, target)) if a != b]
    return min(wrong, key=lambda i: (steps[i], i))


def lookup_kind(prompt: list[int], target: list[int], output: list[int], steps: list[int], i: int) -> str:
    """The look-up that the wrong decision at token ``i`` needed (module docstring). Star format: prompt
    = edge pairs then source and goal; target ``p0 p1 p1 p2 ... pk`` (path node ``(i + 1) // 2``)."""
    path = [target[0]] + target[1::2]
    edges = prompt[:-2]
    known = {path[0], path[-1]} | {output[j] for j in range(len(output)) if steps[j] < steps[i]}
    node = (i + 1) // 2
    if node + 1 < len(path) and path[node + 1] in known:
        after = path[node + 1]
        other = any(edges[j] == after and j > 0 and edges[j - 1] == output[i] for j in range(0, len(edges), 2))
        return "parent of a known node: the token before its other occurrence" if other else \
            "parent of a known node: another token"
    if node > 0 and path[node - 1] in known:
        return "child of a known node"
    return "no neighbour known"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--name", default=None)
    parser.add_argument("--confidence", choices=("top_prob", "prob_diff"), default=None)
    args = parser.parse_args()
    model = load_run(args.run)
    task = model.task
    examples = task.examples("test")[: args.n]
    report = {}
    for sampler, make_options in greedy_samplers(model.model_id).items():
        with torch.inference_mode():
            options = make_options(args.steps)
            if args.confidence:
                options = dataclasses.replace(options, confidence=args.confidence)
            outputs, records = generate(model, [list(ex.prompt) for ex in examples], options, seed=0)
        distance, side, after_junction, failures, kinds = Counter(), Counter(), 0, 0, Counter()
        for ex, out, record in zip(examples, outputs, records):
            start = len(ex.prompt) + 1  # the record's row: prompt, BOS, output, EOS
            steps = record["unmask_step"][start : start + len(out)]
            j = first_wrong_decision(out, list(ex.target), steps) if len(steps) == len(out) else None
            if j is not None:
                kinds[lookup_kind(list(ex.prompt), list(ex.target), out, steps, j)] += 1
            elif out != list(ex.target):
                kinds["wrong length"] += 1
            i = first_error(out, list(ex.target))
            if i is None:
                continue
            failures += 1
            target = list(ex.target)
            dist = task.order_reference(list(ex.prompt), target)
            if dist is None or i >= len(target):
                distance["past the end"] += 1
                continue
            junction = (dist.index(0) + 1) // 2
            node = (i + 1) // 2
            distance[str(dist[i])] += 1
            side["junction" if node == junction else ("goal side" if node > junction else "source side")] += 1
            after_junction += node == junction + 1
        report[sampler] = {
            "examples": len(examples), "failures": failures,
            "first_error_distance_from_junction": dict(sorted(distance.items())),
            "first_error_side": dict(side),
            "first_error_right_after_junction": after_junction / failures if failures else None,
            "first_wrong_decision_lookup": dict(kinds.most_common()),
        }
        print(sampler, report[sampler], flush=True)
    save(f"first_error-{args.name or Path(args.run).name}",
         {"command": " ".join(sys.argv), "run": str(args.run), "model": model.model_id, "task": task.name,
          "samplers": report}, quiet=True)


if __name__ == "__main__":
    main()
