"""A claim "A > B" judged from decoding sweeps of trained runs, one run per training seed on each side, by the
rule of the reproduce grid's claims table (:func:`insertgen.apps.reproduce.claims.compare`).

    python benchmarks/claim_from_decodings.py --decoding FILE [--decoding FILE2 ...] \
        --a RUN_A_SEED0 --a RUN_A_SEED1 --b RUN_B_SEED0 --b RUN_B_SEED1 \
        [--where temperature=0.3 --where confidence=top_prob] [--metric validity --metric quality_all] \
        [--out benchmarks/results/claim-NAME.json]

``FILE`` is what ``benchmarks/molecule_decoding.py`` or ``benchmarks/maze_decoding.py`` writes (``rows``, each
with its ``run`` directory and ``n``-sample metrics). Each ``--a`` / ``--b`` names a run by the end of its
directory path; with the ``--where`` settings it must select exactly one row. Per metric (a proportion over
the rows' samples): each side's seeds, their mean, and the verdict: *holds* when every seed of A is above
every seed of B and the difference of the means is more than twice its binomial standard error
(``sqrt(p (1 - p) / (n k))`` per side, ``n`` samples per seed, ``k`` seeds), *reversed* when the same holds
the other way round, *not shown* otherwise. Prints a Markdown table; ``--out`` writes the same as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from insertgen.apps.reproduce.claims import compare, difference_noise
from insertgen.apps.reproduce.summary import spread
from insertgen.core.io import to_json, write_text_atomic


def _matches(row: dict, where: dict[str, str]) -> bool:
    for key, wanted in where.items():
        value = row.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                if not math.isclose(float(value), float(wanted)):
                    return False
            except ValueError:
                return False
        elif str(value) != wanted:
            return False
    return True


def select(rows: list[dict], run: str, where: dict[str, str]) -> dict:
    """The one row of run ``run`` (the end of its directory path) with the ``where`` settings."""
    found = [r for r in rows if str(r.get("run", "")).rstrip("/").endswith(run.rstrip("/")) and _matches(r, where)]
    if len(found) != 1:
        settings = ", ".join(f"{k}={v}" for k, v in where.items()) or "no --where"
        raise SystemExit(f"error: {len(found)} decoding rows of run {run!r} with {settings} (need exactly one)")
    return found[0]


def judge(rows: list[dict], a: list[str], b: list[str], metrics: list[str], where: dict[str, str],
          samples: int) -> list[dict]:
    """One verdict per metric: the seeds' values of each side, their spreads and :func:`compare`'s verdict."""
    a_rows, b_rows = [select(rows, r, where) for r in a], [select(rows, r, where) for r in b]
    out = []
    for metric in metrics:
        a_vals, b_vals = [float(r[metric]) for r in a_rows], [float(r[metric]) for r in b_rows]
        sa, sb = spread(a_vals), spread(b_vals)
        out.append({"metric": metric, "a": a_vals, "b": b_vals, "a_mean": sa["mean"], "b_mean": sb["mean"],
                    "twice_se": difference_noise(sa, sb, samples, samples),
                    "verdict": compare(sa, sb, samples, samples)})
    return out


def markdown(verdicts: list[dict], a_name: str, b_name: str) -> str:
    lines = [f"| metric | {a_name} (seeds) | {b_name} (seeds) | means | 2 x s.e. | verdict |",
             "|---|---|---|---|---|---|"]
    for v in verdicts:
        a = " / ".join(f"{x:.1%}" for x in v["a"])
        b = " / ".join(f"{x:.1%}" for x in v["b"])
        lines.append(f"| {v['metric']} | {a} | {b} | {v['a_mean']:.1%} vs {v['b_mean']:.1%} | "
                     f"{v['twice_se']:.1%} | **{v['verdict']}** |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decoding", type=Path, action="append", required=True)
    parser.add_argument("--a", action="append", required=True, help="a run of side A (one per training seed)")
    parser.add_argument("--b", action="append", required=True, help="a run of side B (one per training seed)")
    parser.add_argument("--a-name", default="A")
    parser.add_argument("--b-name", default="B")
    parser.add_argument("--where", action="append", default=[], help="KEY=VALUE a row must have (repeatable)")
    parser.add_argument("--metric", action="append", default=None)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    where = {}
    for item in args.where:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--where takes KEY=VALUE, got {item!r}")
        where[key] = value
    rows, samples = [], set()
    for path in args.decoding:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            parser.error(f"{path}: not a decoding file ({e})")
        rows += record.get("rows", [])
        samples.add(int(record.get("settings", {}).get("n", 0)))
    if len(samples) != 1 or not min(samples):
        parser.error(f"the decoding files must share one sample count n, got {sorted(samples)}")
    verdicts = judge(rows, args.a, args.b, args.metric or ["validity"], where, samples.pop())
    print(markdown(verdicts, args.a_name, args.b_name))
    if args.out:
        write_text_atomic(args.out, to_json({"decodings": [str(p) for p in args.decoding], "a": args.a, "b": args.b,
                                             "where": where, "verdicts": verdicts}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
