"""Where the time goes: the top operators of training steps (torch.profiler) or the top functions of a
sampler (cProfile), as shares of the total.

    python benchmarks/profile_hotspots.py --train star-medium-loflexmdm-cpu [--steps 5]
    python benchmarks/profile_hotspots.py --sample RUN_DIR [--n 500] [--steps 64]

Training: 3 warm-up steps, then ``--steps`` steps of ``Trainer.train_step`` under the profiler, sorted by
self CPU time. Sampling: the first ``--n`` test prompts of the run, greedy tokens, sorted by own time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
from pathlib import Path

import torch


def profile_training(preset: str, steps: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    from insertgen.engine.training_run import prepare_run

    with tempfile.TemporaryDirectory() as tmp:
        _, trainer = prepare_run(None, None, preset, 100, Path(tmp) / "run", 0,
                                 {"eval_every": 0, "checkpoint_every": 10**9}, resume=False)
        for _ in range(3):
            trainer.train_step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                trainer.train_step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


def profile_sampling(run: Path, n: int, steps: int) -> None:
    from insertgen.engine.run import load_run
    from insertgen.models.flexmdm.sampler import TauLeapingOptions

    model = load_run(run)
    prompts = [list(ex.prompt) for ex in model.task.examples("test")[:n]]
    profiler = cProfile.Profile()
    with torch.inference_mode():
        profiler.enable()
        model.sample(prompts, TauLeapingOptions(steps=steps, top_k=1), torch.Generator().manual_seed(0))
        profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", default=None, help="preset whose training step is profiled")
    parser.add_argument("--sample", type=Path, default=None, help="run directory whose sampler is profiled")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--n", type=int, default=500)
    args = parser.parse_args()
    if args.train:
        profile_training(args.train, args.steps or 5)
    if args.sample:
        profile_sampling(args.sample, args.n, args.steps or 64)


if __name__ == "__main__":
    main()
