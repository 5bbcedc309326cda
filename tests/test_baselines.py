"""Baselines: ARM (causal, key/value cache, exact likelihood) and fixed-canvas MDM (absorbing process)."""

import math

import pytest
import torch

from insertgen.core.data import collate
from insertgen.core.sampling import SamplerOptions
from insertgen.models.arm.model import ARM, ARMConfig
from insertgen.models.mdm.model import MDM, MDMConfig, UnmaskingOptions
from insertgen.nn.kv_cache import KVCache
from insertgen.nn.transformer import Transformer, TransformerConfig
from insertgen.tasks import get_task
from insertgen.tasks.base import Example

TASK = get_task("star-easy")
VOCAB = TASK.vocab
GREEDY = SamplerOptions(top_k=1)


def _perturbed(model, seed: int, scale: float = 0.5):
    """Leave the zero initialisation of the heads: a random, non-uniform model."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return model.eval()


def tiny_arm(seed=0, max_len=40) -> ARM:
    torch.manual_seed(seed)
    return _perturbed(ARM(VOCAB, ARMConfig(d_model=32, n_layers=2, n_heads=2, mlp_ratio=2, max_len=max_len)), seed)


def tiny_mdm(seed=0, perturb=True, **kw) -> MDM:
    torch.manual_seed(seed)
    model = MDM(VOCAB, MDMConfig(**{"d_model": 32, "n_layers": 2, "n_heads": 2, "mlp_ratio": 2, "max_len": 48,
                                    "target_len": TASK.target_block, **kw}))
    return _perturbed(model, seed) if perturb else model.eval()


def _prompts(n=6, split="test"):
    return [list(ex.prompt) for ex in TASK.examples(split)[:n]]


# ----- key/value cache -----
@pytest.mark.parametrize("inputs", [{}, {"token_shift": True, "absolute_positions": True, "position_period": 2}])
def test_cached_decoding_matches_a_full_causal_pass_with_left_padding(inputs):
    torch.manual_seed(0)
    trunk = Transformer(TransformerConfig(vocab_size=20, d_model=32, n_layers=2, n_heads=2, causal=True,
                                          time_conditioning=False, **inputs)).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in trunk.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    lengths = [7, 4, 9]
    width = max(lengths) + 5
    tokens = torch.zeros(3, width, dtype=torch.long)
    for i, n in enumerate(lengths):  # left padding: the prompts end in the same column
        tokens[i, max(lengths) - n:] = torch.randint(4, 20, (width - max(lengths) + n,), generator=g)
    mask = tokens != 0
    with torch.no_grad():
        full, _ = trunk(tokens, mask)
        cache = KVCache.empty(2)
        first, _ = trunk(tokens[:, : max(lengths)], mask[:, : max(lengths)], cache=cache)
        steps = [first]
        for j in range(max(lengths), width):
            h, _ = trunk(tokens[:, j : j + 1], mask[:, j : j + 1], cache=cache)
            steps.append(h)
    incremental = torch.cat(steps, dim=1)
    assert torch.allclose(incremental[mask], full[mask], atol=1e-5)
    assert not torch.isnan(full).any()  # padding query rows attend to themselves, never to nothing
    # a full pass with right padding gives the same states for the real tokens (positions = real index)
    row = tokens[1][mask[1]][None]
    alone, _ = trunk(row, torch.ones_like(row, dtype=torch.bool))
    assert torch.allclose(alone[0], full[1][mask[1]], atol=1e-5)


def test_cache_needs_a_causal_trunk():
    trunk = Transformer(TransformerConfig(vocab_size=8, d_model=16, n_layers=1, n_heads=2, time_conditioning=False))
    with pytest.raises(ValueError, match="causal"):
        trunk(torch.ones(1, 3, dtype=torch.long), torch.ones(1, 3, dtype=torch.bool), cache=KVCache.empty(1))


# ----- ARM -----
@pytest.mark.parametrize("seed", [0, 1])
def test_arm_cached_and_uncached_greedy_outputs_are_identical(seed):
    model = tiny_arm(seed)
    prompts = _prompts(8)
    cached, rec_c = model.sample(prompts, GREEDY, return_trajectory=True)
    plain, rec_p = model.sample(prompts, GREEDY, return_trajectory=True, use_cache=False)
    assert cached == plain
    assert rec_c.terminated == rec_p.terminated and rec_c.model_evals == rec_p.model_evals
    assert any(len(o) > 3 for o in cached)  # the comparison covers real decoding, not immediate EOS


def test_arm_sampling_respects_the_cap_and_reports_termination():
    model = tiny_arm(2, max_len=30)
    prompts = _prompts(10)
    outs, rec = model.sample(prompts, SamplerOptions(temperature=1.5), torch.Generator().manual_seed(0),
                             return_trajectory=True)
    for p, o, term, evals, row, step in zip(prompts, outs, rec.terminated, rec.model_evals, rec.tokens,
                                            rec.unmask_step):
        cap = 30 - len(p) - 2
        assert len(o) <= cap and all(t >= VOCAB.num_special for t in o)
        assert term or len(o) == cap
        assert evals == len(o) + (1 if term else 0)
        assert row == p + [VOCAB.bos_id] + o + [VOCAB.eos_id]
        assert step[len(p) + 1 : -1] == list(range(len(o)))  # left to right


def test_arm_log_likelihood_equals_the_sum_of_uncached_per_token_log_probs():
    model = tiny_arm(3)
    pairs = [(list(ex.prompt), list(ex.target)) for ex in TASK.examples("test")[:4]]
    pairs.append((pairs[0][0], pairs[0][1][:3]))  # a short (wrong) answer
    exact = model.log_likelihood(pairs, bound="exact")
    for (prompt, target), value in zip(pairs, exact):
        total = 0.0
        for j, token in enumerate(list(target) + [VOCAB.eos_id]):
            row = torch.tensor([prompt + [VOCAB.bos_id] + target[:j]])
            with torch.no_grad():
                logp = model(row, torch.ones_like(row, dtype=torch.bool))[0, -1]
            total += float(logp[token])
        assert value == pytest.approx(total, abs=1e-4)
    with pytest.raises(Exception, match="exact log-likelihood only"):
        model.log_likelihood(pairs, bound="elbo")


def test_arm_loss_counts_target_and_eos_only():
    model = tiny_arm(4)
    examples = TASK.examples("train")[:5]
    batch = collate(examples, VOCAB)
    loss, stats = model.loss(batch)
    assert stats["tokens"] == sum(len(ex.target) + 1 for ex in examples)
    exact = model.log_likelihood([(list(ex.prompt), list(ex.target)) for ex in examples])
    assert float(loss.detach()) == pytest.approx(-sum(exact) / stats["tokens"], rel=1e-5)


# ----- MDM -----
@pytest.mark.parametrize("t", [0.1, 0.5, 0.9])
def test_mdm_masking_rate_matches_the_schedule(t):
    slot = torch.zeros(400, 30, dtype=torch.bool)
    slot[:, 5:25] = True
    masked = MDM.mask_at(slot, torch.full((400,), t), torch.Generator().manual_seed(0))
    n = slot.sum().item()
    assert not masked[~slot].any()
    assert masked.sum().item() / n == pytest.approx(t, abs=4 * math.sqrt(t * (1 - t) / n))


def test_mdm_training_canvas_pads_the_target_and_keeps_the_prompt():
    model = tiny_mdm()
    examples = TASK.examples("train")[:4]
    canvas, real, slot = model._canvas_from_batch(collate(examples, VOCAB))
    N = TASK.target_block
    for i, ex in enumerate(examples):
        p = len(ex.prompt)
        assert canvas[i, :p].tolist() == list(ex.prompt) and int(canvas[i, p]) == VOCAB.bos_id
        assert canvas[i, p + 1 : p + 1 + N].tolist() == list(ex.target) + [VOCAB.pad_id] * (N - len(ex.target))
        assert int(slot[i].sum()) == N and int(real[i].sum()) == p + 1 + N


def test_mdm_elbo_of_a_context_free_model_is_the_closed_form():
    """With the zero-initialised head every slot's prediction is uniform over the V - 3 allowed tokens, so
    E_t[(1/t) sum_masked -log p] = N log(V - 3) exactly: the Monte-Carlo ELBO must match it."""
    model = tiny_mdm(perturb=False)
    ex = TASK.examples("test")[0]
    value = model.log_likelihood([(list(ex.prompt), list(ex.target))], bound="elbo", samples=4000)[0]
    closed = -TASK.target_block * math.log(len(VOCAB) - 3)
    assert value == pytest.approx(closed, rel=0.02)


@pytest.mark.parametrize("confidence", [None, "top_prob"])
def test_mdm_samples_never_contain_mask_or_specials(confidence):
    model = tiny_mdm(5)
    prompts = _prompts(8)
    options = UnmaskingOptions(steps=5, temperature=1.0, confidence=confidence)
    outs, rec = model.sample(prompts, options, torch.Generator().manual_seed(0), return_trajectory=True)
    for p, o, row, um in zip(prompts, outs, rec.tokens, rec.unmask_step):
        assert all(t >= VOCAB.num_special for t in o)  # no MASK, no PAD left
        assert VOCAB.mask_id not in row and len(o) <= TASK.target_block
        assert all(0 <= s < 5 for s in um[len(p) + 1 : -1])
    assert rec.model_evals == [5] * len(prompts)


@pytest.mark.parametrize("n_slots,steps", [(14, 14), (14, 5), (10, 3), (7, 1)])
def test_mdm_unmasks_in_near_equal_shares(n_slots, steps):
    counts = MDM.unmask_counts(n_slots, steps)
    assert sum(counts) == n_slots and len(counts) == steps and max(counts) - min(counts) <= 1


def test_mdm_confidence_order_reveals_the_most_confident_slot_first():
    model = tiny_mdm(6)
    prompt = _prompts(1)
    tokens, real, slot = model.canvas(prompt, None)
    with torch.no_grad():
        probs = torch.softmax(model(tokens, real), dim=-1)[0, slot[0]]  # (N, V) at the all-MASK canvas
    best = int(probs.max(-1).values.argmax())
    token = int(probs[best].argmax())
    _, rec = model.sample(prompt, UnmaskingOptions(steps=TASK.target_block, top_k=1, confidence="top_prob"),
                          return_trajectory=True)
    p = len(prompt[0])
    steps, row = rec.unmask_step[0][p + 1 : -1], rec.tokens[0][p + 1 : -1]
    assert len(set(steps)) == len(steps)  # one slot per step
    if token == VOCAB.pad_id:
        assert 0 not in steps  # the first slot became PAD and was dropped
    else:
        assert row[steps.index(0)] == token


def _handful() -> list[Example]:
    """Four examples with distinct one-token prompts and random targets of different lengths."""
    g = torch.Generator().manual_seed(0)
    return [Example((4 + i,), tuple(int(x) for x in torch.randint(4, len(VOCAB), (n,), generator=g)))
            for i, n in enumerate([3, 6, 5, 8])]


def _overfit(model, examples, steps, lr=3e-3):
    batch = collate(examples * 8, VOCAB)  # 32 rows: less gradient noise than 4 (MDM's 1/t weight is noisy)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        loss, _ = model.loss(batch, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_arm_overfits_a_handful_of_examples():
    torch.manual_seed(0)
    examples = _handful()
    model = _overfit(ARM(VOCAB, ARMConfig(d_model=32, n_layers=2, n_heads=2, max_len=16)), examples, 150)
    outs = model.sample([list(ex.prompt) for ex in examples], GREEDY)
    assert outs == [list(ex.target) for ex in examples]


@pytest.mark.parametrize("confidence", [None, "top_prob"])
def test_mdm_overfits_a_handful_of_examples(confidence):
    torch.manual_seed(0)
    examples = _handful()
    model = _overfit(MDM(VOCAB, MDMConfig(d_model=32, n_layers=2, n_heads=2, max_len=16, target_len=10)),
                     examples, 250)
    outs = model.sample([list(ex.prompt) for ex in examples], SamplerOptions(top_k=1, confidence=confidence))
    assert outs == [list(ex.target) for ex in examples]  # the PAD tail gives each its own length
