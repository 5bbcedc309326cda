"""Tests of the performance harness (``insertgen bench``): FLOP counting, spec parsing, the CLI contract."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from conftest import call_main
from insertgen.apps.bench import _cpu_attention_flops, count_step_flops, parse_spec, peak_gflops
from insertgen.core.errors import InsertgenError


def test_attention_flops_are_counted_on_cpu():
    """Forward attention is two batched products of 2 b h s s d FLOPs each; backward counts 2.5 times."""
    b, h, s, d = 2, 3, 10, 8
    q = torch.randn(b, h, s, d, requires_grad=True)
    counter = FlopCounterMode(display=False, custom_mapping=_cpu_attention_flops())
    with counter:
        out = torch.nn.functional.scaled_dot_product_attention(q, q, q)
    assert counter.get_total_flops() == 4 * b * h * s * s * d
    with counter:
        out.sum().backward()
    assert counter.get_total_flops() == 4 * b * h * s * s * d * 5 // 2


def test_step_flops_match_the_linear_layers_of_a_tiny_model(tmp_path):
    """ARM step FLOPs = 3 x forward (forward + two backward products per matmul) and the forward's linear
    layers are 2 x tokens x their weights, so the count lies between the linear-layer count and that plus
    attention."""
    from insertgen.engine.training_run import prepare_run

    _, trainer = prepare_run("star-easy", "arm", None, 3, tmp_path / "r", 0,
                             {"d_model": 32, "n_layers": 1, "n_heads": 2, "eval_every": 0}, resume=False)
    flops = count_step_flops(trainer)
    linear = sum(m.weight.numel() for m in trainer.model.modules() if isinstance(m, torch.nn.Linear))
    batch = trainer.cfg.batch_size
    width = trainer.buffer_len
    assert flops >= 3 * 2 * linear * batch * 0.5 * width  # at least half the buffer is real tokens
    assert flops <= 3 * 2 * linear * batch * width + 3 * 4 * batch * width * width * 32


def test_peak_and_spec_parsing():
    peak = peak_gflops(sizes=(64, 128), seconds=0.05)
    assert peak["peak_gflops"] > 0 and set(peak["rates"]) == {64, 128}
    assert parse_spec("star-medium-cpu:d_model=256,n_heads=8,lr=1e-4,lr_schedule=cosine") == (
        "star-medium-cpu", {"d_model": 256, "n_heads": 8, "lr": 1e-4, "lr_schedule": "cosine"})
    assert parse_spec("star-easy-cpu:compile=true")[1] == {"compile": True}
    with pytest.raises(InsertgenError, match="expects key=value"):
        parse_spec("star-easy-cpu:d_model")


def test_bench_cli_prints_one_json_object_per_measurement(capsys):
    assert call_main(["bench", "--quick", "--json", "--preset", "star-easy-cpu:d_model=32,n_layers=1,n_heads=2",
                      "--steps", "2", "--sample-steps", "4", "-n", "8"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["kind"] for r in rows] == ["peak", "train", "sample"]
    train, sample = rows[1], rows[2]
    assert train["model"] == "flexmdm" and train["flops_per_step"] > 0 and 0 < train["mfu"]
    assert train["mfu"] == pytest.approx(train["flops_per_step"] / train["median_step_s"] / 1e9 / train["peak_gflops"])
    assert sample["n"] == 8 and sample["steps"] == 4 and 0 < sample["model_evals_per_seq"] <= 5
    # the shipped model samples with its own settings unless a generated sampler flag changes one
    assert sample["sampler_options"]["grid"] == "unmask" and sample["sampler_options"]["top_k"] == 1
    assert call_main(["bench", "--quick", "--json", "--preset", "star-easy-cpu:d_model=32,n_layers=1,n_heads=2",
                      "--steps", "2", "--sample-steps", "4", "-n", "8", "--grid", "uniform", "--no-greedy"]) == 0
    sample = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert sample["sampler_options"]["grid"] == "uniform" and sample["sampler_options"]["top_k"] is None


def test_compiled_trunks_train_like_eager_ones(tmp_path):
    """train.compile=True compiles every Transformer trunk in place: same parameter names, and the first
    steps' losses equal the eager run's (float tolerance: compiled kernels reassociate sums)."""
    from insertgen.engine.training_run import prepare_run

    small = {"d_model": 32, "n_layers": 1, "n_heads": 2, "eval_every": 0}
    losses = {}
    for compiled in (False, True):
        _, trainer = prepare_run("star-easy", "flexmdm", None, 3, tmp_path / f"c{compiled}", 0,
                                 {**small, "compile": compiled}, resume=False)
        losses[compiled] = [trainer.train_step()[1] for _ in range(3)]
        names = list(trainer.model.state_dict())
        assert not any("_orig_mod" in n for n in names)
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)
