"""The Insertion Process (docs/methods/insertion-process.md): bijection, exact likelihood, bounds, objective."""

import itertools
import json
import math

import pytest
import torch

from insertgen.core.data import Batch, collate
from insertgen.core.errors import InsertgenError
from insertgen.core.sampling import SamplerOptions
from insertgen.models.ip.model import (
    AOInsertionProcess,
    InsertionProcess,
    InsertionProcessConfig,
)
from insertgen.models.ip.objective import step_value
from insertgen.models.ip.permutations import (
    permutation_from_slots,
    slot_of_remaining,
    slots_from_permutation,
)
from insertgen.models.ip.policy import pack_canvases
from insertgen.models.ip.posterior import (
    gumbel_top_k,
    masked_scores,
    next_index_log_probs,
    prefix_log_prob,
)
from insertgen.tasks import get_task

VOCAB = get_task("star-easy").vocab
A, B_, C = 4, 5, 6  # three data token ids
PROMPT = [7, 8]


def tiny(termination="policy", learned=True, seed=0, **kw) -> InsertionProcess:
    torch.manual_seed(seed)
    cfg = InsertionProcessConfig(d_model=16, n_layers=1, n_heads=2, mlp_ratio=2, max_len=12, termination=termination,
                                 posterior_d_model=16, posterior_n_layers=1, posterior_n_heads=2, **kw)
    model = (InsertionProcess if learned else AOInsertionProcess)(VOCAB, cfg)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # leave the zero initialisation: a random, non-uniform policy and posterior
        for p in model.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g))
    return model.eval()


def test_bijection_between_permutations_and_slot_sequences():
    assert slots_from_permutation([2, 0, 1]) == [0, 0, 1]  # the paper's sigma = (3,1,2) <-> z = (1,1,2)
    assert permutation_from_slots([0, 0, 1]) == [2, 0, 1]
    seqs = {tuple(slots_from_permutation(list(s))) for s in itertools.permutations(range(4))}
    assert len(seqs) == 24 and all(0 <= k <= t for z in seqs for t, k in enumerate(z))
    for s in itertools.permutations(range(4)):
        assert permutation_from_slots(slots_from_permutation(list(s))) == list(s)
    with pytest.raises(ValueError):
        permutation_from_slots([0, 2])
    inserted = torch.tensor([[True, False, True, False, False]])
    assert slot_of_remaining(inserted).tolist() == [[0, 1, 1, 2, 2]]


def _brute_force_log_likelihood(model, prompt, target):
    """Sum over every action sequence (slot, token) that builds ``target`` from the empty canvas."""
    tokens = sorted(set(target))
    memo = {}

    def policy(canvas):
        if canvas not in memo:
            memo[canvas] = model.policy_log_probs(prompt, list(canvas))
        return memo[canvas]

    def walk(canvas, logp):
        slot_lp, tok_lp = policy(canvas)
        if len(canvas) == len(target):
            if list(canvas) != list(target):
                return []
            stop = slot_lp[-1] if model.termination == "policy" else slot_lp[len(canvas)] + tok_lp[len(canvas), VOCAB.eos_id]
            return [logp + float(stop)]
        out = []
        for k in range(len(canvas) + 1):
            for v in tokens:
                new = canvas[:k] + (v,) + canvas[k:]
                out += walk(new, logp + float(slot_lp[k] + tok_lp[k, v]))
        return out

    return float(torch.logsumexp(torch.tensor(walk((), 0.0), dtype=torch.float64), 0))


@pytest.mark.parametrize("termination", ["policy", "classifier"])
@pytest.mark.parametrize("target", [[A, B_, A], [A, A, A], [B_], []])
def test_exact_likelihood_equals_permutation_sum_and_brute_force(termination, target):
    model = tiny(termination)
    exact = model.exact_log_likelihood(PROMPT, target)
    perms = [list(s) for s in itertools.permutations(range(len(target)))]
    by_perms = float(torch.logsumexp(model.trajectory_log_prob(PROMPT, target, perms), 0))
    assert exact == pytest.approx(by_perms, abs=1e-5)
    assert exact == pytest.approx(_brute_force_log_likelihood(model, PROMPT, target), abs=1e-5)


def test_probabilities_of_all_strings_up_to_a_cap_sum_to_one():
    """With a forced stop at length 2, sum_{|x| <= 2} p(x) = 1 over the 20 data tokens."""
    model = tiny("policy", seed=3)
    data = list(range(VOCAB.num_special, len(VOCAB)))
    total = math.exp(model.exact_log_likelihood(PROMPT, []))
    total += sum(math.exp(model.exact_log_likelihood(PROMPT, [a])) for a in data)
    total += sum(math.exp(model.exact_log_likelihood(PROMPT, [a, b], stop=False)) for a in data for b in data)
    assert total == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("termination", ["policy", "classifier"])
def test_elbo_below_exact_and_iwae_tightens(termination):
    model = tiny(termination, seed=5)
    pair = (PROMPT, [A, B_, C, A])
    exact = model.log_likelihood([pair], bound="exact")[0]
    elbo = sum(model.log_likelihood([pair], bound="elbo", samples=64, seed=s)[0] for s in range(5)) / 5
    iwae = {m: sum(model.log_likelihood([pair], bound="iwae", samples=m, seed=s)[0] for s in range(5)) / 5
            for m in (1, 4, 32, 512)}
    assert elbo <= exact + 1e-6
    assert iwae[1] <= iwae[4] + 1e-3 <= iwae[32] + 2e-3 <= iwae[512] + 3e-3
    assert elbo <= iwae[32]
    # a finite-M estimate can overshoot by its own noise; it must be far closer to exact than the ELBO
    assert abs(exact - iwae[512]) < 0.1 and abs(exact - iwae[512]) < 0.25 * (exact - elbo)


def test_plackett_luce_prefix_log_prob_and_gumbel_sampling():
    scores = torch.tensor([[0.3, -1.0, 2.0, 0.0]])
    cand = torch.tensor([[True, True, True, False]])
    s = masked_scores(scores, cand)
    sigma = torch.tensor([[2, 0, 1, 3]])
    for m, expected in [(0, 0.0), (1, 2.0 - math.log(math.exp(0.3) + math.exp(-1) + math.exp(2))),
                        (2, 2.0 - math.log(math.exp(0.3) + math.exp(-1) + math.exp(2)) + 0.3 - math.log(math.exp(0.3) + math.exp(-1)))]:
        assert float(prefix_log_prob(s, sigma, torch.tensor([m]))) == pytest.approx(expected, abs=1e-6)
    # Gumbel-top-k draws the first index with the softmax probabilities and never picks a non-candidate first
    draws = gumbel_top_k(s.expand(40_000, -1), torch.Generator().manual_seed(0))
    assert bool((draws[:, :3] != 3).all())
    freq = torch.bincount(draws[:, 0], minlength=4).float() / 40_000
    assert torch.allclose(freq[:3], torch.softmax(scores[0, :3], 0), atol=0.01)
    # the full-permutation probabilities sum to one
    perms = torch.tensor([list(p) + [3] for p in itertools.permutations(range(3))])
    total = prefix_log_prob(s.expand(6, -1), perms, torch.full((6,), 3)).exp().sum()
    assert float(total) == pytest.approx(1.0, abs=1e-6)


def test_step_value_is_the_expectation_over_the_next_index():
    model = tiny("policy", seed=7)
    target = [A, B_, C, A, B_]
    batch = collate([type("E", (), {"prompt": tuple(PROMPT), "target": tuple(target)})()], VOCAB)
    x, fixed = batch.tokens, batch.fixed
    targets, candidates = model._candidates(x, fixed)
    with torch.no_grad():
        scores = model.order_scores(x, candidates)
    inserted = torch.zeros_like(targets)
    inserted[0, [3, 5]] = True  # target positions 0 and 2 are on the canvas
    canvas = [target[0], target[2]]
    packed = pack_canvases([PROMPT], [canvas], VOCAB.bos_id, VOCAB.eos_id, VOCAB.pad_id)
    with torch.no_grad():
        tables = model.policy(packed)
        value, entropy = step_value(tables, x, inserted, candidates, scores, torch.tensor([False]))
    # Monte Carlo over j ~ q(. | prefix) of log pi(k(j), x_j | canvas) - log q(j)
    log_q = next_index_log_probs(scores, candidates & ~inserted)[0]
    slot_lp, tok_lp = model.policy_log_probs(PROMPT, canvas)
    draws = torch.multinomial(log_q.exp(), 200_000, replacement=True, generator=torch.Generator().manual_seed(0))
    per_j = torch.full((x.shape[1],), float("nan"))
    for j in (candidates & ~inserted)[0].nonzero().flatten().tolist():
        k = int(inserted[0, :j].sum())
        per_j[j] = slot_lp[k] + tok_lp[k, x[0, j]] - log_q[j]
    assert float(value) == pytest.approx(float(per_j[draws].mean()), abs=0.02)
    assert float(entropy) == pytest.approx(float(-(log_q.exp() * log_q.nan_to_num(neginf=0)).sum()), abs=1e-5)


def _exact_elbo(model, prompt, target):
    """Differentiable ELBO = sum_sigma q(sigma) [log p(x, sigma) - log q(sigma)] by enumeration."""
    batch = collate([type("E", (), {"prompt": tuple(prompt), "target": tuple(target)})()], VOCAB)
    x, fixed = batch.tokens, batch.fixed
    _, candidates = model._candidates(x, fixed)
    scores = model.order_scores(x, candidates)
    offset = len(prompt) + 1
    L = len(target)
    perms = [list(p) for p in itertools.permutations(range(L))]
    canvases = [[target[j] for j in sorted(p[:t])] for p in perms for t in range(L + 1)]
    tables = model.policy(pack_canvases([prompt] * len(canvases), canvases, VOCAB.bos_id, VOCAB.eos_id, VOCAB.pad_id))
    total = 0.0
    for i, p in enumerate(perms):
        sigma = torch.tensor([[offset + j for j in p] + [j for j in range(x.shape[1]) if j - offset not in p]])
        log_q = prefix_log_prob(scores, sigma, torch.tensor([L]))[0]
        slots = slots_from_permutation(p)
        log_p = 0.0
        for t in range(L):
            r = i * (L + 1) + t
            pos = tables.bos[r] + slots[t]
            log_p = log_p + tables.location[r, pos] + tables.token[r, pos, target[p[t]]]
        log_p = log_p + tables.term[i * (L + 1) + L]
        total = total + log_q.exp() * (log_p - log_q)
    return total


def test_rloo_surrogate_gradient_matches_the_exact_elbo_gradient():
    model = tiny("policy", seed=11).train()
    target = [A, B_, A]
    model.zero_grad()
    _exact_elbo(model, PROMPT, target).backward()
    exact = torch.cat([p.grad.flatten().clone() for p in model.parameters()])
    model.zero_grad()
    n = 6000
    ex = type("E", (), {"prompt": tuple(PROMPT), "target": tuple(target)})()
    batch = collate([ex], VOCAB)
    loss, _ = model.loss(Batch(batch.tokens.expand(n, -1), batch.fixed.expand(n, -1)), torch.Generator().manual_seed(0))
    loss.backward()
    estimate = torch.cat([-p.grad.flatten() for p in model.parameters()])
    post = torch.cat([torch.ones(p.numel(), dtype=torch.bool) * name.startswith("posterior.")
                      for name, p in model.named_parameters()])
    for part in (post, ~post):  # posterior (score function + pathwise) and decoder (pathwise)
        rel = float((estimate[part] - exact[part]).norm() / exact[part].norm())
        assert rel < 0.15, (part.sum(), rel)


def test_policy_log_probs_contract():
    for termination in ("policy", "classifier"):
        model = tiny(termination)
        slot_lp, tok_lp = model.policy_log_probs(PROMPT, [A, B_])
        assert model.termination == termination
        assert slot_lp.shape == ((4,) if termination == "policy" else (3,)) and tok_lp.shape == (3, len(VOCAB))
        assert float(slot_lp.exp().sum()) == pytest.approx(1.0, abs=1e-5)
        assert torch.allclose(tok_lp.exp().sum(-1), torch.ones(3), atol=1e-5)
        eos = tok_lp[:, VOCAB.eos_id]
        assert bool(torch.isinf(eos[:-1]).all())
        assert bool(torch.isfinite(eos[-1])) == (termination == "classifier")
        for special in (VOCAB.pad_id, VOCAB.mask_id, VOCAB.bos_id):
            assert bool(torch.isinf(tok_lp[:, special]).all())


@pytest.mark.parametrize("termination", ["policy", "classifier"])
def test_sampling_is_well_formed_and_capped(termination):
    model = tiny(termination, seed=2)
    prompts = [[7, 8], [9, 10, 11]]
    outs, res = model.sample(prompts, SamplerOptions(temperature=1.0), torch.Generator().manual_seed(0),
                             return_trajectory=True)
    for out, p, row, steps, term, evals in zip(outs, prompts, res.tokens, res.insert_step, res.terminated,
                                               res.model_evals):
        assert all(t >= VOCAB.num_special for t in out)
        assert row == p + [VOCAB.bos_id] + out + [VOCAB.eos_id]
        assert len(out) <= model.config.max_len - len(p) - 2
        assert term or len(out) == model.config.max_len - len(p) - 2
        assert evals == len(out) + (1 if term else 0)
        inner = steps[len(p) + 1 : -1]
        assert sorted(inner) == list(range(len(out)))  # one insertion per step


@pytest.mark.parametrize("mode", ["top_prob", "prob_diff"])
def test_confidence_sampling_inserts_where_the_token_is_surest(mode):
    """Greedy confident sampling, replayed step by step against policy_log_probs: the policy's own choice
    decides when to stop, and every insertion goes to the plausible slot (p(k) >= floor x max) whose token
    distribution is the most certain, with that slot's most likely token."""
    from insertgen.core.sampling import confidence_scores
    from insertgen.models.ip.sampler import CONFIDENT_SLOT_FLOOR

    model = tiny("policy", seed=3)
    prompts = [[7, 8], [9, 10, 11], [12]]
    outs, res = model.sample(prompts, SamplerOptions(top_k=1, confidence=mode), return_trajectory=True)
    moved = 0
    for p, out, steps, term in zip(prompts, outs, res.insert_step, res.terminated):
        inner = steps[len(p) + 1 : -1]
        for t in range(len(out) + (1 if term else 0)):
            canvas = [tok for tok, s in zip(out, inner) if s < t]
            slot_lp, tok_lp = model.policy_log_probs(p, canvas)
            n = len(canvas)
            if t == len(out):  # the stop: the greedy location is TERM
                assert int(slot_lp.argmax()) == n + 1
                continue
            assert int(slot_lp.argmax()) != n + 1
            slot_p = torch.softmax(slot_lp[: n + 1], 0)
            score = confidence_scores(tok_lp.exp(), mode)
            score[slot_p < CONFIDENT_SLOT_FLOOR * slot_p.max()] = float("-inf")
            j = inner.index(t)
            k = sum(1 for s in inner[:j] if s < t)  # tokens already left of the new one = its slot
            assert k == int(score.argmax())
            assert out[j] == int(tok_lp[k].argmax())
            moved += k != int(slot_lp[: n + 1].argmax())
    assert moved > 0  # the rule differs from the greedy location choice somewhere


@pytest.mark.parametrize("order", ["left_to_right", "right_to_left"])
def test_fixed_order_trains_and_scores_on_that_one_order(order):
    """AO-IP with ``fixed_order``: the order prior puts (all but e^-30 of) its mass on one permutation,
    so posterior draws are that permutation and the ELBO is log p(x, sigma_fixed) for any sample count."""
    model = tiny(learned=False, seed=4, fixed_order=order)
    target = [A, B_, C, A]
    expected = list(range(4)) if order == "left_to_right" else list(range(3, -1, -1))
    orders, log_q = model.sample_orders(PROMPT, target, 8, torch.Generator().manual_seed(0))
    assert all(o == expected for o in orders) and float(log_q.abs().max()) < 1e-6
    joint = float(model.trajectory_log_prob(PROMPT, target, [expected])[0])
    for samples in (1, 5):
        (elbo,) = model.log_likelihood([(PROMPT, target)], bound="elbo", samples=samples)
        assert elbo == pytest.approx(joint, abs=1e-4)
    with pytest.raises(InsertgenError, match="fixed_order"):
        tiny(learned=True, fixed_order=order)
    with pytest.raises(ValueError, match="fixed_order"):
        InsertionProcessConfig(fixed_order="backwards")


def test_short_training_raises_the_elbo():
    task = get_task("star-easy")
    torch.manual_seed(0)
    model = InsertionProcess(task.vocab, InsertionProcessConfig(d_model=32, n_layers=2, n_heads=2, max_len=44,
                                                                posterior_d_model=16, posterior_n_layers=1))
    batch = collate(task.examples("train")[:32], task.vocab)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    elbos = []
    for _ in range(40):
        loss, stats = model.loss(batch, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        elbos.append(stats["elbo"])
    assert sum(elbos[-8:]) / 8 > sum(elbos[:8]) / 8 + 2.5  # nats per sequence; step noise is ~0.7 here


def test_posterior_entropy_bonus_adds_beta_times_the_step_entropy():
    """With one posterior sample the surrogate is (L + 1) F_i, so the bonus lowers the loss by exactly
    beta (L + 1) H(q(. | sigma<i)) averaged over the batch: linear in beta, the same draws, and the ELBO
    reported unchanged. Only the posterior's gradient changes (the decoder's terms do not involve H)."""
    task = get_task("star-easy")
    batch = collate(task.examples("train")[:6], task.vocab)
    losses, elbos, grads = {}, {}, {}
    for beta in (0.0, 0.5, 1.0):
        torch.manual_seed(0)
        model = InsertionProcess(task.vocab, InsertionProcessConfig(
            d_model=16, n_layers=1, n_heads=2, max_len=44, posterior_d_model=16, posterior_n_layers=1,
            posterior_samples=1, posterior_entropy_bonus=beta))
        with torch.no_grad():
            for p in model.posterior.parameters():
                p.add_(0.3 * torch.randn_like(p))
        loss, stats = model.loss(batch, torch.Generator().manual_seed(3))
        loss.backward()
        losses[beta], elbos[beta] = loss.item(), stats["elbo"]
        grads[beta] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert losses[0.5] < losses[0.0] and elbos[0.5] == elbos[0.0] == elbos[1.0]
    assert losses[1.0] - losses[0.0] == pytest.approx(2 * (losses[0.5] - losses[0.0]), rel=1e-4)
    for name, grad in grads[0.0].items():
        if name.startswith("policy."):
            assert torch.allclose(grad, grads[1.0][name], atol=1e-6), name
    assert any(not torch.allclose(g, grads[1.0][n]) for n, g in grads[0.0].items() if n.startswith("posterior."))
    with pytest.raises(InsertgenError, match="posterior_entropy_bonus"):
        tiny(learned=False, posterior_entropy_bonus=0.5)
    with pytest.raises(ValueError, match="posterior_entropy_bonus"):
        InsertionProcessConfig(posterior_entropy_bonus=-1.0)


def test_posterior_start_step_trains_on_uniform_orders_until_the_switch():
    """Before ``posterior_start_step`` IP's loss is AO-IP's (uniform orders, the same draws, the same
    decoder gradients) and the posterior gets no gradient; from the switch on it samples from and trains
    the posterior. AO-IP, which has no posterior, refuses the option."""
    task = get_task("star-easy")
    batch = collate(task.examples("train")[:6], task.vocab)
    cfg = dict(d_model=16, n_layers=1, n_heads=2, max_len=44, posterior_d_model=16, posterior_n_layers=1)
    torch.manual_seed(0)
    ip = InsertionProcess(task.vocab, InsertionProcessConfig(posterior_start_step=5, **cfg))
    with torch.no_grad():
        for p in ip.posterior.parameters():  # a non-uniform posterior: it matters once it is active
            p.add_(0.3 * torch.randn_like(p))
    ao = AOInsertionProcess(task.vocab, InsertionProcessConfig(**cfg))
    ao.policy.load_state_dict(ip.policy.state_dict())

    def run(model, step):
        model.zero_grad(set_to_none=True)
        model.set_training_step(step)
        loss, stats = model.loss(batch, torch.Generator().manual_seed(3))
        loss.backward()
        return loss.item(), stats, {n: p.grad for n, p in model.named_parameters()}

    ao_loss, _, ao_grads = run(ao, 0)
    for step in (0, 4):
        loss, stats, grads = run(ip, step)
        assert loss == pytest.approx(ao_loss, rel=1e-6) and stats["posterior_active"] == 0.0
        assert all(grads[n] is None for n in grads if n.startswith("posterior."))
        assert all(torch.allclose(grads[n], ao_grads[n], atol=1e-7) for n in ao_grads)
    loss, stats, grads = run(ip, 5)
    assert stats["posterior_active"] == 1.0 and loss != pytest.approx(ao_loss, rel=1e-3)
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if n.startswith("posterior."))
    with pytest.raises(InsertgenError, match="posterior_start_step"):
        tiny(learned=False, posterior_start_step=10)
    with pytest.raises(ValueError, match="posterior_start_step"):
        InsertionProcessConfig(posterior_start_step=-1)


def test_trainer_tells_the_model_its_step(tmp_path):
    """The trainer sets the step before every update (resume included), so IP's posterior stays at its
    initial weights for exactly ``posterior_start_step`` updates, during which IP trains the very
    decoder AO-IP trains."""
    from insertgen.engine.training_run import prepare_run

    overrides = {"model.d_model": 16, "model.n_layers": 1, "model.n_heads": 2, "model.posterior_d_model": 16,
                 "model.posterior_n_layers": 1, "model.posterior_start_step": 2, "batch_size": 4,
                 "eval_every": 0, "log_every": 1, "weight_decay": 0.0}
    _, trainer = prepare_run(task="star-easy", model="ip", preset=None, steps=2, out=tmp_path / "run", seed=0,
                             overrides=overrides, resume=False)
    start = {n: p.detach().clone() for n, p in trainer.model.posterior.named_parameters()}
    trainer.train(progress=False)
    assert all(torch.equal(p, start[n]) for n, p in trainer.model.posterior.named_parameters())
    ao_overrides = {k: v for k, v in overrides.items() if ".posterior" not in k}
    ao_overrides.update(curriculum_task=None, curriculum_steps=0)  # AO-IP's star-easy preset starts with a curriculum
    _, ao = prepare_run(task="star-easy", model="ao-ip", preset=None, steps=2, out=tmp_path / "ao", seed=0,
                        overrides=ao_overrides, resume=False)
    ao.train(progress=False)  # the same decoder, draws and updates: IP before the switch is AO-IP
    assert all(torch.equal(p, trainer.model.policy.state_dict()[n]) for n, p in ao.model.policy.state_dict().items())
    _, resumed = prepare_run(task=None, model=None, preset=None, steps=3, out=tmp_path / "run", seed=None,
                             overrides={}, resume=True)
    resumed.train(progress=False)
    assert any(not torch.equal(p, start[n]) for n, p in resumed.model.posterior.named_parameters())
    log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["posterior_active"] for r in log if "posterior_active" in r] == [0.0, 0.0, 1.0]
