"""Data-parallel training under torchrun (gloo, 2 processes) against one process with the same global
batch: the ranks end with identical parameters, equal to the single process's up to float summation
order, for FlexMDM, LoFlexMDM and IP; `insertgen train` under torchrun resumes exactly."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from insertgen.core.checkpoint import CHECKPOINT, load_checkpoint, split_prefix
from insertgen.engine.training_run import prepare_run

ROOT = Path(__file__).resolve().parent.parent
COMMON = {"batch_size": 8, "eval_every": 0, "log_every": 1, "checkpoint_every": 100, "steps": 5}
SIZES = {
    "flexmdm": {"model.d_model": 32, "model.n_layers": 1, "model.n_heads": 2},
    "loflexmdm": {"model.d_model": 32, "model.n_layers": 1, "model.n_heads": 2, "model.aux_d_model": 16,
                  "model.aux_n_layers": 1, "model.aux_n_heads": 2},
    "ip": {"model.d_model": 32, "model.n_layers": 1, "model.n_heads": 2, "model.posterior_d_model": 16,
           "model.posterior_n_layers": 1, "model.posterior_n_heads": 2, "model.posterior_lr_scale": 1.0},
}


def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def single_process(out: Path, model: str, overrides: dict, steps: int | None = None):
    """The same run in this process, the global batch split into 2 accumulation steps."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _, trainer = prepare_run(task="star-easy", model=model, preset=None, steps=steps, out=out, seed=7,
                                 overrides={**overrides, "grad_accum": 2}, resume=False)
        trainer.train(progress=False)
    finally:
        torch.set_num_threads(threads)
    return trainer.model.state_dict()


def assert_close(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys()
    for k in a:
        scale = max(float(a[k].abs().max()), 1e-3)
        assert float((a[k] - b[k]).abs().max()) <= 1e-5 * scale, f"{what}: {k}"


def test_two_ranks_match_each_other_and_one_process_with_the_same_global_batch(tmp_path):
    runs = {model: {**COMMON, **SIZES[model]} for model in SIZES}
    torchrun(str(ROOT / "benchmarks" / "ddp_worker.py"), str(tmp_path / "ddp"), json.dumps(runs), cwd=tmp_path)
    for model, overrides in runs.items():
        rank0 = load_file(str(tmp_path / "ddp" / model / "rank0.safetensors"))
        rank1 = load_file(str(tmp_path / "ddp" / model / "rank1.safetensors"))
        assert all(torch.equal(rank0[k], rank1[k]) for k in rank0), model  # bit-identical across ranks
        single = single_process(tmp_path / "single" / model, model, overrides)
        assert_close(rank0, single, model)
        # training moved the parameters (the comparison is not between two initialisations)
        fresh = prepare_run(task="star-easy", model=model, preset=None, steps=None, out=tmp_path / "fresh" / model,
                            seed=7, overrides=overrides, resume=False)[1].model.state_dict()
        assert any(not torch.equal(fresh[k], rank0[k]) for k in rank0), model


def test_cli_under_torchrun_writes_one_run_and_resumes_exactly(tmp_path):
    """`torchrun ... -m insertgen.apps.cli train` for LoFlexMDM: 3 steps, then --resume to 6, equals 6 steps of one
    process with the same global batch; rank 0 alone logged, each step once."""
    sets = [arg for key, value in {**COMMON, **SIZES["loflexmdm"]}.items() if key != "steps"
            for arg in ("--set", f"{key}={value}")]
    base = ["-m", "insertgen.apps.cli", "train", "--task", "star-easy", "--model", "loflexmdm", "--seed", "7",
            "--out", str(tmp_path / "run"), "--quiet", "--device", "cpu"]
    torchrun(*base, "--steps", "3", *sets, cwd=tmp_path)
    proc = torchrun(*base, "--steps", "6", "--resume", cwd=tmp_path)
    assert proc.stdout.count("finished at step 6") == 1
    tensors, state = load_checkpoint(tmp_path / "run" / CHECKPOINT)
    assert state["step"] == 6 and state["world_size"] == 2
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    overrides = {**COMMON, **SIZES["loflexmdm"]}
    single = single_process(tmp_path / "single", "loflexmdm", overrides, steps=6)
    assert_close(split_prefix(tensors, "model"), single, "resumed DDP run")


@pytest.mark.parametrize("batch_size, grad_accum", [(8, 3), (7, 2)])
def test_a_global_batch_that_does_not_split_is_refused(tmp_path, batch_size, grad_accum):
    from insertgen.core.errors import InsertgenError

    with pytest.raises(InsertgenError, match="grad_accum|does not split"):
        prepare_run(task="star-easy", model="flexmdm", preset=None, steps=1, out=tmp_path / "r", seed=0,
                    overrides={**SIZES["flexmdm"], "batch_size": batch_size, "grad_accum": grad_accum}, resume=False)
