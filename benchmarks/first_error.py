"""Where a star-graph model first goes wrong: the path position of the first wrong token.

    python benchmarks/first_error.py --run RUN_DIR [--n 1000] [--steps 64] [--name NAME]

For every greedy sampler of the run's model family (``insertgen.apps.benchmarking.greedy_samplers``) it samples the first
``--n`` test graphs and, for each output that is not the target, finds the first token where the two
differ (an output that stops early errs at its end). The output ``p0 p1 p1 p2 ...`` names path node
``(i + 1) // 2`` at token i; the junction is the node with out-degree > 1 (the source on star-easy). It
reports how far the first wrong node is from the junction along the path (0 = the junction itself,
measured on the target) and which side of it (toward the source or the goal), and the share of failures
whose first wrong node is **the one right after the junction**: the branch choice that a left-to-right
model can only guess ('Clever Hans' failure).

It also counts the **failure kinds** of ``insertgen.engine.star_probes.failure_kinds``: the first wrong
token in the order the sampler decided the tokens and the look-up that decision needed (parent of a
known node, split by the wrong-occurrence error; child; none; another length). ``--confidence
top_prob`` samples with confidence-chosen slots / unmasking instead. Writes benchmarks/results/first_error-NAME.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections import Counter
from pathlib import Path

import torch

from insertgen.engine.run import load_run
from insertgen.apps.benchmarking import greedy_samplers, save
from insertgen.engine.evaluate import generate
from insertgen.engine.star_probes import failure_kinds


def first_error(output: list[int], target: list[int]) -> int | None:
    """Index of the first token where ``output`` departs from ``target`` (None when equal)."""
    if list(output) == list(target):
        return None
    for i, (a, b) in enumerate(zip(output, target)):
        if a != b:
            return i
    return min(len(output), len(target))


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
    if getattr(task, "target_format", "edges") != "edges":
        parser.error(f"{args.run}: this benchmark reads the edge format; the run's task writes "
                     f"task.target_format={task.target_format}")
    examples = task.examples("test")[: args.n]
    report = {}
    for sampler, make_options in greedy_samplers(model.model_id).items():
        with torch.inference_mode():
            options = make_options(args.steps)
            if args.confidence:
                options = dataclasses.replace(options, confidence=args.confidence)
            outputs, records = generate(model, [list(ex.prompt) for ex in examples], options, seed=0)
        distance, side, after_junction, failures = Counter(), Counter(), 0, 0
        kinds = failure_kinds(examples, list(zip(outputs, records)))
        for ex, out in zip(examples, outputs):
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
            "first_wrong_decision_lookup": kinds,
        }
        print(sampler, report[sampler], flush=True)
    save(f"first_error-{args.name or Path(args.run).name}",
         {"command": " ".join(sys.argv), "run": str(args.run), "model": model.model_id, "task": task.name,
          "samplers": report}, quiet=True)


if __name__ == "__main__":
    main()
