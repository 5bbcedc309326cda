"""Evaluate a model on task examples: sample a target for each prompt, score with the task's metrics; the
prompts a run is sampled with by default (its sampler options: engine.sampler_settings)."""

from __future__ import annotations

import time

import torch
from tqdm import tqdm

from insertgen.core.estimates import Estimate
from insertgen.core.memory import release_freed_memory
from insertgen.core.sampling import SamplerOptions
from insertgen.engine.analysis import class_order_statistics, order_statistics, skeleton_minus_atom
from insertgen.models.registry import family_of, get_family
from insertgen.tasks.base import Example


def family_samplers(model_id: str, steps: int, greedy: bool = True,
                    orders: tuple[str, ...] | None = None) -> dict[str, SamplerOptions]:
    """The samplers a model family is compared with, by name (``ModelFamily.samplers``: both tau-leaping
    orders of ``steps`` steps for FlexMDM / LoFlexMDM, ``ancestral`` for IP / AO-IP, ``left_to_right``
    for ARM, ``random``- and ``top_prob``-order unmasking for MDM); tokens greedy (top-k 1) with
    ``greedy``, else drawn from the model's distribution (tasks scored on a distribution of samples, such
    as molecules). ``orders`` keeps only those tau-leaping orders."""
    samplers = get_family(model_id).samplers(steps, greedy)
    if orders is not None:
        samplers = {name: o for name, o in samplers.items() if getattr(o, "order", None) in (None, *orders)}
    return samplers


def task_prompts(task, n: int) -> list[list[int]]:
    """``n`` prompts to sample: the task's validation prompts in order, repeated when there are fewer than
    ``n`` (``n`` empty prompts for an unconditional task)."""
    if not task.conditional:
        return [[] for _ in range(n)]
    prompts = [list(ex.prompt) for ex in task.examples("validation")]
    return [prompts[i % len(prompts)] for i in range(n)] if prompts else []


def spread(examples: list, n: int) -> list:
    """``n`` examples spread evenly over ``examples``, in order (so a prompt's repeated samples stay together:
    a fragment task's benchmark prompts), or all of them when there are no more than ``n``."""
    if n >= len(examples):
        return list(examples)
    return [examples[i * len(examples) // n] for i in range(n)]


def generate(model, prompts: list[list[int]], options, seed: int = 0, batch_size: int = 500,
             progress: bool = False, prompt_in_target: bool = False):
    """Outputs (data-token ids) and sampler records for ``prompts``, in batches. Returns
    ``(outputs, records)`` where each record has the final canvas and per-token insert/unmask steps.
    With ``prompt_in_target`` the prompts are the fixed start of the outputs (Task.prompt_in_target)."""
    generator = torch.Generator().manual_seed(seed)
    outputs, records = [], []
    chunks = range(0, len(prompts), batch_size)
    for start in tqdm(chunks, disable=not progress, desc="sample", dynamic_ncols=True):
        outs, result = model.sample(prompts[start : start + batch_size], options, generator, return_trajectory=True,
                                    prompt_in_target=prompt_in_target)
        outputs.extend(outs)
        for i in range(len(outs)):
            records.append({"canvas": result.tokens[i], "insert_step": result.insert_step[i],
                            "unmask_step": result.unmask_step[i], "model_evals": result.model_evals[i],
                            "terminated": None if result.terminated is None else result.terminated[i]})
    return outputs, records


def evaluate_model(model, task, examples: list[Example], options, seed: int = 0, batch_size: int = 500,
                   progress: bool = False) -> tuple[dict, list]:
    """Task metrics plus ``model_evals_per_seq`` and ``sample_seconds``; also returns the outputs. The
    memory the sampled batch freed goes back to the system (core.memory), so periodic evaluations do not
    raise a training run's resident size for good."""
    start = time.time()
    outputs, records = generate(model, [list(ex.prompt) for ex in examples], options, seed, batch_size, progress,
                                prompt_in_target=task.prompt_in_target)
    release_freed_memory()
    metrics = task.evaluate(examples, outputs)
    metrics["model_evals_per_seq"] = sum(r["model_evals"] for r in records) / max(1, len(records))
    if records and records[0]["terminated"] is not None:
        metrics["termination_rate"] = sum(bool(r["terminated"]) for r in records) / len(records)
    metrics["sample_seconds"] = time.time() - start
    order = order_statistics(task, examples, outputs, records)
    if order is not None:
        metrics.update({k: v for k, v in order.items() if k not in ("per_example", "reference")})
    classes = class_order_statistics(task, outputs, records)
    if classes is not None:
        metrics.update({f"order_step_{name}": v["unmask"] for name, v in classes["classes"].items()})
        skeleton = skeleton_minus_atom({name: v["unmask"] for name, v in classes["classes"].items()})
        if skeleton is not None:
            metrics["scaffold_minus_atom"] = skeleton
    return metrics, list(zip(outputs, records))


LIKELIHOOD_EXAMPLES = 200  # eval / reproduce: the held-out bound on the first 200 examples (M passes each)
LIKELIHOOD_SAMPLES = 4  # Monte-Carlo samples per example of that bound


def scored_tokens(target: list[int]) -> int:
    """The tokens a sequence's likelihood is spread over: the target's plus the end (EOS, IP's stop
    decision, or MDM's PAD completion)."""
    return len(target) + 1


def likelihood_record(value: float, target: list[int], bound: str) -> dict:
    """One scored text: its log-likelihood (or bound) in nats, the standard error of that estimate (0 when
    exact), and nats per token (:func:`scored_tokens`)."""
    tokens = scored_tokens(target)
    return {"log_likelihood": float(value), "stderr": float(getattr(value, "stderr", 0.0)), "bound": bound,
            "tokens": tokens, "nats_per_token": -float(value) / tokens}


def held_out_likelihood(model, task, examples: list[Example], samples: int, seed: int = 0) -> dict:
    """The model's usual bound (exact for ARM, else its ELBO) on ``examples``: the mean negative
    log-likelihood in nats per sequence (with its standard error over the examples) and per token (total
    nats / total tokens, tokens as in :func:`scored_tokens`). Empty when the family cannot score or the
    task's prompt is part of its target."""
    if not family_of(model).can("score") or task.prompt_in_target or not examples:
        return {}
    bound = "exact" if model.likelihood_bounds == ("exact",) else "elbo"
    pairs = [(list(ex.prompt), list(ex.target)) for ex in examples]
    values = torch.tensor([float(v) for v in model.log_likelihood(pairs, bound=bound, samples=samples, seed=seed)],
                          dtype=torch.float64)
    per_seq = Estimate.mean_of(-values)
    tokens = sum(scored_tokens(t) for _, t in pairs)
    return {"likelihood_bound": bound, "nats_per_seq": float(per_seq), "nats_per_seq_stderr": per_seq.stderr,
            "nats_per_token": -float(values.sum()) / tokens, "likelihood_examples": len(pairs),
            "likelihood_samples": samples}
