"""The ``insertgen`` command line (README.md#the-command-line): demo, train, sample, eval, score."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from insertgen.apps import bench as harness
from insertgen.apps import bench_busy
from insertgen.apps.demo import DEMO_TASKS, run_demo
from insertgen.apps.report import build_report
from insertgen.apps.reproduce import make_grid, run_grid, write_summary
from insertgen.apps.reproduce.grid import SETTINGS, check_settings
from insertgen.core.distributed import barrier, init_world, shutdown
from insertgen.core.errors import InsertgenError
from insertgen.core.io import (
    parse_jsonl_line,
    read_jsonl_lines,
    to_json,
    write_jsonl,
    write_text_atomic,
)
from insertgen.core.options import parse_assignments
from insertgen.apps.sampler_flags import sampler_flags
from insertgen.core.threads import (
    DEFAULT_POLICY,
    POLICY_VARIABLE,
    resolve_threads,
    use_threads,
)
from insertgen.engine.analysis import (
    class_order_statistics,
    insertion_time_profile,
    order_statistics,
    plot_class_order,
    posterior_order_profile,
    save_order_report,
)
from insertgen.engine.evaluate import (
    LIKELIHOOD_EXAMPLES,
    LIKELIHOOD_SAMPLES,
    evaluate_model,
    generate,
    held_out_likelihood,
    likelihood_record,
)
from insertgen.engine.run import load_run
from insertgen.engine.sampler_settings import resolve_sampler_options
from insertgen.engine.training_run import prepare_run, run_training
from insertgen.models.registry import family_of, model_ids
from insertgen.tasks.molecules.fragment_task import BENCHMARK_FILE, build_benchmark_file

# glibc's default malloc thresholds make training steps several times slower on this kind of CPU
# (README.md#the-command-line); the CLI re-executes itself once with these tunables unless they are already set.
GLIBC_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296"


def _parse_set(pairs: tuple[str, ...]) -> dict[str, object]:
    return parse_assignments(pairs, "--set")


THREADS = click.option(
    "--threads", default=None, metavar="N|auto",
    help="Threads to compute with. Default (auto): every core this process may use (its CPU affinity), fewer "
         "while other processes keep cores busy; a fixed N gives bit-identical results run to run. "
         "OMP_NUM_THREADS, when set, fixes it too.")


def _use_threads(threads: str | None) -> int | None:

    return use_threads(threads)


SKIP_BAD_LINES = click.option(
    "--skip-bad-lines", is_flag=True,
    help="Skip input lines that cannot be used (each reported, then counted) instead of stopping at the "
         "first; output lines then carry the input's line number as \"line\".")


def _read_inputs(path: Path, required: tuple[str, ...], parse, lenient: bool) -> list[tuple[int, dict, object]]:
    """``[(line number, JSON object, parse(object))]`` for a user's JSONL file whose objects carry the
    ``required`` string keys, every problem named by file and line; ``lenient`` skips bad lines, reports
    each on stderr and counts them."""

    def parse_line(line: str):
        obj = parse_jsonl_line(line, required)
        return obj, parse(obj)

    parsed, skipped = read_jsonl_lines(path, parse_line, lenient=lenient)
    for message in skipped:
        click.echo(f"skipped {message}", err=True)
    if skipped:
        click.echo(f"skipped {len(skipped)} of {len(parsed) + len(skipped)} lines of {path}", err=True)
    return [(lineno, obj, value) for lineno, (obj, value) in parsed]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="insertgen")
def cli():
    """insertgen: insertion-based sequence generation with learned order."""


@cli.command()
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=Path("insertgen-demo"),
              show_default=True, help="Run directory to write (usable by sample / eval / score).")
@click.option("--train", "do_train", is_flag=True,
              help="Train fresh models on this CPU (same budget each) instead of loading the shipped ones.")
@click.option("-n", "n_graphs", type=click.IntRange(min=1), default=None,
              help="Fresh test graphs (default 1,000), maze problems (500), or molecules sampled per model "
                   "(500; smiles 120: its FlexMDM and LoFlexMDM take 256 steps a molecule).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--train-seconds", type=click.FloatRange(min=1), default=300.0, show_default=True,
              help="Training budget of --train, per model.")
@click.option("--models", default=None,
              help="Comma-separated models to compare (default: every model shipped for the task); the first "
                   "one's run is --out.")
@click.option("--task", default="star-easy", show_default=True, type=click.Choice(list(DEMO_TASKS)),
              help="Task whose shipped models to compare (star levels, de novo molecules, fragment linking, mazes).")
@THREADS
def demo(out: Path, do_train: bool, n_graphs: int, seed: int, train_seconds: float, models: str | None, task: str,
         threads):
    """Compare every shipped model of a task (FlexMDM, LoFlexMDM, IP, AO-IP, ARM, MDM, those shipped) side
    by side on fresh graphs or sampled molecules, or train them afresh with --train.

    Writes --out (default ./insertgen-demo): the first model's run directory, the others' in
    --out/compare/MODEL, each with demo.json and demo_samples.jsonl, and --out/demo_order.png. Formats:
    docs/formats.md#demo-directory."""

    _use_threads(threads)
    chosen = None
    if models is not None:
        chosen = tuple(m.strip() for m in models.split(",") if m.strip())
        unknown = [m for m in chosen if m not in model_ids()]
        if not chosen or unknown or len(set(chosen)) != len(chosen):
            raise InsertgenError(f"--models: unknown or repeated model(s) {', '.join(unknown) or models!r}; "
                                 f"known models: {', '.join(model_ids())}")
    run_demo(out, task=task, train=do_train, n_graphs=n_graphs, seed=seed, train_seconds=train_seconds, models=chosen)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per measurement instead of a table.")
@click.option("--quick", is_flag=True, help="A small set that finishes in under a minute.")
@click.option("--preset", "specs", multiple=True,
              help="Training measurement: PRESET or PRESET:key=value,... (repeatable; default: a fixed list).")
@click.option("--run", "runs", multiple=True, type=click.Path(path_type=Path),
              help="Sampling measurement on a trained run (repeatable; default: the shipped star-easy models).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Training steps timed per preset.")
@click.option("--sample-steps", type=click.IntRange(min=1), multiple=True, help="Sampler step counts (repeatable).")
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
def bench(as_json, quick, specs, runs, steps, sample_steps, sample_n, device, busy, policies, conditions, repeat,
          save, threads):
    """Training-step time, FLOPs and MFU against the measured matmul peak, and sampling cost; with --busy,
    the same steps beside other busy processes. Output: a table, or with --json one JSON object per
    measurement (docs/formats.md#benchmarks)."""

    if busy:

        if runs or sample_steps or sample_n or device != "cpu":
            raise InsertgenError("--busy measures star-easy training and the shipped model's sampling on the CPU; "
                                 "--run, --sample-steps, -n and --device do not apply")
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
        _use_threads(threads)
        rows = harness.run(specs=specs, runs=runs, quick=quick, steps=steps, sample_n=sample_n,
                           sample_steps=sample_steps, device=device, report=report)
    if save:

        save.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(save, to_json(rows, indent=1) + "\n")
        click.echo(f"wrote {save}", err=as_json)


@cli.command()
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@click.option("--run", "run_dir", type=click.Path(path_type=Path), default=None,
              help="Run or reproduce directory (the same as the argument).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="HTML file (default DIRECTORY/report.html).")
@click.option("--examples", type=click.IntRange(min=0), default=None,
              help="Generation trajectories to show (default: 3 for a run, 1 per model for a reproduce grid).")
@click.option("--seed", type=int, default=0, show_default=True)
def report(directory, run_dir, out, examples, seed):
    """A self-contained HTML page of a run (curves, evaluations, learned order, trajectories) or of a
    reproduce directory (its tables and claims, and per task what each model does).

    Writes DIRECTORY/report.html (or --out); figures the page needs and the directory lacks (training.png,
    order.json / order.png, schedule.png) are drawn into the run directory first, and the
    command lists them. Formats: docs/formats.md."""

    if (directory is None) == (run_dir is None):
        raise InsertgenError("give the directory to report on, either as the argument or as --run (not both)")
    path = Path(directory or run_dir)
    if examples is None:
        examples = 1 if (path / SETTINGS).is_file() else 3
    before = _file_times(path)
    page = build_report(path, out, examples, seed)
    drawn = [p for p, t in _file_times(path).items() if before.get(p) != t and p != page]
    click.echo(f"wrote {page}" + (f"; drew what the page shows and {path} lacked: "
                                  f"{', '.join(str(p) for p in sorted(drawn))}" if drawn else ""))


def _file_times(directory: Path) -> dict[Path, int]:
    """Modification time of every file under ``directory`` (what a command wrote there is what changed)."""
    return {p: p.stat().st_mtime_ns for p in directory.rglob("*") if p.is_file()} if directory.is_dir() else {}


def _csv(value: str | None, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    if not items:
        raise InsertgenError(f"{what}: give a comma-separated list")
    return items


@cli.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Grid directory (default reproduce-SCALE); rerunning skips the cells already done.")
@click.option("--scale", type=click.Choice(["cpu", "paper"]), default="cpu", show_default=True,
              help="cpu: small presets for a 2-core CPU (a few hours with --jobs 2); paper: the papers' sizes "
                   "and steps, for GPUs.")
@click.option("--tasks", default=None, help="Comma-separated task ids (default: the scale's tasks).")
@click.option("--models", default=None, help="Comma-separated model ids (default: all six).")
@click.option("--seeds", default=None, help="Comma-separated seeds (default: the scale's seeds).")
@click.option("--budget", default=None,
              help="Training budget per cell, the same for every model: wall-clock (240s, 4m, 1h), model FLOPs "
                   "(2e13flop) or 'preset' (the preset's steps). Default: model FLOPs per task at cpu scale "
                   "(reproduce.grid.CPU_FLOPS), the preset's steps at paper scale.")
@click.option("--eval-n", type=click.IntRange(min=1), default=None,
              help="Test examples (samples) per evaluation (default: 500 at cpu scale, the task's at paper).")
@click.option("--sampler-steps", type=click.IntRange(min=1), default=None, help="Sampler steps (default 64).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Cells trained at once (each on cores / jobs threads).")
@click.option("--set", "sets", multiple=True, help="Override an option of every cell: KEY=VALUE (as train --set).")
@click.option("--docs", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the tables into this Markdown file (between reproduce markers), e.g. docs/results.md.")
@click.option("--summary-only", is_flag=True, help="Only regenerate the tables and figures from finished cells.")
@THREADS
def reproduce(out, scale, tasks, models, seeds, budget, eval_n, sampler_steps, jobs, sets, docs, summary_only,
              threads):
    """Train and evaluate the model x task grid under equal budgets, several seeds; write results.json,
    results.md (mean and spread over seeds, the papers' claims checked) and figures/ into --out.
    Directory layout: docs/formats.md#reproduce-directory."""

    try:
        seed_list = tuple(int(s) for s in _csv(seeds, "--seeds")) if seeds else None
    except ValueError:
        raise InsertgenError(f"--seeds {seeds!r}: give comma-separated integers") from None
    grid = make_grid(out or Path(f"reproduce-{scale}"), scale, _csv(tasks, "--tasks"), _csv(models, "--models"),
                     seed_list, budget, eval_n, sampler_steps, _parse_set(sets))
    if summary_only:

        if not (grid.out / SETTINGS).is_file():
            raise InsertgenError(f"--summary-only: {grid.out} is not a reproduce directory (no {SETTINGS}); "
                                 f"run the grid first")
        check_settings(grid)
        result = write_summary(grid.out, docs)
        click.echo(f"{result['cells']} finished cells summarised in {grid.out / 'results.md'}")
        return

    _, failures = run_grid(grid, jobs=jobs, report=click.echo, docs=docs, threads=resolve_threads(threads))
    click.echo(f"wrote {grid.out / 'results.json'}, {grid.out / 'results.md'} and {grid.out / 'figures'}"
               + (f"; updated {docs}" if docs else ""))
    if failures:
        raise InsertgenError(f"{len(failures)} cell(s) failed: {', '.join(f['key'] for f in failures)} "
                             f"(see runs/TASK/MODEL/seedS.log); rerun to retry them")


@cli.command(name="fragment-prompts")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output JSONL (default: the benchmark file shipped in the package).")
@click.option("--check", is_flag=True, help="Rebuild and compare with --out (or the shipped file) byte for byte.")
def fragment_prompts(out, check):
    """Build the fragment-constrained benchmark prompts (100 per task, from MOSES test molecules).
    Format: docs/formats.md#fragment-benchmark-prompts."""

    out = out or BENCHMARK_FILE
    text = build_benchmark_file()
    if check:
        if not out.is_file() or out.read_text(encoding="utf-8") != text:
            raise InsertgenError(f"{out} differs from the rebuilt benchmark")
        click.echo(f"{out}: identical to the rebuilt benchmark ({text.count(chr(10))} prompts)")
        return

    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, text)
    click.echo(f"wrote {text.count(chr(10))} prompts to {out}")


@cli.command()
@click.option("--task", default=None, help="Task id, e.g. star-easy.")
@click.option("--model", default=None, help="Model id, e.g. flexmdm.")
@click.option("--preset", default=None, help="Named configuration (default: TASK-cpu when it exists).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Total training steps.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="Run directory.")
@click.option("--seed", type=int, default=None, help="Random seed (default 0).")
@click.option("--set", "sets", multiple=True, help="Override an option: KEY=VALUE (a training option when KEY names one, else a model option), "
                   "model.KEY=VALUE, train.KEY=VALUE or task.KEY=VALUE.")
@click.option("--resume", is_flag=True, help="Continue the run in --out exactly where it stopped.")
@click.option("--from-previous", is_flag=True,
              help="With --resume: continue from the checkpoint before the last (when the last is corrupt).")
@click.option("--time-budget", type=click.FloatRange(min=1), default=None, help="Stop after this many seconds.")
@click.option("--device", default=None, help="torch device (default: cuda:LOCAL_RANK when CUDA is available, else cpu).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@THREADS
def train(task, model, preset, steps, out, seed, sets, resume, from_previous, time_budget, device, quiet, threads):
    """Train a model; writes config.json, checkpoint.safetensors and metrics.jsonl into --out (default
    runs/TASK-MODEL-TIME; the run directory's files: docs/formats.md#run-directory).

    Under torchrun (e.g. `torchrun --standalone --nproc_per_node=4 -m insertgen.apps.cli train ...`) every
    process trains its share of each global batch (data parallel); rank 0 writes the run directory."""

    _use_threads(threads)
    world, device = init_world(device)
    try:
        run_dir, trainer = prepare_run(task=task, model=model, preset=preset, steps=steps, out=out, seed=seed,
                                       overrides=_parse_set(sets), resume=resume, time_budget=time_budget,
                                       device=device, world=world, from_previous=from_previous)
        if world.is_main:
            click.echo(f"run directory: {run_dir}" + (f" ({world.world_size} processes)" if world.distributed else ""))
        last = run_training(trainer, progress=not quiet)
        if world.is_main:
            click.echo(f"finished at step {trainer.step}: loss {last.get('loss', float('nan')):.4f}")
        barrier(world)  # rank 0 may still be drawing its plots: tearing gloo down under it aborts the peer
    finally:
        shutdown()


@cli.command()
@click.option("--run", "run_dir", required=True, type=click.Path(path_type=Path), help="Run directory.")
@click.option("--input", "input_path", type=click.Path(path_type=Path), default=None,
              help="PROMPTS.jsonl: one {\"prompt\": ...} per line (docs/formats.md).")
@click.option("-n", "n", type=click.IntRange(min=1), default=None, help="Number of samples (unconditional tasks).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output JSONL (default RUN_DIR/samples.jsonl).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--trajectory", is_flag=True, help="Add per-token insertion/unmasking steps to each line.")
@SKIP_BAD_LINES
@sampler_flags
@THREADS
def sample(run_dir, input_path, n, output, seed, trajectory, skip_bad_lines, sampler, threads):
    """Generate outputs for prompts (or -n unconditional samples).

    --input: JSONL, one {"prompt": "..."} per line in the task's text format, e.g. for star graphs
    {"prompt": "u1 v1 u2 v2 ... s g"}. Writes JSONL {"prompt": ..., "output": ...} (molecules add "smiles").
    A shipped model's own sampler settings (sampler_defaults in its config.json) apply unless the flags
    give others. Formats: docs/formats.md#prompts."""

    _use_threads(threads)
    model = load_run(run_dir)
    task = model.task
    options = resolve_sampler_options(model.run_config, default_greedy=False, **sampler)
    if task.conditional:
        if input_path is None:
            raise InsertgenError(f"task {task.name} is conditional: give --input PROMPTS.jsonl")
        inputs = _read_inputs(input_path, ("prompt",), lambda obj: task.parse_prompt(obj["prompt"]), skip_bad_lines)
        prompts = [prompt for _, _, prompt in inputs]
    else:
        if n is None:
            raise InsertgenError(f"task {task.name} is unconditional: give -n N")
        prompts = [[] for _ in range(n)]
    outputs, records = generate(model, prompts, options, seed=seed, prompt_in_target=task.prompt_in_target)
    out_rows = []
    sources = inputs if task.conditional else [None] * len(prompts)
    for source, out, rec in zip(sources, outputs, records):
        row = {"prompt": source[1]["prompt"], "output": task.format(out)} if source else {"output": task.format(out)}
        if source and skip_bad_lines:
            row = {"line": source[0], **row}
        if hasattr(task, "to_smiles"):  # molecules: the canonical SMILES, or null when it does not decode
            row["smiles"] = task.to_smiles(out)
        if trajectory:
            row.update(canvas=task.vocab.decode(rec["canvas"], skip_special=False).split(),
                       insert_step=rec["insert_step"], unmask_step=rec["unmask_step"], model_evals=rec["model_evals"])
        out_rows.append(row)
    output = output or Path(run_dir) / "samples.jsonl"
    write_jsonl(output, out_rows)
    click.echo(f"wrote {len(out_rows)} samples to {output}")


@cli.command(name="eval")
@click.option("--run", "run_dir", required=True, type=click.Path(path_type=Path), help="Run directory.")
@click.option("--split", type=click.Choice(["train", "validation", "test"]), default="test", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Evaluate the first N examples only (unconditional tasks: N samples; molecules default to 1,000).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the metrics.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--likelihood-samples", type=click.IntRange(min=0), default=LIKELIHOOD_SAMPLES, show_default=True,
              help="Monte-Carlo samples per text of the held-out bound (nats per sequence and per token) on the "
                   f"first {LIKELIHOOD_EXAMPLES} examples; 0 skips it.")
@sampler_flags
@THREADS
def evaluate(run_dir, split, limit, as_json, seed, likelihood_samples, sampler, threads):
    """Sample for the split's prompts and print the task metrics (also saved to RUN_DIR/eval-SPLIT.json;
    mazes also draw the first plans to RUN_DIR/eval-SPLIT.png). Format: docs/formats.md#evaluation.

    A sampler flag not given takes the run's sampler_defaults (a shipped model's measured settings), else
    the run's evaluation settings, else the sampler's own."""

    _use_threads(threads)
    model = load_run(run_dir)
    options = resolve_sampler_options(model.run_config, default_greedy=model.task.greedy_by_default, **sampler)
    examples = model.task.examples(split)[:limit or model.task.eval_size]
    metrics, pairs = evaluate_model(model, model.task, examples, options, seed=seed, progress=not as_json)
    if likelihood_samples:
        metrics.update(held_out_likelihood(model, model.task, examples[:LIKELIHOOD_EXAMPLES], likelihood_samples, seed))
    metrics.update(split=split, sampler=options.__dict__)
    (Path(run_dir) / f"eval-{split}.json").write_text(to_json(metrics, indent=2) + "\n")
    figure = model.task.save_figure(examples, [o for o, _ in pairs], Path(run_dir) / f"eval-{split}.png")
    if as_json:
        click.echo(to_json(metrics))
    else:
        for key, value in metrics.items():
            if key != "sampler":
                click.echo(f"{key:>22}: {value:.4f}" if isinstance(value, float) else f"{key:>22}: {value}")
        if figure is not None:
            click.echo(f"wrote {figure}")


@cli.command()
@click.option("--run", "run_dir", required=True, type=click.Path(path_type=Path), help="Run directory.")
@click.option("--split", type=click.Choice(["train", "validation", "test"]), default="test", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Analyse the first N examples.")
@click.option("--seed", type=int, default=0, show_default=True)
@sampler_flags
@THREADS
def analysis(run_dir, split, limit, seed, sampler, threads):
    """Generation order: when each target token / edge was inserted and unmasked, the order correlation
    with the distance from the junction, and the learned insertion schedule (LoFlexMDM) or the
    posterior's orders (IP). Writes RUN_DIR/order.json and RUN_DIR/order.png (format:
    docs/formats.md#generation-order)."""

    _use_threads(threads)
    model = load_run(run_dir)
    task = model.task
    options = resolve_sampler_options(model.run_config, default_greedy=task.greedy_by_default, **sampler)
    examples = task.examples(split)[:limit]
    metrics, pairs = evaluate_model(model, task, examples, options, seed=seed, progress=True)
    stats = order_statistics(task, examples, [o for o, _ in pairs], [r for _, r in pairs])
    classes = class_order_statistics(task, [o for o, _ in pairs], [r for _, r in pairs])
    if stats is None and classes is not None:
        (Path(run_dir) / "order.json").write_text(to_json(classes, indent=2) + "\n")
        png = plot_class_order(classes, Path(run_dir) / "order.png", title=f"{model.model_id} on {task.name}")
        for name, v in classes["classes"].items():
            click.echo(f"{name:>10}: mean step decided {v['unmask']:.3f}, inserted {v['insert']:.3f} "
                       f"({v['tokens']:,} tokens)")
        click.echo(f"wrote {Path(run_dir) / 'order.json'} and {png}")
        return
    if stats is None:
        raise InsertgenError(f"task {task.name!r} defines no reference order to analyse")
    profile = insertion_time_profile(model, task, examples) or posterior_order_profile(model, task, examples[:200])
    json_path, png_path = save_order_report(run_dir, stats, profile, title=f"{model.model_id} on {task.name}")
    click.echo(f"exact_match {metrics['exact_match']:.4f}  order correlation (unmask) "
               f"{stats['order_corr_unmask']:.3f}  (insert) {stats['order_corr_insert']:.3f}  "
               f"over {stats['order_corr_examples']} examples")
    if profile:
        what = ("median rank in IP's posterior orders" if profile["kind"] == "posterior_rank"
                else "learned median insertion time")
        click.echo(f"{what} by {task.order_reference_label}: " +
                   ", ".join(f"{d}: {v['q50']:.2f}" for d, v in profile["by_distance"].items()))
    click.echo(f"wrote {json_path} and {png_path}")


@cli.command()
@click.option("--run", "run_dir", required=True, type=click.Path(path_type=Path), help="Run directory.")
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path),
              help="TEXTS.jsonl: one {\"prompt\": ..., \"text\": ...} per line (docs/formats.md).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--bound", type=click.Choice(["exact", "elbo", "elbo-uniform", "iwae"]), default=None,
              help="Kind of value (default: exact for arm, elbo for the others; elbo-uniform: a LoFlexMDM scored "
                   "under the uniform schedule instead of its learned one; iwae: ip / ao-ip).")
@click.option("--samples", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@SKIP_BAD_LINES
@THREADS
def score(run_dir, input_path, output, bound, samples, seed, skip_bad_lines, threads):
    """Log-likelihood (or a bound on it) of each text under the model, in nats: per sequence, its standard
    error (Monte-Carlo bounds; 0 when exact) and per token (the target's tokens plus the end: EOS / stop).

    --input: JSONL, one {"prompt": "...", "text": "..."} per line ({"text": "..."} on unconditional tasks);
    other keys are kept. Writes each line back with log_likelihood, stderr, bound, tokens and
    nats_per_token (default RUN_DIR/scores.jsonl). Formats: docs/formats.md#texts-to-score."""

    _use_threads(threads)
    model = load_run(run_dir)
    supported = model.likelihood_bounds if family_of(model).can("score") else ()
    if bound is None:
        bound = "exact" if supported == ("exact",) else "elbo"
    if bound not in supported:
        what = ", ".join(supported) if supported else "none"
        raise InsertgenError(
            f"model {model.model_id!r} cannot give the log-likelihood bound {bound!r} (it supports: {what})")
    task = model.task
    if task.prompt_in_target:
        raise InsertgenError(f"score does not support task {task.name} yet (its prompt is part of the target); "
                             f"score the molecules with a model trained on the de novo task 'safe'")

    def parse(obj: dict) -> tuple[list[int], list[int]]:
        prompt = task.parse_prompt(obj["prompt"]) if task.conditional else []
        target = task.parse_target(prompt, obj["text"])
        if len(target) > task.target_block:
            raise InsertgenError(f"the text has {len(target)} tokens, more than the {task.target_block} "
                                 f"that {task.name} allows")
        return prompt, target

    inputs = _read_inputs(input_path, ("prompt", "text") if task.conditional else ("text",), parse, skip_bad_lines)
    pairs = [pair for _, _, pair in inputs]
    rows = [({"line": lineno, **obj} if skip_bad_lines else obj) for lineno, obj, _ in inputs]
    values = model.log_likelihood(pairs, bound=bound, samples=samples, seed=seed)
    out_rows = [{**row, **likelihood_record(v, target, bound)} for row, v, (_, target) in zip(rows, values, pairs)]
    output = output or Path(run_dir) / "scores.jsonl"
    write_jsonl(output, out_rows)
    click.echo(f"wrote {len(out_rows)} scores to {output}")


def main(argv: list[str] | None = None) -> None:
    if sys.platform.startswith("linux") and "GLIBC_TUNABLES" not in os.environ and argv is None:
        env = dict(os.environ, GLIBC_TUNABLES=GLIBC_TUNABLES)
        try:
            os.execve(sys.executable, [sys.executable, "-m", "insertgen.apps.cli", *sys.argv[1:]], env)
        except OSError:
            pass
    try:
        cli.main(args=argv, prog_name="insertgen", standalone_mode=False)
    except InsertgenError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main(sys.argv[1:] if os.environ.get("GLIBC_TUNABLES") else None)
