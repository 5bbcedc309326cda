"""Training that survives faults: kill -9 at a random moment then --resume gives bit-identical parameters
(FlexMDM, LoFlexMDM, IP); a corrupt checkpoint is refused and the previous one is used on request; a
non-finite loss stops the run with the last good checkpoint intact (or skips the step on request);
checkpoints written for another model or vocabulary are refused."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from insertgen.engine.run import load_run
from insertgen.core.checkpoint import CHECKPOINT, PREVIOUS, load_checkpoint, save_checkpoint
from insertgen.core.errors import InsertgenError
from insertgen.engine.training_run import prepare_run

ROOT = Path(__file__).resolve().parent.parent
STEPS = 30
SIZES = {
    "flexmdm": {"model.d_model": 32, "model.n_layers": 1, "model.n_heads": 2},
    "loflexmdm": {"model.d_model": 32, "model.n_layers": 1, "model.n_heads": 2, "model.aux_d_model": 16,
                  "model.aux_n_layers": 1, "model.aux_n_heads": 2},
    "ip": {"model.d_model": 32, "model.n_layers": 1, "model.n_heads": 2, "model.posterior_d_model": 16,
           "model.posterior_n_layers": 1, "model.posterior_n_heads": 2},
}
TRAIN = {"batch_size": 8, "eval_every": 0, "log_every": 1, "checkpoint_every": 3}


def one_thread(fn):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the killed subprocess runs with one thread too: same float reductions
    try:
        return fn()
    finally:
        torch.set_num_threads(threads)


def train_here(out: Path, model: str, steps: int = STEPS, resume: bool = False, **extra):
    def run():
        _, trainer = prepare_run(task="star-easy", model=model, preset=None, steps=steps, out=out, seed=11,
                                 overrides={} if resume else {**TRAIN, **SIZES[model], **extra}, resume=resume)
        trainer.train(progress=False)
        return trainer
    return one_thread(run)


def tensors_of(run: Path) -> dict:
    tensors, _ = load_checkpoint(run / CHECKPOINT)
    return {k: v for k, v in tensors.items() if k.startswith(("model.", "ema.", "optim."))}


def logged_step(run: Path) -> int:
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
        return json.loads(lines[-1])["step"] if lines else 0
    except (OSError, ValueError, KeyError):  # the file is being written
        return 0


@pytest.mark.parametrize("model", ["flexmdm", "loflexmdm", "ip"])
def test_kill_9_at_a_random_step_then_resume_is_bit_identical(tmp_path, model):
    reference = train_here(tmp_path / "reference", model)
    assert reference.step == STEPS
    kill_after = random.Random(f"kill-{model}").randint(TRAIN["checkpoint_every"], STEPS - 10)
    sets = [arg for key, value in {**TRAIN, **SIZES[model]}.items() for arg in ("--set", f"{key}={value}")]
    run = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen([sys.executable, "-m", "insertgen.apps.cli", "train", "--task", "star-easy", "--model", model,
                             "--steps", str(STEPS), "--seed", "11", "--out", str(run), "--quiet", *sets],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while logged_step(run) < kill_after and proc.poll() is None and time.time() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = logged_step(run)
    assert killed_at < STEPS, "the run finished before it could be killed"
    resumed = train_here(run, model, resume=True)
    assert resumed.step == STEPS
    ref, got = tensors_of(tmp_path / "reference"), tensors_of(run)
    assert ref.keys() == got.keys()
    assert all(torch.equal(ref[k], got[k]) for k in ref), f"killed at step {killed_at}"
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, STEPS + 1))  # records after the checkpoint were dropped, then logged again


def test_corrupt_checkpoint_is_refused_and_the_previous_one_used_on_request(tmp_path):
    reference = train_here(tmp_path / "reference", "flexmdm", steps=9)
    run = tmp_path / "run"
    train_here(run, "flexmdm", steps=9)  # checkpoints at 3, 6, 9: the last two are kept
    assert load_checkpoint(run / PREVIOUS)[1]["step"] == 6
    data = (run / CHECKPOINT).read_bytes()
    (run / CHECKPOINT).write_bytes(data[: len(data) // 2])
    with pytest.raises(InsertgenError, match="corrupt.*--from-previous"):
        prepare_run(task=None, model=None, preset=None, steps=None, out=run, seed=None, overrides={}, resume=True)
    def resume_previous():
        _, trainer = prepare_run(task=None, model=None, preset=None, steps=None, out=run, seed=None, overrides={},
                                 resume=True, from_previous=True)
        assert trainer.step == 6
        trainer.train(progress=False)
    one_thread(resume_previous)
    ref = tensors_of(tmp_path / "reference")
    assert all(torch.equal(v, tensors_of(run)[k]) for k, v in ref.items())
    assert reference.step == 9


def test_a_checkpoint_missing_between_the_two_renames_resumes_from_the_previous_one(tmp_path):
    run = tmp_path / "run"
    train_here(run, "flexmdm", steps=6)
    (run / CHECKPOINT).unlink()  # as if killed after the old checkpoint was renamed away
    _, trainer = prepare_run(task=None, model=None, preset=None, steps=None, out=run, seed=None, overrides={},
                             resume=True)
    assert trainer.step == 3


def nan_at(trainer, bad_steps: set[int]):
    """Make the model's loss NaN at the given (0-based) steps."""
    original = trainer.model.loss

    def loss(batch, generator):
        value, stats = original(batch, generator)
        return (value * float("nan"), stats) if trainer.step in bad_steps else (value, stats)
    trainer.model.loss = loss


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    run = tmp_path / "run"
    _, trainer = prepare_run(task="star-easy", model="flexmdm", preset=None, steps=12, out=run, seed=1,
                             overrides={**TRAIN, **SIZES["flexmdm"]}, resume=False)
    nan_at(trainer, {7})
    with pytest.raises(InsertgenError, match=r"non-finite loss or gradient at step 7 .*last good checkpoint \(step 6\)"):
        trainer.train(progress=False)
    tensors, state = load_checkpoint(run / CHECKPOINT)
    assert state["step"] == 6 and all(torch.isfinite(v).all() for k, v in tensors.items() if v.is_floating_point())
    assert load_run(run) is not None


def test_nan_steps_are_skipped_on_request_until_too_many_in_a_row(tmp_path):
    run = tmp_path / "run"
    _, trainer = prepare_run(task="star-easy", model="flexmdm", preset=None, steps=10, out=run, seed=1,
                             overrides={**TRAIN, **SIZES["flexmdm"], "on_nonfinite": "skip"}, resume=False)
    nan_at(trainer, {2, 5})
    trainer.train(progress=False)
    tensors, state = load_checkpoint(run / CHECKPOINT)
    assert state["step"] == 10 and state["nonfinite_steps"] == 2
    assert all(torch.isfinite(v).all() for v in tensors.values() if v.is_floating_point())
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "skipped" in r] == [3, 6]
    assert (run / "training.png").is_file()

    run2 = tmp_path / "run2"
    _, trainer = prepare_run(task="star-easy", model="flexmdm", preset=None, steps=20, out=run2, seed=1,
                             overrides={**TRAIN, **SIZES["flexmdm"], "on_nonfinite": "skip",
                                        "max_nonfinite_skips": 3}, resume=False)
    nan_at(trainer, set(range(4, 20)))
    with pytest.raises(InsertgenError, match="3 steps in a row"):
        trainer.train(progress=False)
    tensors, state = load_checkpoint(run2 / CHECKPOINT)  # step 6's checkpoint holds step 4's good update
    assert state["step"] == 6 and all(torch.isfinite(v).all() for v in tensors.values() if v.is_floating_point())


@pytest.mark.parametrize("field, value, message", [("model", "ip", "holds a 'ip' model"),
                                                    ("vocab", "0123456789abcdef", "another vocabulary")])
def test_checkpoint_for_another_model_or_vocabulary_is_refused(tmp_path, field, value, message):
    run = tmp_path / "run"
    train_here(run, "flexmdm", steps=3)
    tensors, state = load_checkpoint(run / CHECKPOINT)
    save_checkpoint(run / CHECKPOINT, tensors, {**state, field: value})
    with pytest.raises(InsertgenError, match=message):
        load_run(run)
    with pytest.raises(InsertgenError, match=message):
        prepare_run(task=None, model=None, preset=None, steps=None, out=run, seed=None, overrides={}, resume=True)


class _Payload:
    """Unpickling this object would create the file ``path``: the classic pickle code-execution hole."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickled_checkpoint_from_elsewhere_is_refused_without_running_its_code(tmp_path):
    run = tmp_path / "run"
    train_here(run, "flexmdm", steps=3)
    marker = tmp_path / "pwned"
    torch.save({"model": _Payload(str(marker))}, run / CHECKPOINT)  # what a pickle-based tool would load
    with pytest.raises(InsertgenError, match="corrupt or unreadable"):
        load_run(run)
    with pytest.raises(InsertgenError, match="corrupt or unreadable"):
        prepare_run(task=None, model=None, preset=None, steps=None, out=run, seed=None, overrides={}, resume=True)
    assert not marker.exists()


@pytest.mark.parametrize("model", ["loflexmdm", "ip"])
def test_a_run_killed_before_its_first_checkpoint_starts_again_identically(tmp_path, model):
    """Killed after writing config.json and a few metrics but before any checkpoint: --resume trains it
    from step 0 again (same initial parameters from the seed) and ends where the uninterrupted run ends."""
    train_here(tmp_path / "reference", model, steps=6)
    run = tmp_path / "run"
    one_thread(lambda: prepare_run(task="star-easy", model=model, preset=None, steps=6, out=run, seed=11,
                                   overrides={**TRAIN, **SIZES[model]}, resume=False))
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n')  # logged before the kill
    resumed = train_here(run, model, steps=6, resume=True)
    assert resumed.step == 6
    ref, got = tensors_of(tmp_path / "reference"), tensors_of(run)
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == list(range(1, 7))
