"""Metrics of fragment-constrained generation, computed as GenMol's / LoFlexMDM's ``FragmentEval``
(docs/methods/tasks.md#fragment-metrics): per prompt group (the samples of one prompt), then averaged over
groups.

A sample is **valid** when it decodes to one connected molecule (RDKit parses it, at least one atom, a
single component) that contains the prompt's fragment(s) (:class:`fragments.FragmentQuery`). With n the
samples of the group:

==============  =====================================================================================
validity        #valid / n
uniqueness      #distinct valid molecules (canonical SMILES) / #valid (0 when none is valid)
quality_all     #(valid samples with QED >= 0.6 and SA <= 4) / n, duplicates counted (LoFlexMDM)
quality_unique  #(distinct valid molecules with QED >= 0.6 and SA <= 4) / n (GenMol)
diversity       mean Tanimoto distance over pairs of distinct valid molecules (Morgan r2, 2048 bits,
                TDC); undefined below two
distance        mean Tanimoto distance (Morgan r2, 1024 bits) from the source molecule to the distinct
                valid molecules; undefined when none is valid
==============  =====================================================================================

Averages over groups: validity, uniqueness and quality over all groups; diversity and distance over the
groups where they are defined (``diversity_groups`` / ``distance_groups`` say how many).
"""

from __future__ import annotations

import numpy as np

from insertgen.tasks.molecules import metrics
from insertgen.tasks.molecules.fragments import FragmentQuery


def valid_molecule(smiles: str | None, query: FragmentQuery):
    """The RDKit molecule of ``smiles`` if it is one connected molecule containing the fragment, else None."""
    from rdkit import Chem  # optional: the molecules extra

    mol = metrics.to_mol(smiles)
    if mol is None or len(Chem.GetMolFrags(mol)) != 1 or not query.matches(mol):
        return None
    return mol


def group_metrics(samples: list[str | None], query: FragmentQuery, source: str) -> dict[str, float]:
    """The metrics of one prompt's samples (SMILES, None where an output did not decode)."""
    from rdkit import Chem, DataStructs  # optional: the molecules extra

    n = len(samples)
    valid = [m for m in (valid_molecule(s, query) for s in samples) if m is not None]
    canon = [Chem.MolToSmiles(m) for m in valid]
    distinct: dict[str, object] = {}
    for c, m in zip(canon, valid):
        distinct.setdefault(c, m)
    good = {c: metrics.qed(m) >= metrics.QED_MIN and metrics.sa_score(m) <= metrics.SA_MAX for c, m in distinct.items()}
    out = {
        "validity": len(valid) / n if n else 0.0,
        "uniqueness": len(distinct) / len(valid) if valid else 0.0,
        "quality_all": sum(good[c] for c in canon) / n if n else 0.0,
        "quality_unique": sum(good.values()) / n if n else 0.0,
        "diversity": metrics.diversity(list(distinct.values())),
        "distance": float("nan"),
    }
    if distinct:
        source_fp = metrics.morgan([Chem.MolFromSmiles(source)], 1024)[0]
        sims = DataStructs.BulkTanimotoSimilarity(source_fp, metrics.morgan(list(distinct.values()), 1024))
        out["distance"] = float(np.mean(1.0 - np.asarray(sims)))
    return out


def average_groups(groups: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over groups (diversity and distance over the groups where they are defined)."""
    out: dict[str, float] = {"prompts": len(groups)}
    if not groups:
        return out
    for key in groups[0]:
        values = np.array([g[key] for g in groups], dtype=np.float64)
        defined = ~np.isnan(values)
        out[key] = float(values[defined].mean()) if defined.any() else float("nan")
        if key in ("diversity", "distance"):
            out[f"{key}_groups"] = int(defined.sum())
    return out
