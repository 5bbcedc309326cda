"""What an evaluation leaves resident, with and without giving freed memory back (core.memory).

    python benchmarks/evaluation_memory.py --run RUN_DIR [-n 300] [--repeats 3] [--threads 1] \
        --out benchmarks/results/evaluation-memory-NAME.json

One process loads the run's EMA weights and evaluates the first ``-n`` test examples ``--repeats`` times
with the release switched off, recording the resident memory (VmRSS) after each evaluation and after a
``malloc_trim(0)`` made by hand; then ``--repeats`` times as the library evaluates (releasing at the end of
each), recording the resident memory after each. Writes one JSON object (machine, settings, the readings)
and prints them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from insertgen.apps.benchmarking import machine
from insertgen.core.io import to_json, write_text_atomic
from insertgen.core.memory import release_freed_memory
from insertgen.core.threads import use_threads
from insertgen.engine import evaluate
from insertgen.engine.trained_run import TrainedRun

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak import rss_mb  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    use_threads(args.threads)
    pid = os.getpid()
    run = TrainedRun.open(args.run)
    record = {"machine": machine(), "settings": {"run": str(args.run), "n": args.n, "repeats": args.repeats},
              "loaded_mib": rss_mb(pid), "without_release": [], "with_release": []}
    library_release, evaluate.release_freed_memory = evaluate.release_freed_memory, lambda: False
    try:
        for _ in range(args.repeats):
            run.evaluate(limit=args.n, likelihood_samples=0)
            after = rss_mb(pid)
            release_freed_memory()
            record["without_release"].append({"after_evaluation_mib": after, "after_trim_by_hand_mib": rss_mb(pid)})
    finally:
        evaluate.release_freed_memory = library_release
    for _ in range(args.repeats):
        run.evaluate(limit=args.n, likelihood_samples=0)
        record["with_release"].append({"after_evaluation_mib": rss_mb(pid)})
    print(to_json(record, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, to_json(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
