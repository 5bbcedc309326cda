"""The novelty reference (insertgen.tasks.molecules.novelty_reference): the canonical MOSES training set
rebuilt from the shipped list of rewritten strings equals the set canonicalised string by string, the
shipped list is RDKit's own canonical forms, and a mismatched RDKit falls back to canonicalising (announced,
cached)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("rdkit")

from insertgen.tasks.molecules import metrics, moses, novelty_reference

metrics.quiet_rdkit()

# canonical, non-canonical (atom order, Kekulé rings, explicit hydrogens), and one RDKit cannot read
STORED = ["CCO", "OCC", "c1ccccc1", "C1=CC=CC=C1", "CC(=O)O", "OC(C)=O", "[H]OC", "CN1CCCC1", "C1CC",
          "Clc1ccccc1", "c1ccc(Cl)cc1", "O=C(O)c1ccccc1N"]


def canonical_set(strings):
    return frozenset(c for c in (metrics.canonical(s) for s in strings) if c)


def test_the_set_rebuilt_from_rewrites_is_the_canonicalised_set():
    canonical = novelty_reference.canonicalise_all(STORED)
    rewritten = novelty_reference.rewrites(STORED, canonical)
    assert "CCO" not in rewritten and rewritten["OCC"] == "CCO" and rewritten["C1CC"] is None
    assert novelty_reference.from_rewrites(STORED, rewritten) == canonical_set(STORED)


def test_shipped_rewrites_are_this_rdkits_canonical_forms():
    data = json.loads(novelty_reference.REWRITES.read_text())
    if data["rdkit"] != novelty_reference.rdkit_version():
        pytest.skip(f"shipped for RDKit {data['rdkit']}, installed {novelty_reference.rdkit_version()}")
    assert data["train_size"] == moses.SIZES["train"] and data["rewrites"]
    for stored, canonical in data["rewrites"].items():
        assert metrics.canonical(stored) == canonical and canonical != stored


def fake_moses(monkeypatch, tmp_path, rdkit: str):
    """MOSES's training split replaced by STORED, the cache and the shipped file in ``tmp_path``."""
    monkeypatch.setenv("INSERTGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(moses, "read_split", lambda name: moses.MosesSplit(name, list(STORED)))
    shipped = tmp_path / "rewrites.json"
    rewritten = novelty_reference.rewrites(STORED, novelty_reference.canonicalise_all(STORED))
    shipped.write_text(json.dumps({"rdkit": rdkit, "train_digest": moses.strings_digest(STORED),
                                   "train_size": len(STORED), "rewrites": rewritten}))
    monkeypatch.setattr(novelty_reference, "REWRITES", shipped)
    return tmp_path / "cache" / novelty_reference.CACHE_NAME


def test_matching_rdkit_uses_the_shipped_rewrites_and_builds_nothing(monkeypatch, tmp_path, capsys):
    cache = fake_moses(monkeypatch, tmp_path, novelty_reference.rdkit_version())
    assert novelty_reference.canonical_training_set() == canonical_set(STORED)
    assert not cache.exists() and "building" not in capsys.readouterr().err
    # built once per process: the next model a demo scores reuses it
    monkeypatch.setattr(novelty_reference, "from_rewrites", lambda *a: pytest.fail("rebuilt in the same process"))
    assert novelty_reference.canonical_training_set() == canonical_set(STORED)


def test_another_rdkit_or_other_training_strings_canonicalise_once_and_cache(monkeypatch, tmp_path, capsys):
    cache = fake_moses(monkeypatch, tmp_path, "1999.01.1")
    assert novelty_reference.canonical_training_set() == canonical_set(STORED)
    assert "building the canonical SMILES of the MOSES training set" in capsys.readouterr().err
    assert cache.is_file()
    monkeypatch.setattr(novelty_reference, "canonicalise_all", lambda stored: pytest.fail("cache not used"))
    novelty_reference._CANONICAL.clear()  # a new process: the file cache, not the process's copy
    assert novelty_reference.canonical_training_set() == canonical_set(STORED)



def test_shipped_rewrites_apply_only_to_the_training_strings_they_were_made_from(monkeypatch, tmp_path):
    fake_moses(monkeypatch, tmp_path, novelty_reference.rdkit_version())
    assert novelty_reference.shipped_rewrites(STORED) is not None
    assert novelty_reference.shipped_rewrites(STORED[:-1]) is None
