"""insertgen-toy: a model family and a task from outside insertgen, as another installed package would provide
them (its entry points: pyproject.toml beside this folder). The tests install it into a temporary site
directory and run it through every command in fresh processes (tests/test_plugins.py), and register it
in-process (tests/test_model_family.py).

* family ``toy``: p(target) = p(length) prod_i p(token_i | position i), ignoring the prompt;
* task ``toy-copy``: the prompt is 2-5 digits, the target the same digits.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch import nn

from insertgen.core.data import Batch, Example
from insertgen.core.generation import Requests
from insertgen.core.sampling import SamplerOptions, sample_from_logits
from insertgen.core.vocab import Vocab
from insertgen.models.family import ModelFamily
from insertgen.nn.backbone_config import BackboneConfig
from insertgen.tasks.base import SPLITS, Task, sequence_match


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


class CopyTask(Task):
    """Copy the prompt's digits."""

    name = "toy-copy"
    prompt_block = target_block = 5

    def __init__(self, size: int = 200):
        self.vocab = Vocab([str(d) for d in range(10)])
        self.size = int(size)

    def _draw(self, n: int, seed: int) -> list[Example]:
        r = random.Random(seed)
        out = []
        for _ in range(n):
            digits = tuple(self.vocab.encode([str(r.randint(0, 9)) for _ in range(r.randint(2, 5))]))
            out.append(Example(digits, digits))
        return out

    def examples(self, split: str) -> list[Example]:
        return self._draw(self.size, SPLITS.index(split))

    def fresh_examples(self, n: int, seed: int) -> list[Example]:
        return self._draw(n, 1000 + seed)

    def parse_prompt(self, text: str) -> list[int]:
        return self.vocab.encode(text)

    def parse_target(self, prompt: list[int], text: str) -> list[int]:
        return self.vocab.encode(text)

    def evaluate(self, examples, outputs) -> dict[str, float]:
        scores = [sequence_match(list(ex.target), [int(i) for i in out]) for ex, out in zip(examples, outputs)]
        n = max(len(scores), 1)
        return {"n": len(scores), "exact_match": sum(s[0] for s in scores) / n,
                "token_accuracy": sum(s[1] for s in scores) / n}

    def config(self) -> dict:
        return {"task": self.name, "size": self.size}
