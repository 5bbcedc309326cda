"""Do two versions of the code sample the same outputs? Samples a run with the working tree and with a
git revision (checked out in a temporary worktree) and compares the outputs token for token.

    python benchmarks/same_outputs.py --run RUN_DIR --rev REV [--n 1000] [--steps 64] [--orders joint insert_first]

Greedy tokens, seed 0, the first ``n`` test prompts, one sampler order at a time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = """
import json, sys, torch
from insertgen.engine.run import load_run
from insertgen.engine.evaluate import generate
from insertgen.models.flexmdm.sampler import TauLeapingOptions
run, n, steps, order, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
model = load_run(run)
prompts = [list(ex.prompt) for ex in model.task.examples("test")[:n]]
with torch.inference_mode():
    outputs, _ = generate(model, prompts, TauLeapingOptions(steps=steps, top_k=1, order=order), seed=0)
json.dump(outputs, open(out, "w"))
"""


def sample(src: Path, args, order: str, out: Path) -> list:
    env = {"PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", SAMPLE, str(args.run), str(args.n), str(args.steps), order, str(out)],
                   check=True, env=env)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--rev", required=True)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--orders", nargs="+", default=["joint", "insert_first"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(tree), args.rev], check=True)
        try:
            for order in args.orders:
                old = sample(tree / "src", args, order, Path(tmp) / "old.json")
                new = sample(ROOT / "src", args, order, Path(tmp) / "new.json")
                same = sum(a == b for a, b in zip(old, new))
                print(json.dumps({"order": order, "n": len(new), "identical_outputs": same, "rev": args.rev}))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=True)


if __name__ == "__main__":
    main()
