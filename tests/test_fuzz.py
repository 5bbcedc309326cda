"""Property-based fuzzing (hypothesis) of every parser of user text: task prompts and outputs (star, maze,
SMILES, bracket SAFE), the SMILES tokeniser and SAFE decoder, MOSES data lines, JSONL input files,
--set options and model / training options. Each either returns a well-formed value or raises the
documented InsertgenError (ValueError for option dataclasses, which the CLI turns into InsertgenError);
nothing else escapes.

The number of inputs per target is INSERTGEN_FUZZ_EXAMPLES (default 100); with INSERTGEN_FUZZ_REPORT=PATH
the counts of inputs tried and of documented errors are written there as JSON (benchmarks/fuzz.py)."""

import json
import os
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from insertgen.apps.commands.common import parse_set
from insertgen.core.errors import InsertgenError
from insertgen.core.io import parse_jsonl_line, read_jsonl, read_jsonl_lines
from insertgen.engine.train import TrainConfig
from insertgen.models.registry import build_model
from insertgen.tasks import get_task

EXAMPLES = int(os.environ.get("INSERTGEN_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
TRIED: Counter = Counter()
REFUSED: Counter = Counter()

numeric_text = st.text(alphabet=" \t\n0123456789-+.x", max_size=200) | st.text(max_size=60)
smiles_text = st.text(alphabet="CNOSPFIBrclnos()[]=#@+-0123456789%./\\H<>*:", max_size=90) | st.text(max_size=40)
TASKS = ["star-easy", "star-medium", "maze-braided-easy", "maze-perfect-medium", "smiles", "safe", "fragment-all"]


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    path = os.environ.get("INSERTGEN_FUZZ_REPORT")
    if path:
        Path(path).write_text(json.dumps({"examples_per_target": EXAMPLES, "tried": dict(TRIED),
                                          "refused_with_documented_error": dict(REFUSED),
                                          "total": sum(TRIED.values())}, indent=2) + "\n")


def attempt(target: str, fn, *args, allowed=(InsertgenError,)):
    TRIED[target] += 1
    try:
        return fn(*args)
    except allowed:
        REFUSED[target] += 1
        return None


@pytest.mark.parametrize("task_id", TASKS)
def test_task_text_parsers(task_id):
    task = get_task(task_id)
    prompts = (smiles_text if hasattr(task, "to_smiles") else numeric_text) if task.conditional else st.text(max_size=20)

    @FUZZ
    @given(prompt=prompts, text=numeric_text | smiles_text)
    def check(prompt, text):
        ids = attempt(f"{task_id}.parse_prompt", task.parse_prompt, prompt)
        if ids is not None:
            assert all(task.vocab.num_special <= i < len(task.vocab) for i in ids)
            assert len(ids) <= task.prompt_block
        out = attempt(f"{task_id}.parse_target", task.parse_target, ids or [], text)
        if out is not None:
            assert all(task.vocab.num_special <= i < len(task.vocab) for i in out)
            assert task.vocab.decode(out, skip_special=True) is not None
            if hasattr(task, "to_smiles"):
                result = task.to_smiles(out)  # never raises: an undecodable output is None
                assert result is None or isinstance(result, str)
    check()


@FUZZ
@given(text=smiles_text)
def test_smiles_tokeniser_round_trips_what_it_accepts(text):
    from insertgen.tasks.molecules.tokens import tokenize

    tokens = attempt("tokenize", tokenize, text)
    if tokens is not None:
        assert "".join(tokens) == text


@FUZZ
@given(text=smiles_text)
def test_bracket_safe_decoder_and_canonicaliser_never_raise(text):
    from insertgen.tasks.molecules import bracket_safe, metrics

    metrics.quiet_rdkit()
    TRIED["bracket_safe.decode"] += 1
    TRIED["canonical"] += 1
    for value in (bracket_safe.decode(text), metrics.canonical(text)):
        assert value is None or isinstance(value, str)


@FUZZ
@given(lines=st.lists(smiles_text | st.sampled_from(["", " ", "CC,O", "c1ccccc1", "C C"]), max_size=20),
       header=st.sampled_from(["SMILES", "SMILES\n", "smiles", ""]))
def test_moses_lines_are_each_kept_or_counted(lines, header):
    """Every data line after the header is either a SMILES or a counted malformed line: none vanish."""
    from insertgen.tasks.molecules.moses import parse_lines

    lines = [line.replace("\n", "").replace("\r", "") for line in lines]
    split = attempt("moses.parse_lines", parse_lines, [header, *lines], "fuzz.csv")
    if split is not None:
        assert len(split.strings) + len(split.malformed) == len(lines)


@FUZZ
@given(data=st.binary(max_size=300) | st.lists(
    st.one_of(st.just('{"prompt": "1 2 3 4 1 4"}'), st.just("{}"), st.just("[1]"), st.just(""),
              st.just('{"prompt": 5}'), st.text(max_size=30)), max_size=6).map(lambda xs: "\n".join(xs).encode()))
def test_jsonl_reader(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "in.jsonl"
    path.write_bytes(data)
    rows = attempt("read_jsonl", read_jsonl, path, ("prompt",))
    if rows is not None:
        assert rows and all(isinstance(r, dict) and isinstance(r["prompt"], str) for r in rows)
    lenient = attempt("read_jsonl_lines(lenient)", read_jsonl_lines, path,
                      lambda line: parse_jsonl_line(line, ("prompt",)), True)
    if lenient is not None:  # every line is either kept or reported: none vanish
        kept, skipped = lenient
        lines = data.split(b"\n")  # a line ends at a newline only (\u2028 and the like may sit inside JSON strings)
        assert len(kept) + len(skipped) == len(lines) - (lines[-1] == b"")
        assert rows is None or len(rows) == len(kept)


@FUZZ
@given(pairs=st.lists(st.text(max_size=30), max_size=4))
def test_set_option_parser(pairs):
    out = attempt("--set", parse_set, tuple(pairs))
    if out is not None:
        assert len(out) <= len(pairs)


def json_values(max_int: int):
    return st.one_of(st.none(), st.booleans(), st.integers(-10, max_int), st.floats(allow_nan=True),
                     st.text(max_size=10), st.lists(st.integers(), max_size=2))


@FUZZ
@given(options=st.dictionaries(st.sampled_from(list(TrainConfig.__dataclass_fields__) + ["bogus"]),
                               json_values(10_000),
                               max_size=4))
def test_training_options(options):
    attempt("TrainConfig", TrainConfig.from_dict, options, allowed=(ValueError, TypeError))


@FUZZ
@given(model=st.sampled_from(["flexmdm", "loflexmdm", "ip", "ao-ip", "arm", "mdm", "gpt"]),
       options=st.dictionaries(st.sampled_from(["d_model", "n_layers", "n_heads", "max_len", "time_weighting",
                                                "aux_d_model", "posterior_d_model", "dropout", "bogus"]),
                               json_values(200), max_size=3))  # small sizes: a model is built
def test_model_options(model, options):
    task = get_task("star-easy")
    options = {"d_model": 16, "n_layers": 1, "n_heads": 2, "max_len": 48, **options}
    attempt(f"build_model.{model}", build_model, model, task.vocab, options)


@pytest.mark.parametrize("text", ["[EOS]", "CC[MASK]O", "[PAD]", "[BOS]C"])
def test_special_token_names_in_molecule_text_are_refused(text):
    """Found by the fuzzer: '[EOS]' is a well-formed bracket atom for the tokeniser, and used to be encoded
    as the EOS id."""
    with pytest.raises(InsertgenError, match="special token"):
        get_task("smiles").parse_target([], text)


RUN_KEYS = ["task", "model", "model_config", "task_options", "train", "sampler_defaults", "seed", "preset", "other"]


@pytest.fixture(scope="module")
def fuzz_run(tmp_path_factory):
    """A tiny trained run whose config.json and metrics.jsonl the two tests below replace."""
    from conftest import call_main

    run = tmp_path_factory.mktemp("fuzz-run") / "run"
    assert call_main(["train", "--task", "star-tiny", "--model", "arm", "--steps", "2", "--out", run, "--quiet",
                      "--set", "d_model=32", "--set", "n_layers=1", "--set", "n_heads=2", "--set", "batch_size=8",
                      "--set", "eval_every=0", "--set", "checkpoint_every=1"]) == 0
    return run


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(RUN_KEYS), json_values(40) | st.dictionaries(
    st.sampled_from(["d_model", "n_layers", "steps", "lr", "temperature", "top_k", "train_size", "bogus"]),
    json_values(40), max_size=3), max_size=3), drop=st.sampled_from([None, "task", "model", "model_config"]))
def test_run_config_reader(fuzz_run, tmp_path_factory, changes, drop):
    """A config.json from someone else: load_run either loads the run or refuses it with a one-line
    InsertgenError; nothing else escapes."""
    import shutil

    from insertgen.engine.run import load_run

    run = tmp_path_factory.mktemp("cfg") / "run"
    shutil.copytree(fuzz_run, run)
    config = json.loads((run / "config.json").read_text())
    if drop:
        config.pop(drop)
    config.update(changes)
    (run / "config.json").write_text(json.dumps(config))
    attempt("load_run(config.json)", load_run, run)  # anything but InsertgenError fails the test
    shutil.rmtree(run)


@FUZZ
@given(tail=st.binary(max_size=80))
def test_metrics_reader_on_resume(fuzz_run, tmp_path_factory, tail):
    """A damaged end of metrics.jsonl (any bytes) does not stop a resume: damaged lines are dropped with a
    warning, the rest kept."""
    import shutil

    from conftest import call_main

    run = tmp_path_factory.mktemp("metrics") / "run"
    shutil.copytree(fuzz_run, run)
    with open(run / "metrics.jsonl", "ab") as f:
        f.write(tail)
    TRIED["resume(metrics.jsonl)"] += 1
    assert call_main(["train", "--out", run, "--resume", "--steps", "3", "--quiet"]) == 0
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 3
    shutil.rmtree(run)
