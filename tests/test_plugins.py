"""A model family and a task from another installed package (tests/plugins: insertgen-toy, entry points
``insertgen.models`` / ``insertgen.tasks``) work in fresh processes: train, sample, eval, score, load_run,
reproduce with worker processes and torchrun, with no import of the package anywhere in insertgen."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import PLUGINS


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A site directory holding the plugin package and its dist-info (what `pip install tests/plugins`
    writes, without a network or a build backend): a process with it on PYTHONPATH sees the package
    as installed."""
    site = tmp_path_factory.mktemp("site")
    shutil.copytree(PLUGINS / "insertgen_toy", site / "insertgen_toy")
    project = tomllib.loads((PLUGINS / "pyproject.toml").read_text())["project"]
    info = site / f"insertgen_toy-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in points.items()) + "\n"
        for group, points in project["entry-points"].items()))
    return site


def run(site: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "insertgen.apps.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_the_plugin_is_not_part_of_insertgen():
    code = ("from insertgen.models.registry import model_ids; from insertgen.tasks import task_ids; "
            "print('toy' in model_ids(), 'toy-copy' in task_ids())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.split() == ["False", "False"], done.stderr  # a fresh process without the package
    src = Path(__file__).resolve().parent.parent / "src"
    assert not any("insertgen_toy" in p.read_text() for p in src.rglob("*.py"))


def test_an_installed_family_and_task_run_through_every_command(site, tmp_path):
    out = tmp_path / "run"
    done = run(site, "train", "--task", "toy-copy", "--model", "toy", "--steps", "20", "--set", "batch_size=16",
               "--set", "lr=0.05", "--set", "eval_every=0", "--quiet", "--out", str(out))
    assert done.returncode == 0, done.stderr
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "3 1 4"}) + "\n")
    done = run(site, "sample", "--run", str(out), "--input", str(prompts), "--output", str(tmp_path / "s.jsonl"))
    assert done.returncode == 0, done.stderr
    assert set(json.loads((tmp_path / "s.jsonl").read_text())["output"].split()) <= {str(d) for d in range(10)}
    done = run(site, "eval", "--run", str(out), "--limit", "8", "--json")
    assert done.returncode == 0 and json.loads(done.stdout.strip().splitlines()[-1])["n"] == 8, done.stderr
    texts = tmp_path / "t.jsonl"
    texts.write_text(json.dumps({"prompt": "3 1 4", "text": "3 1 4"}) + "\n")
    done = run(site, "score", "--run", str(out), "--input", str(texts), "--output", str(tmp_path / "sc.jsonl"))
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "sc.jsonl").read_text())["log_likelihood"] < 0
    code = f"import insertgen; r = insertgen.load_run({str(out)!r}); print(r.model.model_id, r.task.name)"
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(site)},
                          capture_output=True, text=True, timeout=300)
    assert done.stdout.split() == ["toy", "toy-copy"], done.stderr
    # without the package installed, the run names what is missing
    done = subprocess.run([sys.executable, "-m", "insertgen.apps.cli", "sample", "--run", str(out), "--input",
                           str(prompts)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "unknown task 'toy-copy'" in done.stderr


def test_reproduce_workers_and_torchrun_ranks_find_the_plugin(site, tmp_path):
    grid = tmp_path / "grid"
    done = run(site, "reproduce", "--tasks", "toy-copy", "--models", "toy,arm", "--seeds", "0", "--budget", "2s",
               "--eval-n", "8", "--set", "batch_size=8", "--set", "d_model=32", "--set", "n_layers=1",
               "--set", "n_heads=2", "--jobs", "2", "--out", str(grid))
    assert done.returncode == 0, done.stderr
    assert (grid / "cells" / "toy-copy--toy--seed0.json").is_file()
    assert (grid / "cells" / "toy-copy--arm--seed0.json").is_file()
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", "-m", "insertgen.apps.cli", "train",
                           "--task", "toy-copy", "--model", "toy", "--steps", "4", "--set", "batch_size=8",
                           "--set", "eval_every=0", "--quiet", "--out", str(tmp_path / "ddp")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((tmp_path / "ddp" / "config.json").read_text())["model"] == "toy"


def test_a_plugin_that_cannot_be_imported_is_named(tmp_path):
    site = tmp_path / "site"
    info = site / "broken-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[insertgen.models]\nnope = no_such_module:FAMILY\n")
    done = run(site, "train", "--task", "star-tiny", "--model", "nope", "--steps", "1", "--out", str(tmp_path / "r"))
    assert done.returncode == 2
    assert "entry point 'nope' (no_such_module:FAMILY) of package 'broken' cannot be loaded" in done.stderr
