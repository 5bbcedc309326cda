"""A run directory as a Python object: what `insertgen sample`, `score`, `eval` and `analysis` do, as methods.

    run = insertgen.load_run("runs/my-run")            # or insertgen.train(...)
    run.sample(["3 1 4"])                              # text (or token ids) in, text out
    run.sample(n=5, temperature=0.7)                   # unconditional tasks; any sampler option by name
    run.score(["4 1 3"], prompts=["3 1 4"])            # log-likelihood (or its bound) per text, in nats
    run.evaluate("test", limit=200)                    # the task's metrics, as `insertgen eval --json`
    run.order_analysis("test", limit=200)              # generation-order statistics, as `insertgen analysis`

Each method resolves its sampler options as the command does (engine/sampler_settings.py: an option given >
the run's sampler_defaults > its evaluation settings > the sampler's default); the CLI commands call these
methods, so the two cannot drift apart. ``run.model`` is the trained ``torch.nn.Module`` (eval mode), and
``run.task`` / ``run.vocab`` / ``run.run_dir`` / ``run.config`` what it was trained on and with.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from insertgen.core.distributed import barrier, init_world
from insertgen.core.errors import InsertgenError
from insertgen.core.io import write_jsonl
from insertgen.engine.analysis import (
    class_order_statistics,
    insertion_time_profile,
    order_statistics,
    posterior_order_profile,
)
from insertgen.engine.evaluate import (
    LIKELIHOOD_EXAMPLES,
    LIKELIHOOD_SAMPLES,
    evaluate_model,
    generate,
    held_out_likelihood,
    likelihood_record,
)
from insertgen.engine.run import load_run as load_model
from insertgen.engine.sampler_settings import resolve_sampler_options
from insertgen.engine.training_run import prepare_run, run_training
from insertgen.models.registry import family_of
from insertgen.tasks import TASKS, register_task
from insertgen.tasks.base import Task


class TrainedRun:
    """A trained run (module docstring)."""

    def __init__(self, model):
        self.model = model

    @classmethod
    def open(cls, run_dir, weights: str = "ema", device: str | torch.device = "cpu") -> "TrainedRun":
        return cls(load_model(run_dir, weights=weights, device=device))

    # -- what it is ----------------------------------------------------------------------------
    @property
    def task(self):
        return self.model.task

    @property
    def vocab(self):
        return self.model.vocab

    @property
    def run_dir(self) -> Path:
        return Path(self.model.run_dir)

    @property
    def config(self) -> dict:
        return self.model.run_config

    @property
    def sampler_options(self):
        """The options `insertgen eval` samples with by default."""
        return self.model.sampler_options

    def __repr__(self) -> str:
        return (f"TrainedRun({str(self.run_dir)!r}: {self.model.model_id} on {self.task.name}, "
                f"step {self.model.checkpoint_step})")

    def sampler(self, default_greedy: bool | None = None, greedy: bool | None = None, **choices):
        """The run's sampler options with ``choices`` (e.g. ``steps=64``, ``temperature=0.7``) applied;
        ``default_greedy`` (default: the task's) is whether token choice is greedy when nothing says."""
        if default_greedy is None:
            default_greedy = self.task.greedy_by_default
        return resolve_sampler_options(self.config, default_greedy=default_greedy, greedy=greedy, **choices)

    def encode_prompts(self, prompts) -> list[list[int]]:
        """Prompts as token-id lists: text in the task's format is parsed, id lists are checked."""
        out = []
        for i, prompt in enumerate(prompts):
            if isinstance(prompt, str):
                out.append(self.task.parse_prompt(prompt))
                continue
            ids = [int(t) for t in prompt]
            bad = [t for t in ids if not self.vocab.num_special <= t < len(self.vocab)]
            if bad:
                raise InsertgenError(f"prompt {i}: token id {bad[0]} is not a data token of the run's vocabulary "
                                     f"({self.vocab.num_special}..{len(self.vocab) - 1})")
            out.append(ids)
        return out

    # -- sample ----------------------------------------------------------------------------------
    def sample_records(self, prompts: list[list[int]], seed: int = 0, **sampler) -> tuple[list, list[dict]]:
        """(output ids, per-output trajectory records) for prompt ids, as `insertgen sample` samples."""
        options = self.sampler(default_greedy=False, **sampler)
        return generate(self.model, prompts, options, seed=seed, prompt_in_target=self.task.prompt_in_target)

    def sample(self, prompts=None, n: int | None = None, seed: int = 0, **sampler) -> list[str]:
        """Outputs as task text: one per prompt (text or token ids) of a conditional task, or ``n`` samples
        of an unconditional one. Sampler options by name (``steps``, ``temperature``, ``top_p``, ``greedy``...)."""
        if self.task.conditional:
            if prompts is None or n is not None:
                raise InsertgenError(f"task {self.task.name} is conditional: give prompts, not n")
            ids = self.encode_prompts(prompts)
        else:
            if prompts is not None or n is None:
                raise InsertgenError(f"task {self.task.name} is unconditional: give n, not prompts")
            ids = [[] for _ in range(n)]
        outputs, _ = self.sample_records(ids, seed=seed, **sampler)
        return [self.task.format(o) for o in outputs]

    # -- score -----------------------------------------------------------------------------------
    def likelihood_bound(self, bound: str | None = None) -> str:
        """``bound`` checked against what the model gives (default: exact where it is the only one, else elbo)."""
        supported = self.model.likelihood_bounds if family_of(self.model).can("score") else ()
        if bound is None:
            bound = "exact" if supported == ("exact",) else "elbo"
        if bound not in supported:
            what = ", ".join(supported) if supported else "none"
            raise InsertgenError(f"model {self.model.model_id!r} cannot give the log-likelihood bound {bound!r} "
                                 f"(it supports: {what})")
        if self.task.prompt_in_target:
            raise InsertgenError(f"score does not support task {self.task.name} yet (its prompt is part of the "
                                 "target); score the molecules with a model trained on the de novo task 'safe'")
        return bound

    def parse_scored(self, text: str, prompt: str | None) -> tuple[list[int], list[int]]:
        """(prompt ids, target ids) of one text to score (the prompt: conditional tasks only)."""
        task = self.task
        prompt_ids = task.parse_prompt(prompt) if task.conditional else []
        target = task.parse_target(prompt_ids, text)
        if len(target) > task.target_block:
            raise InsertgenError(f"the text has {len(target)} tokens, more than the {task.target_block} that "
                                 f"{task.name} allows")
        return prompt_ids, target

    def score_pairs(self, pairs, bound: str | None = None, samples: int = 16, seed: int = 0) -> list[dict]:
        bound = self.likelihood_bound(bound)
        values = self.model.log_likelihood(pairs, bound=bound, samples=samples, seed=seed)
        return [likelihood_record(v, target, bound) for v, (_, target) in zip(values, pairs)]

    def score(self, texts: list[str], prompts: list[str] | None = None, bound: str | None = None,
              samples: int = 16, seed: int = 0) -> list[dict]:
        """Per text: ``log_likelihood`` (nats; a bound for Monte-Carlo estimates), its ``stderr``, ``bound``,
        ``tokens`` and ``nats_per_token``, as `insertgen score` writes them. Conditional tasks take one prompt
        per text."""
        if self.task.conditional and (prompts is None or len(prompts) != len(texts)):
            raise InsertgenError(f"task {self.task.name} is conditional: give one prompt per text")
        bound = self.likelihood_bound(bound)
        pairs = [self.parse_scored(t, prompts[i] if self.task.conditional else None) for i, t in enumerate(texts)]
        return self.score_pairs(pairs, bound, samples, seed)

    # -- evaluate, analyse -----------------------------------------------------------------------
    def evaluate(self, split: str = "test", limit: int | None = None, seed: int = 0,
                 likelihood_samples: int = LIKELIHOOD_SAMPLES, **sampler) -> dict:
        """The task's metrics on the first ``limit`` examples of ``split`` (default: the task's evaluation
        size) and the held-out bound on the first LIKELIHOOD_EXAMPLES, as `insertgen eval --json` prints
        them; ``metrics["outputs"]`` is not included (see :meth:`evaluate_with_outputs`)."""
        metrics, _, _ = self.evaluate_with_outputs(split, limit, seed, likelihood_samples, **sampler)
        return metrics

    def evaluate_with_outputs(self, split: str = "test", limit: int | None = None, seed: int = 0,
                              likelihood_samples: int = LIKELIHOOD_SAMPLES, progress: bool = False, **sampler):
        """(metrics, examples, [(output ids, trajectory record)]) of :meth:`evaluate`."""
        options = self.sampler(**sampler)
        examples = self.task.examples(split)[:limit or self.task.eval_size]
        metrics, pairs = evaluate_model(self.model, self.task, examples, options, seed=seed, progress=progress)
        if likelihood_samples:
            metrics.update(held_out_likelihood(self.model, self.task, examples[:LIKELIHOOD_EXAMPLES],
                                               likelihood_samples, seed))
        metrics.update(split=split, sampler=options.__dict__)
        return metrics, examples, pairs

    def order_analysis(self, split: str = "test", limit: int = 1000, seed: int = 0, progress: bool = False,
                       **sampler) -> dict:
        """Generation-order statistics on the first ``limit`` examples of ``split``, as `insertgen analysis`
        computes them: ``{"metrics", "order"}`` with the order correlation against the task's reference
        distance and the learned schedule or posterior profile (``"profile"``), or, for tasks with token
        classes (molecules), ``{"metrics", "classes"}`` with the mean normalised step of each class."""
        task = self.task
        options = self.sampler(**sampler)
        examples = task.examples(split)[:limit]
        metrics, pairs = evaluate_model(self.model, task, examples, options, seed=seed, progress=progress)
        outputs, records = [o for o, _ in pairs], [r for _, r in pairs]
        stats = order_statistics(task, examples, outputs, records)
        if stats is None:
            classes = class_order_statistics(task, outputs, records)
            if classes is None:
                raise InsertgenError(f"task {task.name!r} defines no reference order to analyse")
            return {"metrics": metrics, "classes": classes}
        profile = (insertion_time_profile(self.model, task, examples)
                   or posterior_order_profile(self.model, task, examples[:200]))
        return {"metrics": metrics, "order": stats, "profile": profile}


def train(model: str, task=None, data=None, valid=None, test=None, out=None, steps: int | None = None,
          time_budget: float | None = None, seed: int | None = None, preset: str | None = None,
          task_options: dict | None = None, resume: bool = False, progress: bool = False, device=None,
          **options) -> TrainedRun:
    """Train ``model`` (an id) and return the run, a normal run directory the CLI reads (as `insertgen train`).

    The data: ``task`` (an id, or a :class:`~insertgen.tasks.base.Task` object, registered for this process
    under its ``name``), or ``data``: a JSONL file (the ``sequences`` task, as ``--data``; ``valid`` / ``test``
    files likewise), or a list of texts, of ``(prompt, target)`` pairs or of such dicts, written to
    ``OUT/data/train.jsonl`` first so that the run keeps its data. ``options`` are what ``--set`` takes
    (``d_model=64``, ``lr=3e-4``, ``steps`` of the preset...); ``task_options`` the task's (``--set task.KEY``)."""
    overrides = {**options, **{f"task.{k}": v for k, v in (task_options or {}).items()}}
    if isinstance(task, Task):
        if TASKS.get(task.name) is None:
            register_task(task.name, lambda _task=task, **_: _task)
        task = task.name
    task_id = "sequences" if data is not None else task
    out = Path(out) if out is not None else Path("runs") / f"{task_id}-{model}-{time.strftime('%Y%m%d-%H%M%S')}"
    if data is not None:
        if task is not None and task != "sequences":
            raise InsertgenError(f"give task or data, not both (data trains the sequences task, not {task!r})")
        files = {"train": data, "valid": valid, "test": test}
        for key, value in files.items():
            if value is None or isinstance(value, (str, Path)):
                if value is not None:
                    overrides[f"task.{key}"] = str(value)
                continue
            if resume:
                continue  # written when the run was made
            path = out / "data" / f"{key}.jsonl"
            if (out / "config.json").exists():
                raise InsertgenError(f"{out} already holds a run; use resume=True to continue it or choose another out")
            path.parent.mkdir(parents=True, exist_ok=True)
            write_jsonl(path, [_data_row(row) for row in value])
            overrides[f"task.{key}"] = str(path)
    elif valid is not None or test is not None:
        raise InsertgenError("valid and test go with data")
    world, device = init_world(device)  # one process (or this rank, under torchrun)
    run_dir, trainer = prepare_run(task=None if resume else task_id, model=None if resume else model,
                                   preset=preset, steps=steps, out=out, seed=seed,
                                   overrides={} if resume else overrides, resume=resume, time_budget=time_budget,
                                   device=device, world=world)
    run_training(trainer, progress=progress)
    barrier(world)
    return TrainedRun.open(run_dir)


def _data_row(row) -> dict:
    """One line of a data file from a text, a (prompt, target) pair or a dict of either."""
    if isinstance(row, str):
        return {"text": row}
    if isinstance(row, dict):
        return row
    if isinstance(row, (tuple, list)) and len(row) == 2 and all(isinstance(x, str) for x in row):
        return {"prompt": row[0], "target": row[1]}
    raise InsertgenError(f"a data item must be a text, a (prompt, target) pair of texts or a dict, not {row!r}")
