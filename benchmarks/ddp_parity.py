"""Data-parallel parity: 2 gloo ranks under torchrun against one process with the same global batch
(grad_accum = 2), for FlexMDM, LoFlexMDM and IP on star-easy.

    python benchmarks/ddp_parity.py [--steps 50]

Reports, per model, the largest absolute difference of any parameter between the two ranks (should be
0: they apply identical updates) and between rank 0 and the single process (float summation order only),
relative to the parameters' scale, and the step times. Writes benchmarks/results/ddp_parity.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from insertgen.apps.benchmarking import save
from insertgen.engine.training_run import prepare_run

ROOT = Path(__file__).resolve().parent.parent
SIZES = {
    "flexmdm": {"model.d_model": 64, "model.n_layers": 2, "model.n_heads": 2},
    "loflexmdm": {"model.d_model": 64, "model.n_layers": 2, "model.n_heads": 2, "model.aux_d_model": 32,
                  "model.aux_n_layers": 1, "model.aux_n_heads": 2},
    "ip": {"model.d_model": 64, "model.n_layers": 2, "model.n_heads": 2, "model.posterior_d_model": 32,
           "model.posterior_n_layers": 1, "model.posterior_n_heads": 2, "model.posterior_lr_scale": 1.0},
}


def max_diff(a: dict, b: dict) -> tuple[float, float]:
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    scale = max(float(a[k].abs().max()) for k in a)
    return diff, diff / scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    common = {"batch_size": args.batch_size, "eval_every": 0, "log_every": 10, "checkpoint_every": 10**6,
              "steps": args.steps}
    runs = {m: {**common, **s} for m, s in SIZES.items()}
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))
        start = time.time()
        subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(ROOT / "benchmarks" / "ddp_worker.py"), str(tmp / "ddp"), json.dumps(runs)],
                       env=env, check=True, capture_output=True)
        ddp_seconds = time.time() - start
        torch.set_num_threads(1)
        for model, overrides in runs.items():
            rank0 = load_file(str(tmp / "ddp" / model / "rank0.safetensors"))
            rank1 = load_file(str(tmp / "ddp" / model / "rank1.safetensors"))
            t0 = time.time()
            _, trainer = prepare_run(task="star-easy", model=model, preset=None, steps=None, out=tmp / "one" / model,
                                     seed=7, overrides={**overrides, "grad_accum": 2}, resume=False)
            trainer.train(progress=False)
            single = trainer.model.state_dict()
            ranks, ranks_rel = max_diff(rank0, rank1)
            vs_single, vs_single_rel = max_diff(rank0, single)
            out[model] = {"max_abs_diff_rank0_rank1": ranks, "max_abs_diff_ddp_single": vs_single,
                          "relative_diff_ddp_single": vs_single_rel, "single_process_seconds": time.time() - t0,
                          "parameters": sum(v.numel() for v in single.values())}
            print(model, out[model], flush=True)
    save("ddp_parity", {"command": " ".join(sys.argv), "world_size": 2, "backend": "gloo", "grad_accum_single": 2,
                        "steps": args.steps, "global_batch": args.batch_size,
                        "ddp_seconds_all_models_incl_startup": ddp_seconds, "models": out}, quiet=True)


if __name__ == "__main__":
    main()
