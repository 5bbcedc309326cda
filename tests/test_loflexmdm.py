"""LoFlexMDM (docs/methods/loflexmdm.md): the FlexMDM special case, the RLOO + pathwise estimator, training
and sampling."""

import itertools

import pytest
import torch

from insertgen.core.data import Batch, collate
from insertgen.models.flexmdm.model import FlexMDM, FlexMDMConfig
from insertgen.models.flexmdm.sampler import TauLeapingOptions
from insertgen.models.loflexmdm.model import LoFlexMDM, LoFlexMDMConfig
from insertgen.models.schedules import LinearSchedule
from insertgen.tasks import get_task

TINY = dict(d_model=16, n_layers=1, n_heads=2, d_cond=16, mlp_ratio=2)


def randomise(module: torch.nn.Module, seed: int = 0) -> None:
    """Replace the zero initialisations so every head produces non-trivial output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("normalisation", ["buffer", "masked_count"])
def test_loss_with_unit_rates_equals_flexmdm(normalisation, monkeypatch):
    task = get_task("star-easy")
    max_len = task.prompt_block + task.target_block + 2
    common = dict(TINY, max_len=max_len, time_weighting="hazard", normalisation=normalisation,
                  t_min=0.0, t_max=1 - 1e-6)
    flex = FlexMDM(task.vocab, FlexMDMConfig(**common))
    randomise(flex)
    lo = LoFlexMDM(task.vocab, LoFlexMDMConfig(**common, gen_max_rate=float(max_len), aux_min_rate=1.0,
                                               aux_max_rate=1.0 + 1e-9))
    missing, unexpected = lo.load_state_dict(flex.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("aux.") for k in missing)
    batch = collate(task.examples("train")[:32], task.vocab)
    B, L = batch.tokens.shape
    t_in, t_um = LinearSchedule().sample_event_times(torch.ones(B, L), 1.0, torch.Generator().manual_seed(5))
    t = torch.rand(B, generator=torch.Generator().manual_seed(6))
    # one noised state, directly
    flex_loss, _, _ = flex.noised_loss(batch.tokens, batch.fixed, t, t_in, t_um)
    lo_loss, _, _ = lo.noised_loss(batch.tokens, batch.fixed, t, t_in, t_um, torch.ones(B, L), torch.ones(B, L))
    assert torch.allclose(flex_loss, lo_loss, rtol=1e-5)
    # the whole objective, with both models drawing the same event times: a = b = 1 leaves no score
    # term (equal losses) and no regulariser, so LoFlexMDM's J is FlexMDM's loss
    monkeypatch.setattr(flex.schedule, "sample_event_times", lambda *a, **k: (t_in, t_um))
    monkeypatch.setattr(lo.schedule, "sample_event_times", lambda *a, **k: (t_in, t_um))
    j_flex, _ = flex.loss(batch, torch.Generator().manual_seed(1))
    j_lo, stats = lo.loss(batch, torch.Generator().manual_seed(1))
    assert stats["b_in_mean"] == pytest.approx(1.0)
    assert float(j_lo) == pytest.approx(float(j_flex), rel=1e-5)


def _toy_model(reinforce_weight: float) -> LoFlexMDM:
    task = get_task("star-easy")
    torch.manual_seed(0)  # the initial weights, then randomised: the same model whatever ran before
    cfg = LoFlexMDMConfig(**TINY, max_len=8, aux_d_model=16, aux_n_layers=1, aux_n_heads=2, t_min=0.5,
                          t_max=0.5 + 1e-7, regulariser_weight=0.0, reinforce_weight=reinforce_weight)
    model = LoFlexMDM(task.vocab, cfg)
    randomise(model, seed=3)
    return model


def _aux_grad(model: LoFlexMDM) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for n, p in model.named_parameters() if n.startswith("aux.")])


def test_rloo_plus_pathwise_estimator_is_unbiased():
    """Two target tokens have 3^2 aligned states at t = 0.5: the exact gradient of E_{z~p_phi}[l(z, phi)]
    over the auxiliary parameters, against the average of the estimator over many pairs of draws."""
    vocab = get_task("star-easy").vocab
    x1 = torch.tensor([[9, 10, vocab.bos_id, 11, 12, vocab.eos_id]])
    fixed = torch.tensor([[True, True, True, False, False, True]])
    t = torch.tensor([0.5])
    times = {0: (0.9, 0.95), 1: (0.1, 0.9), 2: (0.1, 0.2)}  # (T_in, T_um) giving deleted / masked / clean

    def exact_gradient(model):
        model.zero_grad()
        b_in, _ = model.schedule_rates(x1, t)
        active = ~fixed
        objective = 0.0
        for states in itertools.product(range(3), repeat=2):
            t_in = torch.zeros(1, 6)
            t_um = torch.zeros(1, 6)
            for pos, s in zip((3, 4), states):
                t_in[0, pos], t_um[0, pos] = times[s]
            loss, _, st = model.noised_loss(x1, fixed, t, t_in, t_um, b_in, None)
            log_p = model.state_log_prob(st, t, b_in, None, active)
            objective = objective + log_p.exp() * loss
        objective.sum().backward()
        return _aux_grad(model).clone()

    def estimated_gradient(model, n=20_000):
        model.zero_grad()
        loss, _ = model.loss(Batch(x1.expand(n, -1), fixed.expand(n, -1)), torch.Generator().manual_seed(0))
        loss.backward()
        return _aux_grad(model).clone()

    model = _toy_model(reinforce_weight=1.0)
    exact = exact_gradient(model)
    estimate = estimated_gradient(model)
    rel = float((estimate - exact).norm() / exact.norm())
    print("relative error", rel)
    assert rel < 0.1, rel
    # without the score-function term the pathwise part alone is biased: the test can tell the difference
    pathwise_only = _toy_model(reinforce_weight=0.0)
    biased = estimated_gradient(pathwise_only)
    print("pathwise-only error", float((biased - exact).norm() / exact.norm()))
    assert float((biased - exact).norm() / exact.norm()) > 3 * rel


def test_short_training_lowers_the_loss_and_moves_the_schedules():
    torch.manual_seed(0)
    task = get_task("star-easy")
    cfg = LoFlexMDMConfig(d_model=32, n_layers=2, n_heads=2, max_len=task.prompt_block + task.target_block + 2,
                          aux_d_model=16, aux_n_layers=1)
    model = LoFlexMDM(task.vocab, cfg)
    batch = collate(task.examples("train")[:64], task.vocab)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        b_before, _ = model.schedule_rates(batch.tokens, torch.full((64,), 0.5))
    losses = []
    for _ in range(60):
        loss, stats = model.loss(batch, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(stats["generator_loss"])
    with torch.no_grad():
        b_after, _ = model.schedule_rates(batch.tokens, torch.full((64,), 0.5))
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:10]) / 10
    active = ~batch.fixed & (batch.tokens != task.vocab.pad_id)
    assert float((b_after - b_before)[active].abs().mean()) > 1e-2
    assert bool((b_after[active] >= cfg.aux_min_rate).all())


@pytest.mark.parametrize("order", ["joint", "insert_first"])
def test_sampled_sequences_are_well_formed(order):
    task = get_task("star-easy")
    model = LoFlexMDM(task.vocab, LoFlexMDMConfig(**TINY, max_len=task.prompt_block + task.target_block + 2))
    randomise(model, seed=1)
    model.eval()
    prompts = [ex.prompt for ex in task.examples("test")[:16]]
    outs, result = model.sample(prompts, TauLeapingOptions(steps=12, order=order), torch.Generator().manual_seed(0),
                                return_trajectory=True)
    assert len(outs) == 16
    for out, row, prompt in zip(outs, result.tokens, prompts):
        assert all(tok >= task.vocab.num_special for tok in out)
        assert row[: len(prompt)] == list(prompt) and row[len(prompt)] == task.vocab.bos_id
        assert row[-1] == task.vocab.eos_id and len(row) <= model.config.max_len


def test_auxiliary_network_follows_the_hazard_weighted_elbo_when_the_generator_drops_the_weight():
    """time_weighting="none" with aux_time_weighting="hazard" gives phi exactly the gradient of the
    hazard-weighted objective (the ELBO), while theta keeps the unweighted one."""
    task = get_task("star-easy")
    common = dict(TINY, max_len=task.prompt_block + task.target_block + 2, aux_d_model=16, aux_n_layers=1,
                  aux_n_heads=2, regulariser_weight=0.0)
    split = LoFlexMDM(task.vocab, LoFlexMDMConfig(**common, time_weighting="none", aux_time_weighting="hazard"))
    randomise(split)
    elbo = LoFlexMDM(task.vocab, LoFlexMDMConfig(**common, time_weighting="hazard"))
    naive = LoFlexMDM(task.vocab, LoFlexMDMConfig(**common, time_weighting="none", aux_time_weighting="generator"))
    elbo.load_state_dict(split.state_dict())
    naive.load_state_dict(split.state_dict())
    batch = collate(task.examples("train")[:16], task.vocab)
    grads = {}
    for name, model in (("split", split), ("elbo", elbo), ("naive", naive)):
        model.zero_grad()
        loss, _ = model.loss(batch, torch.Generator().manual_seed(3))
        loss.backward()
        grads[name] = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    aux = [k for k in grads["split"] if k.startswith("aux.")]
    gen = [k for k in grads["split"] if not k.startswith("aux.")]
    assert aux and gen
    def same(a: torch.Tensor, b: torch.Tensor) -> bool:
        """Equal up to float32 summation order: the largest difference is 1e-4 of the tensor's scale
        (an element-wise rtol fails on entries that are sums cancelling to ~0)."""
        return float((a - b).abs().max()) <= 1e-4 * float(torch.maximum(a.abs().max(), b.abs().max()))

    for k in aux:
        assert same(grads["split"][k], grads["elbo"][k]), k
    for k in gen:
        assert same(grads["split"][k], grads["naive"][k]), k
    assert not all(torch.allclose(grads["split"][k], grads["naive"][k], rtol=1e-3, atol=1e-6) for k in aux)


def test_each_network_is_clipped_on_its_own():
    from insertgen.engine.train import clip_gradients

    task = get_task("star-easy")
    model = LoFlexMDM(task.vocab, LoFlexMDMConfig(**TINY, max_len=48, aux_d_model=16, aux_n_layers=1, aux_n_heads=2))
    for name, p in model.named_parameters():
        p.grad = torch.full_like(p, 100.0 if name.startswith("aux.") else 1e-4)
    gen_before = {k: p.grad.clone() for k, p in model.named_parameters() if not k.startswith("aux.")}
    total = clip_gradients(model, 1.0)
    assert float(total) > 100.0
    aux_norm = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for k, p in model.named_parameters()
                                                   if k.startswith("aux.")]))
    assert float(aux_norm) == pytest.approx(1.0, rel=1e-4)
    for k, p in model.named_parameters():  # the generator's small gradient is untouched by the aux's spike
        if not k.startswith("aux."):
            assert torch.equal(p.grad, gen_before[k])
