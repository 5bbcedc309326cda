"""One writer per run directory (core/run_lock.py): a second writer is refused with who holds the run, a lock
left by a dead process is taken over, readers never block, and the lock goes with the writer."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from conftest import call_main
from insertgen.core import run_lock
from insertgen.core.errors import InsertgenError

TINY = ["--set", "d_model=32", "--set", "n_layers=1", "--set", "n_heads=2", "--set", "batch_size=8",
        "--set", "eval_every=0", "--quiet"]


def hold_in_another_process(run_dir, seconds: float = 60) -> subprocess.Popen:
    """A process that takes the lock of ``run_dir`` (made if missing) and keeps it; returns once it holds it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    code = ("import sys, time; from insertgen.core import run_lock; run_lock.acquire(sys.argv[1]); "
            "print('held', flush=True); time.sleep(float(sys.argv[2]))")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run_dir), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_with_the_holder(tmp_path):
    proc = hold_in_another_process(tmp_path / "run")
    try:
        with pytest.raises(InsertgenError, match=rf"run is in use by process {proc.pid} on {socket.gethostname()} "
                                                 r"since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"):
            run_lock.acquire(tmp_path / "run")
    finally:
        proc.kill()
        proc.wait()


def test_a_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path, capsys):
    proc = hold_in_another_process(tmp_path / "run")
    proc.kill()  # kill -9: the lock file stays behind
    proc.wait()
    lock = tmp_path / "run" / run_lock.LOCK_NAME
    assert json.loads(lock.read_text())["pid"] == proc.pid
    run_lock.acquire(tmp_path / "run")
    assert f"locked by process {proc.pid}, which is gone" in capsys.readouterr().err
    assert json.loads(lock.read_text())["pid"] == os.getpid()
    run_lock.release(tmp_path / "run")
    assert not lock.exists()


def test_holds_are_counted_within_a_process_and_a_foreign_host_is_not_second_guessed(tmp_path):
    run_lock.acquire(tmp_path / "missing")  # a directory that does not exist is neither locked nor made
    assert not (tmp_path / "missing").exists()
    (tmp_path / "run").mkdir()
    with run_lock.RunLock(tmp_path / "run"):
        run_lock.acquire(tmp_path / "run")  # the same process: no wait, counted
        run_lock.release(tmp_path / "run")
        assert (tmp_path / "run" / run_lock.LOCK_NAME).exists()
    assert not (tmp_path / "run" / run_lock.LOCK_NAME).exists()
    lock = tmp_path / "other" / run_lock.LOCK_NAME
    lock.parent.mkdir()
    lock.write_text(json.dumps({"pid": 1, "host": "another-host", "since": "2026-12-07 10:00:00 UTC"}))
    with pytest.raises(InsertgenError, match="in use by process 1 on another-host since 2026-12-07 10:00:00 UTC"):
        run_lock.acquire(tmp_path / "other")
    lock.write_text("garbage")
    with pytest.raises(InsertgenError, match=r"in use by process \? on \?"):
        run_lock.acquire(tmp_path / "other")


def test_train_resume_and_eval_refuse_a_run_another_writer_holds_and_readers_do_not_wait(tmp_path, capsys):
    run = tmp_path / "run"
    assert call_main(["train", "--task", "star-tiny", "--model", "arm", "--steps", "2", "--out", run, *TINY]) == 0
    assert not (run / run_lock.LOCK_NAME).exists()  # given back when training ended
    before = (run / "checkpoint.safetensors").read_bytes()
    proc = hold_in_another_process(run)
    try:
        capsys.readouterr()
        assert call_main(["train", "--out", run, "--resume", "--steps", "4", "--quiet"]) == 2
        assert f"is in use by process {proc.pid}" in capsys.readouterr().err
        assert (run / "checkpoint.safetensors").read_bytes() == before  # nothing written
        assert call_main(["eval", "--run", run, "--limit", "2"]) == 2
        assert f"is in use by process {proc.pid}" in capsys.readouterr().err
        prompts = tmp_path / "p.jsonl"
        from insertgen.tasks import get_task

        task = get_task("star-tiny")
        prompts.write_text(json.dumps({"prompt": task.format(task.examples("test")[0].prompt)}) + "\n")
        start = time.time()
        assert call_main(["sample", "--run", run, "--input", prompts, "--output", tmp_path / "o.jsonl"]) == 0
        assert time.time() - start < 30  # a reader
    finally:
        proc.kill()
        proc.wait()
    assert call_main(["train", "--out", run, "--resume", "--steps", "4", "--quiet"]) == 0  # dead holder: taken over
    assert "which is gone" in capsys.readouterr().err


def test_a_lock_copied_along_with_a_run_is_not_the_copys(tmp_path):
    import shutil

    (tmp_path / "run").mkdir()
    run_lock.acquire(tmp_path / "run")
    try:
        shutil.copytree(tmp_path / "run", tmp_path / "copy")  # its lock file comes along, naming "run"
        run_lock.acquire(tmp_path / "copy")  # not refused: the copy's lock is its own
        owner = json.loads((tmp_path / "copy" / run_lock.LOCK_NAME).read_text())
        assert owner["dir"] == str((tmp_path / "copy").resolve())
        run_lock.release(tmp_path / "copy")
    finally:
        run_lock.release(tmp_path / "run")
