"""Figures of a run directory, as PNG files a person can look at."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_training(run_dir: Path) -> Path | None:
    """training.png: training loss (and its parts) against step, and validation metrics if logged."""
    records = read_metrics(run_dir)
    train = [r for r in records if "loss" in r and "skipped" not in r]
    skipped = [r["step"] for r in records if "skipped" in r]
    val = [r for r in records if r.get("split") == "validation"]
    if not train:
        return None
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
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_maze_plans(maze, panels: list[dict], path: Path, title: str = "") -> Path:
    """One panel per plan: the maze (walls dark), the reference plan dashed, the generated plan in green
    when valid and red otherwise, the subgoals numbered in order (0 = start)."""
    n = max(1, len(panels))
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, panel in zip(axes.flat, panels):
        ax.imshow(~maze.open, cmap="Greys", vmin=0, vmax=1.6, interpolation="nearest")
        for key, style in (("reference", dict(color="tab:blue", lw=1.2, ls="--", alpha=0.7)),
                           ("plan", dict(color="tab:red" if panel["problem"] else "tab:green", lw=2.0))):
            cells = [divmod(c, maze.size) for c in panel[key] if 0 <= c < maze.size * maze.size]
            if cells:
                ax.plot([c for _, c in cells], [r for r, _ in cells], **style)
        for k, cell in enumerate(panel["subgoals"]):
            r, c = divmod(cell, maze.size)
            ax.text(c, r, str(k), ha="center", va="center", fontsize=7, color="white",
                    bbox=dict(boxstyle="circle,pad=0.15", fc="tab:purple", ec="none"))
        verdict = "valid" if panel["problem"] is None else panel["problem"]
        ax.set_title(verdict if len(verdict) < 48 else verdict[:45] + "...", fontsize=7)
    if title:
        fig.suptitle(f"{title}: generated plan (green valid / red invalid), reference dashed", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_molecule_samples(smiles: list, sample_lengths: list[int], data_lengths: list[int], path: Path,
                          title: str = "", n_molecules: int = 12) -> Path:
    """Left: the first ``n_molecules`` valid samples drawn by RDKit; right: token-length histograms of
    the samples and the data."""
    from rdkit import Chem
    from rdkit.Chem import Draw

    mols = [m for m in (Chem.MolFromSmiles(s) for s in smiles if s) if m is not None][:n_molecules]
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5), gridspec_kw={"width_ratios": [2.2, 1]})
    ax = axes[0]
    ax.axis("off")
    if mols:
        ax.imshow(Draw.MolsToGridImage(mols, molsPerRow=4, subImgSize=(220, 180), legends=[""] * len(mols)))
        ax.set_title(f"first {len(mols)} valid samples")
    else:
        ax.text(0.5, 0.5, "no valid sample", ha="center", va="center")
    ax = axes[1]
    top = max(sample_lengths + data_lengths + [1])
    bins = range(0, top + 2)
    ax.hist(data_lengths, bins=bins, density=True, alpha=0.5, label=f"data (n={len(data_lengths)})")
    ax.hist(sample_lengths, bins=bins, density=True, alpha=0.5, label=f"samples (n={len(sample_lengths)})")
    ax.set_xlabel("tokens")
    ax.set_title("length distribution")
    ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
