"""Sampler options in one place (engine.sampler_settings, apps.sampler_flags): the flags generated from the
option dataclasses, the one resolver's precedence, and every shipped model sampled by `sample` / `eval` /
the Python API exactly as the demo samples it."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

import click
import pytest
import torch

from insertgen.apps.demo import demo_sampler, pretrained_dir
from insertgen.apps.sampler_flags import flag_options
from insertgen.core.errors import InsertgenError
from insertgen.core.sampling import SamplerOptions, option
from insertgen.engine.sampler_settings import (
    as_named_sampler,
    option_fields,
    resolve_sampler_options,
    sampler_name,
    shipped_settings,
    with_drawing_defaults,
)
from insertgen.models.flexmdm.sampler import TauLeapingOptions
from insertgen.models.mdm.model import UnmaskingOptions
from insertgen.models.registry import FAMILIES

PRETRAINED = Path(__file__).resolve().parent.parent / "src" / "insertgen" / "pretrained"
SHIPPED = sorted(p.name for p in PRETRAINED.iterdir() if (p / "config.json").is_file())


def _command_with_flags():
    @click.command()
    def command(**kwargs):
        click.echo(json.dumps(kwargs))

    for opt in reversed(flag_options()):
        command = opt(command)
    return command


# ----- the flags are the dataclasses -----

def test_every_option_field_of_every_family_is_a_flag_with_its_help_and_values():
    params = {p.name: p for p in _command_with_flags().params}
    names = {f.name for family in FAMILIES.values() for f in dataclasses.fields(family.options_class)}
    assert set(params) == names | {"greedy"}
    for name, f in option_fields().items():
        param = params[name]
        assert param.opts == [f"--{name.replace('_', '-')}"] and param.default is None
        assert param.help.startswith(f.metadata["help"]) and f.metadata["help"]
        if f.metadata["choices"] is not None:
            assert tuple(param.type.choices) == tuple(f.metadata["choices"])
    assert tuple(params["insertion_draw"].type.choices) == ("poisson", "binomial", "sequence")
    assert params["top_p"].type.min == 0.0 and params["top_p"].type.min_open and params["top_p"].type.max == 1.0


def test_every_sampling_command_carries_the_generated_flags():
    """sample, eval, analysis and demo take every generated flag; bench all but --steps (its own --steps are
    training steps; --sample-steps sweeps the sampler's)."""
    from insertgen.apps.cli import cli as group

    generated = {*option_fields(), "greedy"}
    for name in ("sample", "eval", "analysis", "demo", "bench"):
        command = group.get_command(None, name)
        flags = {p.name for p in command.params if isinstance(p, click.Option)}
        expected = generated - {"steps"} if name == "bench" else generated
        assert expected <= flags, (name, sorted(expected - flags))
    bench = {p.name: p for p in group.get_command(None, "bench").params}
    assert bench["steps"].help.startswith("Training steps") and bench["sample_steps"].multiple


def test_a_new_option_is_one_field():
    """A field added to an options class becomes a flag and is validated, with nothing else written."""

    @dataclasses.dataclass
    class WithBeam(SamplerOptions):
        beam: int = option(1, "Beams kept per step.", low=1)

    assert WithBeam(beam=3).beam == 3
    with pytest.raises(ValueError, match="beam must be >= 1, not 0"):
        WithBeam(beam=0)
    family = FAMILIES["arm"]
    FAMILIES["arm"] = dataclasses.replace(family, options_class=WithBeam)
    try:
        params = {p.name: p for p in _command_with_flags().params}
        assert params["beam"].help.startswith("Beams kept per step.") and params["beam"].type.min == 1
        assert resolve_sampler_options({"model": "arm"}, beam=4) == WithBeam(beam=4)
    finally:
        FAMILIES["arm"] = family


@pytest.mark.parametrize("bad,message", [
    ({"grid": "cosine"}, "grid must be one of uniform, unmask, not 'cosine'"),
    ({"top_p": 0.0}, r"top_p must be in \(0, 1\], not 0.0"),
    ({"unmask_time": 1.0}, r"unmask_time must be in \[0, 1\), not 1.0"),
    ({"steps": 0}, "steps must be >= 1, not 0"),
    ({"temperature": 0.0}, "temperature must be > 0, not 0.0"),
    ({"confidence": "entropy"}, "confidence must be one of top_prob, prob_diff"),
    ({"order": "insert_first", "steps": 1}, "needs at least 2 steps"),
])
def test_each_field_is_checked_against_its_declaration(bad, message):
    with pytest.raises(ValueError, match=message):
        TauLeapingOptions(**bad)
    with pytest.raises(InsertgenError, match="bad sampler option"):
        resolve_sampler_options({"model": "flexmdm"}, **bad)


# ----- the resolver -----

def test_precedence_flag_over_shipped_over_evaluation_settings_over_family_default():
    run = {"model": "flexmdm"}
    assert resolve_sampler_options(run) == TauLeapingOptions(steps=64)  # evaluation steps 64 when unnamed
    run["train"] = {"eval_sampler_steps": 32, "eval_sampler_order": "insert_first"}
    assert resolve_sampler_options(run) == TauLeapingOptions(steps=32, order="insert_first")
    run["sampler_defaults"] = {"steps": 256, "grid": "unmask", "temperature": 0.3}
    assert resolve_sampler_options(run) == TauLeapingOptions(steps=256, order="insert_first", grid="unmask",
                                                             temperature=0.3)
    assert resolve_sampler_options(run, steps=8, grid="uniform", temperature=None) == TauLeapingOptions(
        steps=8, order="insert_first", temperature=0.3)
    assert resolve_sampler_options({"model": "ip"}, temperature=0.5) == SamplerOptions(temperature=0.5)
    # choices a family's sampler does not take do not apply; unknown names are refused
    assert resolve_sampler_options({"model": "ip"}, order="insert_first", steps=9) == SamplerOptions()
    with pytest.raises(InsertgenError, match="unknown sampler option"):
        resolve_sampler_options({"model": "ip"}, beam=2)


def test_a_config_shipped_before_the_full_settings_keeps_its_named_sampler():
    legacy = {"model": "mdm", "demo_sampler": "top_prob", "sampler_defaults": {"steps": 40}}
    assert resolve_sampler_options(legacy) == UnmaskingOptions(steps=40, confidence="top_prob")


def test_token_choice_is_one_group():
    nucleus = {"model": "ip", "sampler_defaults": {"top_p": 0.5, "temperature": 0.7}}
    assert resolve_sampler_options(nucleus, default_greedy=True).top_p == 0.5  # a shipped nucleus is not greedy
    assert resolve_sampler_options(nucleus, top_k=3) == SamplerOptions(top_k=3, temperature=0.7)  # replaces top_p
    assert resolve_sampler_options(nucleus, greedy=True) == SamplerOptions(top_k=1, temperature=0.7)
    assert resolve_sampler_options({"model": "ip"}, default_greedy=True).top_k == 1
    assert resolve_sampler_options({"model": "ip"}, default_greedy=False).top_k is None
    greedy_shipped = {"model": "ip", "sampler_defaults": {"top_k": 1, "top_p": None}}
    assert resolve_sampler_options(greedy_shipped).top_k == 1  # `sample` is greedy where the run is
    assert resolve_sampler_options(greedy_shipped, greedy=False) == SamplerOptions()  # --no-greedy: ancestral
    assert resolve_sampler_options(greedy_shipped, top_p=0.9) == SamplerOptions(top_p=0.9)


def test_reproduce_cells_draw_tokens_as_the_runs_preset_says_unless_greedy():
    config = {"model": "ip", "sampler_defaults": {"temperature": 0.5, "confidence": "top_prob"}}
    drawn = with_drawing_defaults(SamplerOptions(), config)
    assert drawn.temperature == 0.5 and drawn.confidence is None  # only how tokens are drawn, not the order
    assert with_drawing_defaults(SamplerOptions(top_k=1), config).temperature == 1.0  # greedy stays
    assert with_drawing_defaults(SamplerOptions(), {"model": "ip"}) == SamplerOptions()


def test_sampler_names_are_the_most_specific_family_sampler_kept():
    assert sampler_name("mdm", UnmaskingOptions(confidence="top_prob")) == "top_prob"
    assert sampler_name("mdm", UnmaskingOptions()) == "random"
    assert sampler_name("flexmdm", TauLeapingOptions(confidence="top_prob", grid="unmask")) == "joint"
    assert sampler_name("flexmdm", TauLeapingOptions(order="insert_first")) == "insert_first"
    assert sampler_name("ip", SamplerOptions(top_p=0.9)) == "ancestral"
    moved = as_named_sampler("flexmdm", TauLeapingOptions(steps=40, top_k=1), "insert_first")
    assert moved == TauLeapingOptions(steps=40, top_k=1, order="insert_first")
    with pytest.raises(InsertgenError, match="no sampler 'beam'"):
        as_named_sampler("flexmdm", moved, "beam")


# ----- every shipped model -----

@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_model_is_sampled_by_default_as_its_documented_figures_were(name):
    """`sample` (tokens drawn unless the run says greedy), `eval` and the demo resolve the same options
    from a shipped config, and its sampler_defaults pin every field of its family's sampler, so a later
    change of a sampler's defaults cannot change what the shipped model's figures mean."""
    config = json.loads((PRETRAINED / name / "config.json").read_text())
    options_class = FAMILIES[config["model"]].options_class
    assert set(config["sampler_defaults"]) == {f.name for f in dataclasses.fields(options_class)}
    assert "demo_sampler" not in config
    greedy = config["task"].startswith(("star", "maze"))
    _, demo = demo_sampler(config["model"], config, greedy=greedy)
    assert resolve_sampler_options(config, default_greedy=False) == demo  # sample
    assert resolve_sampler_options(config, default_greedy=greedy) == demo  # eval, analysis
    assert shipped_settings(demo) == config["sampler_defaults"]
    assert (demo.top_k == 1) == greedy  # star and maze figures are greedy, molecules drawn


@pytest.mark.parametrize("name", ["star-easy-mdm", "smiles-ip"])
def test_a_loaded_run_carries_the_options_eval_samples_it_with(name):
    from insertgen.engine.run import load_run

    model = load_run(PRETRAINED / name)
    _, demo = demo_sampler(model.model_id, model.run_config, greedy=model.task.greedy_by_default)
    assert model.sampler_options == demo


def test_sample_on_a_shipped_model_writes_the_demo_outputs(cli, tmp_path):
    """End to end: `insertgen sample` with no sampler flag on the shipped star-easy MDM writes what the demo's
    sampler writes for the same fresh graphs and seed."""
    from insertgen.engine.evaluate import generate
    from insertgen.engine.run import load_run

    run = pretrained_dir("mdm")
    if not (run / "checkpoint.safetensors").is_file():
        pytest.skip("no shipped star-easy MDM in this checkout")
    model = load_run(run)
    examples = model.task.fresh_examples(12, seed=4242)
    _, options = demo_sampler("mdm", model.run_config)
    with torch.inference_mode():
        expected, _ = generate(model, [list(e.prompt) for e in examples], options, seed=3)
    prompts = tmp_path / "P.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": model.task.format(list(e.prompt))}) + "\n" for e in examples))
    out = tmp_path / "O.jsonl"
    code, _, err = cli("sample", "--run", run, "--input", prompts, "--output", out, "--seed", "3")
    assert code == 0, err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["output"] for r in rows] == [model.task.format(o) for o in expected]
    ancestral = resolve_sampler_options(model.run_config, greedy=False)
    assert ancestral.top_k is None and ancestral.confidence == "top_prob"  # tokens drawn, order kept
    with torch.inference_mode():
        expected, _ = generate(model, [list(e.prompt) for e in examples], ancestral, seed=3)
    code, _, err = cli("sample", "--run", run, "--input", prompts, "--output", out, "--seed", "3", "--no-greedy")
    assert code == 0, err
    assert [json.loads(line)["output"] for line in out.read_text().splitlines()] == [
        model.task.format(o) for o in expected]


def test_option_types_come_from_the_annotations():
    hints = typing.get_type_hints(TauLeapingOptions)
    params = {p.name: p for p in _command_with_flags().params}
    assert isinstance(params["steps"].type, click.IntRange) and hints["steps"] is int
    assert isinstance(params["stop_threshold"].type, click.FloatRange) and hints["stop_threshold"] is float


# ----- the training config's evaluation sampler: one generic mapping -----

def test_the_training_config_keeps_any_sampler_option_for_evaluation():
    from insertgen.engine.train import TrainConfig

    assert TrainConfig().eval_sampler == {"steps": 64, "order": "joint"}
    cfg = TrainConfig.from_dict({"eval_sampler": {"steps": 32, "grid": "unmask", "confidence": "top_prob"}})
    assert cfg.eval_sampler["grid"] == "unmask"
    legacy = TrainConfig.from_dict({"eval_sampler_steps": 16, "eval_sampler_order": "insert_first"})  # older runs
    assert legacy.eval_sampler == {"steps": 16, "order": "insert_first"}
    with pytest.raises(ValueError, match="eval_sampler: unknown sampler option"):
        TrainConfig(eval_sampler={"beam": 2})
    with pytest.raises(ValueError, match="eval_sampler: grid must be one of"):
        TrainConfig(eval_sampler={"grid": "cosine"})
    run = {"model": "flexmdm", "train": TrainConfig.from_dict({"eval_sampler": {"steps": 8, "grid": "unmask"}}).to_dict()}
    assert resolve_sampler_options(run) == TauLeapingOptions(steps=8, grid="unmask")


def test_set_reaches_one_option_of_the_evaluation_sampler(cli, tmp_path):
    from conftest import TINY_TRAIN_ARGS

    out = tmp_path / "run"
    args = [a for a in TINY_TRAIN_ARGS if a != "--quiet"]
    code, _, err = cli(*args, "--steps", "1", "--out", out, "--set", "eval_sampler.grid=unmask",
                       "--set", "eval_sampler_order=insert_first", "--quiet")
    assert code == 0, err
    train = json.loads((out / "config.json").read_text())["train"]
    assert train["eval_sampler"] == {"steps": 64, "order": "insert_first", "grid": "unmask"}
    code, _, err = cli(*args, "--steps", "1", "--out", tmp_path / "bad", "--set", "eval_sampler.grid=cosine", "--quiet")
    assert code == 2 and "grid must be one of" in err


def test_the_demo_takes_the_sampler_flags_for_every_model_that_takes_them(cli, tmp_path):
    """`insertgen demo --steps 8` samples the step-taking samplers with 8 steps (recorded in each demo.json);
    IP's ancestral sampler, which takes no steps, keeps its own settings."""
    out = tmp_path / "demo"
    code, _, err = cli("demo", "--task", "star-easy", "--models", "mdm,ip", "-n", "4", "--steps", "8",
                       "--out", out)
    assert code == 0, err
    summary = json.loads((out / "demo.json").read_text())["models"]
    assert summary["mdm"]["sampler"] == "top_prob" and summary["mdm"]["sampler_settings"].startswith("8 steps")
    ip = json.loads((out / "compare" / "ip" / "demo.json").read_text())["sampler_options"]
    assert "steps" not in ip and ip["top_k"] == 1
