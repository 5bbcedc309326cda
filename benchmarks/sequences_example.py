"""The worked example of the sequences task: every family trained on `insertgen example-data addition` from
Python (insertgen.train, as a user would), then evaluated on the file's 1,000 drawn test problems.

    python benchmarks/sequences_example.py [--models arm ip ...] [--steps 4000] [--out runs/addition]
        [--json benchmarks/results/sequences-addition.json]

Every family gets the same decoder (d_model 64, 2 layers, 4 heads, batch 64, the families' default learning
rates) and the same number of steps; the insertion families and MDM also the star recipe's previous-token
embedding (token_shift), as the star and maze CPU presets give them. Prints one Markdown row per model: exact
match, token accuracy, held-out nats per token, the order correlation of the step each digit is decided at with
its position (+1: left to right, most significant digit first; -1: the last digit first), steps, minutes, size.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import insertgen
from insertgen.core.io import write_jsonl
from insertgen.tasks.sequences.examples import addition

MODELS = ("flexmdm", "loflexmdm", "ao-ip", "ip", "arm", "mdm")
DECODER = {"d_model": 64, "n_layers": 2, "n_heads": 4, "batch_size": 64, "eval_every": 0}
EXTRA = {"ip": {"posterior_d_model": 32, "posterior_n_layers": 1, "posterior_n_heads": 2},
         "loflexmdm": {"aux_d_model": 32, "aux_n_layers": 1, "aux_n_heads": 2}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/addition"))
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/sequences-addition.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = args.out / "addition.jsonl"
    if not data.is_file():
        data.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(data, addition(n=20_000, digits=3, seed=0))  # = `insertgen example-data addition --out FILE`
    rows = []
    for model in args.models:
        options = {**DECODER, **EXTRA.get(model, {}), **({} if model == "arm" else {"token_shift": True})}
        start = time.perf_counter()
        run = insertgen.train(model, data=str(data), out=args.out / model, steps=args.steps, seed=args.seed, **options)
        seconds = time.perf_counter() - start
        metrics = run.evaluate("test", likelihood_samples=4)
        row = {"model": model, "steps": args.steps, "train_seconds": round(seconds, 1),
               "params": sum(p.numel() for p in run.model.parameters()), "options": options,
               "sampler": metrics["sampler"], **{k: metrics[k] for k in ("n", "exact_match", "token_accuracy",
                                                                          "sample_length", "data_length")},
               "nats_per_token": metrics.get("nats_per_token"), "order_corr_unmask": metrics.get("order_corr_unmask")}
        rows.append(row)
        print(f"| {model} | {row['exact_match']:.1%} | {row['token_accuracy']:.1%} | {row['nats_per_token']:.3f} | "
              f"{row['order_corr_unmask']:+.2f} | {args.steps:,} | {seconds / 60:.1f} min | {row['params']:,} |",
              flush=True)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"command": "python benchmarks/sequences_example.py", "steps": args.steps,
                                         "date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
