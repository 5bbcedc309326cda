"""Fuzz every parser of user text with hypothesis (tests/test_fuzz.py) at a larger number of inputs and
record how many were tried and how many were refused with the documented error.

    python benchmarks/fuzz.py [--examples 3000]

Writes benchmarks/results/fuzz.json; exits non-zero when any input escaped with another exception.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from insertgen.apps.benchmarking import save

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=3000, help="inputs per fuzz target")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "fuzz.json"
        env = dict(os.environ, INSERTGEN_FUZZ_EXAMPLES=str(args.examples), INSERTGEN_FUZZ_REPORT=str(report))
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_fuzz.py"],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        counts = json.loads(report.read_text()) if report.exists() else {}
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    save("fuzz", {"command": " ".join(sys.argv), "pytest": summary, "passed": proc.returncode == 0, **counts},
         quiet=True)
    print(f"{counts.get('total', 0):,} inputs over {len(counts.get('tried', {}))} parsers: {summary}")
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
