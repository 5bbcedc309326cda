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
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402

from insertgen.data import Batch  # noqa: E402
from insertgen.training_run import prepare_run  # noqa: E402


def measure(preset: str, steps: int, warmup: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        _, trainer = prepare_run(task=None, model=None, preset=preset, steps=warmup + steps, out=Path(tmp) / "run",
                                 seed=0, overrides={"eval_every": 0, "checkpoint_every": 10**9}, resume=False)
        times, tokens = [], []
        model, opt = trainer.model, trainer.opt
        for i in range(warmup + steps):
            idx = torch.from_numpy(trainer.order.next())
            batch = Batch(trainer.data_tokens[idx], trainer.data_fixed[idx])
            start = time.perf_counter()
            loss, stats = model.loss(batch, trainer.noise_gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            trainer.ema.update(model)
            elapsed = time.perf_counter() - start
            if i >= warmup:
                times.append(elapsed)
                tokens.append(stats["tokens"])
        step = statistics.median(times)
        params = sum(p.numel() for p in model.parameters())
        return {"preset": preset, "params": params, "batch_size": trainer.cfg.batch_size,
                "median_step_s": step, "tokens_per_step": statistics.mean(tokens),
                "tokens_per_s": statistics.mean(tokens) / step, "sequences_per_s": trainer.cfg.batch_size / step,
                "model": model.model_id, "steps_measured": steps}


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
