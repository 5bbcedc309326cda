"""Evaluate a model on task examples: sample a target for each prompt, score with the task's metrics."""

from __future__ import annotations

import time

import torch
from tqdm import tqdm

from insertgen.analysis import class_order_statistics, order_statistics
from insertgen.tasks.base import Example


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
    """Task metrics plus ``model_evals_per_seq`` and ``sample_seconds``; also returns the outputs."""
    start = time.time()
    outputs, records = generate(model, [list(ex.prompt) for ex in examples], options, seed, batch_size, progress,
                                prompt_in_target=task.prompt_in_target)
    metrics = task.evaluate(examples, outputs)
    metrics["model_evals_per_seq"] = sum(r["model_evals"] for r in records) / max(1, len(records))
    if records and records[0]["terminated"] is not None:
        metrics["termination_rate"] = sum(bool(r["terminated"]) for r in records) / len(records)
    metrics["sample_seconds"] = time.time() - start
    order = order_statistics(task, examples, outputs, records)
    if order is not None:
        metrics.update({k: v for k, v in order.items() if k != "per_example"})
    classes = class_order_statistics(task, outputs, records)
    if classes is not None:
        metrics.update({f"order_step_{name}": v["unmask"] for name, v in classes["classes"].items()})
    return metrics, list(zip(outputs, records))
