"""The derived-data cache's integrity (core/cache.py): a digest beside every file, checked on every read; a
damaged, edited, foreign or unvouched file is dropped and built again; two writers at once leave one good copy."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from insertgen.core import cache


def test_a_written_file_reads_back_and_any_damage_is_dropped(tmp_path):
    path = tmp_path / "c.txt"
    data = b"line one\nline two\n" * 100
    assert cache.write_cache_bytes(path, data)
    assert cache.read_cache_bytes(path) == data
    sidecar = json.loads((tmp_path / "c.txt.sha256").read_text())
    assert sidecar["bytes"] == len(data) and sidecar["insertgen"] == cache.__version__
    for damage in (lambda: path.write_bytes(data[:-7]),                       # truncated
                   lambda: path.write_bytes(data.replace(b"two", b"TWO")),    # edited, same length
                   lambda: (tmp_path / "c.txt.sha256").unlink(),              # no sidecar
                   lambda: (tmp_path / "c.txt.sha256").write_text("{"),       # damaged sidecar
                   ):
        assert cache.write_cache_bytes(path, data)
        damage()
        assert cache.read_cache_bytes(path) is None
        assert not path.exists() and not (tmp_path / "c.txt.sha256").exists()  # dropped: built again next time
    assert cache.read_cache_bytes(tmp_path / "missing") is None


def test_a_file_made_by_another_version_is_built_again(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    assert cache.save_arrays(path, {"a": np.arange(5)})
    assert np.array_equal(cache.load_arrays(path)["a"], np.arange(5))
    monkeypatch.setattr(cache, "__version__", "9.9.9")
    assert cache.load_arrays(path) is None and not path.exists()


def test_an_unwritable_cache_writes_nothing(tmp_path):
    assert not cache.write_cache_bytes(tmp_path / "no-such-dir" / "c.txt", b"x")
    assert not list(tmp_path.iterdir())


def test_the_molecule_caches_rebuild_a_damaged_file(tmp_path, monkeypatch):
    pytest.importorskip("rdkit")
    from insertgen.tasks.molecules import moses

    monkeypatch.setenv("INSERTGEN_CACHE", str(tmp_path))
    calls = []

    def compute():
        calls.append(1)
        return ["CCO", "c1ccccc1"]

    assert moses.cached_lines("x.txt", compute, "a test cache") == ["CCO", "c1ccccc1"]
    assert moses.cached_lines("x.txt", compute, "a test cache") == ["CCO", "c1ccccc1"] and len(calls) == 1
    (tmp_path / "x.txt").write_text("CCO\nC1CC")  # edited by hand
    assert moses.cached_lines("x.txt", compute, "a test cache") == ["CCO", "c1ccccc1"] and len(calls) == 2


WRITER = """
import sys
from pathlib import Path
from insertgen.core.cache import write_cache_bytes
path = Path(sys.argv[1])
for i in range(200):
    write_cache_bytes(path, bytes(range(256)) * 400)  # what building the same cache makes, every time
"""


def test_two_processes_building_one_cache_leave_one_good_copy(tmp_path):
    path = tmp_path / "shared.bin"
    content = bytes(range(256)) * 400
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path)]) for _ in range(2)]
    while any(w.poll() is None for w in writers):
        assert cache.read_cache_bytes(path) in (None, content)  # a reader in the middle: the whole copy or none
    assert all(w.wait() == 0 for w in writers)
    assert cache.read_cache_bytes(path) == content
    assert not list(tmp_path.glob("*.tmp"))
