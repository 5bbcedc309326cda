"""Model families as registered units: the toy family of the test plugin package (tests/plugins/insertgen_toy),
registered with one call, goes through train / sample / eval / score / reproduce (the CLI in-process) without
any other file knowing it; and the built-in families' records say what their models do. The same package
found through its entry points in fresh processes: tests/test_plugins.py."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from conftest import PLUGINS, call_main
from insertgen.core.sampling import SamplerOptions
from insertgen.models.family import CAPABILITIES, GenerativeModel, ModelFamily
from insertgen.models.registry import FAMILIES, build_model, get_family, model_ids, register, unregister
from insertgen.tasks import get_task

sys.path.insert(0, str(PLUGINS))
from insertgen_toy import TOY, PositionUnigram, PositionUnigramConfig  # noqa: E402


@pytest.fixture
def toy_family():
    register(TOY)
    yield TOY
    unregister("toy")


def test_a_registered_toy_family_trains_samples_evaluates_scores_and_reproduces(toy_family, tmp_path, capsys):
    assert "toy" in model_ids() and get_family("toy") is TOY
    run = tmp_path / "toy-run"
    assert call_main(["train", "--task", "star-tiny", "--model", "toy", "--steps", "30", "--set", "batch_size=16",
                      "--set", "lr=0.05", "--set", "eval_every=0", "--quiet", "--out", run]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "toy" and config["model_config"]["max_len"] == get_task("star-tiny").buffer_len
    losses = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines() if "loss" in line]
    assert losses[-1] < losses[0]  # it learns (the length and the token marginals)

    prompts = tmp_path / "prompts.jsonl"
    example = get_task("star-tiny").examples("test")[0]
    prompts.write_text(json.dumps({"prompt": get_task("star-tiny").format(example.prompt)}) + "\n")
    assert call_main(["sample", "--run", run, "--input", prompts, "--output", tmp_path / "out.jsonl"]) == 0
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 1

    assert call_main(["eval", "--run", run, "--limit", "8", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["n"] == 8 and 0.0 <= metrics["token_accuracy"] <= 1.0

    texts = tmp_path / "texts.jsonl"
    texts.write_text(json.dumps({"prompt": get_task("star-tiny").format(example.prompt),
                                 "text": get_task("star-tiny").format(example.target)}) + "\n")
    assert call_main(["score", "--run", run, "--input", texts, "--output", tmp_path / "scores.jsonl"]) == 0
    assert json.loads((tmp_path / "scores.jsonl").read_text())["log_likelihood"] < 0

    grid = tmp_path / "grid"
    assert call_main(["reproduce", "--tasks", "star-tiny", "--models", "toy", "--seeds", "0", "--budget", "1s",
                      "--eval-n", "8", "--set", "batch_size=8", "--jobs", "1", "--out", grid]) == 0
    cell = json.loads((grid / "cells" / "star-tiny--toy--seed0.json").read_text())
    assert set(cell["samplers"]) == {"independent"}
    assert "toy" in (grid / "results.md").read_text()


def test_registering_twice_or_an_unknown_capability_is_refused(toy_family):
    with pytest.raises(ValueError, match="already registered"):
        register(TOY)
    with pytest.raises(ValueError, match="unknown capabilities"):
        ModelFamily("bad", "Bad", PositionUnigram, PositionUnigramConfig, SamplerOptions, TOY.samplers,
                    capabilities=frozenset({"teleport"}))


@pytest.mark.parametrize("model_id", ["flexmdm", "loflexmdm", "ip", "ao-ip", "arm", "mdm"])
def test_built_in_families_describe_their_models(model_id):
    """Each family's record matches its model: the interface, the declared capabilities' methods, the
    tiny sizes build, and its samplers' options are of its own options class."""
    family = get_family(model_id)
    task = get_task("star-tiny")
    model = build_model(model_id, task.vocab, {**family.tiny, "max_len": task.buffer_len,
                                                **({"target_len": task.target_block} if model_id == "mdm" else {})})
    assert isinstance(model, GenerativeModel) and model.model_id == model_id
    methods = {"score": "log_likelihood", "schedule_profile": "schedule_rates", "posterior_orders": "sample_orders",
               "lr_scales": "lr_scales", "training_step": "set_training_step"}
    for capability, method in methods.items():  # a declared capability has its method (AO-IP inherits
        assert not family.can(capability) or hasattr(model, method), (model_id, capability)  # sample_orders)
    assert family.can("score") == bool(getattr(model, "likelihood_bounds", ()))
    assert set(CAPABILITIES) >= family.capabilities
    samplers = family.samplers(4, True)
    assert samplers and all(isinstance(o, family.options_class) and o.top_k == 1 for o in samplers.values())
    outputs = model.sample([list(ex.prompt) for ex in task.examples("test")[:2]], next(iter(samplers.values())),
                           torch.Generator().manual_seed(0))
    assert len(outputs) == 2
    assert list(FAMILIES)[:6] == ["flexmdm", "loflexmdm", "ao-ip", "ip", "arm", "mdm"]  # the tables' order


def test_sampler_options_split_into_shared_and_family_fields():
    from insertgen.models.flexmdm.sampler import TauLeapingOptions
    from insertgen.models.mdm.model import UnmaskingOptions

    shared = SamplerOptions(top_k=3, temperature=0.5)
    tau = TauLeapingOptions.of(shared, steps=7)
    assert (tau.top_k, tau.temperature, tau.steps, tau.order) == (3, 0.5, 7, "joint")
    assert not hasattr(shared, "steps") and SamplerOptions.of(tau) == shared
    assert UnmaskingOptions.from_choices({"steps": 5, "order": "insert_first", "top_k": 1}) == \
        UnmaskingOptions(steps=5, top_k=1)  # order is the tau-leaping sampler's, not MDM's
    with pytest.raises(ValueError, match="order must be"):
        TauLeapingOptions(order="sideways")
