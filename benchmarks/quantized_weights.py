"""What storing the shipped models as 8-bit rows (core/quantized_weights.py) costs them: each shipped model's
held-out log-likelihood (the exact value for the ARM, the ELBO for the others, as `insertgen score` gives it) per
target token, with its float32 weights read from a git revision that still stored them and with the int8 copy in
the working tree, on the same test examples and the same seed, so that the Monte-Carlo draws of the bounds are
shared and the difference is the weights'.

    python benchmarks/quantized_weights.py --float-rev 5a8bf4e [--n 200] [--samples 4] \
        [--out benchmarks/results/quantized-weights.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
PRETRAINED = ROOT / "src" / "insertgen" / "pretrained"


def float_weights(rev: str, name: str) -> dict[str, torch.Tensor]:
    """The model weights of shipped model ``name`` as git revision ``rev`` stored them."""
    from insertgen.core.checkpoint import load_checkpoint, split_prefix

    blob = subprocess.run(["git", "show", f"{rev}:src/insertgen/pretrained/{name}/checkpoint.safetensors"],
                          cwd=ROOT, capture_output=True, check=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoint.safetensors"
        path.write_bytes(blob)
        tensors, state = load_checkpoint(path)
    if state.get("weights_format", "float") != "float":
        raise SystemExit(f"{rev} stores {name} as {state['weights_format']}, not float32")
    return split_prefix(tensors, "model")


def per_token(model, pairs, bound: str, samples: int) -> float:
    """Mean log-likelihood (or its bound) per target token, the end counted as a token."""
    with torch.inference_mode():
        values = model.log_likelihood(pairs, bound=bound, samples=samples, seed=0)
    total = sum(float(v) for v in values)
    return total / sum(len(t) + 1 for _, t in pairs)


def measure(name: str, rev: str, n: int, samples: int) -> dict:
    from insertgen.engine.run import load_run

    model = load_run(PRETRAINED / name)
    bound = "exact" if model.likelihood_bounds == ("exact",) else "elbo"
    pairs = [(list(ex.prompt), list(ex.target)) for ex in model.task.examples("test")[:n]]
    quantized = {k: v.clone() for k, v in model.state_dict().items()}
    reference = float_weights(rev, name)
    worst = max(float((quantized[k] - w).abs().max() / w.abs().max().clamp_min(1e-12))
                for k, w in reference.items() if w.is_floating_point())
    start = time.perf_counter()
    int8 = per_token(model, pairs, bound, samples)
    model.load_state_dict(reference, strict=True)
    fp32 = per_token(model, pairs, bound, samples)
    return {"model": name, "bound": bound, "n": len(pairs), "samples": samples,
            "float32_nats_per_token": -fp32, "int8_nats_per_token": -int8,
            "relative_change": (fp32 - int8) / abs(fp32),  # (int8 nats - float32 nats) / float32 nats: > 0 is worse
            "largest_weight_error_over_tensor_max": worst,
            "bytes": (PRETRAINED / name / "checkpoint.safetensors").stat().st_size,
            "seconds": round(time.perf_counter() - start, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--float-rev", required=True, help="a git revision whose shipped weights are float32")
    parser.add_argument("--n", type=int, default=200, help="test examples per model")
    parser.add_argument("--samples", type=int, default=4, help="Monte-Carlo samples per bound")
    parser.add_argument("--models", nargs="*", default=None, help="shipped model names (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "quantized-weights.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    names = args.models or sorted(p.parent.name for p in PRETRAINED.glob("*/checkpoint.safetensors"))
    rows = []
    for name in names:
        rows.append(measure(name, args.float_rev, args.n, args.samples))
        r = rows[-1]
        print(f"{name:28s} {r['bound']:5s} float32 {r['float32_nats_per_token']:.4f}  int8 "
              f"{r['int8_nats_per_token']:.4f} nats/token  ({100 * r['relative_change']:+.2f}%)", flush=True)
    record = {"command": "python benchmarks/quantized_weights.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "date": time.strftime("%Y-%m-%d"), "float_rev": args.float_rev, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
