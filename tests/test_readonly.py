"""Read-only and non-root use: as user nobody, with a home directory that does not exist and a checkout (the
package and its shipped models) it cannot write, sample, eval, score, report and the demo work, their outputs
where the user says; a molecule task without a writable cache names INSERTGEN_CACHE."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOBODY = 65534
PRETRAINED = ROOT / "src" / "insertgen" / "pretrained"

pytestmark = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                reason="needs root to run commands as another user (CI runs as root)")


def as_nobody(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    def demote():
        os.setgid(NOBODY)
        os.setuid(NOBODY)

    return subprocess.run([sys.executable, "-m", "insertgen.apps.cli", *args], cwd=ROOT, preexec_fn=demote,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "OMP_NUM_THREADS": "1",
                               "MPLCONFIGDIR": "/tmp", **(env or {})},
                          capture_output=True, text=True, timeout=600)


@pytest.fixture
def outbox():
    """A folder user nobody may write (the outputs' place; pytest's own are its owner's alone), with the inputs."""
    import shutil
    import tempfile

    box = Path(tempfile.mkdtemp(prefix="insertgen-nobody-"))
    os.chmod(box, 0o777)
    yield from _filled(box)
    shutil.rmtree(box, ignore_errors=True)


def _filled(box: Path):
    graph = "2 1 18 3 10 7 6 5 5 0 3 2 11 16 7 19 6 18 6 14 14 10 0 11 6 19"
    (box / "p.jsonl").write_text(json.dumps({"prompt": graph}) + "\n")
    (box / "t.jsonl").write_text(json.dumps({"prompt": graph, "text": "0 11 11 16"}) + "\n")
    yield box


def test_the_commands_work_as_another_user_from_a_checkout_it_cannot_write(outbox):
    probe = as_nobody("--help")
    if probe.returncode != 0:
        pytest.skip(f"this checkout or its environment is not readable by user nobody: {probe.stderr[-300:]}")
    assert subprocess.run(["test", "-w", str(PRETRAINED)], preexec_fn=lambda: os.setuid(NOBODY)).returncode != 0
    ip, arm = PRETRAINED / "star-easy-ip", PRETRAINED / "star-easy-arm"
    done = as_nobody("sample", "--run", str(ip), "--input", str(outbox / "p.jsonl"),
                     "--output", str(outbox / "s.jsonl"))
    assert done.returncode == 0, done.stderr
    assert len(json.loads((outbox / "s.jsonl").read_text())["output"].split()) == 8
    done = as_nobody("score", "--run", str(arm), "--input", str(outbox / "t.jsonl"),
                     "--output", str(outbox / "c.jsonl"))
    assert done.returncode == 0, done.stderr
    done = as_nobody("eval", "--run", str(ip), "--limit", "5", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["n"] == 5 and "eval-test.json not written" in done.stderr
    assert not (ip / ".insertgen.lock").exists() and not (ip / "eval-test.json").exists()
    done = as_nobody("report", str(ip), "--out", str(outbox / "r.html"), "--examples", "1")
    assert done.returncode == 0, done.stderr
    assert (outbox / "r.html").stat().st_size > 10_000
    done = as_nobody("demo", "--out", str(outbox / "demo"), "--models", "ip,arm", "-n", "20")
    assert done.returncode == 0, done.stderr
    assert json.loads((outbox / "demo" / "demo.json").read_text())["n"] == 20


def test_a_molecule_task_without_a_writable_cache_names_the_variable(outbox):
    pytest.importorskip("rdkit")
    done = as_nobody("eval", "--run", str(PRETRAINED / "smiles-arm"), "--limit", "5")
    assert done.returncode == 2
    assert "cannot use /nonexistent/.cache/insertgen as the cache" in done.stderr
    assert "set INSERTGEN_CACHE to a writable one" in done.stderr
