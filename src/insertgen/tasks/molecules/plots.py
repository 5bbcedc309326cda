"""Drawing sampled molecules and their length distribution."""

from __future__ import annotations

from pathlib import Path

from insertgen.core.figures import pyplot


def plot_molecule_samples(smiles: list, sample_lengths: list[int], data_lengths: list[int], path: Path,
                          title: str = "", n_molecules: int = 12) -> Path:
    """Left: the first ``n_molecules`` valid samples drawn by RDKit; right: token-length histograms of
    the samples and the data."""
    from rdkit import Chem  # optional: the molecules extra
    from rdkit.Chem import Draw  # optional: the molecules extra

    mols = [m for m in (Chem.MolFromSmiles(s) for s in smiles if s) if m is not None][:n_molecules]
    plt = pyplot()
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
