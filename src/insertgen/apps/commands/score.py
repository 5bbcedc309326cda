"""`insertgen score`."""

from __future__ import annotations

from pathlib import Path

import click

from insertgen.apps.commands.common import RUN_DIR, SKIP_BAD_LINES, THREADS, read_inputs
from insertgen.core.errors import InsertgenError
from insertgen.core.io import write_jsonl
from insertgen.core.threads import use_threads
from insertgen.engine.evaluate import likelihood_record
from insertgen.engine.run import load_run
from insertgen.models.registry import family_of


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

    inputs = read_inputs(input_path, ("prompt", "text") if task.conditional else ("text",), parse, skip_bad_lines)
    pairs = [pair for _, _, pair in inputs]
    rows = [({"line": lineno, **obj} if skip_bad_lines else obj) for lineno, obj, _ in inputs]
    values = model.log_likelihood(pairs, bound=bound, samples=samples, seed=seed)
    out_rows = [{**row, **likelihood_record(v, target, bound)} for row, v, (_, target) in zip(rows, values, pairs)]
    output = output or Path(run_dir) / "scores.jsonl"
    write_jsonl(output, out_rows)
    click.echo(f"wrote {len(out_rows)} scores to {output}")


command = score
