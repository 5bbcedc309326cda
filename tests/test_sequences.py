"""The sequences task (tasks/sequences): a user's JSONL files, each tokeniser's round trip, the vocabulary kept
in the run, the drawn splits, the metrics, and the documented errors."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import call_main
from insertgen.core.errors import InsertgenError
from insertgen.tasks import get_task
from insertgen.tasks.sequences.task import SequenceTask
from insertgen.tasks.sequences.tokenizers import tokenizer_of


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def reversal_rows(n, seed=0):
    import random

    r = random.Random(seed)
    rows = []
    for _ in range(n):
        digits = [str(r.randint(0, 9)) for _ in range(r.randint(2, 6))]
        rows.append({"prompt": " ".join(digits), "target": " ".join(reversed(digits))})
    return rows


@pytest.mark.parametrize("spec,text,tokens", [
    ("whitespace", "a bb  c", ["a", "bb", "c"]),
    ("chars", "ab c", ["a", "b", " ", "c"]),
    ("smiles", "CC(=O)Nc1ccc(Cl)cc1", ["C", "C", "(", "=", "O", ")", "N", "c", "1", "c", "c", "c", "(", "Cl", ")",
                                       "c", "c", "1"]),
    (r"regex:\d+|[a-z]+|[+*()-]", "12+x*(3-y)", ["12", "+", "x", "*", "(", "3", "-", "y", ")"]),
])
def test_each_tokeniser_splits_and_joins_back(spec, text, tokens):
    tok = tokenizer_of(spec)
    assert tok.split(text) == tokens
    assert tok.join(tokens) == (" ".join(text.split()) if spec == "whitespace" else text)


def test_tokeniser_errors_name_the_place():
    with pytest.raises(InsertgenError, match=r"cannot read '\?x' \(character 3"):
        tokenizer_of(r"regex:\d").split("12?x")
    with pytest.raises(InsertgenError, match="unknown tokenizer 'bytes'"):
        tokenizer_of("bytes")
    with pytest.raises(InsertgenError, match="not a regular expression"):
        tokenizer_of("regex:(")
    with pytest.raises(InsertgenError, match="matches the empty string"):
        tokenizer_of("regex:a*")


def test_a_conditional_file_gives_drawn_splits_a_sorted_vocabulary_and_round_trips(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", reversal_rows(200))
    task = get_task("sequences", {"train": str(data)})
    assert task.conditional and task.vocab.tokens[4:] == [str(d) for d in range(10)]
    sizes = {s: len(task.examples(s)) for s in ("train", "validation", "test")}
    assert sizes == {"train": 160, "validation": 20, "test": 20}  # a tenth each when under held_out
    held = {(ex.prompt, ex.target) for s in ("validation", "test") for ex in task.examples(s)}
    assert len(held) <= 40 and task.prompt_block == task.target_block == 6
    again = get_task("sequences", {"train": str(data)})
    assert again.examples("test") == task.examples("test")  # seeded
    other = get_task("sequences", {"train": str(data), "split_seed": 1})
    assert other.examples("test") != task.examples("test")
    ids = task.parse_prompt("3 1 4")
    assert task.format(ids) == "3 1 4" and task.parse_target(ids, "4 1 3") == task.vocab.encode("4 1 3")
    ex = task.examples("test")[0]
    out = [list(ex.target), list(ex.target[:-1]), list(ex.target) + [ex.target[0]]]
    metrics = task.evaluate([ex] * 3, out)
    assert metrics["exact_match"] == pytest.approx(1 / 3)
    assert metrics["token_accuracy"] == pytest.approx((1 + (len(ex.target) - 1) / len(ex.target)
                                                       + len(ex.target) / (len(ex.target) + 1)) / 3)


def test_an_unconditional_file_with_chars_scores_distinct_and_seen_samples(tmp_path):
    data = write_jsonl(tmp_path / "words.jsonl", [{"text": w} for w in ["abc", "bca", "cab", "aab", "bba"] * 8])
    task = get_task("sequences", {"train": str(data), "tokenizer": "chars"})
    assert not task.conditional and task.vocab.tokens[4:] == ["a", "b", "c"] and task.prompt_block == 0
    seen, new = task.vocab.encode(list("abc")), task.vocab.encode(list("ccc"))
    metrics = task.evaluate(task.examples("test")[:4], [seen, seen, new, new])
    assert metrics["distinct"] == 0.5 and metrics["seen_in_training"] == 0.5 and metrics["novel_distinct"] == 0.25
    assert task.headline_metrics[0] == "novel_distinct" and task.format(new) == "ccc"


def test_the_stored_options_rebuild_the_task_without_its_files(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", reversal_rows(100))
    task = get_task("sequences", {"train": str(data)})
    stored = json.loads(json.dumps(task.stored_options({"train": str(data)})))
    data.unlink()
    rebuilt = get_task("sequences", stored)
    assert rebuilt.vocab == task.vocab and rebuilt.conditional and rebuilt.buffer_len == task.buffer_len
    assert rebuilt.parse_prompt("9 8") == task.parse_prompt("9 8")
    with pytest.raises(InsertgenError, match="is not here: sample, score and the held-out splits work without it"):
        rebuilt.examples("test")


@pytest.mark.parametrize("lines,message", [
    (['{"prompt": "1 2"}'], r"train.jsonl:1: missing key 'target'"),
    (['{"prompt": "1 2", "target": ""}'], r"train.jsonl:1: empty target"),
    (['{"text": "1 2"}', '{"prompt": "1", "target": "2"}'], r"train.jsonl:2: a 'text' line among"),
    (['{"text": "1 2"}', "not json"], r"train.jsonl:2: malformed JSON"),
    (['{"text": 5}'], r"train.jsonl:1: 'text' must be a string"),
    (['{"text": "a [MASK] b"}'], r"train.jsonl:1: the token '\[MASK\]' is reserved"),
    ([], r"train.jsonl holds no example"),
])
def test_bad_lines_are_refused_with_file_and_line(tmp_path, lines, message):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    with pytest.raises(InsertgenError, match=message):
        SequenceTask(train=str(path))


def test_other_documented_errors(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", reversal_rows(100))
    with pytest.raises(InsertgenError, match="needs a training file"):
        SequenceTask()
    with pytest.raises(InsertgenError, match="too few to draw validation"):
        SequenceTask(train=str(write_jsonl(tmp_path / "few.jsonl", reversal_rows(5))))
    valid = write_jsonl(tmp_path / "valid.jsonl", [{"prompt": "1 x", "target": "x 1"}])
    with pytest.raises(InsertgenError, match=r"valid.jsonl: unknown token 'x'.*the training file's"):
        SequenceTask(train=str(data), valid=str(valid)).examples("validation")
    text = write_jsonl(tmp_path / "text.jsonl", [{"text": "1 2"}] * 20)
    with pytest.raises(InsertgenError, match="text.jsonl holds text lines, the training file the other kind"):
        SequenceTask(train=str(data), test=str(text))
    task = SequenceTask(train=str(data))
    with pytest.raises(InsertgenError, match="unknown token 'x'.*vocabulary has 10 tokens"):
        task.parse_prompt("1 x")
    with pytest.warns(UserWarning, match="lines longer than max_len 6 skipped"):
        capped = SequenceTask(train=str(data), max_len=6)
    assert sum(capped.skipped.values()) > 0 and capped.prompt_block + capped.target_block <= 6 * 2


def test_train_data_then_sample_score_and_eval_without_the_file(tmp_path, capsys):
    """`train --data FILE` makes a normal run; moved elsewhere with its data file deleted it samples the same
    outputs, scores texts, and refuses only what needs the file."""
    data = write_jsonl(tmp_path / "train.jsonl", reversal_rows(300))
    run = tmp_path / "run"
    assert call_main(["train", "--data", str(data), "--model", "arm", "--steps", "3", "--out", str(run),
                      "--set", "d_model=32", "--set", "n_layers=1", "--set", "n_heads=2", "--quiet"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["task"] == "sequences" and config["task_options"]["vocabulary"] == [str(d) for d in range(10)]
    assert len((run / "held-out" / "test.jsonl").read_text().splitlines()) == 30
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": "1 2 3"}, {"prompt": "9 9"}])
    first = tmp_path / "first.jsonl"
    assert call_main(["sample", "--run", str(run), "--input", str(prompts), "--output", str(first)]) == 0
    moved = tmp_path / "elsewhere" / "run"
    shutil.copytree(run, moved)
    data.unlink()
    second = tmp_path / "second.jsonl"
    assert call_main(["sample", "--run", str(moved), "--input", str(prompts), "--output", str(second)]) == 0
    assert first.read_text() == second.read_text()
    texts = write_jsonl(tmp_path / "texts.jsonl", [{"prompt": "1 2", "text": "2 1"}])
    assert call_main(["score", "--run", str(moved), "--input", str(texts), "--output", str(tmp_path / "s.jsonl")]) == 0
    assert json.loads((tmp_path / "s.jsonl").read_text())["log_likelihood"] < 0
    capsys.readouterr()
    assert call_main(["eval", "--run", str(run), "--limit", "5", "--json"]) == 0  # the held-out copies in the run
    before = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert call_main(["eval", "--run", str(moved), "--limit", "5", "--json"]) == 0
    after = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    same = {k: v for k, v in before.items() if "seconds" not in k}
    assert {k: v for k, v in after.items() if "seconds" not in k} == same
    assert call_main(["eval", "--run", str(moved), "--split", "train", "--limit", "5"]) == 2
    assert "the training split needs it" in capsys.readouterr().err
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "1 x"}])
    assert call_main(["sample", "--run", str(moved), "--input", str(bad), "--output", str(tmp_path / "b.jsonl")]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err and not (tmp_path / "b.jsonl").exists()


def test_train_data_options_are_checked(tmp_path, capsys):
    data = write_jsonl(tmp_path / "train.jsonl", reversal_rows(50))
    assert call_main(["train", "--valid", str(data), "--model", "arm", "--out", str(tmp_path / "r")]) == 2
    assert "--valid and --test go with --data" in capsys.readouterr().err
    assert call_main(["train", "--data", str(data), "--task", "star-easy", "--model", "arm",
                      "--out", str(tmp_path / "r")]) == 2
    assert "drop --task" in capsys.readouterr().err and not (tmp_path / "r").exists()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "1 2", "target": "2 1"}\n{"prompt": "3"}\n')
    assert call_main(["train", "--data", str(bad), "--model", "arm", "--out", str(tmp_path / "r")]) == 2
    assert "bad.jsonl:2: missing key 'target'" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_the_documented_example_lines_make_a_task(tmp_path):
    """docs/formats.md#your-own-sequences: each example line, repeated into a file, is a valid training file."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "formats.md").read_text()
    found = dict(re.findall(r"<!-- sequences (\w+) -->\s*```json\n(.*?)\n```", text, re.S))
    assert set(found) == {"text", "pair"}
    for kind, line in found.items():
        path = tmp_path / f"{kind}.jsonl"
        path.write_text((line + "\n") * 30)
        task = SequenceTask(train=str(path))
        assert task.conditional == (kind == "pair") and len(task.examples("test")) == 3


@pytest.mark.parametrize("model", ["flexmdm", "loflexmdm", "ip", "ao-ip", "arm", "mdm"])
@pytest.mark.parametrize("kind", ["pair", "text"])
def test_every_family_trains_and_samples_on_a_file(model, kind, tmp_path, capsys):
    from insertgen.models.registry import get_family

    rows = reversal_rows(120) if kind == "pair" else [{"text": r["target"]} for r in reversal_rows(120)]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    run = tmp_path / "run"
    tiny = [arg for key, value in get_family(model).tiny.items() for arg in ("--set", f"{key}={value}")]
    assert call_main(["train", "--data", str(data), "--model", model, "--steps", "2", "--out", str(run), "--quiet",
                      "--set", "batch_size=8", *tiny]) == 0
    out = tmp_path / "out.jsonl"
    if kind == "pair":
        prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "1 2 3"}])
        assert call_main(["sample", "--run", str(run), "--input", str(prompts), "--output", str(out),
                          "--steps", "4"]) == 0
    else:
        assert call_main(["sample", "--run", str(run), "-n", "3", "--output", str(out), "--steps", "4"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == (1 if kind == "pair" else 3)
    assert all(set(r["output"].split()) <= {str(d) for d in range(10)} for r in rows)


def test_the_addition_example_data(tmp_path, capsys):
    from insertgen.tasks.sequences.examples import addition

    rows = addition(n=500, digits=2, seed=1)
    assert len({r["prompt"] for r in rows}) == 500
    for r in rows:
        a, b = (int(x.replace(" ", "")) for x in r["prompt"].split(" + "))
        assert int(r["target"].replace(" ", "")) == a + b and r["target"] == " ".join(str(a + b))
    assert addition(n=500, digits=2, seed=1) == rows and addition(n=500, digits=2, seed=2) != rows
    with pytest.raises(InsertgenError, match="only 100 problems of up to 1 digits"):
        addition(n=101, digits=1)
    out = tmp_path / "add.jsonl"
    assert call_main(["example-data", "addition", "--out", out, "-n", "300", "--digits", "2"]) == 0
    assert "wrote 300 addition problems" in capsys.readouterr().out
    task = SequenceTask(train=str(out))
    assert task.vocab.tokens[4:] == ["+", *map(str, range(10))] and len(task.examples("test")) == 30


def test_the_order_reference_is_the_position_so_a_left_to_right_writer_scores_plus_one(tmp_path):
    from insertgen.engine.analysis import order_statistics

    task = SequenceTask(train=str(write_jsonl(tmp_path / "t.jsonl", reversal_rows(60))))
    ex = task.examples("test")[0]
    out = list(ex.target)
    n = len(out)
    frame = lambda steps: {"canvas": [*ex.prompt, task.vocab.bos_id, *out, task.vocab.eos_id],  # noqa: E731
                           "insert_step": [-1] * (len(ex.prompt) + 1) + steps + [-1],
                           "unmask_step": [-1] * (len(ex.prompt) + 1) + steps + [-1]}
    forward = order_statistics(task, [ex], [out], [frame(list(range(n)))])
    backward = order_statistics(task, [ex], [out], [frame(list(range(n))[::-1])])
    assert forward["order_corr_unmask"] == pytest.approx(1.0) and backward["order_corr_unmask"] == pytest.approx(-1.0)
    assert task.order_reference([], out) == list(range(n))
