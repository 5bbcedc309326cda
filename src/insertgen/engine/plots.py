"""Figures of a run directory, as PNG files a person can look at."""

from __future__ import annotations

from pathlib import Path

from insertgen.core.figures import pyplot
from insertgen.core.io import writing
from insertgen.core.rundir import metrics_records


def read_metrics(run_dir: Path) -> list[dict]:
    """The records of RUN_DIR/metrics.jsonl (damaged lines left out with a warning: core.rundir.metrics_records)."""
    return [record for _, record in metrics_records(Path(run_dir) / "metrics.jsonl")]


def plot_training(run_dir: Path) -> Path | None:
    """training.png: training loss (and its parts) against step, and validation metrics if logged."""
    records = read_metrics(run_dir)
    train = [r for r in records if "loss" in r and "skipped" not in r]
    skipped = [r["step"] for r in records if "skipped" in r]
    val = [r for r in records if r.get("split") == "validation"]
    if not train:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2 if val else 1, figsize=(11 if val else 6, 4), squeeze=False)
    ax = axes[0][0]
    steps = [r["step"] for r in train]
    ax.plot(steps, [r["loss"] for r in train], label="loss", lw=1)
    for part in ("unmask", "insert"):
        if part in train[0]:
            ax.plot(steps, [r[part] for r in train], label=part, lw=0.8, alpha=0.8)
    for k, step in enumerate(skipped):
        ax.axvline(step, color="red", lw=0.6, alpha=0.6, label="skipped (non-finite)" if k == 0 else None)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("training loss")
    if val:
        ax = axes[0][1]
        for key in ("exact_match", "plan_validity", "success", "optimal", "token_accuracy"):
            if key in val[0]:
                ax.plot([r["step"] for r in val], [r[key] for r in val], marker="o", label=key)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("step")
        ax.set_title("validation")
        ax.legend()
    fig.tight_layout()
    out = Path(run_dir) / "training.png"
    tmp = out.with_name(out.name + ".tmp.png")
    try:
        with writing(out, "plot", leftovers=(tmp,)):  # a full disk: the previous picture stays
            fig.savefig(tmp, dpi=100)
            tmp.replace(out)
    finally:
        plt.close(fig)
    return out
