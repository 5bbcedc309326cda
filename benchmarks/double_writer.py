"""Second writers on a run directory that is being trained (issue 39): none may write it.

    python benchmarks/double_writer.py [--writers 20] [--out benchmarks/results/double-writer.json]

Starts one training run (star-tiny ARM, long enough to outlive the test), then, one after another while it
trains, ``--writers`` second writers on its directory, cycling through `train --resume`, `train` into the same
--out, `eval` and `analysis` (which write their results into the run); each must be refused with the lock's
error and leave the run's checkpoint and metrics as the first writer has them. Then the first run is killed with
SIGKILL and one more `train --resume` must take the stale lock over and finish. Prints and writes the counts.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from insertgen.core.checkpoint import CHECKPOINT, load_checkpoint

TRAIN = ["--task", "star-tiny", "--model", "arm", "--set", "d_model=32", "--set", "n_layers=1", "--set", "n_heads=2",
         "--set", "batch_size=8", "--set", "eval_every=0", "--set", "checkpoint_every=50", "--quiet", "--threads", "1"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "insertgen.apps.cli", *args], capture_output=True, text=True,
                          timeout=600)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writers", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/double-writer.json"))
    args = parser.parse_args(argv)
    run = Path(tempfile.mkdtemp(prefix="insertgen-double-")) / "run"
    first = subprocess.Popen([sys.executable, "-m", "insertgen.apps.cli", "train", *TRAIN, "--steps", "1000000",
                              "--out", str(run)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while not (run / "checkpoint.safetensors").is_file():  # trained past its first checkpoint
        time.sleep(0.5)
    kinds = [("train --resume", ["train", "--out", str(run), "--resume", "--steps", "10", "--quiet"]),
             ("train (same --out)", ["train", *TRAIN, "--steps", "10", "--out", str(run)]),
             ("eval", ["eval", "--run", str(run), "--limit", "2"]),
             ("analysis", ["analysis", "--run", str(run), "--limit", "2"])]
    rows = []
    for i in range(args.writers):
        name, command = kinds[i % len(kinds)]
        done = cli(*command)
        said = (done.stderr.strip().splitlines() or [""])[-1]
        rows.append({"writer": i, "kind": name, "exit": done.returncode, "said": said[:200],
                     "refused_by_the_lock": done.returncode == 2 and "is in use by process" in said})
        print(f"writer {i:2d} ({name}): exit {done.returncode}: {said[:110]}", flush=True)
    first_alive = first.poll() is None
    first.send_signal(signal.SIGKILL)
    first.wait()
    step = load_checkpoint(run / CHECKPOINT)[1]["step"]
    takeover = cli("train", "--out", str(run), "--resume", "--steps", str(step + 2), "--quiet", "--threads", "1")
    totals = {"writers": len(rows), "writes_that_succeeded": sum(r["exit"] == 0 for r in rows),
              "refused_by_the_lock": sum(r["refused_by_the_lock"] for r in rows),
              "first_writer_alive_throughout": first_alive,
              "stale_lock_taken_over_after_kill_9": takeover.returncode == 0 and "which is gone" in takeover.stderr}
    print(json.dumps(totals))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": "python benchmarks/double_writer.py " + " ".join(sys.argv[1:]),
                                    "date": time.strftime("%Y-%m-%d"), "totals": totals, "rows": rows,
                                    "takeover": {"exit": takeover.returncode, "stderr": takeover.stderr[-400:]}},
                                   indent=1) + "\n")


if __name__ == "__main__":
    main()
