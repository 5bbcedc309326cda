"""Generation-order statistics and plots.

For one sampled output with per-token insertion and unmasking steps, and a task-defined reference
distance ``d_i`` per output token (star graphs: how many path nodes the token's node is from the
junction, :meth:`Task.order_reference`), the **order correlation** of the example is Spearman's rank
correlation between the steps and ``d`` over the output tokens (ties get average ranks; an example
whose steps or distances are all equal is skipped). The reported value is the mean over examples. A
negative value means the tokens far from the junction (the path's endpoints) appear first, the order
that LoFlexMDM and IP are expected to learn on star graphs; the unmasking step (when a token's identity
is decided) is the generation order, the insertion step is reported alongside.

Edges: token pair ``(2k, 2k+1)`` is edge k; its step is the later of its two tokens' steps.

Token classes (molecules): a task that names a class per token (:meth:`Task.token_class`: ring digit,
branch, atom, bond, ...) gets, per class, the mean over output tokens of the normalised generation step
(0 = the first token of its sequence to be decided, 1 = the last); "scaffold first" (IP paper) means
ring digits and branches decided before atoms on average.

The learned insertion-time profile of LoFlexMDM: for each target token of a clean sequence, the
auxiliary network's rate ``b_in`` gives the insertion-time distribution ``Kuma(a, b_in)``; its median
``F^{-1}(1/2) = (1 - 2^{-1/b})^{1/a}`` and quartiles are averaged per target position and per reference
distance.

The posterior order of IP: for a clean sequence, permutations drawn from the Plackett-Luce posterior
``q(sigma | x)`` (Gumbel top-k on the posterior network's scores) give each target token a normalised
rank ``r = (position of the token in sigma) / (L - 1)`` (0 = inserted first, 1 = last); the quartiles of
``r`` are reported per target position and per reference distance, with Spearman's correlation between
rank and distance averaged over examples (negative: endpoints first).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from insertgen.core.data import collate
from insertgen.core.generation import output_positions
from insertgen.core.io import to_json, write_text_atomic
from insertgen.models.registry import family_of
from insertgen.tasks.base import Task


def output_steps(record: dict, vocab) -> tuple[list[int], list[int]]:
    """(insert steps, unmask steps) of the output tokens of a sampler record (the tokens of
    :func:`insertgen.core.generation.split_output`)."""
    keep = output_positions(record["canvas"], vocab)
    return [record["insert_step"][k] for k in keep], [record["unmask_step"][k] for k in keep]


def average_ranks(values) -> np.ndarray:
    """Ranks 1..n of ``values``, tied values sharing the mean of their ranks (``[5, 1, 5] -> [2.5, 1, 2.5]``)."""
    a = np.asarray(values, dtype=float)
    order = np.argsort(a, kind="stable")
    ordered = a[order]
    starts_group = np.r_[True, ordered[1:] != ordered[:-1]]
    first = np.flatnonzero(starts_group)  # position (0-based) where each group of equal values starts
    last = np.r_[first[1:], len(a)] - 1
    ranks = np.empty(len(a))
    ranks[order] = ((first + last) / 2 + 1)[np.cumsum(starts_group) - 1]
    return ranks


def spearman(x, y) -> float:
    """Spearman's rank correlation: Pearson's correlation of the :func:`average_ranks` of ``x`` and ``y``
    (``x`` and ``y`` each with at least two distinct values). Written out because scipy's costs about a
    millisecond a call, and a demo correlates tens of thousands of short sequences."""
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return float((rx @ ry) / np.sqrt((rx @ rx) * (ry @ ry)))


def _rho(steps: list[int], distances: list[int]) -> float | None:
    if len(set(steps)) < 2 or len(set(distances)) < 2:
        return None
    return spearman(steps, distances)


def edge_steps(steps: list[int]) -> list[int]:
    """Step of edge k = max(step of token 2k, step of token 2k+1)."""
    return [max(steps[2 * k], steps[2 * k + 1]) for k in range(len(steps) // 2)]


def order_statistics(task, examples, outputs: list[list[int]], records: list[dict]) -> dict | None:
    """Mean order correlations over examples (see module doc), or None when the task defines no
    reference distance. Also returns per-example edge steps for the caller to save."""

    if type(task).order_reference is Task.order_reference:
        return None
    rho_um, rho_in, per_example = [], [], []
    for ex, out, rec in zip(examples, outputs, records):
        dist = task.order_reference(list(ex.prompt), list(out))
        if dist is None:
            per_example.append(None)
            continue
        ins, um = output_steps(rec, task.vocab)
        r_um, r_in = _rho(um, dist), _rho(ins, dist)
        if r_um is not None:
            rho_um.append(r_um)
        if r_in is not None:
            rho_in.append(r_in)
        per_example.append({"distance": dist, "insert_step": ins, "unmask_step": um,
                            "edge_insert_step": edge_steps(ins), "edge_unmask_step": edge_steps(um)})
    return {
        "reference": task.order_reference_label,
        "order_corr_unmask": float(np.mean(rho_um)) if rho_um else float("nan"),
        "order_corr_insert": float(np.mean(rho_in)) if rho_in else float("nan"),
        "order_corr_examples": len(rho_um),
        "per_example": per_example,
    }


def _normalised(steps: list[int]) -> np.ndarray:
    arr = np.array(steps, dtype=float)
    span = arr.max() - arr.min() if len(arr) else 0.0
    return (arr - arr.min()) / span if span > 0 else np.full(len(arr), 0.5)


def class_order_statistics(task, outputs: list[list[int]], records: list[dict]) -> dict | None:
    """Per token class, the mean normalised unmasking and insertion steps over generated output tokens
    (``{"classes": {name: {"unmask", "insert", "tokens"}}}``), or None when the task names no classes.
    Tokens given in the canvas (a prompt inside the target: step -1) are not generated and left out."""

    if type(task).token_class is Task.token_class:
        return None
    unmask: dict[str, list[float]] = {}
    insert: dict[str, list[float]] = {}
    for out, rec in zip(outputs, records):
        ins, um = output_steps(rec, task.vocab)
        if len(um) != len(out):
            continue
        generated = [(tok, u, i) for tok, u, i in zip(out, um, ins) if u >= 0]
        if len(generated) < 2:
            continue
        out, um, ins = zip(*generated)
        for tok, u, i in zip(out, _normalised(list(um)), _normalised(list(ins))):
            name = task.token_class(task.vocab.tokens[int(tok)])
            unmask.setdefault(name, []).append(float(u))
            insert.setdefault(name, []).append(float(i))
    return {"classes": {name: {"unmask": float(np.mean(unmask[name])), "insert": float(np.mean(insert[name])),
                               "tokens": len(unmask[name])} for name in sorted(unmask)}}


SKELETON_CLASSES = ("ring", "branch")  # a molecule's skeleton: ring-closure digits and branch parentheses


def skeleton_minus_atom(order_steps: dict[str, float]) -> float | None:
    """The mean of the ring and branch classes' mean normalised steps minus the atoms' (``order_steps``:
    ``{class: step}``), the IP paper's "scaffold first" statistic: negative when the skeleton is written
    before the atoms. None when no skeleton class or no atom was generated."""
    skeleton = [order_steps[c] for c in SKELETON_CLASSES if order_steps.get(c) is not None]
    atom = order_steps.get("atom")
    return float(np.mean(skeleton)) - atom if skeleton and atom is not None else None


def plot_class_order(stats: dict, path: Path, title: str = "") -> Path:
    """PNG: mean normalised generation step per token class (unmasking and insertion)."""
    import matplotlib  # heavy: loaded only when a figure is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: loaded only when a figure is drawn

    names = list(stats["classes"])
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 3, 4))
    x = np.arange(len(names))
    for offset, key, label in ((-0.2, "unmask", "decided (unmasked)"), (0.2, "insert", "inserted")):
        ax.bar(x + offset, [stats["classes"][n][key] for n in names], width=0.4, label=label)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks(x, [f"{n}\n({stats['classes'][n]['tokens']:,})" for n in names])
    ax.set_ylabel("mean generation step (0 = first, 1 = last)")
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title(title or "generation order by token class", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_class_order_models(classes_by_model: dict[str, dict], path: Path, title: str = "") -> Path:
    """PNG: per token class, one bar per model: the mean normalised step at which its tokens are decided
    (:func:`class_order_statistics`, ``unmask``; 0 = first, 1 = last)."""
    import matplotlib  # heavy: loaded only when a figure is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: loaded only when a figure is drawn

    names = sorted({c for stats in classes_by_model.values() for c in stats["classes"]})
    models = list(classes_by_model)
    width = 0.8 / max(1, len(models))
    fig, ax = plt.subplots(figsize=(1.4 * len(names) + 3, 4))
    x = np.arange(len(names))
    for k, model in enumerate(models):
        classes = classes_by_model[model]["classes"]
        ax.bar(x - 0.4 + (k + 0.5) * width, [classes.get(n, {}).get("unmask", np.nan) for n in names], width=width,
               label=model)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks(x, names)
    ax.set_ylabel("mean generation step (0 = first, 1 = last)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title(title or "generation order by token class", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


@torch.no_grad()
def insertion_time_profile(model, task, examples, quantiles=(0.25, 0.5, 0.75)) -> dict | None:
    """Mean quantiles of the learned insertion time of the target tokens, per target position and per
    reference distance: ``{"by_position": {k: {"q25", "q50", "q75", "tokens"}}, "by_distance": {...}}``.

    Only for models with an auxiliary schedule network (``schedule_rates``); None otherwise."""
    if not family_of(model).can("schedule_profile"):
        return None
    batch = collate(examples, task.vocab, prompt_in_target=task.prompt_in_target)
    device = next(model.parameters()).device
    b_in, _ = model.schedule_rates(batch.tokens.to(device), torch.full((len(examples),), 0.5, device=device))
    b_in = b_in.float().cpu()
    qs = torch.tensor(quantiles)
    by_position: dict[int, list] = {}
    by_distance: dict[int, list] = {}
    for i, ex in enumerate(examples):
        start = len(ex.prompt) + 1
        b = b_in[i, start : start + len(ex.target)]
        times = model.schedule.inverse_cdf(qs[None, :].expand(len(b), -1), b[:, None]).tolist()  # (n, Q)
        dist = task.order_reference(list(ex.prompt), list(ex.target))
        for k, row in enumerate(times):
            by_position.setdefault(k, []).append(row)
            if dist is not None:
                by_distance.setdefault(dist[k], []).append(row)

    def summarise(groups):
        out = {}
        for key in sorted(groups):
            arr = np.array(groups[key])
            out[str(key)] = {f"q{int(q * 100)}": float(arr[:, j].mean()) for j, q in enumerate(quantiles)}
            out[str(key)]["tokens"] = len(arr)
        return out

    return {"kind": "insertion_time", "by_position": summarise(by_position), "by_distance": summarise(by_distance)}


def _quartile_summary(groups: dict, quantiles=(0.25, 0.5, 0.75)) -> dict:
    out = {}
    for key in sorted(groups):
        arr = np.asarray(groups[key], dtype=float)
        out[str(key)] = {f"q{int(q * 100)}": float(np.quantile(arr, q)) for q in quantiles}
        out[str(key)]["tokens"] = int(arr.size)
    return out


@torch.no_grad()
def posterior_order_profile(model, task, examples, samples: int = 8, seed: int = 0) -> dict | None:
    """Quartiles of the normalised posterior rank of the target tokens per target position and per
    reference distance, and the mean rank-distance correlation (module docstring). Only for models with
    a learned order posterior (IP, not AO-IP); None otherwise."""
    if not family_of(model).can("posterior_orders"):
        return None
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    by_position: dict[int, list] = {}
    by_distance: dict[int, list] = {}
    rhos = []
    for ex in examples:
        length = len(ex.target)
        if length < 2 or task.prompt_in_target:
            continue
        orders, _ = model.sample_orders(list(ex.prompt), list(ex.target), samples, generator)
        dist = task.order_reference(list(ex.prompt), list(ex.target))
        for order in orders:
            rank = np.empty(length)
            rank[np.asarray(order)] = np.arange(length) / (length - 1)
            for k, r in enumerate(rank):
                by_position.setdefault(k, []).append(float(r))
                if dist is not None:
                    by_distance.setdefault(dist[k], []).append(float(r))
            if dist is not None:
                rho = _rho(list(rank), list(dist))
                if rho is not None:
                    rhos.append(rho)
    if not by_position:
        return None
    return {"kind": "posterior_rank", "samples": samples, "by_position": _quartile_summary(by_position),
            "by_distance": _quartile_summary(by_distance),
            "rank_distance_corr": float(np.mean(rhos)) if rhos else float("nan")}


def mean_step_by_distance(per_example: list[dict | None], key: str = "unmask_step") -> dict[int, float]:
    """Mean of the (normalised to [0, 1] per example) step of tokens at each reference distance."""
    sums: dict[int, list[float]] = {}
    for rec in per_example:
        if rec is None:
            continue
        steps = np.array(rec[key], dtype=float)
        span = steps.max() - steps.min()
        norm = (steps - steps.min()) / span if span > 0 else np.zeros_like(steps)
        for d, s in zip(rec["distance"], norm):
            sums.setdefault(d, []).append(float(s))
    return {d: float(np.mean(v)) for d, v in sorted(sums.items())}


def _draw_order_axis(ax, stats: dict, name: str) -> None:
    """Mean normalised unmasking and insertion step per distance from the junction, on ``ax``."""
    for key, label in (("unmask_step", "unmasked"), ("insert_step", "inserted")):
        curve = mean_step_by_distance(stats["per_example"], key)
        if curve:
            ax.plot(list(curve), list(curve.values()), marker="o", label=label)
    ax.set_xlabel(stats.get("reference", "distance from the junction (path nodes)"))
    ax.set_ylabel("generation step (0 = first, 1 = last in its sequence)")
    ax.set_title(f"{name}: rho(unmask) = {stats['order_corr_unmask']:.2f}, "
                 f"rho(insert) = {stats['order_corr_insert']:.2f}", fontsize=9)
    ax.set_ylim(-0.05, 1.05)
    if ax.get_lines():
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no output has a reference distance", ha="center", transform=ax.transAxes)
    ax.grid(alpha=0.3)


def plot_order_panels(stats_by_model: dict[str, dict], path: Path, title: str = "") -> Path:
    """PNG: one panel per model (``{model: order_statistics(...)}``) of the normalised generation step
    against the distance from the junction, as the left panel of :func:`plot_order`."""
    import matplotlib  # heavy: loaded only when a figure is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: loaded only when a figure is drawn

    n = len(stats_by_model)
    cols = min(n, 3)
    rows = -(-n // cols)
    width = max(4.6 * cols, 0.09 * len(title) + 1.0)  # a lone panel still fits the title
    fig, axes = plt.subplots(rows, cols, figsize=(width, 3.8 * rows), squeeze=False, sharey=True)
    from matplotlib.ticker import MaxNLocator  # heavy: loaded only when a figure is drawn

    for k, (ax, (model_id, stats)) in enumerate(zip(axes.flat, stats_by_model.items())):
        _draw_order_axis(ax, stats, model_id)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if k % cols:
            ax.set_ylabel("")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_order(stats: dict, profile: dict | None, path: Path, title: str = "") -> Path:
    """PNG: normalised generation step against distance from the junction; learned insertion times."""
    import matplotlib  # heavy: loaded only when a figure is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: loaded only when a figure is drawn

    panels = 2 if profile else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), squeeze=False)
    _draw_order_axis(axes[0, 0], stats, "order")
    if profile:
        ax = axes[0, 1]
        for key, label in (("by_distance", "by distance from the junction"), ("by_position", "by target position")):
            groups = profile.get(key) or {}
            xs = [int(k) for k in groups]
            if not xs:
                continue
            med = [groups[str(x)]["q50"] for x in xs]
            lo = [groups[str(x)]["q50"] - groups[str(x)]["q25"] for x in xs]
            hi = [groups[str(x)]["q75"] - groups[str(x)]["q50"] for x in xs]
            ax.errorbar(xs, med, yerr=[lo, hi], marker="o", capsize=4, label=label)
        ax.set_xlabel("distance (path nodes) / target position")
        if profile.get("kind") == "posterior_rank":
            ax.set_ylabel("rank in posterior orders (0 = first; median, quartiles)")
            ax.set_title(f"IP posterior q(order | x): rank-distance rho = {profile['rank_distance_corr']:.2f}",
                         fontsize=9)
        else:
            ax.set_ylabel("learned insertion time (median, quartiles)")
            ax.set_title("auxiliary network's insertion schedule", fontsize=9)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def save_order_report(run_dir: Path, stats: dict, profile: dict | None, title: str = "") -> tuple[Path, Path]:
    """Write RUN_DIR/order.json (summary, profile and per-example steps) and RUN_DIR/order.png."""
    run_dir = Path(run_dir)
    summary = {k: v for k, v in stats.items() if k != "per_example"}
    (run_dir / "order.json").write_text(to_json(
        {**summary, "insertion_time_profile": profile, "per_example": stats["per_example"]}) + "\n")
    return run_dir / "order.json", plot_order(stats, profile, run_dir / "order.png", title)


def plot_schedule(profile: dict, path: Path, title: str = "") -> Path:
    """PNG: the learned order per target position: LoFlexMDM's insertion-time quartiles or the ranks of
    IP's posterior orders (median line, quartile band)."""
    import matplotlib  # heavy: loaded only when a figure is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: loaded only when a figure is drawn

    groups = profile["by_position"]
    xs = [int(k) for k in groups]
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    ax.fill_between(xs, [groups[str(x)]["q25"] for x in xs], [groups[str(x)]["q75"] for x in xs], alpha=0.3,
                    label="quartiles")
    ax.plot(xs, [groups[str(x)]["q50"] for x in xs], marker=".", label="median")
    posterior = profile.get("kind") == "posterior_rank"
    ax.set_xlabel("target position")
    ax.set_ylabel("rank in posterior orders (0 = first)" if posterior else "learned insertion time")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or ("IP posterior order by position" if posterior else
                           "LoFlexMDM insertion schedule by position"), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def write_order_figures(model, task, examples, outputs, records, run_dir: Path) -> dict:
    """The generation-order figures of a run from sampled ``outputs`` / ``records`` of ``examples``:
    ``order.png`` / ``order.json`` (star graphs: order against the junction distance, with LoFlexMDM's
    learned insertion times or IP's posterior order; molecules: order by token class) and, for a model
    with a learned order on a task without a reference distance, ``schedule.png`` (per target position).
    Returns the statistics shown (without per-example data)."""

    run_dir = Path(run_dir)
    title = f"{model.model_id} on {task.name}"
    stats = order_statistics(task, examples, outputs, records)
    profile = insertion_time_profile(model, task, examples[:500]) or posterior_order_profile(model, task,
                                                                                              examples[:200])
    if stats is not None:
        save_order_report(run_dir, stats, profile, title=title)
        summary = {k: v for k, v in stats.items() if k != "per_example"}
        if profile:
            summary["profile"] = {k: v for k, v in profile.items() if k != "by_position"}
        return summary
    summary = {}
    if profile:
        plot_schedule(profile, run_dir / "schedule.png", title=f"{title}: learned order by target position")
        summary["profile"] = {k: v for k, v in profile.items() if k != "by_position"}
    classes = class_order_statistics(task, outputs, records)
    if classes is not None:
        write_text_atomic(run_dir / "order.json", to_json(classes, indent=2) + "\n")
        plot_class_order(classes, run_dir / "order.png", title=title)
        summary.update(classes)
    return summary
