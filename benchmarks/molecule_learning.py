"""Learning speed on molecules: how many steps (and FLOPs) a model needs to write valid molecules, with the
syntax it has learned along the way and the order it writes in.

    python benchmarks/molecule_learning.py --task smiles --model ip --steps 20000 --every 1000 \
        --out runs-in-progress/molecules/smiles-ip-s0 [--max-flops 1e15] [--preset P] [--set token_shift=true ...] \
        [--seed S] [--threads 1] [--eval-n 500] [--temperature 1.0] [--top-p 0.9]

Tasks: ``smiles``, ``safe`` (bracket SAFE) and the fragment tasks (``fragment-linker``, ...). The run is
trained with ``insertgen train``'s own trainer (default preset: the task's CPU preset of the model), and
resumably, by the loop of ``learning_speed.py`` (rerunning the same command continues it; ``--max-flops``
turns a FLOP budget into steps). Every ``--every`` steps, with the EMA weights:

* ``loss``: the mean training loss since the last point;
* ``nats_per_token``: the held-out bound of the family (exact for the ARM, else its ELBO) on the first
  ``--likelihood-n`` validation molecules (de novo tasks only; ``likelihood_bound`` says which);
* on ``--eval-n`` samples (de novo: unconditional; fragment tasks: the benchmark prompts spread evenly, each
  prompt's samples together) drawn with the family's own sampler (IP / AO-IP ancestral, ARM left to right,
  FlexMDM / LoFlexMDM tau-leaping with ``--sampler-steps``, MDM random order) at ``--temperature`` /
  ``--top-p``: the task's metrics (validity, uniqueness, novelty, quality, FCD and ``fcd_n``, the molecules it
  was computed on; fragment tasks: validity = fragment kept and attached, uniqueness, quality, diversity);
* the partial-progress signals (:mod:`insertgen.tasks.molecules.progress`): the share of samples whose
  ring-closure digits pair up, whose branches balance, whose atoms' valences are legal and (SAFE and
  fragments) whose attachment points match;
* the order statistics: the mean normalised generation step of each token class (``order_step_ring``,
  ``_branch``, ``_bond``, ``_atom``, ``_attachment``, ``_fragment``: 0 = first, 1 = last; insertion models by
  the step a token was inserted, MDM / FlexMDM by the step it was unmasked) and ``scaffold_minus_atom``,
  the mean step of ring and branch tokens minus that of atoms (negative: the skeleton first);
* with ``--extra-temperature T`` (repeatable), the sample metrics and signals again at temperature T
  (``at_temperature``: {"T": {...}}; drawn dashed): decoding matters much on molecules (IP at step 3,050:
  12.0% valid at T = 1, 47.7% at T = 0.4; docs/lab/learning.md#molecules).

Writes ``OUT/learning.json`` (settings, machine, FLOPs per step, points, ``time_to_solve``: the first step and
FLOPs at which validity reached 50% and 90%) and ``OUT/learning.png`` after every point.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from insertgen.core.options import parse_assignments
from insertgen.core.threads import use_threads

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.molecule_learning by the tests
    from learning_speed import add_run_options, draw_training_loss, learn
except ImportError:  # pragma: no cover
    from benchmarks.learning_speed import add_run_options, draw_training_loss, learn

VALIDITY_THRESHOLDS = (0.5, 0.9)
SIGNALS = ("rings_paired", "branches_balanced", "valences_legal", "attachments_matched")
AT_TEMPERATURE = ("validity", "uniqueness", "novelty", "quality_all", "fcd", "fcd_n", "sample_length")
TOKEN_CLASSES = ("ring", "branch", "bond", "atom", "attachment", "fragment")
KEEP = ("validity", "uniqueness", "novelty", "quality_all", "quality_unique", "diversity", "fcd", "fcd_n",
        "kl_score", "sample_length", "data_length", "distance", "model_evals_per_seq", "termination_rate")


def family_sampler(model_id: str, steps: int = 64, temperature: float = 1.0, top_p: float | None = None,
                   **choices):
    """The family's own sampler (the first of ``ModelFamily.samplers``), drawing tokens from the model at
    ``temperature`` / ``top_p``; ``choices`` set any other option the family's sampler takes (e.g.
    ``confidence``)."""
    from insertgen.models.registry import get_family

    options = next(iter(get_family(model_id).samplers(steps, False).values()))
    fields = {f.name for f in dataclasses.fields(options)}
    unknown = set(choices) - fields
    if unknown:
        raise ValueError(f"the {model_id} sampler takes no option {', '.join(sorted(unknown))}")
    return dataclasses.replace(options, temperature=temperature, top_p=top_p, top_k=None, **choices)


def measure(model, task, model_id: str, eval_n: int, options, likelihood_examples: list, likelihood_samples: int = 1,
            seed: int = 0) -> dict:
    """One point (module docstring) of ``model`` (weights as they are) on ``eval_n`` samples drawn with
    ``options``, and its held-out bound on ``likelihood_examples``."""
    from insertgen.engine.evaluate import evaluate_model, held_out_likelihood, spread
    from insertgen.tasks.molecules.progress import progress_signals

    examples = spread(task.examples("test"), eval_n)
    with torch.no_grad():
        metrics, pairs = evaluate_model(model, task, examples, options, seed=seed)
        likelihood = (held_out_likelihood(model, task, likelihood_examples, likelihood_samples)
                      if likelihood_examples else {})
    texts = [task.format(out) for out, _ in pairs]
    point = {k: metrics[k] for k in KEEP if k in metrics}  # an undefined one (NaN) is written as null
    # fragment-all: each task's metrics under its name (linker/validity, ...); KEEP's are their mean
    point.update({k: metrics[k] for k in metrics if k.split("/")[-1] in KEEP and "/" in k})
    point.update(progress_signals(texts, safe="." in task.vocab.tokens))
    point.update({f"order_step_{c}": metrics[f"order_step_{c}"] for c in TOKEN_CLASSES
                  if f"order_step_{c}" in metrics})
    point["scaffold_minus_atom"] = metrics.get("scaffold_minus_atom")
    point.update({k: likelihood[k] for k in ("nats_per_token", "likelihood_bound") if k in likelihood})
    point["samples"] = texts[:8]
    return point


class MoleculeCurve:
    """The points of a molecule run (module docstring); the ``curve`` of ``learning_speed.learn``."""

    headline = "validity"
    thresholds = VALIDITY_THRESHOLDS

    def __init__(self, sampler_steps: int = 64, temperature: float = 1.0, top_p: float | None = None,
                 likelihood_n: int = 100, likelihood_samples: int = 1, extra_temperatures: tuple[float, ...] = ()):
        self.sampler_steps, self.temperature, self.top_p = sampler_steps, temperature, top_p
        self.likelihood_n, self.likelihood_samples = likelihood_n, likelihood_samples
        # evaluation only (training does not depend on them): not among the settings a continued run must match
        self.extra_temperatures = tuple(extra_temperatures)

    def settings(self) -> dict:
        return {"sampler_steps": self.sampler_steps, "temperature": self.temperature, "top_p": self.top_p,
                "likelihood_n": self.likelihood_n, "likelihood_samples": self.likelihood_samples}

    def sampler(self, model_id: str):
        return family_sampler(model_id, self.sampler_steps, self.temperature, self.top_p)

    def evaluate(self, trainer, eval_n: int, model_id: str) -> dict:
        task, model = trainer.task, trainer.model
        model.eval()
        with trainer.ema.applied(model):
            point = measure(model, task, model_id, eval_n, self.sampler(model_id),
                            task.examples("validation")[: self.likelihood_n], self.likelihood_samples)
            for temperature in self.extra_temperatures:
                other = measure(model, task, model_id, eval_n,
                                family_sampler(model_id, self.sampler_steps, temperature, self.top_p), [])
                point.setdefault("at_temperature", {})[f"{temperature:g}"] = {
                    k: other[k] for k in (*AT_TEMPERATURE, *SIGNALS, "scaffold_minus_atom") if k in other}
        model.train()
        return point

    @staticmethod
    def describe(point: dict) -> str:
        signals = " ".join(f"{k.split('_')[0]} {point[k]:.2f}" for k in SIGNALS if k in point)
        nats = f" nats/tok {point['nats_per_token']:.3f}" if "nats_per_token" in point else ""
        order = point.get("scaffold_minus_atom")
        others = "".join(f" | T={t}: valid {v['validity']:.3f} unique {v.get('uniqueness', 0):.3f}"
                         for t, v in point.get("at_temperature", {}).items())
        return (f"valid {point['validity']:.3f} unique {point.get('uniqueness', 0):.3f} "
                f"quality {point.get('quality_all', 0):.3f}{nats} | {signals}"
                + (f" | scaffold-atom {order:+.2f}" if order is not None else "") + others)

    @staticmethod
    def plot(record: dict, path: Path) -> None:
        plot(record, path)


def plot(record: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = record["points"]
    steps = [p["step"] for p in points]
    nan = float("nan")
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4))
    for key, style in (("validity", {"lw": 2.5, "color": "k"}), ("uniqueness", {}), ("novelty", {}),
                       ("quality_all", {})):
        if any(key in p for p in points):
            left.plot(steps, [p.get(key) if p.get(key) is not None else nan for p in points], label=key, **style)
    for t in sorted({t for p in points for t in p.get("at_temperature", {})}):
        left.plot(steps, [p.get("at_temperature", {}).get(t, {}).get("validity", nan) for p in points], ls="--",
                  marker=".", label=f"validity at T={t}")
    twin = draw_training_loss(left, points)
    if twin is not None:
        nats = [(p["step"], p["nats_per_token"]) for p in points if p.get("nats_per_token") is not None]
        if nats:
            twin.plot(*zip(*nats), color="brown", ls="--", label="held-out nats/token")
        twin.legend(loc="upper right", fontsize=7)
    s = record["settings"]
    left.set_ylim(0, 1.02)
    left.set_xlabel("step")
    left.set_title(f"{s['model']} on {s['task']}: sample metrics")
    left.legend(loc="upper left", fontsize=7)
    for key in SIGNALS + ("validity",):
        if any(key in p for p in points):
            middle.plot(steps, [p.get(key, nan) for p in points], label=key, lw=2.5 if key == "validity" else 1.5)
    middle.set_ylim(0, 1.02)
    middle.set_xlabel("step")
    middle.set_title("partial progress (share of samples)")
    middle.legend(fontsize=7)
    for c in TOKEN_CLASSES:
        key = f"order_step_{c}"
        if any(key in p for p in points):
            right.plot(steps, [p.get(key, nan) for p in points], label=c)
    right.axhline(0.5, color="grey", lw=0.5)
    right.set_ylim(0, 1)
    right.set_xlabel("step")
    right.set_title("mean normalised generation step per token class")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--preset", default=None)
    parser.add_argument("--max-flops", type=float, default=None, help="Stop once the counted training FLOPs reach this.")
    parser.add_argument("--likelihood-n", type=int, default=100, help="Validation molecules of the held-out bound (0: none).")
    parser.add_argument("--sampler-steps", type=int, default=64, help="FlexMDM / LoFlexMDM / MDM sampler steps.")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--extra-temperature", type=float, action="append", default=[],
                        help="Also sample each point at this temperature (repeatable; 'at_temperature' in the points; "
                             "evaluation only, so it may be added to a run that is continued).")
    add_run_options(parser, "validity (--steps is a cap when --max-flops is given)")
    args = parser.parse_args(argv)
    if min(args.steps, args.every, args.eval_n, args.sampler_steps) < 1 or args.likelihood_n < 0:
        parser.error("--steps, --every, --eval-n and --sampler-steps must be positive")
    if not args.temperature > 0 or (args.top_p is not None and not 0 < args.top_p <= 1):
        parser.error("--temperature must be > 0 and --top-p in (0, 1]")
    use_threads(args.threads)
    torch.manual_seed(args.seed)
    if any(t <= 0 for t in args.extra_temperature):
        parser.error("--extra-temperature must be > 0")
    curve = MoleculeCurve(args.sampler_steps, args.temperature, args.top_p, args.likelihood_n,
                          extra_temperatures=tuple(args.extra_temperature))
    overrides = parse_assignments(args.sets, "--set")
    learn(args.task, args.model, args.steps, args.every, args.out, args.preset, args.seed, overrides, args.eval_n,
          stop_at=args.stop_at, curve=curve, max_flops=args.max_flops)


if __name__ == "__main__":
    main()
