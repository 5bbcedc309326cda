"""De novo molecule metrics on RDKit, computed the way MOSES, GuacaMol, TDC, GenMol and LoFlexMDM
compute them (docs/methods/tasks.md#molecule-metrics). ``n`` is the number of generated samples; a sample is
*valid* when its SMILES parses with RDKit and has at least one atom.

=================  ==============================================================================
validity           #valid / n
uniqueness         #distinct canonical SMILES among the valid / #valid
novelty            share of the distinct valid molecules not in the reference training set (MOSES)
quality_all        #(valid samples with QED >= 0.6 and SA <= 4) / n, duplicates counted (LoFlexMDM)
quality_unique     #(distinct valid molecules with QED >= 0.6 and SA <= 4) / n (GenMol)
diversity          mean Tanimoto distance over unordered pairs of distinct valid molecules, Morgan
                   radius 2, 2048 bits (TDC)
intdiv1, intdiv2   1 - (mean T^p)^(1/p) over the full valid x valid similarity matrix, Morgan radius
                   2, 1024 bits (MOSES IntDiv_p)
kl_score           GuacaMol: mean of exp(-KL) over 9 descriptors (continuous ones by Gaussian KDE on
                   1,000 points, discrete ones by a 10-bin histogram) and the nearest-neighbour
                   similarity (ECFP4, 4096 bits) within each set, reference -> distinct valid samples
fcd, fcd_score     Frechet ChemNet Distance (fcd_torch) of the valid samples to the reference
                   statistics, and GuacaMol's exp(-0.2 FCD); ``fcd_n`` is the sample size (FCD is
                   biased upward at small n: compare only at equal n)
=================  ==============================================================================

SA is Ertl and Schuffenhauer's score from RDKit's Contrib ``sascorer`` (TDC's ``Oracle('sa')`` is the
same algorithm but downloads its fragment scores); QED is ``rdkit.Chem.QED.qed``.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from functools import lru_cache

import numpy as np

CONTINUOUS = ("BertzCT", "MolLogP", "MolWt", "TPSA")
DISCRETE = ("NumHAcceptors", "NumHDonors", "NumRotatableBonds", "NumAliphaticRings", "NumAromaticRings")
QED_MIN, SA_MAX = 0.6, 4.0


def quiet_rdkit() -> None:
    from rdkit import RDLogger  # optional: the molecules extra

    RDLogger.DisableLog("rdApp.*")


@lru_cache(maxsize=1)
def _sascorer():
    from rdkit.Chem import RDConfig  # optional: the molecules extra

    path = os.path.join(RDConfig.RDContribDir, "SA_Score")
    if path not in sys.path:
        sys.path.append(path)
    import sascorer  # noqa: E402  (RDKit Contrib module, found through the path above)

    return sascorer


def sa_score(mol) -> float:
    """Synthetic accessibility (1 easy .. 10 hard) of an RDKit molecule."""
    return float(_sascorer().calculateScore(mol))


def qed(mol) -> float:
    from rdkit.Chem import QED  # optional: the molecules extra

    return float(QED.qed(mol))


def to_mol(smiles: str | None):
    """RDKit molecule of a SMILES, or None when it does not parse or has no atoms."""
    from rdkit import Chem  # optional: the molecules extra

    if not smiles:
        return None
    mol = Chem.MolFromSmiles(smiles)
    return mol if mol is not None and mol.GetNumAtoms() > 0 else None


def canonical(smiles: str | None) -> str | None:
    from rdkit import Chem  # optional: the molecules extra

    mol = to_mol(smiles)
    return None if mol is None else Chem.MolToSmiles(mol)


def morgan(mols, n_bits: int):
    from rdkit.Chem import rdFingerprintGenerator  # optional: the molecules extra

    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=n_bits)
    return [gen.GetFingerprint(m) for m in mols]


def similarity_matrix(fps) -> np.ndarray:
    from rdkit import DataStructs  # optional: the molecules extra

    return np.array([DataStructs.BulkTanimotoSimilarity(fp, fps) for fp in fps]) if fps else np.zeros((0, 0))


def diversity(mols) -> float:
    """TDC diversity: mean Tanimoto distance over unordered pairs (Morgan r2, 2048 bits); nan below 2."""
    if len(mols) < 2:
        return float("nan")
    sim = similarity_matrix(morgan(mols, 2048))
    iu = np.triu_indices(len(mols), k=1)
    return float(np.mean(1.0 - sim[iu]))


def internal_diversity(mols, p: int) -> float:
    """MOSES IntDiv_p: 1 - (mean over the full matrix of T^p)^(1/p) (Morgan r2, 1024 bits)."""
    if not mols:
        return float("nan")
    sim = similarity_matrix(morgan(mols, 1024))
    return float(1.0 - np.mean(sim ** p) ** (1.0 / p))


def descriptors(mols) -> np.ndarray:
    """(n, 9) GuacaMol descriptors: CONTINUOUS then DISCRETE."""
    from rdkit.Chem import Descriptors  # optional: the molecules extra

    fns = [getattr(Descriptors, name) for name in CONTINUOUS + DISCRETE]
    return np.array([[f(m) for f in fns] for m in mols], dtype=np.float64).reshape(len(mols), len(fns))


def nearest_neighbour_similarity(mols) -> np.ndarray:
    """Per molecule, its largest Tanimoto similarity to another molecule of the set (ECFP4, 4096 bits)."""
    sim = similarity_matrix(morgan(mols, 4096))
    if sim.size:
        np.fill_diagonal(sim, 0.0)
    return sim.max(axis=1) if len(mols) > 1 else np.zeros(len(mols))


def continuous_kl(reference: np.ndarray, sampled: np.ndarray) -> float:
    """KL(reference || sampled) of Gaussian KDEs evaluated on 1,000 points spanning both (GuacaMol)."""
    from scipy.stats import entropy, gaussian_kde  # heavy: scipy.stats takes ~1 s to import

    grid = np.linspace(min(reference.min(), sampled.min()), max(reference.max(), sampled.max()), 1000)
    try:
        p = gaussian_kde(reference)(grid) + 1e-10
        q = gaussian_kde(sampled)(grid) + 1e-10
    except np.linalg.LinAlgError:  # a constant sample: no bandwidth; treat as maximally different
        return float("inf")
    return float(entropy(p, q))


def discrete_kl(reference: np.ndarray, sampled: np.ndarray) -> float:
    """KL(reference || sampled) of 10-bin histograms on the reference's bins (GuacaMol)."""
    from scipy.stats import entropy  # heavy: scipy.stats takes ~1 s to import

    p, bins = np.histogram(reference, bins=10, density=True)
    with np.errstate(invalid="ignore", divide="ignore"):  # no sample inside the reference's bins: all zero
        q, _ = np.histogram(sampled, bins=bins, density=True)
    q = np.nan_to_num(q)
    return float(entropy(p + 1e-10, q + 1e-10))


def kl_score(reference: dict, mols) -> float:
    """GuacaMol KL score of ``mols`` (distinct valid) against ``reference`` (from :func:`reference_stats`)."""
    if len(mols) < 2:
        return 0.0
    d = descriptors(mols)
    kls = [continuous_kl(reference["descriptors"][:, i], d[:, i]) for i in range(len(CONTINUOUS))]
    kls += [discrete_kl(reference["descriptors"][:, i], d[:, i]) for i in range(len(CONTINUOUS), d.shape[1])]
    kls.append(continuous_kl(reference["nn_similarity"], nearest_neighbour_similarity(mols)))
    # a degenerate sample (e.g. one descriptor constant) has no density: its term counts as 0
    return float(np.mean([math.exp(-k) if k == k else 0.0 for k in kls]))


def reference_stats(smiles: list[str]) -> dict:
    """What :func:`kl_score` compares against: descriptors and nearest-neighbour similarities."""
    mols = [m for m in (to_mol(s) for s in smiles) if m is not None]
    return {"descriptors": descriptors(mols), "nn_similarity": nearest_neighbour_similarity(mols)}


@lru_cache(maxsize=1)
def _fcd_model():
    from fcd_torch import FCD  # optional: the molecules extra

    return FCD(device="cpu", n_jobs=1, batch_size=512)


def fcd(smiles: list[str], reference: tuple[np.ndarray, np.ndarray]) -> float:
    """Frechet ChemNet Distance of ``smiles`` (valid) to reference statistics ``(mu, sigma)``."""
    if len(smiles) < 2:
        return float("nan")

    model = _fcd_model()
    with warnings.catch_warnings():  # near-singular covariances at small n: the value is still reported
        warnings.simplefilter("ignore")
        gen = model.precalc(smiles)
        return float(model.metric({"mu": reference[0], "sigma": reference[1]}, gen))


def molecule_metrics(samples: list[str | None], training_set: set[str] | frozenset[str],
                     kl_reference: dict | None = None, fcd_reference: tuple | None = None) -> dict:
    """All metrics of the module docstring for ``samples`` (SMILES, or None where an output did not
    decode). ``training_set`` holds canonical SMILES; the KL and FCD entries need their references."""
    quiet_rdkit()
    n = len(samples)
    valid = [(s, m) for s, m in ((s, to_mol(s)) for s in samples) if m is not None]
    from rdkit import Chem  # optional: the molecules extra

    canon = [Chem.MolToSmiles(m) for _, m in valid]
    distinct: dict[str, object] = {}
    for c, (_, m) in zip(canon, valid):
        distinct.setdefault(c, m)
    good = {c: qed(m) >= QED_MIN and sa_score(m) <= SA_MAX for c, m in distinct.items()}
    unique_mols = list(distinct.values())
    out = {
        "n": n,
        "validity": len(valid) / n if n else 0.0,
        "uniqueness": len(distinct) / len(valid) if valid else 0.0,
        "novelty": sum(c not in training_set for c in distinct) / len(distinct) if distinct else 0.0,
        "quality_all": sum(good[c] for c in canon) / n if n else 0.0,
        "quality_unique": sum(good.values()) / n if n else 0.0,
        "diversity": diversity(unique_mols),
        "intdiv1": internal_diversity([m for _, m in valid], 1),
        "intdiv2": internal_diversity([m for _, m in valid], 2),
    }
    if kl_reference is not None:
        out["kl_score"] = kl_score(kl_reference, unique_mols)
    if fcd_reference is not None:
        value = fcd(canon, fcd_reference)
        out.update(fcd=value, fcd_score=math.exp(-0.2 * value) if value == value else float("nan"), fcd_n=len(canon))
    return out
