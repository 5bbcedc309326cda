"""What an evaluation made inside a training process leaves to the training steps after it: the heap they
share, with and without ``core.memory.blocks_mapped_apart``.

    python benchmarks/evaluation_heap.py --run RUN_DIR --steps 40 --every 20 [-n 500] [--sampler-steps 64] \\
        --mode heap --mode apart [--threads 1] --out benchmarks/results/evaluation-heap-NAME.json

For each ``--mode``, a fresh process continues a copy of the run (RUN_DIR itself is only read) for ``--steps``
training steps, evaluating every ``--every`` steps as the learning benchmarks' points do (maze tasks: the
first ``-n`` test problems decoded greedily with ``--sampler-steps`` steps, ``maze_learning.MazeCurve``;
other tasks: the run's validation sampler on ``-n`` validation examples, as ``Trainer.validate``):

* ``heap``: the evaluation as before the change (its blocks on the heap the training steps use);
* ``apart``: the evaluation inside ``blocks_mapped_apart`` (blocks of 4 MiB or more mapped on their own).

Every 5 training steps, and after every evaluation, it records the process's resident memory (VmRSS) and
glibc's ``mallinfo2``: the heap's size (``arena``), the bytes in use and free on it, and the bytes mapped
on their own; and the seconds of every evaluation. Writes one JSON object (machine, settings, one record
per mode) and prints the readings as they come. glibc only (Linux).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

MODES = ("heap", "apart")


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]


@functools.cache
def mallinfo2():
    """glibc's ``mallinfo2`` (struct mallinfo2 mallinfo2(void))."""
    function = ctypes.CDLL("libc.so.6").mallinfo2
    function.restype = MallInfo2
    return function


def heap_reading(label: str, step: int) -> dict:
    from soak import rss_mb

    info, mib = mallinfo2()(), 2.0 ** 20
    return {"at": label, "step": step, "rss_mib": rss_mb(os.getpid()), "heap_mib": info.arena / mib,
            "heap_in_use_mib": info.uordblks / mib, "heap_free_mib": info.fordblks / mib,
            "mapped_apart_mib": info.hblkhd / mib}


def one_mode(run: Path, mode: str, steps: int, every: int, n: int, sampler_steps: int) -> dict:
    """Continue a copy of ``run`` under ``mode`` (module docstring); the readings."""
    from insertgen.core.memory import blocks_mapped_apart
    from insertgen.engine import train as train_module
    from insertgen.engine.training_run import prepare_run

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "run"
        copy.mkdir()
        for name in ("config.json", "checkpoint.safetensors", "metrics.jsonl"):
            shutil.copy(run / name, copy / name)
        _, trainer = prepare_run(task=None, model=None, preset=None, steps=None, out=copy, seed=None, overrides={},
                                 resume=True)
        start = trainer.step
        trainer.cfg.steps, trainer.cfg.eval_every, trainer.cfg.log_every = start + steps, every, 5
        trainer.cfg.checkpoint_every, trainer.cfg.eval_examples = 10 ** 9, n
        readings, seconds = [], []
        model_id = json.loads((copy / "config.json").read_text())["model"]
        validate = trainer.validate  # the trainer's own evaluation; its context is this benchmark's to choose
        train_module.blocks_mapped_apart = contextlib.nullcontext

        def evaluate() -> dict:
            began = time.time()
            with blocks_mapped_apart() if mode == "apart" else contextlib.nullcontext():
                if trainer.task.name.startswith("maze"):
                    from maze_learning import MazeCurve

                    metrics = MazeCurve(sampler_steps).evaluate(trainer, n, model_id)
                else:
                    metrics = validate()
            seconds.append(time.time() - began)
            return metrics

        logged = trainer._log

        def log(record: dict) -> None:
            label = "after evaluation" if record.get("split") == "validation" else "training"
            readings.append(heap_reading(label, record["step"]))
            print(mode, json.dumps(readings[-1]), flush=True)
            logged(record)

        trainer.validate, trainer._log = evaluate, log
        train_module.RELEASE_EVERY_S = float("inf")  # the readings show the heap, not the minute's release
        trainer.train(progress=False)
    return {"mode": mode, "from_step": start, "readings": readings, "evaluation_seconds": seconds}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument("--sampler-steps", type=int, default=64)
    parser.add_argument("--mode", choices=MODES, action="append")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # one mode, in its own process
    args = parser.parse_args(argv)
    from insertgen.core.threads import use_threads

    use_threads(args.threads)
    if args.child:
        print("RESULT " + json.dumps(one_mode(args.run, args.mode[0], args.steps, args.every, args.n,
                                              args.sampler_steps)), flush=True)
        return
    if args.out is None:
        parser.error("--out is required")
    from insertgen.apps.benchmarking import machine
    from insertgen.core.io import to_json, write_text_atomic

    records = []
    for mode in args.mode or list(MODES):  # each mode in a fresh process: the heap starts as a run's does
        command = [sys.executable, __file__, "--child", "--run", str(args.run), "--steps", str(args.steps),
                   "--every", str(args.every), "-n", str(args.n), "--sampler-steps", str(args.sampler_steps),
                   "--mode", mode, "--threads", str(args.threads)]
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
        print(done.stdout, end="")
        records.append(json.loads(next(line for line in done.stdout.splitlines()
                                       if line.startswith("RESULT "))[len("RESULT "):]))
    result = {"machine": machine(), "run": str(args.run), "steps": args.steps, "every": args.every, "n": args.n,
              "sampler_steps": args.sampler_steps, "threads": args.threads, "modes": records}
    write_text_atomic(args.out, to_json(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
