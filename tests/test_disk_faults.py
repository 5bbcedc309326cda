"""A full disk or an I/O error at each write of a training run (core/io.py's fault hook, FAULTS): the run stops with
one error naming the file and the errno (the training curves' picture: a warning, and the run goes on), what it
wrote before stays loadable, and a resume once the fault is gone continues without losing a checkpointed step."""

from __future__ import annotations

import errno
import json

import pytest

from conftest import call_main
from insertgen.core import io
from insertgen.core.checkpoint import CHECKPOINT, load_checkpoint
from insertgen.engine.run import load_run

TINY = ["--set", "d_model=32", "--set", "n_layers=1", "--set", "n_heads=2", "--set", "batch_size=8",
        "--set", "eval_every=0", "--set", "checkpoint_every=2", "--set", "log_every=1", "--quiet"]


@pytest.fixture
def run(tmp_path):
    out = tmp_path / "run"
    assert call_main(["train", "--task", "star-tiny", "--model", "arm", "--steps", "4", "--out", out, *TINY]) == 0
    yield out
    io.FAULTS.clear()


# each write site and the file a resume writes first through it ("text": every atomic rewrite of a file: on resume
# the first is metrics.jsonl's truncation to the checkpointed step, before the config)
@pytest.mark.parametrize("site,file", [("checkpoint", CHECKPOINT), ("metrics", "metrics.jsonl"),
                                       ("text", "metrics.jsonl"), ("plot", "training.png")])
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO])
def test_a_failed_write_stops_the_run_naming_it_and_a_resume_loses_nothing(run, capsys, site, file, code):
    before = load_checkpoint(run / CHECKPOINT)[1]["step"]
    io.FAULTS[site] = OSError(code, {errno.ENOSPC: "No space left on device", errno.EIO: "Input/output error"}[code])
    capsys.readouterr()
    stops = site != "plot"  # a picture that cannot be drawn is a warning: the run goes on
    assert call_main(["train", "--out", run, "--resume", "--steps", "8", "--quiet"]) == (2 if stops else 0)
    said = capsys.readouterr()
    said = said.err if stops else said.out + said.err
    assert f"cannot write {run / file}" in said and f"({errno.errorcode[code]})" in said, said
    assert not list(run.glob("*.tmp")) and not list(run.glob("*.tmp.png"))  # no temporary file left
    assert load_checkpoint(run / CHECKPOINT)[1]["step"] >= before  # the last good checkpoint is loadable
    load_run(run)
    assert not io.FAULTS  # the fault fired once
    assert call_main(["train", "--out", run, "--resume", "--steps", "8", "--quiet"]) == 0
    assert load_checkpoint(run / CHECKPOINT)[1]["step"] == 8
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # no step logged twice, none out of order


def test_safetensors_own_error_on_a_full_disk_is_named_as_one(tmp_path, monkeypatch):
    """safetensors reports a full disk as its own SafetensorError, not an OSError: it is named ENOSPC all the
    same, and the temporary file goes (the first attempt of benchmarks/disk_full.py found this)."""
    import torch

    from insertgen.core import checkpoint
    from insertgen.core.errors import InsertgenError

    def full(tensors, filename, metadata=None):
        open(filename, "wb").write(b"partial")
        raise RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(checkpoint, "save_file", full)
    with pytest.raises(InsertgenError, match=r"cannot write .*safetensors: No space left on device \(ENOSPC\)"):
        checkpoint.save_checkpoint(tmp_path / CHECKPOINT, {"w": torch.zeros(2)}, {"step": 1})
    assert not list(tmp_path.iterdir())
