"""`insertgen bench`."""

from __future__ import annotations

import os
from pathlib import Path

import click

from insertgen.apps import bench as harness
from insertgen.apps import bench_busy
from insertgen.apps.commands.common import THREADS
from insertgen.apps.sampler_flags import sampler_flags
from insertgen.core.errors import InsertgenError
from insertgen.core.io import (
    to_json,
    write_text_atomic,
)
from insertgen.core.threads import (
    DEFAULT_POLICY,
    POLICY_VARIABLE,
    resolve_threads,
    use_threads,
)


@click.command(name="bench")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per measurement instead of a table.")
@click.option("--quick", is_flag=True, help="A small set that finishes in under a minute.")
@click.option("--preset", "specs", multiple=True,
              help="Training measurement: PRESET or PRESET:key=value,... (repeatable; default: a fixed list).")
@click.option("--run", "runs", multiple=True, type=click.Path(path_type=Path),
              help="Sampling measurement on a trained run (repeatable; default: the shipped star-easy models).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Training steps timed per preset.")
@click.option("--sample-steps", type=click.IntRange(min=1), multiple=True,
              help="Sampler step counts (repeatable; default 500, 128, 64, 32; --quick 64). The other sampler "
                   "options are each run's own settings, changed by the sampler flags below.")
@click.option("-n", "sample_n", type=click.IntRange(min=1), default=None, help="Sequences sampled per setting.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--busy", is_flag=True,
              help="Speed beside other work: each star-easy preset's training step and the shipped model's "
                   "sampling, idle and beside neighbours this command starts (see --condition), as ratios.")
@click.option("--policy", "policies", multiple=True,
              help="With --busy: policy WAIT@THREADS to measure, WAIT one of runtime, passive, spin:N and THREADS "
                   "auto or N, e.g. runtime@2 (torch's own behaviour), runtime@auto (insertgen's default); "
                   "repeatable; default: the wait policy in force @ --threads.")
@click.option("--condition", "conditions", multiple=True, type=click.Choice(["idle", "busy1", "busy2", "train"]),
              help="With --busy: conditions to measure (repeatable; default all: idle, one and two busy loops, "
                   "a second training run).")
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --busy: measure every policy and condition this many times (interleaved); report medians.")
@click.option("--save", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write every measurement (one JSON array) to this file.")
@THREADS
@sampler_flags(exclude=("steps",))
def bench(as_json, quick, specs, runs, steps, sample_steps, sample_n, device, busy, policies, conditions, repeat,
          save, threads, sampler):
    """Training-step time, FLOPs and MFU against the measured matmul peak, and sampling cost; with --busy,
    the same steps beside other busy processes. Output: a table, or with --json one JSON object per
    measurement (docs/formats.md#benchmarks)."""

    if busy:

        if runs or sample_steps or sample_n or device != "cpu" or any(v is not None for v in sampler.values()):
            raise InsertgenError("--busy measures star-easy training and the shipped model's sampling on the CPU; "
                                 "--run, --sample-steps, -n, the sampler flags and --device do not apply")
        if policies and threads is not None:
            raise InsertgenError("--busy: give the thread count inside each --policy (WAIT@THREADS), not --threads")
        fixed = resolve_threads(threads)
        default = f"{os.environ.get(POLICY_VARIABLE, DEFAULT_POLICY)}@{fixed or 'auto'}"
        rows = bench_busy.run(policies=policies or (default,),
                              conditions=conditions or bench_busy.CONDITIONS, quick=quick, specs=specs,
                              steps=steps, repeat=repeat,
                              report=(lambda r: click.echo(to_json(r))) if as_json else
                              (lambda r: click.echo(f"{r['policy']:<12} {r['condition']:<6} {r['what']:<28} "
                                                    f"{r['seconds'] * 1e3:9.1f} ms", err=True)))
        if not as_json:
            click.echo(bench_busy.format_table(rows))
    else:

        def report(m: dict) -> None:
            click.echo(to_json(m) if as_json else harness.format_row(m))

        if policies or conditions or repeat != 1:
            raise InsertgenError("--policy, --condition and --repeat apply with --busy only")
        use_threads(threads)
        rows = harness.run(specs=specs, runs=runs, quick=quick, steps=steps, sample_n=sample_n,
                           sample_steps=sample_steps, device=device, report=report, sampler=sampler)
    if save:

        save.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(save, to_json(rows, indent=1) + "\n")
        click.echo(f"wrote {save}", err=as_json)


command = bench
