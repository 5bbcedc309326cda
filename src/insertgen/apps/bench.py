"""Performance harness (``insertgen bench``): training-step time, counted FLOPs and model FLOP utilisation
against this machine's measured float32 matmul peak, and the cost of sampling.

* **Peak.** ``peak_gflops`` times square float32 matrix products (``torch.mm``) of a few sizes on the
  current threads and keeps the best rate, ``2 n^3 / t``: what this machine's BLAS reaches at all.
* **Training step.** A run is set up exactly as ``insertgen train`` would (preset, overrides) in a
  temporary directory; after ``warmup`` steps the median wall time of ``Trainer.train_step`` (batch
  assembly, loss, backward, gradient clipping, AdamW and EMA updates) is measured over ``steps`` steps.
  Tokens/s counts the positions the generator / decoder processes (padding excluded), as the trainer logs.
  ``warmup_s`` is the time of the warm-up steps (with ``compile=true`` it includes the compilation).
* **FLOPs.** One further step is run under ``torch.utils.flop_counter.FlopCounterMode``, which counts the
  matrix products (``mm``, ``addmm``, ``bmm``, and attention: PyTorch's formula, registered here for the
  CPU attention kernels it misses) of the forward and backward passes: the model
  FLOPs of a step (element-wise work is not counted, as MFU conventionally does not).
  ``mfu = flops_per_step / median_step_s / peak``.
* **Sampling.** A *trained* model (the shipped star-easy FlexMDM and LoFlexMDM by default, or the runs
  given; an untrained one neither stops nor inserts like a trained one) samples ``n`` prompts of its
  task's validation split (or ``n`` unconditional samples) with each step count asked for: wall time,
  sequences/s and model evaluations per sequence (sequences leave the batch when they finish).
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import (
    FlopCounterMode,
    sdpa_backward_flop_count,
    sdpa_flop_count,
)

from insertgen.apps.demo import pretrained_dir
from insertgen.core.options import parse_assignments
from insertgen.engine.evaluate import generate, task_prompts
from insertgen.engine.run import load_run
from insertgen.engine.training_run import prepare_run
from insertgen.engine.sampler_settings import resolve_sampler_options

QUICK_SPECS = ("star-easy-cpu", "star-easy-loflexmdm-cpu", "star-easy-ip-cpu")
FULL_SPECS = tuple(f"star-medium-{m}cpu" for m in ("", "loflexmdm-", "ip-", "ao-ip-", "arm-", "mdm-")) + (
    "star-medium-cpu:d_model=256,n_heads=8", "star-medium-loflexmdm-cpu:d_model=256,n_heads=8",
    "star-medium-ip-cpu:d_model=256,n_heads=8")


def peak_gflops(sizes=(512, 1024, 2048), seconds: float = 0.5) -> dict:
    """The best float32 matmul rate over ``sizes`` (GFLOP/s), each timed for about ``seconds``."""
    rates = {}
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)  # warm-up
        reps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            torch.mm(a, b)
            reps += 1
        rates[n] = 2.0 * n**3 * reps / (time.perf_counter() - start) / 1e9
    best = max(rates, key=rates.get)
    return {"peak_gflops": rates[best], "peak_size": best, "rates": rates, "threads": torch.get_num_threads()}


def parse_spec(spec: str) -> tuple[str, dict]:
    """``PRESET[:key=value,...]`` -> (preset, overrides), values read as ``--set`` reads them (JSON when
    they are JSON: numbers, true / false, else text)."""

    preset, _, rest = spec.partition(":")
    return preset, parse_assignments([item for item in rest.split(",") if item], f"bench spec {spec!r}")


def _cpu_attention_flops():
    """FLOP formulas for the CPU attention kernels, which PyTorch's counter does not register: the same
    as its flash / efficient ones (forward 4 b h s_q s_k d; backward 2.5 times that)."""

    aten = torch.ops.aten

    def forward(query, key, value, *args, **kwargs):  # the counter passes shapes
        return sdpa_flop_count(query, key, value)

    def backward(grad_out, query, key, value, *args, **kwargs):
        return sdpa_backward_flop_count(grad_out, query, key, value)

    mapping = {}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        mapping[aten._scaled_dot_product_flash_attention_for_cpu] = forward
        mapping[aten._scaled_dot_product_flash_attention_for_cpu_backward] = backward
    return mapping


def count_step_flops(trainer) -> float:
    """Matrix-product FLOPs (forward + backward, attention included) of one training step of ``trainer``
    (which it takes). A trainer still in its curriculum (``train.curriculum_steps``) is counted at a step of
    its task itself, whose sequences are the longer ones: FLOP budgets are in the task's step cost, so a
    curriculum's cheaper early steps count as full ones."""

    if getattr(trainer, "curriculum", None) is not None and trainer.step < trainer.cfg.curriculum_steps:
        trainer.step = trainer.cfg.curriculum_steps
    counter = FlopCounterMode(display=False, custom_mapping=_cpu_attention_flops())
    with counter:
        trainer.train_step()
    return float(counter.get_total_flops())


def measure_training(spec: str, steps: int, warmup: int, peak: float, device: str = "cpu",
                     count_flops: bool = True) -> dict:
    """Median training-step time, tokens/s, counted FLOPs and MFU of ``spec`` (module docstring; without
    ``count_flops`` the FLOPs and MFU are NaN)."""

    preset, overrides = parse_spec(spec)
    with tempfile.TemporaryDirectory() as tmp:
        _, trainer = prepare_run(task=None, model=None, preset=preset, steps=warmup + steps + 1,
                                 out=Path(tmp) / "run", seed=0,
                                 overrides={"eval_every": 0, "checkpoint_every": 10**9, **overrides}, resume=False,
                                 device=device)
        times, tokens, warmup_s = [], [], 0.0
        for i in range(warmup + steps):
            start = time.perf_counter()
            _, _, stats, _, _ = trainer.train_step()
            if device != "cpu":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            if i >= warmup:
                times.append(elapsed)
                tokens.append(stats.get("tokens", 0.0))
            else:
                warmup_s += elapsed
        flops = count_step_flops(trainer) if count_flops else float("nan")
        model = trainer.model
        step = statistics.median(times)
        return {
            "kind": "train", "spec": spec, "preset": preset, "model": model.model_id,
            "task": trainer.task.name, "params": sum(p.numel() for p in model.parameters()),
            "batch_size": trainer.cfg.batch_size, "median_step_s": step, "min_step_s": min(times),
            "tokens_per_step": statistics.mean(tokens), "tokens_per_s": statistics.mean(tokens) / step,
            "flops_per_step": flops, "achieved_gflops": flops / step / 1e9, "peak_gflops": peak,
            "mfu": flops / step / 1e9 / peak, "steps_measured": steps, "threads": torch.get_num_threads(),
            "warmup_steps": warmup, "warmup_s": warmup_s,
        }


def measure_sampling(model, n: int, options) -> dict:
    """Sampling cost of a loaded run (``load_run``) on ``n`` prompts of its validation split."""

    task = model.task
    prompts = task_prompts(task, n)
    start = time.perf_counter()
    outputs, records = generate(model, prompts, options, seed=0, prompt_in_target=task.prompt_in_target)
    wall = time.perf_counter() - start
    return {"kind": "sample", "run": str(model.run_dir), "model": model.model_id, "task": task.name, "n": n,
            "steps": getattr(options, "steps", None),
            "order": getattr(options, "order", None), "sampler_options": dataclasses.asdict(options),
            "wall_s": wall, "sequences_per_s": n / wall,
            "model_evals_per_seq": sum(r["model_evals"] for r in records) / max(1, len(records)),
            "mean_length": sum(len(o) for o in outputs) / max(1, len(outputs))}


def run(specs=None, runs=None, quick: bool = False, steps: int | None = None, warmup: int | None = None,
        sample_n: int | None = None, sample_steps=None, device: str = "cpu", report=print,
        sampler: dict | None = None) -> list[dict]:
    """Every measurement of the module docstring for the training ``specs`` and the sampling ``runs``
    (defaults: the quick or full lists, the shipped models); each run samples with its own settings
    (engine.sampler_settings) changed by ``sampler`` (the command line's sampler flags) and, in turn, each
    of ``sample_steps``; ``report`` is called with each measurement as soon as it is made."""

    specs = list(specs or (QUICK_SPECS if quick else FULL_SPECS))
    runs = list(runs or ([pretrained_dir("flexmdm")] if quick else [pretrained_dir("flexmdm"),
                                                                     pretrained_dir("loflexmdm")]))
    steps = steps or (5 if quick else 20)
    warmup = warmup if warmup is not None else (2 if quick else 5)
    sample_n = sample_n or (100 if quick else 500)
    sample_steps = list(sample_steps or ((64,) if quick else (500, 128, 64, 32)))
    peak = peak_gflops(sizes=(1024,) if quick else (512, 1024, 2048), seconds=0.3 if quick else 1.0)
    results = [{"kind": "peak", **peak}]
    report(results[-1])
    for spec in specs:
        results.append(measure_training(spec, steps, warmup, peak["peak_gflops"], device))
        report(results[-1])
    for run_dir in runs:
        model = load_run(run_dir, device=device)
        for n_steps in sample_steps:
            options = resolve_sampler_options(model.run_config, default_greedy=model.task.greedy_by_default,
                                              **{**(sampler or {}), "steps": n_steps})
            results.append(measure_sampling(model, sample_n, options))
            report(results[-1])
    return results


def format_row(m: dict) -> str:
    if m["kind"] == "peak":
        return (f"float32 matmul peak: {m['peak_gflops']:.1f} GFLOP/s (n = {m['peak_size']}, "
                f"{m['threads']} threads)")
    if m["kind"] == "train":
        return (f"train  {m['spec']:<48} {m['model']:<9} step {m['median_step_s'] * 1e3:7.1f} ms  "
                f"{m['tokens_per_s']:9,.0f} tok/s  {m['flops_per_step'] / 1e9:7.2f} GFLOP/step  "
                f"{m['achieved_gflops']:6.1f} GFLOP/s  MFU {m['mfu']:.1%}")
    return (f"sample {Path(m['run']).name:<48} {m['model']:<9} {m['n']} seqs in {m['wall_s']:6.2f} s  "
            f"{m['sequences_per_s']:8.1f} seq/s  {m['model_evals_per_seq']:6.1f} evals/seq ({m['steps']} steps)")
