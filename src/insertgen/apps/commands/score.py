"""`insertgen score`."""

from __future__ import annotations

from pathlib import Path

import click

from insertgen.apps.commands.common import RUN_DIR, SKIP_BAD_LINES, THREADS, read_inputs
from insertgen.core.io import write_jsonl
from insertgen.core.threads import use_threads
from insertgen.engine.trained_run import TrainedRun


@click.command(name="score")
@RUN_DIR
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

    use_threads(threads)
    run = TrainedRun.open(run_dir)
    bound = run.likelihood_bound(bound)
    conditional = run.task.conditional
    inputs = read_inputs(input_path, ("prompt", "text") if conditional else ("text",),
                         lambda obj: run.parse_scored(obj["text"], obj["prompt"] if conditional else None),
                         skip_bad_lines)
    pairs = [pair for _, _, pair in inputs]
    rows = [({"line": lineno, **obj} if skip_bad_lines else obj) for lineno, obj, _ in inputs]
    out_rows = [{**row, **record} for row, record in zip(rows, run.score_pairs(pairs, bound, samples, seed))]
    output = output or Path(run_dir) / "scores.jsonl"
    write_jsonl(output, out_rows)
    click.echo(f"wrote {len(out_rows)} scores to {output}")


command = score
