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
    memory._glibc.cache_clear()
    try:
        assert memory.release_freed_memory() is False
    finally:
        memory._glibc.cache_clear()


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


MAPPED_APART_PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
from evaluation_heap import mallinfo2
from insertgen.core import memory
mapped = lambda: mallinfo2()().hblkhd / 2 ** 20
with memory.blocks_mapped_apart():
    before = mapped()
    block = bytearray(8 * 2 ** 20)
    inside = mapped() - before
    del block
before = mapped()
block = bytearray(8 * 2 ** 20)
print(inside, mapped() - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_inside_the_context_large_blocks_are_mapped_apart_and_after_it_they_share_the_heap():
    """In a fresh process (whose heap has no free 8 MiB to reuse: glibc maps a block apart only when the heap
    would have to grow for it), an 8 MiB block made inside blocks_mapped_apart is mapped on its own (mapped
    bytes rise by 8 MiB while it lives); made after it (threshold at glibc's 32 MiB ceiling) it grows the heap."""
    import subprocess

    benchmarks = Path(__file__).resolve().parent.parent / "benchmarks"
    done = subprocess.run([sys.executable, "-c", MAPPED_APART_PROBE, str(benchmarks)], capture_output=True,
                          text=True, check=True, timeout=120)
    inside, after = map(float, done.stdout.split())
    assert inside >= 8 and after < 1, done.stdout


def test_training_evaluates_with_its_blocks_mapped_apart(tmp_path, monkeypatch):
    """Trainer.validate opens blocks_mapped_apart around the evaluation (one per periodic evaluation)."""
    import contextlib

    from conftest import call_main
    from insertgen.engine import train

    opened = []

    @contextlib.contextmanager
    def recording():
        opened.append(1)
        yield

    monkeypatch.setattr(train, "blocks_mapped_apart", recording)
    argv = ["train", "--task", "star-tiny", "--model", "arm", "--steps", "4", "--out", tmp_path / "run",
            "--set", "d_model=16", "--set", "n_layers=1", "--set", "n_heads=2", "--set", "batch_size=4",
            "--set", "eval_every=2", "--set", "eval_examples=2", "--quiet"]
    assert call_main(argv) == 0
    assert len(opened) == 2


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


def test_the_evaluation_heap_benchmark_writes_its_readings(tmp_path):
    """benchmarks/evaluation_heap.py on a tiny run: each mode in its own process, a reading every 5 steps and
    after each evaluation (steps 2 -> 12 with an evaluation every 5), the evaluations' seconds; the run it
    reads is left as it was."""
    import json
    import subprocess

    from conftest import call_main

    run = tmp_path / "run"
    assert call_main(["train", "--task", "star-tiny", "--model", "arm", "--steps", "2", "--out", run, "--set",
                      "d_model=16", "--set", "n_layers=1", "--set", "n_heads=2", "--set", "batch_size=4",
                      "--set", "eval_every=0", "--quiet"]) == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "h.json"
    subprocess.run([sys.executable, str(root / "benchmarks" / "evaluation_heap.py"), "--run", str(run), "--steps",
                    "10", "--every", "5", "-n", "3", "--out", str(out)], check=True, capture_output=True, timeout=300)
    record = json.loads(out.read_text())
    assert [m["mode"] for m in record["modes"]] == ["heap", "apart"]
    for mode in record["modes"]:
        assert mode["from_step"] == 2 and len(mode["evaluation_seconds"]) == 2
        assert [(r["at"], r["step"]) for r in mode["readings"]] == [
            ("training", 5), ("after evaluation", 5), ("training", 10), ("after evaluation", 10), ("training", 12)]
        assert all(r["rss_mib"] > 0 and r["heap_mib"] >= r["heap_in_use_mib"] for r in mode["readings"])
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
