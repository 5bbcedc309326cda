"""Likelihoods of every family (docs/methods/flexmdm.md#elbo, docs/methods/baselines.md): the MDM's ELBO is
exact for exact conditionals and below its sampler's likelihood otherwise; FlexMDM's ELBO lies below the
probability its own sampler gives a sequence; Monte-Carlo estimates agree with a many-sample reference
within their standard errors and are deterministic under a seed."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from insertgen.core.errors import InsertgenError
from insertgen.models.flexmdm.sampler import TauLeapingOptions
from insertgen.models.registry import build_model, get_family, task_defaults
from insertgen.tasks import get_task

TASK = get_task("star-tiny")
TINY = {"d_model": 32, "n_layers": 1, "n_heads": 2}


def tiny(model_id: str, seed: int = 0, **options):
    torch.manual_seed(seed)
    family = get_family(model_id)
    return build_model(model_id, TASK.vocab, {**family.tiny, **task_defaults(model_id, TASK), **options}).eval()


def data_ids(n: int) -> list[int]:
    return list(range(TASK.vocab.num_special, TASK.vocab.num_special + n))


class ExactConditionals(torch.nn.Module):
    """An MDM network that returns the exact conditionals p(y_i | visible slots) of a known joint table over
    canvases of N slots (found by enumeration): then every unmasking order is the chain rule exactly."""

    def __init__(self, mdm, table: dict[tuple[int, ...], float]):
        super().__init__()
        self.mdm, self.table, self.n = mdm, table, len(next(iter(table)))

    def __call__(self, tokens, real, t=None):
        v = self.mdm.vocab
        logits = torch.full((*tokens.shape, len(v)), -1e9)
        for b, row in enumerate(tokens.tolist()):
            slots = row[1 : 1 + self.n]  # [BOS, y_1 .. y_N]: no prompt
            consistent = {y: p for y, p in self.table.items()
                          if all(s == v.mask_id or s == y[i] for i, s in enumerate(slots))}
            total = sum(consistent.values())
            for i, s in enumerate(slots):
                if s != v.mask_id:
                    continue
                marginal: dict[int, float] = {}
                for y, p in consistent.items():
                    marginal[y[i]] = marginal.get(y[i], 0.0) + p / total
                for token, p in marginal.items():
                    logits[b, 1 + i, token] = math.log(p)
        return logits


def test_mdm_elbo_equals_log_p_for_exact_conditionals():
    gen = torch.Generator().manual_seed(3)
    a, b = data_ids(2)
    support = list(itertools.product((a, b), repeat=3))
    weights = torch.rand(len(support), generator=gen) + 0.1
    table = {y: float(w / weights.sum()) for y, w in zip(support, weights)}
    mdm = tiny("mdm", target_len=3, max_len=5)
    exact = ExactConditionals(mdm, table)
    mdm.forward = exact.__call__  # the network answers with the exact conditionals
    for y in support[:3]:
        (estimate,) = mdm.log_likelihood([([], list(y))], samples=3000, seed=1)
        assert abs(float(estimate) - math.log(table[y])) < 4 * estimate.stderr + 1e-6, (estimate, table[y])


def sampler_log_prob(mdm, y: list[int]) -> float:
    """log of the MDM sampler's probability of ``y`` (N steps, one random slot per step), by enumerating the
    N! orders: p(y) = mean_orders prod_i K(y_sigma_i | revealed)."""
    v, n = mdm.vocab, len(y)
    total = 0.0
    for order in itertools.permutations(range(n)):
        canvas = [v.bos_id] + [v.mask_id] * n
        log_p = 0.0
        for i in order:
            tokens = torch.tensor([canvas])
            with torch.no_grad():
                logp = torch.log_softmax(mdm(tokens, torch.ones_like(tokens, dtype=torch.bool)), -1)
            log_p += float(logp[0, 1 + i, y[i]])
            canvas[1 + i] = y[i]
        total += math.exp(log_p)
    return math.log(total / math.factorial(n))


@pytest.mark.parametrize("seed", [0, 1])
def test_mdm_elbo_of_a_random_network_stays_below_its_sampler_likelihood(seed):
    mdm = tiny("mdm", seed, target_len=3, max_len=5)
    for y in ([data_ids(3)[0]] * 3, data_ids(3)):
        (estimate,) = mdm.log_likelihood([([], y)], samples=2000, seed=seed)
        assert float(estimate) <= sampler_log_prob(mdm, y) + 3 * estimate.stderr


@pytest.mark.parametrize("model_id,bound", [("flexmdm", "elbo"), ("loflexmdm", "elbo"), ("loflexmdm", "elbo-uniform"),
                                            ("mdm", "elbo"), ("ip", "elbo")])
def test_monte_carlo_estimate_matches_a_many_sample_reference_and_is_seeded(model_id, bound):
    model = tiny(model_id)
    example = TASK.examples("test")[0]
    pair = (list(example.prompt), list(example.target))
    (few,) = model.log_likelihood([pair], bound=bound, samples=32, seed=5)
    (again,) = model.log_likelihood([pair], bound=bound, samples=32, seed=5)
    (many,) = model.log_likelihood([pair], bound=bound, samples=1024, seed=6)
    assert float(few) == float(again) and few.stderr == again.stderr  # deterministic under the seed
    assert few.stderr > 0 or model_id == "ip"  # an untrained IP gives every order the same weight
    assert abs(float(few) - float(many)) <= 4 * math.hypot(few.stderr, many.stderr) + 1e-9
    assert float(many) < 0


def test_flexmdm_elbo_lies_below_the_probability_its_sampler_gives():
    """The sampler's probability of its two most frequent outputs, from 1,500 draws (fine steps: close to the
    chain the ELBO bounds), against the ELBO of that output."""
    model = tiny("flexmdm", seed=2)
    prompt = list(TASK.examples("test")[0].prompt)
    outputs = model.sample([prompt] * 1500, TauLeapingOptions(steps=64), torch.Generator().manual_seed(0))
    counts: dict[tuple, int] = {}
    for out in outputs:
        counts[tuple(out)] = counts.get(tuple(out), 0) + 1
    for output, k in sorted(counts.items(), key=lambda kv: -kv[1])[:2]:  # the empty one and the next
        assert k >= 30  # enough draws for the frequency to mean something
        freq = k / len(outputs)
        se_log_freq = math.sqrt((1 - freq) / k)  # the delta method: sd(log of a binomial frequency)
        (estimate,) = model.log_likelihood([(prompt, list(output))], samples=256, seed=0)
        assert float(estimate) - 3 * estimate.stderr <= math.log(freq) + 3 * se_log_freq, (output, estimate, freq)


def test_an_unconditional_task_scores_and_an_unsupported_bound_is_refused():
    smiles = get_task("smiles")
    assert not smiles.conditional
    torch.manual_seed(0)
    model = build_model("flexmdm", smiles.vocab, {**TINY, **task_defaults("flexmdm", smiles)}).eval()
    (value,) = model.log_likelihood([([], smiles.parse_target([], "CCO"))], samples=8)
    assert float(value) < 0 and value.stderr > 0
    with pytest.raises(InsertgenError, match="gives elbo, not 'iwae'"):
        model.log_likelihood([([], smiles.parse_target([], "CCO"))], bound="iwae")


def test_likelihood_table_benchmark_measures_shipped_runs():
    """benchmarks/likelihood_table.py: one row per run; star-easy targets have 8 tokens, so a nat per token is
    the sequence's nats / 9 (the end counts)."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("likelihood_table", root / "benchmarks" / "likelihood_table.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = [bench.measure(root / "src/insertgen/pretrained" / name, examples=3, samples=2)
            for name in ("star-easy-arm", "star-easy-flexmdm")]
    assert [(r["model"], r["likelihood_bound"], r["likelihood_examples"]) for r in rows] == \
        [("arm", "exact", 3), ("flexmdm", "elbo", 3)]
    assert all(r["nats_per_seq"] > 0 and r["nats_per_token"] == pytest.approx(r["nats_per_seq"] / 9) for r in rows)
    table = bench.markdown(rows).splitlines()
    assert len(table) == 4 and table[2].startswith("| star-easy | arm | exact |")


@pytest.mark.parametrize("model_id", ["flexmdm", "loflexmdm"])
def test_the_elbo_parts_add_up_to_the_elbo(model_id):
    """benchmarks/elbo_parts.py: unmask + insert is the ELBO the library scores (same times and states),
    and the ten time bins of each part add up to that part."""
    import importlib.util
    from pathlib import Path

    from insertgen.engine.evaluate import scored_tokens
    from insertgen.models.flexmdm.elbo import elbo

    spec = importlib.util.spec_from_file_location(
        "elbo_parts", Path(__file__).resolve().parent.parent / "benchmarks" / "elbo_parts.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    model = tiny(model_id)
    ex = TASK.examples("test")[3]
    parts = bench.elbo_parts(model, [ex], samples=8, seed=5)
    reference = elbo(model, list(ex.prompt), list(ex.target), 8, torch.Generator().manual_seed(5))
    tokens = scored_tokens(list(ex.target))
    nats = parts["nats_per_token"]
    assert nats["total"] * tokens == pytest.approx(-float(reference), rel=1e-5)
    assert nats["total"] == pytest.approx(nats["unmask"] + nats["insert"]) and nats["insert"] > 0
    for name in ("unmask", "insert"):
        assert sum(parts["by_time"][name]) == pytest.approx(nats[name])
    assert nats["cross_entropy"] <= nats["unmask"] + 1e-9  # the unmask part adds a non-negative rate term
    with pytest.raises(SystemExit, match="flexmdm and loflexmdm only"):
        bench.elbo_parts(tiny("arm"), [ex], samples=2)


def test_the_alignment_floor_counts_every_alignment_and_vanishes_without_ambiguity():
    """benchmarks/flexmdm_alignment_floor.py: its forward-backward counts give the same source posterior and
    expected gap counts as listing every monotone alignment by hand; one token has no floor; repeated tokens
    and masks do."""
    import importlib.util
    import itertools
    from pathlib import Path

    import numpy as np

    spec = importlib.util.spec_from_file_location(
        "floor", Path(__file__).resolve().parent.parent / "benchmarks" / "flexmdm_alignment_floor.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    x, canvas, mask = list("CCOCN"), ["C", "<m>", "C"], "<m>"
    alignments = [a for a in itertools.combinations(range(len(x)), len(canvas))
                  if all(c == mask or x[j] == c for c, j in zip(canvas, a))]
    forward, backward, _ = bench.alignment_counts(canvas, x, mask)
    posterior = forward * backward / forward[-1].sum()
    for i in range(len(canvas)):
        by_hand = [sum(a[i] == j for a in alignments) / len(alignments) for j in range(len(x))]
        assert posterior[i] == pytest.approx(by_hand)
    rng = np.random.default_rng(0)
    assert bench.floor(["C"], 50, rng)["unmask"] == bench.floor(["C"], 50, rng)["insert"] == 0.0
    repeated = bench.floor(list("CCCC"), 200, rng)
    assert repeated["unmask"] > 0 and repeated["insert"] > 0
