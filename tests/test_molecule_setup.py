"""Molecules for a new user: a missing optional dependency is one error line naming the command that
installs it, and the set-up script installs the molecule extra when a command names a molecule task."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from conftest import call_main
from insertgen.core.errors import InsertgenError
from insertgen.tasks import get_task

ROOT = Path(__file__).resolve().parent.parent


def _without(monkeypatch, *modules):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in modules else real(name, *a))


@pytest.mark.parametrize("task", ["smiles", "safe", "fragment-linker"])
def test_a_missing_package_names_the_install_command(monkeypatch, task):
    _without(monkeypatch, "rdkit", "moses")
    with pytest.raises(InsertgenError) as e:
        get_task(task)
    message = str(e.value)
    assert f"task {task} needs rdkit, molsets" in message and "pip install 'insertgen[molecules]'" in message
    assert "scripts/dev.py run --" in message and "\n" not in message


def test_the_cli_says_it_in_one_error_line(monkeypatch, capsys, tmp_path):
    _without(monkeypatch, "safe")
    code = call_main(["train", "--task", "fragment-linker", "--model", "arm", "--steps", "1", "--out", tmp_path / "r"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and err[0].startswith("error: task fragment-linker needs safe-mol")
    assert "Traceback" not in err[0] and not (tmp_path / "r" / "checkpoint.safetensors").exists()


def test_the_set_up_script_installs_the_molecule_extra_when_asked_for_a_molecule_task(tmp_path):
    spec = importlib.util.spec_from_file_location("dev", ROOT / "scripts" / "dev.py")
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    assert dev.needs_molecules(["train", "--task", "smiles", "--model", "ip"])
    assert dev.needs_molecules(["--task=fragment-linker"]) and dev.needs_molecules(["--tasks", "star-easy,safe"])
    assert dev.needs_molecules(["demo", "--task", "safe"])
    assert not dev.needs_molecules(["train", "--task", "star-easy", "--out", "smiles-run"])
    assert not dev.needs_molecules(["reproduce", "--tasks", "star-tiny,maze-perfect-easy"])
    run = tmp_path / "my-run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"task": "fragment-motif"}))
    assert dev.needs_molecules(["sample", "--run", str(run)])
    (run / "config.json").write_text(json.dumps({"task": "star-easy"}))
    assert not dev.needs_molecules(["sample", "--run", str(run)])


def test_a_first_use_says_what_it_builds_and_where(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INSERTGEN_CACHE", str(tmp_path))
    options = {"train_size": 40, "prompts": 1, "samples_per_prompt": 1}
    assert get_task("fragment-linker", options).examples("train")
    err = capsys.readouterr().err
    assert "building the fragment-linker training prompts from 40 MOSES molecules" in err and str(tmp_path) in err
    assert "fragment-linker train prompts" in err  # the progress bar
    assert get_task("fragment-linker", options).examples("train")
    assert "building" not in capsys.readouterr().err  # the second use reads the cache
