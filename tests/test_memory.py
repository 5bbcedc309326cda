"""core.memory: freed heap pages go back to the system after an evaluation."""

import os
import platform
import sys
from pathlib import Path

import pytest

from insertgen.core import memory

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from soak import rss_mb  # noqa: E402  (the soak benchmark's reading of resident memory)


def resident_mib() -> float:
    return rss_mb(os.getpid())


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_freed_pages_between_live_blocks_are_returned():
    """Blocks of 64 KiB (below glibc's mmap threshold, so on the heap) with every 64th kept alive: freeing
    the others leaves ~126 MiB of free pages between live blocks, which glibc keeps resident until
    malloc_trim(0) hands them back."""
    blocks = [bytearray(64 * 1024) for _ in range(2048)]  # 128 MiB, every page touched (zero-filled)
    kept = blocks[::64]
    del blocks
    before = resident_mib()
    assert memory.release_freed_memory() is True
    after = resident_mib()
    assert before - after > 64, (before, after)
    assert len(kept) == 32


def test_release_is_a_no_op_without_glibc(monkeypatch):
    monkeypatch.setattr(memory.platform, "libc_ver", lambda: ("", ""))
    memory._glibc_malloc_trim.cache_clear()
    try:
        assert memory.release_freed_memory() is False
    finally:
        memory._glibc_malloc_trim.cache_clear()


def test_an_evaluation_releases_the_memory_its_batch_freed(monkeypatch):
    """evaluate_model gives the freed batch back once, after sampling (the soak's flat RSS rests on it)."""
    from insertgen.engine import evaluate
    from insertgen.models.registry import build_model, task_defaults
    from insertgen.tasks import get_task

    calls = []
    monkeypatch.setattr(evaluate, "release_freed_memory", lambda: calls.append(1) or True)
    task = get_task("star-easy")
    model = build_model("arm", task.vocab, {"d_model": 16, "n_layers": 1, "n_heads": 2,
                                            **task_defaults("arm", task)}).eval()
    options = evaluate.family_samplers("arm", 4)["left_to_right"]
    metrics, pairs = evaluate.evaluate_model(model, task, task.examples("test")[:3], options)
    assert calls == [1] and len(pairs) == 3 and "exact_match" in metrics


@pytest.mark.parametrize("every_s,expected", [(0.0, 6), (3600.0, 0)])
def test_training_releases_the_heap_once_per_interval_at_a_logging_step(tmp_path, monkeypatch, every_s, expected):
    """Trainer.train gives the heap's free pages back at a logging step once RELEASE_EVERY_S seconds have
    passed since the last release: at every one of the six logging steps when the interval is 0, at none of
    them when it is an hour (a short run never pays for a walk of the heap)."""
    from conftest import call_main
    from insertgen.engine import train

    calls = []
    monkeypatch.setattr(train, "release_freed_memory", lambda: calls.append(1) or True)
    monkeypatch.setattr(train, "RELEASE_EVERY_S", every_s)
    argv = ["train", "--task", "star-tiny", "--model", "arm", "--steps", "6", "--out", tmp_path / "run",
            "--set", "d_model=16", "--set", "n_layers=1", "--set", "n_heads=2", "--set", "batch_size=4",
            "--set", "eval_every=0", "--set", "log_every=1", "--quiet"]
    assert call_main(argv) == 0
    assert len(calls) == expected


def test_the_evaluation_memory_benchmark_writes_its_readings(tmp_path):
    """benchmarks/evaluation_memory.py on a shipped model: one reading per repeat, each way."""
    import json
    import subprocess

    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "m.json"
    subprocess.run([sys.executable, str(root / "benchmarks" / "evaluation_memory.py"), "--run",
                    str(root / "src" / "insertgen" / "pretrained" / "star-easy-arm"), "-n", "4", "--repeats", "2",
                    "--out", str(out)], check=True, capture_output=True, timeout=300)
    record = json.loads(out.read_text())
    assert record["settings"]["n"] == 4 and record["loaded_mib"] > 0
    assert [set(r) for r in record["without_release"]] == [{"after_evaluation_mib", "after_trim_by_hand_mib"}] * 2
    assert len(record["with_release"]) == 2 and all(r["after_evaluation_mib"] > 0 for r in record["with_release"])
