"""Plot exact match against training time from accuracy_vs_time JSON files.

    python benchmarks/plot_accuracy_vs_time.py benchmarks/results/accuracy_vs_time-*.json --out docs/figures/accuracy_vs_time.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for path in args.files:
        data = json.loads(path.read_text())
        minutes = [p["train_seconds"] / 60 for p in data["points"]]
        for order, style in (("joint", "-"), ("insert_first", "--")):
            ax.plot(minutes, [p[order]["exact_match"] for p in data["points"]], style, marker="o",
                    label=f"{data['preset']} seed {data['seed']}, {order} sampler")
    ax.set_xlabel("training time (minutes, 1 thread, two runs sharing 2 cores)")
    ax.set_ylabel("exact match (1,000 test graphs)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
