"""`insertgen sample`."""

from __future__ import annotations

from pathlib import Path

import click

from insertgen.apps.commands.common import RUN_DIR, SKIP_BAD_LINES, THREADS, read_inputs
from insertgen.apps.sampler_flags import sampler_flags
from insertgen.core.errors import InsertgenError
from insertgen.core.io import write_jsonl
from insertgen.core.threads import use_threads
from insertgen.engine.trained_run import TrainedRun


@click.command(name="sample")
@RUN_DIR
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

    use_threads(threads)
    run = TrainedRun.open(run_dir)
    task = run.task
    if task.conditional:
        if input_path is None:
            raise InsertgenError(f"task {task.name} is conditional: give --input PROMPTS.jsonl")
        inputs = read_inputs(input_path, ("prompt",), lambda obj: task.parse_prompt(obj["prompt"]), skip_bad_lines)
        prompts = [prompt for _, _, prompt in inputs]
    else:
        if n is None:
            raise InsertgenError(f"task {task.name} is unconditional: give -n N")
        prompts = [[] for _ in range(n)]
    outputs, records = run.sample_records(prompts, seed=seed, **sampler)
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


command = sample
