"""Training-step throughput of the star presets: median step time and tokens/s after warm-up.

    python benchmarks/train_throughput.py [--presets star-easy-cpu ...] [--steps 30] [--warmup 5]

Tokens/s counts the tokens of the noised sequences x_t the generator actually processes (padding
excluded; LoFlexMDM processes two noised states per sequence and IP one canvas per posterior sample,
and neither count includes the clean sequence read by the auxiliary / posterior network); sequences/s is
batch size / step time.
Writes
benchmarks/results/train_throughput.json.
"""

from __future__ import annotations

import argparse
import sys

from insertgen.apps.bench import measure_training
from insertgen.apps.benchmarking import save


def measure(preset: str, steps: int, warmup: int) -> dict:
    """The trainer's own step (``insertgen bench``'s timer, :func:`insertgen.apps.bench.measure_training`)
    on ``preset``: median step time and tokens/s after ``warmup`` steps."""
    m = measure_training(preset, steps, warmup, peak=float("nan"), count_flops=False)
    keep = ("preset", "params", "batch_size", "median_step_s", "tokens_per_step", "tokens_per_s", "model",
            "steps_measured")
    return {**{k: m[k] for k in keep}, "sequences_per_s": m["batch_size"] / m["median_step_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=[f"star-{level}-{model}cpu" for model in ("", "loflexmdm-", "ip-", "ao-ip-", "arm-", "mdm-")
                                                         for level in ("easy", "medium")])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--name", default=None, help="results file suffix (default: train_throughput.json)")
    args = parser.parse_args()
    save("train_throughput" + (f"-{args.name}" if args.name else ""), {"command": " ".join(sys.argv), "results": [measure(p, args.steps, args.warmup) for p in args.presets]})


if __name__ == "__main__":
    main()
