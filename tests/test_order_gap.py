"""benchmarks/order_gap.py: the gain a learned order could bring over the uniform one, log p(x) - ELBO(uniform)
= KL(uniform || p(sigma | x)), checked against the sum over every permutation of a short target."""

from __future__ import annotations

import importlib.util
import itertools
import math
from pathlib import Path

import pytest
import torch

from insertgen.core.errors import InsertgenError
from insertgen.models.registry import build_model, task_defaults
from insertgen.tasks import get_task

_SPEC = importlib.util.spec_from_file_location("order_gap", Path(__file__).resolve().parents[1] / "benchmarks" / "order_gap.py")
_ORDER_GAP = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_ORDER_GAP)
named_orders, order_gap = _ORDER_GAP.named_orders, _ORDER_GAP.order_gap


def _model(model_id, task, seed=0):
    torch.manual_seed(seed)
    options = {**task_defaults(model_id, task), "d_model": 16, "n_layers": 1, "n_heads": 2}
    if model_id == "ip":
        options.update(posterior_d_model=16, posterior_n_layers=1, posterior_n_heads=2)
    model = build_model(model_id, task.vocab, options).eval()
    with torch.no_grad():  # output heads start at zero (every order equally likely): give them a preference
        for parameter in model.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    return model


def test_named_orders_follow_the_distance_from_the_junction():
    task = get_task("star-tiny")
    ex = task.examples("test")[0]
    dist = task.order_reference(list(ex.prompt), list(ex.target))
    named = named_orders(task, list(ex.prompt), list(ex.target))
    assert sorted(named["junction_first"]) == sorted(named["goal_first"]) == list(range(len(ex.target)))
    assert [dist[k] for k in named["junction_first"]] == sorted(dist)
    assert [dist[k] for k in named["goal_first"]] == sorted(dist, reverse=True)


@pytest.mark.parametrize("model_id", ["ao-ip", "ip"])
def test_gain_matches_the_permutation_sum_and_is_a_kl(model_id):
    task = get_task("star-tiny")  # 4 target tokens: 24 orders
    model = _model(model_id, task)
    ex = task.examples("test")[0]
    prompt, target = list(ex.prompt), list(ex.target)
    with torch.inference_mode():
        every = [list(p) for p in itertools.permutations(range(len(target)))]
        log_joint = model.trajectory_log_prob(prompt, target, every)
        log_px = float(torch.logsumexp(log_joint, 0))
        exact_gain = log_px - (math.lgamma(len(target) + 1) + float(log_joint.mean()))
        result = order_gap(model, task, [ex], samples=4000)
    assert result["log_px"]["mean"] == pytest.approx(log_px, abs=1e-6)  # dynamic programme = permutation sum
    assert exact_gain > 0  # KL(uniform || p(sigma | x)) of a random network
    assert result["gain_uniform"]["mean"] == pytest.approx(exact_gain, abs=0.05 + 0.05 * exact_gain)
    named = named_orders(task, prompt, target)
    for name, order in named.items():
        lp = float(log_joint[every.index(order)])
        assert result[f"{name}_vs_uniform"]["mean"] == pytest.approx(math.lgamma(5) + lp - log_px, abs=1e-6)
    assert ("gain_posterior" in result) == (model_id == "ip")
    if model_id == "ip":
        assert result["gain_posterior"]["mean"] > -0.05  # no posterior beats log p(x)


def test_refuses_a_model_that_is_not_an_insertion_process():
    task = get_task("star-tiny")
    with pytest.raises(InsertgenError, match="not an insertion process"):
        order_gap(_model("mdm", task), task, task.examples("test")[:1], samples=2)
