"""The model x task x seed grid of ``insertgen reproduce``: every cell trained under the same budget and
evaluated with every sampler of its model family; cells already done are skipped.

Directory layout (``OUT``)::

    reproduce.json                     the grid's settings (scale, budget, evaluation); a rerun must agree
    runs/TASK/MODEL/seedS/             each cell's run directory (usable by sample / eval / report)
    runs/TASK/MODEL/seedS.log          what the cell printed
    cells/TASK--MODEL--seedS.json      a finished cell: training (steps, seconds, FLOPs), metrics per sampler
    results.json, results.md, figures/ the summary (:mod:`insertgen.apps.reproduce.summary`)

A cell is *done* when its ``cells/`` file exists. A cell whose training finished (``trained.json`` in its
run directory) but whose evaluation did not is only evaluated. A cell interrupted during training is
resumed exactly from its last checkpoint under a step budget (``preset`` / FLOPs); under a wall-clock
budget it is trained again from step 0, since the time already spent is not recorded in the checkpoint.

Evaluation: the first ``eval_n`` test examples (unconditional tasks: ``eval_n`` samples; None: the
task's own ``eval_size``), EMA weights, each sampler of :func:`insertgen.engine.evaluate.family_samplers`
(greedy for conditional tasks, sampled otherwise, at the temperature / nucleus of the run's preset:
``sampler_defaults``, e.g. 0.5 for IP and AO-IP on smiles) with ``sampler_steps`` steps where the sampler takes
steps. The sampler best on the task's first headline metric is written to the run directory as
``eval-test.json`` with the task's picture, and the generation-order figure ``order.png`` is drawn (star
graphs: order against the distance from the junction with LoFlexMDM's learned insertion times or IP's
posterior order; molecules: order by token class).
"""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import torch

from insertgen.apps.bench import count_step_flops
from insertgen.apps.reproduce.budget import Budget
from insertgen.apps.reproduce.cells import SETTINGS, TRAINED, cell_key, read_cell
from insertgen.apps.reproduce.summary import write_summary
from insertgen.core.checkpoint import CHECKPOINT, PREVIOUS
from insertgen.core.errors import InsertgenError
from insertgen.core.io import to_json, write_text_atomic
from insertgen.core.threads import allowed_cores
from insertgen.engine.analysis import write_order_figures
from insertgen.engine.evaluate import (
    LIKELIHOOD_EXAMPLES,
    LIKELIHOOD_SAMPLES,
    evaluate_model,
    family_samplers,
    held_out_likelihood,
)
from insertgen.core import run_lock
from insertgen.engine.presets import has_preset, preset_name
from insertgen.engine.run import load_run
from insertgen.engine.sampler_settings import with_drawing_defaults
from insertgen.engine.training_run import prepare_run
from insertgen.models.registry import model_ids
from insertgen.tasks import task_ids


@dataclass(frozen=True)
class Scale:
    """Defaults of a grid: which tasks, models, seeds, budget, evaluation size and sampler steps, the
    preset of each (task, model), and per-task option overrides."""

    name: str
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    budget: str | dict  # one budget for every task, or one per task (Budget.parse forms)
    eval_n: int | None
    sampler_steps: int
    task_options: dict = field(default_factory=dict)
    models: tuple[str, ...] | None = None  # None: every registered model family

    def preset(self, task: str, model: str) -> str:
        if self.name == "cpu":
            return preset_name(task, model, "cpu")
        return preset_name(task if task.endswith("-paper") else f"{task}-paper", model, "gpu")


SMALL_MOLECULES = {"train_size": 20_000}  # "small data" on a CPU: the first 20,000 MOSES training molecules

# Model FLOPs per cell at CPU scale: equal for every model of a task, so that the tables do not depend on
# how busy the machine was; each sized from the learning-speed studies to where the insertion models learn.
# Star graphs (docs/lab/learning.md): star-tiny 8e12 is about 1.3x what IP (2,000 steps) and 3x what AO-IP, ARM and
# MDM needed to reach 95% there; star-easy 4.5e13 is about 20% more than IP (5,000 steps) and AO-IP (6,000) needed
# on seed 0, about 25 minutes of one core. star-medium is learned by no model at any CPU budget measured, so the CPU
# grid leaves it out (its budget stays for --tasks star-medium). Mazes (docs/lab/learning-mazes.md): maze-perfect-easy
# 6e13, where IP plans 97-99% (95% at 4.6-5.0e13 on two seeds), AO-IP 87-93%, MDM 90% and FlexMDM about 60%, 25-35
# minutes of one core per cell; maze-braided-medium 4e14 (the IP paper's loops; the medium tiers share it), where
# IP (3.8e14) and FlexMDM (3.7e14) first plan half the test problems and the ARM has planned 95% since 7.9e13, about
# two hours of one core per cell. smiles: 1.6e14, where IP and
# AO-IP write more than half valid molecules at their preset's temperature 0.5 (docs/lab/learning-molecules.md: at
# 1.4e14 IP 67-70% valid at T = 0.4 on two seeds, AO-IP 57% at 1.1e14), about 45 minutes of one core per cell,
# on the preset's 100,000 training molecules as the study; safe keeps the small budget and data until the
# study finds a budget at which FlexMDM and LoFlexMDM learn SAFE (issue 35).
CPU_FLOPS = {"star-tiny": "8e12flop", "star-easy": "4.5e13flop", "star-medium": "5e12flop",
             "maze-perfect-easy": "6e13flop", "maze-perfect-medium": "4e14flop", "maze-braided-medium": "4e14flop",
             "smiles": "1.6e14flop", "safe": "1.2e13flop"}

SCALES = {
    # a 2-core CPU: 6 tasks x 6 models x 2 seeds in about 25 hours with --jobs 2 (the braided medium mazes are half
    # of it, about 13 hours; star-easy and smiles about 4.5 each, the easy mazes about 3)
    "cpu": Scale("cpu", tasks=("star-tiny", "star-easy", "maze-perfect-easy", "maze-braided-medium", "smiles", "safe"),
                 seeds=(0, 1), budget=CPU_FLOPS, eval_n=500, sampler_steps=64,
                 task_options={"safe": SMALL_MOLECULES}),
    # the papers' model sizes and step counts (presets *-paper-*-gpu): for GPU clusters
    "paper": Scale("paper", tasks=("star-easy", "star-medium", "star-hard", "maze-perfect-paper", "maze-imperfect-paper",
                                   "maze-braided-paper", "smiles", "safe"),
                   seeds=(0, 1, 2), budget="preset", eval_n=None, sampler_steps=64),
}


@dataclass(frozen=True)
class Grid:
    """A resolved grid: the cells to run and the settings every cell shares."""

    out: Path
    scale: Scale
    tasks: tuple[str, ...]
    models: tuple[str, ...]
    seeds: tuple[int, ...]
    budget_spec: str | dict  # as given (--budget) or the scale's default
    eval_n: int | None
    sampler_steps: int
    overrides: dict

    def budget(self, task: str) -> Budget:
        spec = self.budget_spec
        if isinstance(spec, dict):
            if task not in spec:
                raise InsertgenError(f"--scale {self.scale.name} has no default budget for task {task!r}; "
                                     f"give --budget")
            spec = spec[task]
        return Budget.parse(spec)

    def describe_budget(self, tasks=None) -> str:
        """The budget in words, per task of ``tasks`` (default: this invocation's) when it differs by task."""
        if isinstance(self.budget_spec, dict):
            budgets = {t: self.budget(t) for t in (self.tasks if tasks is None else tasks)}
            if all(b.kind == "flops" for b in budgets.values()):
                return ("model FLOPs of training per cell (matrix products of the forward and backward passes), by "
                        "task: " + ", ".join(f"{t} {b.value:.2g}" for t, b in budgets.items()))
            return "per cell, by task: " + "; ".join(f"{t}: {b.describe()}" for t, b in budgets.items())
        return Budget.parse(self.budget_spec).describe()

    @property
    def settings(self) -> dict:
        """What every cell of the directory must share (a rerun with other values is refused)."""
        return {"scale": self.scale.name, "budget": self.budget_spec, "eval_n": self.eval_n,
                "sampler_steps": self.sampler_steps, "overrides": self.overrides,
                "task_options": self.scale.task_options}

    def cells(self) -> list[dict]:
        """Cell specs in running order: seed by seed, so that a stopped grid has whole seeds done."""
        return [self.cell(task, model, seed) for seed in self.seeds for task in self.tasks for model in self.models]

    def cell(self, task: str, model: str, seed: int) -> dict:
        key = cell_key(task, model, seed)
        preset = self.scale.preset(task, model)
        return {"key": key, "task": task, "model": model, "seed": seed,
                "preset": preset if has_preset(preset) else None,
                "run_dir": str(self.out / "runs" / task / model / f"seed{seed}"),
                "log": str(self.out / "runs" / task / model / f"seed{seed}.log"),
                "result": str(self.out / "cells" / f"{key}.json"), "budget": str(self.budget(task)),
                "eval_n": self.eval_n, "sampler_steps": self.sampler_steps,
                "overrides": {**{f"task.{k}": v for k, v in self.scale.task_options.get(task, {}).items()},
                              **self.overrides}}


def make_grid(out: Path, scale: str = "cpu", tasks=None, models=None, seeds=None, budget: str | None = None,
              eval_n: int | None = None, sampler_steps: int | None = None, overrides: dict | None = None) -> Grid:
    """Resolve the choices (None: the scale's default) and check them: every task and model known, a
    preset for every (task, model), a budget that parses."""
    if scale not in SCALES:
        raise InsertgenError(f"--scale {scale!r}: choose from {', '.join(SCALES)}")
    s = SCALES[scale]
    tasks = tuple(tasks or s.tasks)
    models = tuple(models or s.models or model_ids())
    seeds = tuple(seeds if seeds is not None and len(seeds) else s.seeds)
    for task in tasks:
        if task not in task_ids():
            raise InsertgenError(f"--tasks: unknown task {task!r}; known tasks: {', '.join(task_ids())}")
    for model in models:
        if model not in model_ids():
            raise InsertgenError(f"--models: unknown model {model!r}; known models: {', '.join(model_ids())}")
    if any(seed < 0 for seed in seeds):
        raise InsertgenError("--seeds must be non-negative integers")
    # a task with presets at this scale needs one for every model; a task without any (another package's, or
    # your own file's) trains each family with its default options
    tuned = [t for t in tasks if any(has_preset(s.preset(t, m)) for m in model_ids())]
    missing = [s.preset(t, m) for t in tuned for m in models if not has_preset(s.preset(t, m))]
    if missing:
        raise InsertgenError(f"--scale {scale} has no preset for {', '.join(missing)}")
    if len(set(tasks)) != len(tasks) or len(set(models)) != len(models) or len(set(seeds)) != len(seeds):
        raise InsertgenError("--tasks, --models and --seeds must not repeat a value")
    grid = Grid(Path(out), s, tasks, models, seeds, budget or s.budget, s.eval_n if eval_n is None else eval_n,
                sampler_steps or s.sampler_steps, dict(overrides or {}))
    for task in tasks:
        grid.budget(task)  # every task has a budget that parses
    return grid


def check_settings(grid: Grid) -> None:
    """Write ``reproduce.json`` for a new directory, or refuse a rerun whose shared settings differ
    (its finished cells would not be comparable); the tasks, models and seeds may grow."""
    path = grid.out / SETTINGS
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise InsertgenError(f"{path} is not valid JSON ({e}); it records the grid's settings") from None
        differ = {k: (saved.get("settings", {}).get(k), v) for k, v in grid.settings.items()
                  if saved.get("settings", {}).get(k) != v}
        if differ:
            what = "; ".join(f"{k}: {old!r} there, {new!r} now" for k, (old, new) in differ.items())
            raise InsertgenError(f"{grid.out} holds a grid made with other settings ({what}); rerun with the same "
                                 f"options or choose another --out")
        union = lambda key, new: list(dict.fromkeys([*saved.get(key, []), *new]))  # noqa: E731
        record = {**saved, "tasks": union("tasks", grid.tasks), "models": union("models", grid.models),
                  "seeds": union("seeds", grid.seeds)}
        record["budget"] = grid.describe_budget(record["tasks"])  # every task the directory holds
    else:
        record = {"settings": grid.settings, "budget": grid.describe_budget(), "tasks": list(grid.tasks),
                  "models": list(grid.models), "seeds": list(grid.seeds),
                  "created": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    grid.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, to_json(record, indent=2) + "\n")


# ----- one cell (runs in a worker process) -----

def _train(spec: dict, device: str) -> dict:


    run_dir = Path(spec["run_dir"])
    budget = Budget.parse(spec["budget"])
    overrides = {"eval_every": 0, **spec["overrides"]}
    flops_per_step = None
    if budget.kind == "flops":  # counted on a throw-away copy, so the real run starts untouched

        with tempfile.TemporaryDirectory() as tmp:
            _, probe = prepare_run(task=spec["task"], model=spec["model"], preset=spec["preset"], steps=10,
                                   out=Path(tmp) / "probe",
                                   seed=spec["seed"], overrides=overrides, resume=False, device=device)
            flops_per_step = count_step_flops(probe)
            run_lock.release(probe.run_dir)
    steps = {"seconds": 10**9, "preset": None,  # the step cap is out of reach / the preset's own
             "flops": max(1, int(budget.value // flops_per_step)) if budget.kind == "flops" else None}[budget.kind]
    time_budget = budget.value if budget.kind == "seconds" else None
    resumable = any((run_dir / name).exists() for name in (CHECKPOINT, PREVIOUS))
    if run_dir.exists() and (budget.kind == "seconds" or not resumable):
        print(f"{run_dir}: unfinished training from an earlier invocation; training it again from step 0")
        shutil.rmtree(run_dir)
    resume = run_dir.exists()
    _, trainer = prepare_run(task=None if resume else spec["task"], model=None if resume else spec["model"],
                             preset=None if resume else spec["preset"], steps=steps,
                             out=run_dir, seed=spec["seed"], overrides={} if resume else overrides, resume=resume,
                             time_budget=time_budget, device=device)
    start = time.time()
    try:
        trainer.train(progress=False)
    finally:
        run_lock.release(run_dir)
    seconds = time.time() - start
    if flops_per_step is None:  # one more step, counted but not saved (the checkpoint is already written)
        flops_per_step = count_step_flops(trainer)
    record = {"steps": trainer.step, "train_seconds": seconds, "flops_per_step": flops_per_step,
              "train_flops": flops_per_step * trainer.step, "threads": torch.get_num_threads(),
              "resumed": resume, "params": sum(p.numel() for p in trainer.model.parameters()), "device": device,
              "budget": spec["budget"], "preset": spec["preset"]}
    write_text_atomic(run_dir / TRAINED, to_json(record, indent=2) + "\n")
    return record


def _evaluate(spec: dict, device: str) -> dict:


    run_dir = Path(spec["run_dir"])
    model = load_run(run_dir, device=device)
    task = model.task
    examples = task.examples("test")[: spec["eval_n"] or task.eval_size]
    samplers = {name: with_drawing_defaults(options, model.run_config)
                for name, options in family_samplers(model.model_id, spec["sampler_steps"],
                                                     greedy=task.greedy_by_default).items()}
    headline = task.headline_metrics[0]
    results, best, best_pairs = {}, None, None
    for name, options in samplers.items():
        with torch.inference_mode():
            metrics, pairs = evaluate_model(model, task, examples, options, seed=0)
        results[name] = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if best is None or results[name].get(headline, float("-inf")) > results[best].get(headline, float("-inf")):
            best, best_pairs = name, pairs
    outputs, records = [o for o, _ in best_pairs], [r for _, r in best_pairs]
    write_text_atomic(run_dir / "eval-test.json", to_json(
        {**results[best], "split": "test", "sampler_name": best, "sampler": samplers[best].__dict__}, indent=2) + "\n")
    task.save_figure(examples, outputs, run_dir / "eval-test.png")
    order = write_order_figures(model, task, examples, outputs, records, run_dir)
    with torch.inference_mode():  # the held-out bound (nats per token), where the family has one
        likelihood = held_out_likelihood(model, task, examples[:LIKELIHOOD_EXAMPLES], LIKELIHOOD_SAMPLES)
    return {"samplers": results, "best_sampler": best, "headline": headline, "likelihood": likelihood,
            "headline_metrics": list(task.headline_metrics), "order": order, "eval_examples": len(examples)}


def _finished_training(spec: dict) -> dict | None:
    """The cell's ``trained.json`` when its training finished under this cell's budget and preset; a
    run directory trained under other settings is removed (and trained again)."""
    path = Path(spec["run_dir"]) / TRAINED
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("budget") == spec["budget"] and record.get("preset") == spec["preset"]:
        return record
    print(f"{path.parent} was trained under budget {record.get('budget')!r} / preset {record.get('preset')!r}, "
          f"not {spec['budget']!r} / {spec['preset']!r}: training it again")
    shutil.rmtree(path.parent)
    return None


_WORKER_DEVICE: list[str] = []  # the device a worker process claimed (see run_grid)


def _claim_device(devices) -> None:
    _WORKER_DEVICE.append(devices.get())


def available_devices() -> list[str]:
    """Every CUDA device, or the CPU when there is none."""

    return [f"cuda:{i}" for i in range(torch.cuda.device_count())] or ["cpu"]


def run_cell(spec: dict, threads: int, device: str | None = None) -> dict:
    """Train (unless trained) and evaluate one cell on ``device`` (default: the one this worker claimed,
    else the first available); writes its ``cells/`` record and returns it, or ``{"key", "error"}`` when
    it failed (the traceback is in the cell's log)."""

    torch.set_num_threads(threads)
    device = device or (_WORKER_DEVICE[0] if _WORKER_DEVICE else available_devices()[0])
    Path(spec["log"]).parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    with open(spec["log"], "a", encoding="utf-8") as log, redirect_stdout(log), redirect_stderr(log):
        print(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} cell {spec['key']} (preset {spec['preset']}, "
              f"budget {spec['budget']}, {device}, {threads} threads)")
        try:
            training = _finished_training(spec) or _train(spec, device)
            evaluation = _evaluate(spec, device)
        except Exception as e:  # one failed cell must not stop the grid
            traceback.print_exc()
            return {"key": spec["key"], "error": f"{type(e).__name__}: {e}"}
        record = {k: spec[k] for k in ("key", "task", "model", "seed", "preset", "budget", "eval_n", "sampler_steps",
                                       "overrides")}
        record.update(training=training, **evaluation, cell_seconds=time.time() - start,
                      finished=time.strftime("%Y-%m-%d %H:%M:%S %Z"))
        Path(spec["result"]).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(Path(spec["result"]), to_json(record, indent=2) + "\n")
        print(f"done in {time.time() - start:.0f} s")
    return record


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def run_grid(grid: Grid, jobs: int = 1, report=print, docs: Path | None = None,
             threads: int | None = None) -> tuple[list[dict], list[dict]]:
    """Run every cell not done yet, ``jobs`` at a time (each on ``threads`` / jobs threads, at least one;
    ``threads`` defaults to the cores this process may use; with GPUs, worker k uses GPU k mod the GPU count), then write the summary (and its ``docs`` section, see
    :func:`summary.write_summary`). Returns (finished cell records of this grid, failures); ``report``
    gets one line per cell."""

    check_settings(grid)
    cells = grid.cells()
    todo = [c for c in cells if read_cell(Path(c["result"])) is None]
    report(f"{grid.out}: {len(cells)} cells ({len(grid.tasks)} tasks x {len(grid.models)} models x "
           f"{len(grid.seeds)} seeds), {len(cells) - len(todo)} already done, {len(todo)} to run; "
           f"budget: {grid.describe_budget()}")
    threads = max(1, (threads or allowed_cores()) // max(1, jobs))
    failures = []
    start = time.time()

    def finished(result: dict, index: int) -> None:
        elapsed = time.time() - start
        left = elapsed / index * (len(todo) - index)  # the mean pace so far
        clock = f"{elapsed / 60:.0f} min so far, about {left / 60:.0f} min left"
        if "error" in result:
            failures.append(result)
            report(f"[{index}/{len(todo)}] {result['key']}: FAILED ({result['error']}); see its log ({clock})")
        else:
            m = result["samplers"][result["best_sampler"]]
            report(f"[{index}/{len(todo)}] {result['key']}: {result['headline']} "
                   f"{m.get(result['headline'], float('nan')):.3f} ({result['best_sampler']}), "
                   f"{result['training']['steps']:,} steps, {result['cell_seconds']:.0f} s ({clock})")
        write_summary(grid.out)  # after every cell, so a stopped grid has its tables so far

    if jobs <= 1:
        for i, spec in enumerate(todo, 1):
            finished(run_cell(spec, threads), i)
    else:
        context = get_context("spawn")
        devices = context.Queue()
        gpus = available_devices()
        for k in range(jobs):
            devices.put(gpus[k % len(gpus)])
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_claim_device,
                                   initargs=(devices,))
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            futures = [pool.submit(run_cell, spec, threads) for spec in todo]
            for i, future in enumerate(as_completed(futures), 1):
                finished(future.result(), i)
        except BaseException:  # interrupted (Ctrl-C, SIGTERM) or failed: no worker may outlive the grid
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)
        pool.shutdown()
    keys = {c["key"] for c in cells}
    done = [r for r in write_summary(grid.out, docs)["cell_records"] if r["key"] in keys]
    return done, failures
