"""Model families as registered units: a toy family defined here, registered with one call, goes through
train / sample / eval / score / reproduce (the CLI in-process) without any other file knowing it; and the
built-in families' records say what their models do."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from conftest import call_main
from insertgen.core.data import Batch
from insertgen.core.generation import Requests
from insertgen.core.sampling import SamplerOptions, sample_from_logits
from insertgen.models.family import CAPABILITIES, GenerativeModel, ModelFamily
from insertgen.models.registry import FAMILIES, build_model, get_family, model_ids, register, unregister
from insertgen.nn.backbone_config import BackboneConfig
from insertgen.tasks import get_task


@dataclass
class PositionUnigramConfig(BackboneConfig):
    pass  # only max_len is used; the backbone sizes let presets size it like the others


class PositionUnigram(nn.Module):
    """p(target) = p(length) prod_i p(token_i | position i): ignores the prompt. Small, exact and trainable."""

    model_id = "toy"
    likelihood_bounds = ("exact",)

    def __init__(self, vocab, config: PositionUnigramConfig):
        super().__init__()
        self.vocab, self.config = vocab, config
        self.token_logits = nn.Parameter(torch.zeros(config.max_len, len(vocab)))
        self.length_logits = nn.Parameter(torch.zeros(config.max_len + 1))
        banned = torch.zeros(len(vocab), dtype=torch.bool)
        banned[[vocab.pad_id, vocab.mask_id, vocab.bos_id, vocab.eos_id]] = True
        self.register_buffer("banned", banned, persistent=False)

    def _log_probs(self):
        token = torch.log_softmax(self.token_logits.masked_fill(self.banned, float("-inf")), -1)
        return token, torch.log_softmax(self.length_logits, -1)

    def _target_log_prob(self, tokens: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        token, length = self._log_probs()
        position = (target.cumsum(1) - 1).clamp(min=0)
        per_token = token[position, tokens].masked_fill(~target, 0.0).sum(1)
        return per_token + length[target.sum(1)]

    def loss(self, batch: Batch, generator=None):
        target = ~batch.fixed & (batch.tokens != self.vocab.pad_id)
        nll = -self._target_log_prob(batch.tokens, target)
        return nll.mean() / (target.sum(1).float().mean() + 1), {"nll": float(nll.detach().mean())}

    @torch.no_grad()
    def sample(self, prompts, options=None, generator=None, return_trajectory=False, prompt_in_target=False):
        options = SamplerOptions.of(options)
        choose = dict(temperature=options.temperature, top_k=options.top_k, top_p=options.top_p)
        longest = self.config.max_len - max(len(p) for p in prompts) - 2
        lengths = sample_from_logits(self.length_logits[: longest + 1].expand(len(prompts), -1), generator, **choose)
        tokens = sample_from_logits(self.token_logits[:longest].expand(len(prompts), -1, -1), generator,
                                    banned=self.banned, **choose)
        outputs = [tokens[i, : int(n)].tolist() for i, n in enumerate(lengths)]
        requests = Requests.of(prompts, self.vocab, self.config.max_len)
        return requests.result(outputs, return_trajectory, model_evals=[1] * len(prompts), forward_calls=1)

    @torch.no_grad()
    def log_likelihood(self, pairs, bound="exact", samples=1, seed=0):
        out = []
        for prompt, target in pairs:
            tokens = torch.tensor([list(target)])
            out.append(float(self._target_log_prob(tokens, torch.ones_like(tokens, dtype=torch.bool))))
        return out


TOY = ModelFamily("toy", "Toy", PositionUnigram, PositionUnigramConfig, SamplerOptions,
                  lambda steps, greedy: {"independent": SamplerOptions(top_k=1 if greedy else None)},
                  capabilities=frozenset({"score"}), tiny={"d_model": 32, "n_layers": 1, "n_heads": 2})


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
