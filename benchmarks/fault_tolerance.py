"""Kill -9 / resume trials: how often does `insertgen train --resume` after a SIGKILL at a random moment
reproduce the uninterrupted run bit for bit?

    python benchmarks/fault_tolerance.py [--trials 20] [--models flexmdm,loflexmdm,ip] [--steps 40]

For each model: one uninterrupted `insertgen train` run (tiny star-easy model, checkpoint every 3 steps);
then ``--trials`` runs with the same seed, each killed with SIGKILL a uniformly random time after its
first logged step, up to the reference run's training time (so kills land anywhere in training, some
inside a checkpoint write), then continued with `insertgen train --resume` in a new process. A trial passes when the final checkpoint's
parameters, EMA and optimiser moments equal the uninterrupted run's exactly and metrics.jsonl lists every
step once. Writes benchmarks/results/fault_tolerance.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from insertgen.apps.benchmarking import save
from insertgen.core.checkpoint import CHECKPOINT, load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
SIZES = {
    "flexmdm": ["model.d_model=32", "model.n_layers=1", "model.n_heads=2"],
    "loflexmdm": ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.aux_d_model=16",
                  "model.aux_n_layers=1", "model.aux_n_heads=2"],
    "ip": ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.posterior_d_model=16",
           "model.posterior_n_layers=1", "model.posterior_n_heads=2"],
}
TRAIN = ["batch_size=8", "eval_every=0", "log_every=1", "checkpoint_every=3"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))


def train_command(model: str, run: Path, steps: int, resume: bool = False) -> list[str]:
    cmd = [sys.executable, "-m", "insertgen.apps.cli", "train", "--out", str(run), "--steps", str(steps), "--quiet"]
    if resume:
        return cmd + ["--resume"]
    sets = [arg for s in [*TRAIN, *SIZES[model]] for arg in ("--set", s)]
    return cmd + ["--task", "star-easy", "--model", model, "--seed", "5", *sets]


def final_state(run: Path) -> dict:
    tensors, _ = load_checkpoint(run / CHECKPOINT)
    return {k: v for k, v in tensors.items() if k.startswith(("model.", "ema.", "optim."))}


def logged_steps(run: Path) -> list[int]:
    try:
        return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    except (OSError, ValueError, KeyError):
        return []


def trial(model: str, run: Path, steps: int, reference: dict, span: float, rng: random.Random) -> dict:
    proc = subprocess.Popen(train_command(model, run, steps), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    while not logged_steps(run) and proc.poll() is None:
        time.sleep(0.005)
    delay = rng.uniform(0.0, span)
    time.sleep(delay)
    finished_before_kill = proc.poll() is not None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = (logged_steps(run) or [0])[-1]
    ckpt_step = None
    if (run / CHECKPOINT).exists():
        try:
            ckpt_step = load_checkpoint(run / CHECKPOINT)[1]["step"]
        except Exception:
            ckpt_step = "corrupt"
    resume = subprocess.run(train_command(model, run, steps, resume=True), env=ENV, capture_output=True, text=True)
    out = {"delay_s": round(delay, 3), "killed_after_logged_step": killed_at, "checkpoint_step_at_kill": ckpt_step,
           "finished_before_kill": finished_before_kill, "resume_exit_code": resume.returncode,
           "resumed_from_previous": "resuming from the previous checkpoint" in resume.stdout}
    if resume.returncode != 0:
        out.update(identical=False, error=resume.stderr.strip().splitlines()[-1:])
        return out
    got = final_state(run)
    out["identical"] = got.keys() == reference.keys() and all(torch.equal(got[k], reference[k]) for k in got)
    out["steps_logged_once"] = logged_steps(run) == list(range(1, steps + 1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--models", default="flexmdm,loflexmdm,ip")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="insertgen-kill-"))
    results = {}
    for model in args.models.split(","):
        ref_run = work / f"{model}-reference"
        subprocess.run(train_command(model, ref_run, args.steps), env=ENV, check=True, capture_output=True)
        records = [json.loads(line) for line in (ref_run / "metrics.jsonl").read_text().splitlines()]
        span = records[-1]["elapsed_s"] - records[0]["elapsed_s"]  # first to last logged step
        reference = final_state(ref_run)
        trials = []
        for k in range(args.trials):
            run = work / f"{model}-{k}"
            trials.append(trial(model, run, args.steps, reference, span, rng))
            shutil.rmtree(run)
            print(model, k, trials[-1], flush=True)
        killed = [t for t in trials if t["killed_after_logged_step"] < args.steps]
        results[model] = {"trials": trials, "n": len(trials), "killed_mid_run": len(killed),
                          "identical": sum(t["identical"] for t in trials),
                          "identical_when_killed_mid_run": sum(t["identical"] for t in killed),
                          "resumed_from_previous": sum(t["resumed_from_previous"] for t in trials),
                          "training_seconds": round(span, 2)}
    shutil.rmtree(work)
    save("fault_tolerance", {"command": " ".join(sys.argv), "steps": args.steps, "checkpoint_every": 3,
                             "models": {m: {k: v for k, v in r.items() if k != "trials"} for m, r in results.items()},
                             "trials": {m: r["trials"] for m, r in results.items()}}, quiet=True)
    for model, r in results.items():
        print(f"{model}: {r['identical']}/{r['n']} bit-identical "
              f"({r['identical_when_killed_mid_run']}/{r['killed_mid_run']} of the runs killed before their last step)")


if __name__ == "__main__":
    main()
