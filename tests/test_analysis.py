"""Generation-order statistics (analysis.py) and the star task's reference distances."""

import numpy as np
import pytest

from insertgen.engine.analysis import average_ranks, edge_steps, order_statistics, output_steps, spearman
from insertgen.tasks import get_task


def _record(task, example, unmask_steps):
    """A sampler record whose canvas is [prompt, BOS, target, EOS] with the given unmask steps."""
    canvas = list(example.prompt) + [task.vocab.bos_id] + list(example.target) + [task.vocab.eos_id]
    prefix = len(example.prompt) + 1
    um = [-1] * prefix + list(unmask_steps) + [-1]
    return {"canvas": canvas, "insert_step": [-1] * prefix + [0] * len(example.target) + [-1], "unmask_step": um}


def test_star_easy_distances_count_from_the_source():
    task = get_task("star-easy")
    ex = task.examples("test")[0]
    assert task.order_reference(list(ex.prompt), list(ex.target)) == [0, 1, 1, 2, 2, 3, 3, 4]
    assert task.order_reference(list(ex.prompt), list(ex.target)[:-1]) is None  # odd length


def test_star_medium_distances_count_from_the_junction():
    task = get_task("star-medium")
    for ex in task.examples("test")[:50]:
        dist = task.order_reference(list(ex.prompt), list(ex.target))
        nodes = [ex.target[0]] + list(ex.target[1::2])
        assert dist is not None and len(dist) == len(ex.target)
        edges = list(zip(ex.prompt[0:-2:2], ex.prompt[1:-2:2]))
        zero = {ex.target[i] for i, d in enumerate(dist) if d == 0}
        assert len(zero) == 1 and sum(1 for u, _ in edges if u in zero) == 3  # the centre, out-degree 3
        assert dist[0] + dist[-1] == len(nodes) - 1  # the path runs through the junction
        assert all(abs(a - b) <= 1 for a, b in zip(dist, dist[1:]))


@pytest.mark.parametrize("direction,sign", [("endpoints_first", -1), ("junction_first", 1)])
def test_order_correlation_sign(direction, sign):
    task = get_task("star-easy")
    examples = task.examples("test")[:5]
    records, outputs = [], []
    for ex in examples:
        dist = task.order_reference(list(ex.prompt), list(ex.target))
        steps = [10 - d for d in dist] if direction == "endpoints_first" else list(dist)
        records.append(_record(task, ex, steps))
        outputs.append(list(ex.target))
    stats = order_statistics(task, examples, outputs, records)
    assert stats["order_corr_unmask"] == pytest.approx(sign * 1.0)
    assert stats["order_corr_examples"] == 5
    assert output_steps(records[0], task.vocab)[1] == [10 - d for d in [0, 1, 1, 2, 2, 3, 3, 4]] or sign > 0
    assert edge_steps([1, 5, 2, 2, 9, 0]) == [5, 2, 9]


def test_insertion_time_profile_quantiles_of_constant_rates():
    import torch

    from insertgen.engine.analysis import insertion_time_profile
    from insertgen.models.schedules import KumaraswamySchedule

    class Constant(torch.nn.Module):
        model_id = "loflexmdm"  # its family declares schedule_profile
        schedule = KumaraswamySchedule(1.0)

        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))

        def schedule_rates(self, x1, t):
            return torch.full(x1.shape, 2.0), None

    task = get_task("star-easy")
    profile = insertion_time_profile(Constant(), task, task.examples("test")[:3])
    assert set(profile["by_position"]) == {str(k) for k in range(8)}
    for entry in profile["by_position"].values():
        assert entry["q50"] == pytest.approx(1 - 2 ** -0.5, abs=1e-5)  # F^{-1}(1/2) = 1 - (1/2)^{1/b}
        assert entry["q25"] == pytest.approx(1 - 0.75 ** 0.5, abs=1e-5) and entry["tokens"] == 3
    assert profile["by_distance"]["0"]["tokens"] == 3 and profile["by_distance"]["1"]["tokens"] == 6
    assert insertion_time_profile(type("F", (), {"model_id": "flexmdm"})(), task, []) is None


class _FixedOrderPosterior:
    """Stands in for an IP model whose posterior always proposes the same permutation per target."""

    model_id = "ip"  # its family declares posterior_orders
    learned_order = True

    def __init__(self, order_of):
        import torch

        self.order_of, self._p = order_of, torch.nn.Parameter(torch.zeros(1))

    def parameters(self):
        yield self._p

    def sample_orders(self, prompt, target, samples, generator=None):
        import torch

        return [self.order_of(len(target))] * samples, torch.zeros(samples)


def test_spearman_matches_scipy_on_tied_and_untied_sequences():
    """Average ranks for ties, then Pearson's correlation of the ranks: scipy's statistic on random sequences
    of integer steps (many ties, as sampler steps have) and on distinct floats."""
    from scipy.stats import rankdata, spearmanr

    assert average_ranks([5, 1, 5, 3]).tolist() == [3.5, 1.0, 3.5, 2.0]
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(2, 40))
        x = rng.integers(0, int(rng.integers(2, 8)), n) if rng.random() < 0.7 else rng.normal(size=n)
        y = rng.integers(0, 5, n)
        assert average_ranks(x).tolist() == rankdata(x).tolist()
        if len(set(x.tolist())) > 1 and len(set(y.tolist())) > 1:
            assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_posterior_order_profile_ranks_and_correlation():
    """Ranks are (place in the order) / (L - 1) per target position; the rank-distance correlation is
    Spearman's between them and the junction distance: -1 when the posterior inserts far tokens first."""
    from scipy.stats import spearmanr

    from insertgen.engine.analysis import posterior_order_profile
    from insertgen.tasks import get_task

    task = get_task("star-easy")
    examples = task.examples("validation")[:20]
    left_to_right = posterior_order_profile(_FixedOrderPosterior(lambda n: list(range(n))), task, examples, samples=3)
    length = len(examples[0].target)
    for k, q in left_to_right["by_position"].items():
        if q["tokens"] == 3 * len(examples):  # positions every example has
            assert q["q25"] == q["q50"] == q["q75"] == pytest.approx(int(k) / (length - 1))
    expected = np.mean([spearmanr(np.arange(len(ex.target)), task.order_reference(list(ex.prompt), list(ex.target))).statistic
                        for ex in examples])
    assert left_to_right["rank_distance_corr"] == pytest.approx(expected)

    def far_first(ex):
        dist = task.order_reference(list(ex.prompt), list(ex.target))
        return sorted(range(len(dist)), key=lambda j: (-dist[j], j))

    lookup = {len(ex.target): ex for ex in examples}  # star-easy targets share a length: one order for all
    assert len(lookup) == 1
    profile = posterior_order_profile(_FixedOrderPosterior(lambda n: far_first(lookup[n])), task, examples[:1])
    assert profile["rank_distance_corr"] < -0.8
    assert posterior_order_profile(type("AO", (), {"model_id": "ao-ip"})(), task, examples) is None
