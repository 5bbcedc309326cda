"""Training runs against a disk that fills up mid-run, then resumed once space is freed (issue 39).

    sudo python benchmarks/disk_full.py [--runs 20] [--size-kb 1024] [--out benchmarks/results/disk-full.json]

Each run trains a small star-tiny ARM (checkpoint every 2 steps, 60 steps) into a tmpfs of ``--size-kb``
mounted for it, part of which a filler file of a random size (seeded per run) takes, so the disk fills at a
different point of each run: during a checkpoint, a metrics line or a rewrite. Recorded per run: how the first
attempt ended (its exit status and the error's last line), whether a checkpoint was left behind (none when the
disk filled before the first one completed), whether it loads and at which step, and, after the filler is deleted,
whether `train --resume` reaches step 60 from it. Needs root
(mount); prints one line per run and the totals, and writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from insertgen.core.checkpoint import CHECKPOINT, load_checkpoint
from insertgen.core.errors import InsertgenError

STEPS = 60
TRAIN = ["--task", "star-tiny", "--model", "arm", "--set", "d_model=32", "--set", "n_layers=1", "--set", "n_heads=2",
         "--set", "batch_size=8", "--set", "eval_every=0", "--set", "checkpoint_every=2", "--set", "log_every=1",
         "--quiet", "--threads", "1"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "insertgen.apps.cli", *args], capture_output=True, text=True,
                          timeout=600)


def checkpoint_step(run: Path) -> int | None:
    try:
        return load_checkpoint(run / CHECKPOINT)[1]["step"]
    except InsertgenError:
        return None


def one_run(i: int, size_kb: int) -> dict:
    mount = Path(tempfile.mkdtemp(prefix=f"insertgen-diskfull-{i}-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mount)], check=True)
    try:
        filler = mount / "filler"
        filler.write_bytes(b"\0" * int(random.Random(i).uniform(0.45, 0.85) * size_kb * 1024))
        run = mount / "run"
        first = cli("train", *TRAIN, "--steps", str(STEPS), "--out", str(run))
        left, left_file = checkpoint_step(run), (run / CHECKPOINT).is_file()
        filler.unlink()
        resumed = cli("train", "--out", str(run), "--resume", "--steps", str(STEPS), "--quiet", "--threads", "1")
        final = checkpoint_step(run)
        return {"run": i, "first_exit": first.returncode,
                "first_error": (first.stderr.strip().splitlines() or [""])[-1][:200],
                "checkpoint_left": left_file, "checkpoint_left_loads": left is not None,
                "checkpoint_left_step": left,
                "resume_exit": resumed.returncode, "final_step": final,
                "resumed_ok": resumed.returncode == 0 and final == STEPS,
                "resume_error": (resumed.stderr.strip().splitlines() or [""])[-1][:200] if resumed.returncode else ""}
    finally:
        subprocess.run(["umount", str(mount)], check=False)
        mount.rmdir()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--size-kb", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/disk-full.json"))
    args = parser.parse_args(argv)
    rows = []
    for i in range(args.runs):
        row = one_run(i, args.size_kb)
        rows.append(row)
        outcome = "ok" if row["resumed_ok"] else "FAILED"
        print(f"run {i:2d}: first exit {row['first_exit']} ({row['first_error'][:90]}); checkpoint left: step "
              f"{row['checkpoint_left_step']}; resumed to {row['final_step']} ({outcome})", flush=True)
    totals = {"runs": len(rows), "filled_mid_run": sum(r["first_exit"] != 0 for r in rows),
              "checkpoint_left": sum(r["checkpoint_left"] for r in rows),
              "checkpoint_left_loads": sum(r["checkpoint_left_loads"] for r in rows),
              "clear_error": sum(r["first_exit"] == 2 and "cannot write" in r["first_error"] for r in rows),
              "resumed_to_the_end": sum(r["resumed_ok"] for r in rows)}
    print(json.dumps(totals))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": "python benchmarks/disk_full.py " + " ".join(sys.argv[1:]),
                                    "date": time.strftime("%Y-%m-%d"), "size_kb": args.size_kb, "steps": STEPS,
                                    "totals": totals, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
