"""Tests of the molecule tasks (docs/methods/tasks.md#molecules): MOSES reading, the tokeniser, bracket SAFE,
the metrics against independent computations and reference values, and the CLI on ``smiles``."""

from __future__ import annotations

import itertools
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rdkit")
pytest.importorskip("safe")

from rdkit import Chem, DataStructs, RDConfig  # noqa: E402
from rdkit.Chem import AllChem  # noqa: E402

from conftest import call_main  # noqa: E402
from insertgen.core.errors import InsertgenError  # noqa: E402
from insertgen.tasks import get_task  # noqa: E402
from insertgen.tasks.molecules import bracket_safe, metrics, moses  # noqa: E402
from insertgen.tasks.molecules.tokens import SAFE_TOKENS, SMILES_TOKENS, tokenize  # noqa: E402

metrics.quiet_rdkit()


@pytest.fixture(scope="module")
def test_smiles() -> list[str]:
    """300 MOSES test molecules (a fixed draw)."""
    return moses.subsample(moses.read_split("test").strings, 300, 1)


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("INSERTGEN_CACHE", str(tmp_path_factory.getbasetemp() / "insertgen-cache"))


# ----------------------------------------------------------------------------------------------
# data and tokens
# ----------------------------------------------------------------------------------------------


def test_moses_files_are_read_whole():
    for name in ("train", "test"):
        split = moses.read_split(name)
        assert len(split.strings) + len(split.malformed) == moses.SIZES[name]
        assert split.malformed == []  # the shipped files are clean; see the next test for the counting


def test_malformed_lines_are_counted_with_their_line_numbers():
    split = moses.parse_lines(["SMILES\n", "CCO\n", "\n", "CC O\n", "CC,O\n", "C&C\n", "c1ccccc1\n"], "x.csv")
    assert split.strings == ["CCO", "c1ccccc1"]
    assert [(n, why.split(":")[0]) for n, _, why in split.malformed] == [
        (3, "empty line"), (4, "more than one field or whitespace inside the SMILES"),
        (5, "more than one field or whitespace inside the SMILES"), (6, "cannot tokenise 'C&C'")]
    with pytest.raises(InsertgenError, match="x.csv: the first line should be the header 'SMILES'"):
        moses.parse_lines(["smiles,id\n"], "x.csv")


def test_checked_lines_are_kept_on_disk_and_checked_again_when_the_file_changes(tmp_path, monkeypatch):
    import gzip

    monkeypatch.setenv("INSERTGEN_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "train.csv.gz"
    data.write_bytes(gzip.compress(b"SMILES\nCCO\nCC O\n\nc1ccccc1\n"))
    parsed = []
    real = moses.parse_lines
    monkeypatch.setattr(moses, "parse_lines", lambda lines, source: parsed.append(source) or real(lines, source))
    first = moses._parse_file(data)
    assert first.strings == ["CCO", "c1ccccc1"] and [n for n, _, _ in first.malformed] == [3, 4]
    again = moses._parse_file(data)
    assert (again.strings, again.malformed) == (first.strings, first.malformed) and len(parsed) == 1  # from disk
    data.write_bytes(gzip.compress(b"SMILES\nCCN\n"))  # another size: checked again
    assert moses._parse_file(data).strings == ["CCN"] and len(parsed) == 2
    moses.checked_split_cache(data).write_bytes(b"\xff not a header")  # a damaged cache is rebuilt, not trusted
    assert moses._parse_file(data).strings == ["CCN"] and len(parsed) == 3
    assert moses._parse_file(data).strings == ["CCN"] and len(parsed) == 3
    data.write_bytes(gzip.compress(b"SMILES\nCCN\nCCC\nCCCl\n"))
    assert moses._parse_file(data).strings == ["CCN", "CCC", "CCCl"] and len(parsed) == 4
    cache = moses.checked_split_cache(data)
    cache.write_text(cache.read_text().rsplit("\n", 1)[0])  # a truncated cache: checked again
    assert moses._parse_file(data).strings == ["CCN", "CCC", "CCCl"] and len(parsed) == 5


def test_tokeniser_round_trips_every_accepted_training_molecule():
    strings = moses.read_split("train").strings
    vocab = set(SMILES_TOKENS)
    for s in strings[:50_000]:
        tokens = tokenize(s)
        assert "".join(tokens) == s
        assert set(tokens) <= vocab
    assert tokenize("[C@@H]1(Br)%12.<%10>") == ["[C@@H]", "1", "(", "Br", ")", "%12", ".", "<%10>"]
    with pytest.raises(InsertgenError, match=r"unexpected character '&' at position 2"):
        tokenize("CC&C")


def test_unknown_tokens_are_named():
    task = get_task("smiles", {"train_size": 10})
    with pytest.raises(InsertgenError, match=r"token '\[Se\]' of 'CC\[Se\]C' is not in the smiles vocabulary"):
        task.parse_target([], "CC[Se]C")
    with pytest.raises(InsertgenError, match="unexpected character"):
        task.parse_target([], "CC C&")
    with pytest.raises(InsertgenError, match="unconditional"):
        task.parse_prompt("CCO")
    with pytest.raises(InsertgenError, match="bad option for task 'smiles'"):
        get_task("smiles", {"train_sise": 10})


# ----------------------------------------------------------------------------------------------
# bracket SAFE
# ----------------------------------------------------------------------------------------------


def test_bracket_safe_round_trips_and_survives_fragment_shuffles(test_smiles):
    rng = np.random.default_rng(0)
    encoded = 0
    for s in test_smiles[:150]:
        b = bracket_safe.encode(s)
        if b is None:
            continue
        encoded += 1
        want = Chem.MolToSmiles(Chem.MolFromSmiles(s))
        assert bracket_safe.decode(b) == want
        tokens = tokenize(b)
        assert set(tokens) <= set(SAFE_TOKENS)
        labels = [t for t in tokens if t.startswith("<")]
        assert all(labels.count(t) == 2 for t in labels)  # every attachment joins exactly two fragments
        assert bracket_safe.decode("".join(bracket_safe.shuffle_fragments(tokens, ".", rng))) == want
    assert encoded >= 145


def test_bracket_safe_rewrites_only_bonds_between_fragments():
    # SAFE of aspirin-like molecules reuses ring digits inside fragments and across them
    assert bracket_safe.safe_to_bracket("c13ccccc14.CC2=O.C4(=O)O.O23") == "c1<1>ccccc1<2>.CC<3>=O.C<2>(=O)O.O<3><1>"
    assert bracket_safe.decode("c1<1>ccccc1<2>.CC<3>=O.C<2>(=O)O.O<3><1>") == "CC(=O)Oc1ccccc1C(=O)O"
    assert bracket_safe.decode("CC<1>.C") is None  # a label used once
    assert bracket_safe.decode("C1CC") is None  # an unclosed ring


# ----------------------------------------------------------------------------------------------
# metrics
# ----------------------------------------------------------------------------------------------


def test_sa_score_matches_rdkit_reference_file():
    path = Path(RDConfig.RDContribDir) / "SA_Score" / "data" / "zim.100.txt"
    rows = [line.split("\t") for line in path.read_text().splitlines()[1:] if line.strip()]
    assert len(rows) == 100
    for smiles, _, expected in rows:
        assert abs(metrics.sa_score(Chem.MolFromSmiles(smiles)) - float(expected)) < 1e-3, smiles
    aspirin = Chem.MolFromSmiles("CC(=O)Oc1ccccc1C(=O)O")
    assert metrics.qed(aspirin) == pytest.approx(0.550, abs=1e-3)
    assert metrics.sa_score(aspirin) == pytest.approx(1.58, abs=1e-2)


def test_metrics_match_independent_computations(test_smiles):
    sample = test_smiles[:120]
    samples = sample + sample[:30] + ["C1CC", None, "CC(C"]  # 30 duplicates, 3 invalid
    train = {Chem.MolToSmiles(Chem.MolFromSmiles(s)) for s in sample[:40]}
    got = metrics.molecule_metrics(samples, train)
    n = len(samples)
    mols = [Chem.MolFromSmiles(s) for s in sample]
    good = [metrics.qed(m) >= 0.6 and metrics.sa_score(m) <= 4.0 for m in mols]
    fps = [AllChem.GetMorganFingerprintAsBitVect(m, 2, nBits=2048) for m in mols]
    pairs = [1 - DataStructs.TanimotoSimilarity(a, b) for a, b in itertools.combinations(fps, 2)]
    fps1k = [AllChem.GetMorganFingerprintAsBitVect(m, 2, nBits=1024) for m in mols + mols[:30]]
    full = np.array([[DataStructs.TanimotoSimilarity(a, b) for b in fps1k] for a in fps1k])
    assert got["validity"] == pytest.approx(150 / n)
    assert got["uniqueness"] == pytest.approx(120 / 150)
    assert got["novelty"] == pytest.approx(80 / 120)
    assert got["quality_all"] == pytest.approx((sum(good) + sum(good[:30])) / n)
    assert got["quality_unique"] == pytest.approx(sum(good) / n)
    assert got["diversity"] == pytest.approx(np.mean(pairs), abs=1e-9)
    assert got["intdiv1"] == pytest.approx(1 - full.mean(), abs=1e-9)
    assert got["intdiv2"] == pytest.approx(1 - math.sqrt((full ** 2).mean()), abs=1e-9)
    all_valid = metrics.molecule_metrics(sample, set())
    assert all_valid["validity"] == 1.0 and all_valid["uniqueness"] == 1.0 and all_valid["novelty"] == 1.0


def test_kl_score_is_high_for_the_same_distribution_and_low_for_another(test_smiles):
    reference = metrics.reference_stats(test_smiles[:150])
    same = [metrics.to_mol(s) for s in test_smiles[150:300]]
    small = [metrics.to_mol(s) for s in ("CCO", "CCN", "CCC", "CC(C)O", "c1ccccc1", "CCCl", "CC=O", "OCCO")]
    high, low = metrics.kl_score(reference, same), metrics.kl_score(reference, small)
    assert high > 0.8 and low < 0.3, (high, low)


def test_fcd_of_a_set_against_itself_is_zero_and_grows_for_another_distribution():
    strings = moses.subsample(moses.read_split("test").strings, 1000, 2)
    from fcd_torch import FCD

    model = FCD(device="cpu", n_jobs=1)
    sample = strings[:1000]
    own = model.precalc(sample)
    assert model.metric(own, own) == pytest.approx(0.0, abs=1e-3)
    reference = moses.test_stats_fcd()  # the MOSES test statistics (176k molecules)
    random_draw = metrics.fcd(sample, reference)
    chains = [f"{'C' * a}N{'C' * b}O" for a in range(1, 33) for b in range(1, 33)][:1000]  # not drug-like at all
    far = metrics.fcd(chains, reference)
    # at n = 1,000 a draw of the reference distribution still scores a few units (small-sample bias)
    assert 0.0 < random_draw < 8.0 and far > 5 * random_draw, (random_draw, far)


# ----------------------------------------------------------------------------------------------
# the tasks and the CLI
# ----------------------------------------------------------------------------------------------


def test_safe_task_examples_and_augmentation():
    task = get_task("safe", {"train_size": 300, "test_size": 50})
    train = task.examples("train")
    assert len(train) + sum(task.skipped["train"].values()) == 300
    assert len(task.examples("validation")) + sum(task.skipped["validation"].values()) == 1000
    import torch

    from insertgen.core.data import collate

    batch = collate(train[:16], task.vocab, task.target_block + 2).tokens
    a, b = task.augment(batch, (0, 5)), task.augment(batch, (0, 5))
    assert torch.equal(a, b) and not torch.equal(a, batch)  # deterministic in (seed, step), and it moves fragments
    for row, ex in zip(a.tolist(), train[:16]):
        inner = row[1:1 + len(ex.target)]
        assert sorted(inner) == sorted(ex.target)
        assert task.to_smiles(inner) == task.to_smiles(ex.target) is not None
    assert get_task("smiles", {"train_size": 10}).augment(batch, (0, 5)) is batch


def test_renumbered_attachments_count_up_along_every_shuffled_string():
    def labels(toks):
        return [int(t[1:-1]) for t in toks if t.startswith("<")]

    def first_appearance(seq):
        return list(dict.fromkeys(seq))

    label_of = {f"<{k}>": k for k in range(1, 10)}
    token_of = {k: t for t, k in label_of.items()}
    tokens = tokenize("c1<2>ccccc1.C<1>C<2>=O.N<1>C")
    out = bracket_safe.renumber_attachments(tokens, label_of, token_of)
    assert "".join(out) == "c1<1>ccccc1.C<2>C<1>=O.N<2>C"
    assert bracket_safe.decode("".join(out)) == bracket_safe.decode("".join(tokens)) is not None

    task = get_task("safe", {"train_size": 300, "test_size": 50, "renumber_attachments": True})
    plain = get_task("safe", {"train_size": 300, "test_size": 50})
    from insertgen.core.data import collate

    train = task.examples("train")
    batch = collate(train[:32], task.vocab, task.target_block + 2).tokens
    renumbered, shuffled = task.augment(batch, (0, 5)), plain.augment(batch, (0, 5))
    counted_up = 0
    for row, other, ex in zip(renumbered.tolist(), shuffled.tolist(), train[:32]):
        inner, moved = row[1:1 + len(ex.target)], other[1:1 + len(ex.target)]
        seq = labels(task.vocab.tokens[i] for i in inner)
        assert first_appearance(seq) == list(range(1, len(set(seq)) + 1))  # 1, 2, ... in order of first use
        assert [t.startswith("<") for t in map(task.vocab.tokens.__getitem__, inner)] == \
            [t.startswith("<") for t in map(task.vocab.tokens.__getitem__, moved)]  # the same shuffle
        assert task.to_smiles(inner) == task.to_smiles(ex.target) is not None
        counted_up += first_appearance(labels(plain.vocab.tokens[i] for i in moved)) != first_appearance(seq)
    assert counted_up > 0  # without renumbering, some shuffled strings do not count up
    assert task.config()["renumber_attachments"] is True
    with pytest.raises(InsertgenError, match="bracket SAFE only"):
        get_task("smiles", {"renumber_attachments": True})


def test_smiles_train_sample_eval(tmp_path, capsys):
    run = tmp_path / "run"
    assert call_main(["train", "--task", "smiles", "--model", "arm", "--steps", "2", "--out", run,
                      "--set", "task.train_size=500", "--set", "task.test_size=50", "--set",
                      "task.novelty_reference=train", "--set", "task.kl_reference_size=200", "--set", "d_model=16",
                      "--set", "n_layers=1", "--set", "n_heads=2", "--set", "batch_size=4", "--set", "eval_every=0",
                      "--quiet"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["task_options"]["train_size"] == 500 and config["task_config"]["vocabulary"][4:] == list(SMILES_TOKENS)
    assert call_main(["sample", "--run", run, "-n", "4", "--output", tmp_path / "s.jsonl"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(set(r) == {"output", "smiles"} for r in rows)
    capsys.readouterr()
    assert call_main(["eval", "--run", run, "--limit", "20", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n"] == 20
    assert set(result) >= {"validity", "uniqueness", "novelty", "quality_all", "quality_unique", "diversity",
                           "intdiv1", "intdiv2", "kl_score", "fcd", "fcd_score", "fcd_n", "sample_length"}
    assert (run / "eval-test.png").stat().st_size > 10_000
    assert json.loads((run / "eval-test.json").read_text())["sampler"]["top_k"] is None  # sampled, not greedy
    assert os.environ["INSERTGEN_CACHE"].endswith("insertgen-cache")


def test_generation_order_by_token_class():
    from insertgen.engine.analysis import class_order_statistics

    task = get_task("smiles", {"train_size": 10})
    ids = task.parse_target([], "c1ccccc1C(=O)O")
    canvas = [task.vocab.bos_id, *ids, task.vocab.eos_id]
    # a "scaffold first" trajectory: ring digits at step 0, branches at 1, everything else later in order
    classes = [task.token_class(task.vocab.tokens[i]) for i in ids]
    um = [0] + [0 if c == "ring" else 1 if c == "branch" else 2 + k for k, c in enumerate(classes)] + [0]
    record = {"canvas": canvas, "insert_step": [0] * len(canvas), "unmask_step": um}
    stats = class_order_statistics(task, [ids], [record])["classes"]
    assert set(stats) == {"ring", "branch", "atom", "bond"}
    assert stats["ring"]["unmask"] == 0.0 and stats["ring"]["tokens"] == 2
    assert stats["ring"]["unmask"] < stats["branch"]["unmask"] < stats["atom"]["unmask"]
    assert stats["atom"]["insert"] == 0.5  # all inserted at once: no order
    assert class_order_statistics(get_task("star-easy"), [ids], [record]) is None


@pytest.mark.parametrize("model", ["flexmdm", "loflexmdm", "ip", "ao-ip", "mdm"])
def test_every_model_trains_and_samples_safe(model, tmp_path):
    import torch

    from insertgen.engine.run import load_run
    from insertgen.engine.evaluate import evaluate_model
    from insertgen.engine.training_run import prepare_run
    from insertgen.models.flexmdm.sampler import TauLeapingOptions

    out, trainer = prepare_run("safe", model, None, 2, tmp_path / "run", 0,
                               {"task.train_size": 200, "task.test_size": 20, "task.novelty_reference": "train",
                                "task.kl_reference_size": 100, "d_model": 16, "n_layers": 1, "n_heads": 2,
                                "batch_size": 4, "eval_every": 0}, resume=False)
    trainer.train(progress=False)
    run = load_run(out)
    assert run.task.name == "safe" and run.task.train_size == 200  # task options survive the round trip
    with torch.inference_mode():
        result, pairs = evaluate_model(run, run.task, run.task.examples("test")[:6], TauLeapingOptions(steps=8), seed=0)
    assert result["n"] == 6 and 0.0 <= result["validity"] <= 1.0
    if any(len(o) > 1 for o, _ in pairs):  # an untrained IP may stop at once: then there is no order to report
        assert any(k.startswith("order_step_") for k in result)
    assert all(len(o) <= run.task.target_block for o, _ in pairs)


def test_a_smiles_ip_run_samples_at_its_presets_temperature(tmp_path, capsys):
    """The smiles CPU presets of IP and AO-IP write sampler_defaults (temperature 0.5) into the run, so
    `eval` draws at 0.5 unless --temperature says otherwise; the ARM's preset keeps temperature 1."""
    from insertgen.engine.training_run import prepare_run

    small = {"task.train_size": 200, "task.test_size": 20, "task.novelty_reference": "train",
             "task.kl_reference_size": 100, "d_model": 16, "n_layers": 1, "n_heads": 2, "batch_size": 4, "eval_every": 0}
    for model in ("ip", "arm"):
        out, trainer = prepare_run("smiles", model, None, 1, tmp_path / model, 0, small, resume=False)
        trainer.train(progress=False)
    assert json.loads((tmp_path / "ip" / "config.json").read_text())["sampler_defaults"] == {"temperature": 0.5}
    assert "sampler_defaults" not in json.loads((tmp_path / "arm" / "config.json").read_text())
    capsys.readouterr()
    for flags, expected in (([], 0.5), (["--temperature", "0.9"], 0.9)):
        assert call_main(["eval", "--run", tmp_path / "ip", "--limit", "4", "--json", *flags]) == 0
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["sampler"]["temperature"] == expected


def test_evaluating_a_de_novo_task_never_reads_the_training_molecules(monkeypatch):
    """The test and validation splits come from MOSES's test file alone: `eval` and the demo of smiles / safe do
    not read (and tokenise) the 1.6M training molecules; a training run's config still counts all three splits."""
    read = []
    real = moses.read_split

    def spy(split):
        read.append(split)
        return real(split)

    monkeypatch.setattr(moses, "read_split", spy)
    task = get_task("smiles", {"train_size": 200, "test_size": 50})
    test = task.examples("test")
    assert len(test) + sum(task.skipped["test"].values()) == 50 and read == ["test"]
    assert task.examples("validation") and read == ["test"] and "train" not in task.skipped  # one read for both
    assert set(task.config()["skipped"]) == {"malformed_lines", "train", "validation", "test"}
    assert "train" in read and len(task.examples("train")) + sum(task.skipped["train"].values()) == 200
