"""Helpers shared by the benchmark scripts of the checkout's ``benchmarks/`` folder: the machine's
description, JSON results in ``benchmarks/results/``, ``--set`` overrides and the samplers compared."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import torch

from insertgen.core.io import to_json
from insertgen.engine.evaluate import family_samplers

RESULTS = Path(__file__).resolve().parents[3] / "benchmarks" / "results"  # src/insertgen/apps/ -> the checkout


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "cuda": torch.cuda.is_available(),
            "glibc_tunables": os.environ.get("GLIBC_TUNABLES"), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def save(name: str, payload: dict, quiet: bool = False) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(to_json({"machine": machine(), **payload}, indent=2) + "\n")
    if not quiet:
        print(to_json(payload, indent=2))
        print(f"saved {path}")
    return path


def parse_overrides(pairs: list[str]) -> dict:
    """``["lr=1e-3", "d_model=128", "lr_schedule=cosine"]`` -> {"lr": 0.001, "d_model": 128, ...}."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set expects key=value, got {pair!r}")
        for convert in (int, float):
            try:
                overrides[key] = convert(value)
                break
            except ValueError:
                continue
        else:
            overrides[key] = value
    return overrides


def greedy_samplers(model_id: str, orders=("joint", "insert_first"), greedy: bool = True) -> dict:
    """Sampler name -> function(steps) -> SamplerOptions: ``insertgen.engine.evaluate.family_samplers`` with the
    step count left open (IP and ARM ignore it)."""
    names = family_samplers(model_id, 2, greedy, orders)  # 2: the fewest steps every sampler takes
    return {name: (lambda steps, name=name: family_samplers(model_id, steps, greedy, orders)[name]) for name in names}


GRID_FREE_SAMPLERS = ("ancestral", "left_to_right")  # one token per model evaluation, no --steps
POSTERIOR_EXAMPLES, POSTERIOR_SAMPLES = 100, 4  # IP's posterior order: orders drawn per test target
