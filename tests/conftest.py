"""Shared fixtures: one tiny trained run for the whole session, and a helper that calls the CLI in-process."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# Every command the tests run computes with a fixed thread count: the CLI's default count adapts to the
# machine's load (insertgen/core/threads.py), and tests that compare two runs need the same float reductions.
# tests/test_threads.py removes it where it tests the adaptive default.
os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                             else os.cpu_count() or 1))

# A FlexMDM run on star-easy small enough to train in a few seconds on a 2-core CPU. Checkpoints are
# written at steps 2 and 4, so the run directory also holds checkpoint.prev.safetensors.
TINY_TRAIN_STEPS = 4
TINY_TRAIN_ARGS = [
    "train", "--task", "star-easy", "--model", "flexmdm", "--steps", str(TINY_TRAIN_STEPS),
    "--set", "d_model=32", "--set", "n_layers=1", "--set", "n_heads=2", "--set", "batch_size=8",
    "--set", "eval_every=0", "--set", "checkpoint_every=2", "--quiet",
]


def call_main(args) -> int:
    """Run ``insertgen.apps.cli.main`` in-process; returns the exit code (0 when it returns normally)."""
    from insertgen.apps.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as e:
        return 0 if e.code is None else e.code
    return 0


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A run directory trained once per session with ``TINY_TRAIN_ARGS`` (star-easy, flexmdm, 4 steps).

    Shared by every test: treat it as read-only. Use ``tiny_run_copy`` for anything that writes into
    the run directory (eval, resume, samples.jsonl, ...).
    """
    out = tmp_path_factory.mktemp("tiny-run") / "run"
    code = call_main([*TINY_TRAIN_ARGS, "--out", out])
    if code != 0:
        pytest.fail(f"training the tiny run failed with exit code {code}")
    return out


# A reproduce grid of two models on star-easy, one seed, tiny backbones trained for one second each, the
# two cells in two worker processes.
TINY_GRID_ARGS = [
    "reproduce", "--tasks", "star-easy", "--models", "flexmdm,arm", "--seeds", "0", "--budget", "1s",
    "--eval-n", "12", "--sampler-steps", "4", "--set", "d_model=32", "--set", "n_layers=1", "--set", "n_heads=2",
    "--set", "batch_size=8", "--jobs", "2",
]


@pytest.fixture(scope="session")
def tiny_grid(tmp_path_factory) -> Path:
    """A reproduce directory made once per session with ``TINY_GRID_ARGS``; read-only for tests."""
    out = tmp_path_factory.mktemp("tiny-grid") / "grid"
    code = call_main([*TINY_GRID_ARGS, "--out", out])
    if code != 0:
        pytest.fail(f"the tiny reproduce grid failed with exit code {code}")
    return out


@pytest.fixture
def tiny_run_copy(tiny_run, tmp_path) -> Path:
    """A private copy of ``tiny_run`` that a test may modify."""
    dst = tmp_path / "run-copy"
    shutil.copytree(tiny_run, dst)
    return dst


@pytest.fixture
def cli(capsys):
    """``cli(*args) -> (exit_code, stdout, stderr)``: the CLI called in-process, output captured."""

    def run(*args):
        capsys.readouterr()  # drop anything printed before this call
        code = call_main(args)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
