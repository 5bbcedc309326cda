"""The novelty reference: the canonical SMILES of the 1,584,663 MOSES training molecules.

A sample is novel when its canonical SMILES is not the canonical SMILES of a training molecule. Canonicalising
all of MOSES's training set takes about four minutes of one core; but MOSES stores its molecules as canonical
SMILES already, and today's RDKit rewrites only a few hundred of them (276 with RDKit 2026.09.1). The package
ships those rewrites (``data/moses-train-rewrites.json``: the RDKit version that computed them, a digest of the
training strings, and ``{stored SMILES: canonical SMILES or null}``), and the reference set is

    canonical(train) = (train \\ rewritten)  ∪  {canonical(s) : s ∈ rewritten, canonical(s) defined}

which is exact, because every other training string is its own canonical form. It is used when the installed
RDKit is the one that computed the rewrites and the training strings have the shipped digest; otherwise the
whole set is canonicalised once and cached (``moses-train-canonical.txt`` in ``$INSERTGEN_CACHE``), as it is when
that cache already exists.

``python scripts/moses_rewrites.py`` rewrites the shipped file (after an RDKit upgrade).
"""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from insertgen.core.cache import read_cache_text
from insertgen.core.io import write_text_atomic
from insertgen.tasks.molecules import metrics, moses

REWRITES = Path(__file__).parent / "data" / "moses-train-rewrites.json"
CACHE_NAME = "moses-train-canonical.txt"


def rdkit_version() -> str:
    import rdkit  # optional: the molecules extra

    return rdkit.__version__


def rewrites(stored: list[str], canonical: list[str | None]) -> dict[str, str | None]:
    """``{s: canonical(s)}`` for the stored strings that are not their own canonical form (None: RDKit cannot
    read ``s``)."""
    return {s: c for s, c in zip(stored, canonical) if c != s}


def from_rewrites(stored: list[str], rewritten: dict[str, str | None]) -> frozenset[str]:
    """The canonical set of ``stored``, given the strings that are not their own canonical form (module
    docstring)."""
    return frozenset(s for s in stored if s not in rewritten) | {c for c in rewritten.values() if c}


def canonicalise_all(stored: list[str]) -> list[str | None]:
    metrics.quiet_rdkit()
    return [metrics.canonical(s) for s in tqdm(stored, desc="canonical MOSES train", mininterval=5)]


def shipped_rewrites(stored: list[str]) -> dict[str, str | None] | None:
    """The shipped rewrites when they apply to this RDKit and these training strings, else None."""
    if not REWRITES.is_file():
        return None
    data = json.loads(REWRITES.read_text(encoding="utf-8"))
    if data.get("rdkit") != rdkit_version() or data.get("train_digest") != moses.strings_digest(stored):
        return None
    return data["rewrites"]


_CANONICAL: dict[tuple[Path, Path], frozenset[str]] = {}


def canonical_training_set() -> frozenset[str]:
    """Canonical SMILES of the MOSES training set: from the cache, else from the shipped rewrites, else
    canonicalised now (about four minutes, said on stderr) and cached; built once per process (per data and
    cache directory: every model a demo scores reuses it)."""
    key = (moses.data_dir(), moses.cache_dir())
    if key not in _CANONICAL:
        _CANONICAL[key] = _canonical_training_set()
    return _CANONICAL[key]


def _canonical_training_set() -> frozenset[str]:
    cached = read_cache_text(moses.cache_dir() / CACHE_NAME)
    if cached is not None:
        return frozenset(cached.split("\n")) - {""}
    stored = moses.read_split("train").strings
    rewritten = shipped_rewrites(stored)
    if rewritten is not None:
        return from_rewrites(stored, rewritten)
    what = (f"the canonical SMILES of the MOSES training set (novelty; RDKit {rdkit_version()} is not the "
            "version the package's list of rewrites was made with)")
    lines = moses.cached_lines(CACHE_NAME, lambda: [c or "" for c in canonicalise_all(stored)], what)
    return frozenset(lines) - {""}


def write_shipped_rewrites(path: Path = REWRITES) -> dict:
    """Canonicalise the training set (or read the cache made by this RDKit) and write the rewrites file."""
    stored = moses.read_split("train").strings
    cache = moses.cache_dir() / CACHE_NAME
    cached = read_cache_text(cache)
    canonical = [c or None for c in cached.split("\n")] if cached is not None else canonicalise_all(stored)
    if len(canonical) != len(stored):
        raise ValueError(f"{cache} has {len(canonical):,} lines for {len(stored):,} training strings: delete it")
    data = {"rdkit": rdkit_version(), "train_digest": moses.strings_digest(stored), "train_size": len(stored),
            "rewrites": rewrites(stored, canonical)}
    write_text_atomic(path, json.dumps(data, indent=0, sort_keys=True) + "\n")
    return data
