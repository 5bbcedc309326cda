"""Left-to-right autoregressive baseline (ARM): a causal Transformer on ``[prompt, BOS, target, EOS]``.

    log p(x | prompt) = sum_{j=1}^{L+1} log p(y_j | prompt, BOS, y_<j),     y = (target, EOS)

Training minimises the next-token cross-entropy on the target tokens and EOS only (the prompt and BOS
are conditioning), averaged over those tokens in the batch. Sampling decodes one token per step with a
key/value cache (:mod:`insertgen.nn.kv_cache`): the prompts are left-padded so that every sequence's
next token is in the same column, a step feeds one position per sequence, and a sequence leaves the
batch when it emits EOS (terminated) or fills the length cap ``max_len - len(prompt) - 2`` (not
terminated). ``score`` gives the exact log-likelihood above by teacher forcing in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from insertgen.core.data import Batch, Example, collate
from insertgen.core.errors import InsertgenError
from insertgen.core.estimates import Estimate
from insertgen.core.generation import Requests
from insertgen.core.sampling import SamplerOptions, sample_from_logits
from insertgen.core.vocab import Vocab
from insertgen.nn.backbone_config import BackboneConfig
from insertgen.nn.heads import TokenHead
from insertgen.nn.kv_cache import KVCache
from insertgen.nn.transformer import Transformer, TransformerConfig


@dataclass
class ARMConfig(BackboneConfig):
    pass


class ARM(nn.Module):
    model_id = "arm"
    likelihood_bounds = ("exact",)

    def __init__(self, vocab: Vocab, config: ARMConfig):
        super().__init__()
        self.vocab, self.config = vocab, config
        self.trunk = Transformer(TransformerConfig(
            vocab_size=len(vocab), d_model=config.d_model, n_layers=config.n_layers, n_heads=config.n_heads,
            mlp_ratio=config.mlp_ratio, dropout=config.dropout, causal=True, time_conditioning=False,
            max_len=config.max_len, **config.input_options(),
        ))
        self.head = TokenHead(config.d_model, len(vocab))
        # PAD, MASK and BOS are never generated; EOS ends the sequence
        banned = torch.zeros(len(vocab), dtype=torch.bool)
        banned[[vocab.pad_id, vocab.mask_id, vocab.bos_id]] = True
        self.register_buffer("banned", banned, persistent=False)

    def forward(self, tokens: Tensor, pad_mask: Tensor, cache: KVCache | None = None) -> Tensor:
        """Next-token log-probabilities (B, L, V) at every position (PAD, MASK, BOS excluded)."""
        h, _ = self.trunk(tokens, pad_mask, cache=cache)
        return torch.log_softmax(self.head(h).float().masked_fill(self.banned, float("-inf")), dim=-1)

    @staticmethod
    def _predicted(tokens: Tensor, fixed: Tensor, vocab: Vocab) -> Tensor:
        """(B, L) True where a token is predicted: target tokens and the EOS that ends them."""
        return (~fixed & (tokens != vocab.pad_id)) | (tokens == vocab.eos_id)

    def token_log_probs(self, tokens: Tensor, fixed: Tensor) -> tuple[Tensor, Tensor]:
        """Teacher-forced log p(x_j | x_<j) (B, L-1) for positions 1..L-1, and which of them count."""
        pad_mask = tokens != self.vocab.pad_id
        logp = self(tokens[:, :-1], pad_mask[:, :-1])
        picked = logp.gather(-1, tokens[:, 1:, None]).squeeze(-1)
        counted = self._predicted(tokens, fixed, self.vocab)[:, 1:]
        return picked.masked_fill(~counted, 0.0), counted

    def loss(self, batch: Batch, generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, float]]:
        picked, counted = self.token_log_probs(batch.tokens, batch.fixed)
        n = counted.sum().clamp_min(1)
        nll = -picked.sum() / n
        per_seq = -picked.sum(1)
        return nll, {"nll_per_token": float(nll.detach()), "nll_per_seq": float(per_seq.detach().mean()),
                     "tokens": int(n)}

    # ----- sampling -----
    def _left_padded(self, rows: list[list[int]], device) -> tuple[Tensor, Tensor]:
        width = max(len(r) for r in rows)
        tokens = torch.full((len(rows), width), self.vocab.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            tokens[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
        tokens = tokens.to(device)
        return tokens, tokens != self.vocab.pad_id

    @torch.no_grad()
    def sample(self, prompts: list[list[int]], options: SamplerOptions | None = None,
               generator: torch.Generator | None = None, return_trajectory: bool = False,
               use_cache: bool = True, prompt_in_target: bool = False):
        """Left-to-right decoding with temperature / top-k / top-p / greedy (``confidence`` does not
        apply). ``use_cache=False`` re-encodes the whole prefix at
        every step (the reference the cached decoder must reproduce). With ``prompt_in_target`` the
        prompt is the forced start of the output: decoding reads ``[BOS, prompt]`` and continues."""
        options = SamplerOptions.of(options)
        v = self.vocab
        device = next(self.parameters()).device
        requests = Requests.of(prompts, v, self.config.max_len, prompt_in_target)
        caps = requests.cap
        starts = [[*c, v.bos_id, *s] for c, s in zip(requests.context, requests.start)]
        outputs: list[list[int]] = [list(s) for s in requests.start]
        terminated = [False] * len(prompts)
        evals = [0] * len(prompts)
        choose = dict(temperature=options.temperature, top_k=options.top_k, top_p=options.top_p)
        alive = [i for i in range(len(prompts)) if len(outputs[i]) < caps[i]]
        forward_calls = 0
        if alive:
            tokens, pad_mask = self._left_padded([starts[i] for i in alive], device)
            cache = KVCache.empty(self.config.n_layers) if use_cache else None
            logp = self(tokens, pad_mask, cache)[:, -1]
        while alive:
            forward_calls += 1
            nxt = sample_from_logits(logp, generator, **choose)
            keep = []
            for r, i in enumerate(alive):
                evals[i] += 1
                tok = int(nxt[r])
                if tok == v.eos_id:
                    terminated[i] = True
                    continue
                outputs[i].append(tok)
                if len(outputs[i]) < caps[i]:
                    keep.append(r)
            if not keep:
                break
            rows = torch.tensor(keep, device=device)
            alive = [alive[r] for r in keep]
            new = nxt.index_select(0, rows)[:, None]
            if use_cache:
                cache = cache.select(rows)
                logp = self(new, torch.ones_like(new, dtype=torch.bool), cache)[:, -1]
            else:
                tokens = torch.cat([tokens.index_select(0, rows), new], dim=1)
                pad_mask = tokens != v.pad_id
                logp = self(tokens, pad_mask)[:, -1]
        steps = [[-1] * len(s) + list(range(len(o) - len(s))) for s, o in zip(requests.start, outputs)]
        return requests.result(outputs, return_trajectory, insert_step=steps, model_evals=evals,
                               forward_calls=forward_calls, terminated=terminated)

    # ----- likelihood -----
    @torch.no_grad()
    def log_likelihood(self, pairs: list[tuple[list[int], list[int]]], bound: str = "exact", samples: int = 1,
                       seed: int = 0, batch_size: int = 256) -> list[Estimate]:
        """Exact ``log p(target, EOS | prompt)`` per pair (``samples`` and ``seed`` are not used)."""
        if bound not in self.likelihood_bounds:
            raise InsertgenError(f"model 'arm' gives the exact log-likelihood only, not {bound!r}")
        device = next(self.parameters()).device
        for prompt, target in pairs:
            if len(prompt) + len(target) + 2 > self.config.max_len:
                raise InsertgenError(f"a sequence of {len(prompt) + len(target) + 2} tokens exceeds the model's "
                                     f"buffer of {self.config.max_len}")
        out: list[float] = []
        for start in range(0, len(pairs), batch_size):
            chunk = [Example(tuple(p), tuple(t)) for p, t in pairs[start : start + batch_size]]
            batch = collate(chunk, self.vocab).to(device)
            picked, _ = self.token_log_probs(batch.tokens, batch.fixed)
            out.extend(Estimate(float(x)) for x in picked.double().sum(1))
        return out
