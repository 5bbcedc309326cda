"""A run's held-out bound (or exact likelihood) on the first examples of several splits, e.g. training against
validation molecules to see how much a model has memorised.

    python benchmarks/split_bound.py --run RUN_DIR [--split train --split validation] [-n 60] [--samples 4] \
        [--threads 1]

Per split: ``evaluate.held_out_likelihood`` on its first ``-n`` examples, ``--samples`` Monte-Carlo samples
each (EMA weights), in nats per sequence and per scored token (target + end).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from insertgen.core.threads import use_threads


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--split", action="append", default=None, help="default: train and validation")
    parser.add_argument("-n", type=int, default=60)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--threads", default=None)
    args = parser.parse_args(argv)
    if args.n < 1 or args.samples < 1:
        parser.error("-n and --samples must be positive")
    use_threads(args.threads)
    from insertgen.engine.evaluate import held_out_likelihood
    from insertgen.engine.run import load_run

    model = load_run(args.run)
    for split in args.split or ["train", "validation"]:
        result = held_out_likelihood(model, model.task, model.task.examples(split)[: args.n], args.samples)
        print(f"{args.run} {split}: {result['nats_per_seq']:.2f} +- {result['nats_per_seq_stderr']:.2f} nats per "
              f"sequence, {result['nats_per_token']:.3f} per token ({result['likelihood_bound']})")


if __name__ == "__main__":
    main()
