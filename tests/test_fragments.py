"""Tests of fragment-constrained generation (issue 8; docs/methods/tasks.md#fragment-constrained-molecules):
the prompt builders, the FragmentEval metrics, the shipped benchmark, how every model conditions on a prompt
that is the start of its target, and the CLI."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("rdkit")
pytest.importorskip("safe")

from rdkit import Chem, DataStructs  # noqa: E402
from rdkit.Chem import AllChem  # noqa: E402

from conftest import call_main  # noqa: E402
from insertgen.core.data import collate  # noqa: E402
from insertgen.core.generation import Requests  # noqa: E402
from insertgen.core.errors import InsertgenError  # noqa: E402
from insertgen.models.flexmdm.sampler import TauLeapingOptions, tau_leaping_sample  # noqa: E402
from insertgen.models.registry import build_model, task_defaults  # noqa: E402
from insertgen.models.schedules import LinearSchedule  # noqa: E402
from insertgen.tasks import get_task  # noqa: E402
from insertgen.tasks.base import Example  # noqa: E402
from insertgen.tasks.molecules import bracket_safe, fragment_metrics, fragments, metrics, moses  # noqa: E402
from insertgen.tasks.molecules.fragment_task import BENCHMARK_FILE, build_benchmark_file  # noqa: E402
from insertgen.tasks.molecules.fragments import FRAGMENT_TASKS, FragmentQuery  # noqa: E402

metrics.quiet_rdkit()


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("INSERTGEN_CACHE", str(tmp_path_factory.getbasetemp() / "insertgen-cache"))


@pytest.fixture(scope="module")
def test_smiles() -> list[str]:
    """200 MOSES test molecules (a fixed draw)."""
    return moses.subsample(moses.read_split("test").strings, 200, 3)


@pytest.fixture(scope="module")
def task():
    return get_task("fragment-all", {"train_size": 300, "samples_per_prompt": 2, "prompts": 2})


# ----------------------------------------------------------------------------------- builders


@pytest.mark.parametrize("which", FRAGMENT_TASKS)
def test_prompts_are_substructures_of_their_source(which, test_smiles):
    built = 0
    for i, s in enumerate(test_smiles):
        p = fragments.build_prompt(s, which, 0, i)
        if p is None:
            continue
        built += 1
        source = Chem.MolFromSmiles(p.source)
        assert p.source == Chem.MolToSmiles(Chem.MolFromSmiles(s))
        assert p.target.startswith(p.prompt + ".")  # the prompt is the first tokens of the target
        assert bracket_safe.decode(p.target) == p.source  # the target is the source molecule
        pattern = Chem.MolFromSmarts(fragments.query_smarts(p.prompt)[0])
        assert source.HasSubstructMatch(pattern)  # the fragment without its attachments
        assert FragmentQuery.of(p.prompt, which).matches(source)  # ... and with them
        # the completion (the generated part) is not empty and the prompt is a proper part
        prompt_atoms = Chem.MolFromSmarts(fragments.query_smarts(p.prompt)[0]).GetNumAtoms()
        assert 0 < prompt_atoms < source.GetNumAtoms()
    assert built >= 100  # most MOSES molecules qualify for every task


def test_builders_cut_what_their_task_says():
    # linker: two ring-bearing ends, an acyclic linker of one atom between them (both attachments on it)
    p = fragments.build_prompt("CC1CCCC(C)N1C(=O)c1cc(Cl)ccn1", "linker", 0, 0)
    assert Chem.MolFromSmarts(fragments.query_smarts(p.prompt)[0]).GetNumAtoms() == 15  # all 17 atoms but the C=O linker
    assert p.target.endswith(".C<1><2>=O")
    # scaffold: the Bemis-Murcko scaffold with one attachment per side chain
    p = fragments.build_prompt("CCOc1ccc(CC(=O)Nc2ccccc2)cc1", "scaffold", 0, 0)
    scaffold, attachments = fragments.query_smarts(p.prompt)
    assert sum(attachments.values()) == 1  # one side chain: the ethoxy
    mol = Chem.MolFromSmiles("CCOc1ccc(CC(=O)Nc2ccccc2)cc1")
    assert len(fragments.murcko_atoms(mol)) == mol.GetNumAtoms() - 3  # O, C, C of the ethoxy removed
    # superstructure needs two ring systems; motif cuts one bridge
    assert fragments.build_prompt("c1ccccc1CCO", "superstructure", 0, 0) is None
    p = fragments.build_prompt("c1ccccc1CCO", "motif", 0, 0)
    assert sum(fragments.query_smarts(p.prompt)[1].values()) == 1


def test_build_is_deterministic_and_seeded(test_smiles):
    a = [fragments.build_prompt(s, "motif", 5, i) for i, s in enumerate(test_smiles[:40])]
    b = [fragments.build_prompt(s, "motif", 5, i) for i, s in enumerate(test_smiles[:40])]
    c = [fragments.build_prompt(s, "motif", 6, i) for i, s in enumerate(test_smiles[:40])]
    assert a == b and a != c


def test_benchmark_file_is_reproducible_byte_for_byte():
    shipped = BENCHMARK_FILE.read_text(encoding="utf-8")
    assert build_benchmark_file() == shipped
    records = [json.loads(line) for line in shipped.splitlines()]
    assert [r["task"] for r in records] == [t for t in FRAGMENT_TASKS for _ in range(100)]
    sources = {r["source"] for r in records}
    train = {metrics.canonical(s) for s in moses.subsample(moses.read_split("train").strings, 20_000, 0)}
    assert not sources & train  # prompts come from held-out (test) molecules


def test_benchmark_command_writes_and_checks(tmp_path, capsys):
    out = tmp_path / "prompts.jsonl"
    assert call_main(["fragment-prompts", "--out", out]) == 0
    assert out.read_bytes() == BENCHMARK_FILE.read_bytes()
    assert call_main(["fragment-prompts", "--out", out, "--check"]) == 0
    out.write_text(out.read_text()[:-2] + "\n")
    assert call_main(["fragment-prompts", "--out", out, "--check"]) != 0
    assert "differs from the rebuilt benchmark" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- metrics


def _first_prompt(which: str):
    return next(p for p in fragments.read_jsonl(BENCHMARK_FILE) if p.task == which)


@pytest.mark.parametrize("which", FRAGMENT_TASKS)
def test_source_molecule_is_valid_with_distance_zero(which):
    p = _first_prompt(which)
    out = fragment_metrics.group_metrics([p.source] * 4, FragmentQuery.of(p.prompt, which), p.source)
    assert out["validity"] == 1.0 and out["uniqueness"] == 0.25 and out["distance"] == 0.0
    assert out["diversity"] != out["diversity"]  # one distinct molecule: undefined (nan)


def test_molecule_lacking_the_fragment_is_invalid():
    p = _first_prompt("scaffold")
    query = FragmentQuery.of(p.prompt, "scaffold")
    assert fragment_metrics.valid_molecule("CCO", query) is None
    assert fragment_metrics.valid_molecule(p.source + ".CCO", query) is None  # two molecules
    assert fragment_metrics.valid_molecule("not a smiles", query) is None
    # a ring without the substituent its attachment point asks for
    ring = FragmentQuery.of("c1ccc<1>cc1", "scaffold")
    assert fragment_metrics.valid_molecule("c1ccccc1", ring) is None
    assert fragment_metrics.valid_molecule("Cc1ccccc1", ring) is not None
    assert fragment_metrics.valid_molecule("Cc1ccncc1", ring) is None  # pyridine is not the fragment
    # ... which superstructure generation does not require
    assert fragment_metrics.valid_molecule("c1ccccc1", FragmentQuery.of("c1ccc<1>cc1", "superstructure")) is not None
    # two attachments on the same ring atom need two substituents there
    gem = FragmentQuery.of("C1CCC<1><2>CC1", "motif")
    assert fragment_metrics.valid_molecule("CC1(C)CCCCC1", gem) is not None
    assert fragment_metrics.valid_molecule("CC1CCC(C)CC1", gem) is None


def test_group_metrics_match_independent_computation():
    p = _first_prompt("motif")
    others = ["CCO", p.source, p.source]
    source = Chem.MolFromSmiles(p.source)
    # a second valid molecule: the source with one more methyl on a carbon bearing hydrogens
    for atom in source.GetAtoms():
        if atom.GetTotalNumHs() and atom.GetSymbol() == "C" and not atom.GetIsAromatic():
            edit = Chem.RWMol(source)
            new = edit.AddAtom(Chem.Atom(6))
            edit.AddBond(atom.GetIdx(), new, Chem.BondType.SINGLE)
            variant = Chem.MolToSmiles(edit)
            if FragmentQuery.of(p.prompt, "motif").matches(Chem.MolFromSmiles(variant)):
                break
    samples = others + [variant, None]
    out = fragment_metrics.group_metrics(samples, FragmentQuery.of(p.prompt, "motif"), p.source)
    assert out["validity"] == 3 / 5 and out["uniqueness"] == 2 / 3
    fp = lambda s: AllChem.GetMorganFingerprintAsBitVect(Chem.MolFromSmiles(s), 2, nBits=1024)  # noqa: E731
    expected = (0.0 + 1 - DataStructs.TanimotoSimilarity(fp(p.source), fp(variant))) / 2
    assert out["distance"] == pytest.approx(expected)
    avg = fragment_metrics.average_groups([out, {**out, "validity": 0.0, "distance": float("nan")}])
    assert avg["validity"] == pytest.approx(0.3) and avg["distance"] == pytest.approx(expected)
    assert avg["distance_groups"] == 1 and avg["prompts"] == 2


def test_task_evaluate_groups_prompts_and_reports_each_task(task):
    test = task.examples("test")
    assert len(test) == 4 * 2 * 2 and test[0] == test[1] != test[2]  # prompts x samples, contiguous
    outputs = [list(ex.target) for ex in test]  # the source molecules themselves
    result = task.evaluate(test, outputs)
    for which in FRAGMENT_TASKS:
        assert result[f"{which}/validity"] == 1.0 and result[f"{which}/distance"] == 0.0
        assert result[f"{which}/prompts"] == 2
    assert result["validity"] == 1.0 and result["uniqueness"] == 0.5
    bad = [list(ex.prompt) for ex in test]  # the fragment alone: open attachments, not a molecule
    assert task.evaluate(test, bad)["validity"] == 0.0


def test_training_split_mixes_fragment_and_de_novo_examples(task):
    train = task.examples("train")
    counts = task.skipped["train_examples_by_task"]
    assert sum(counts.values()) == len(train) and counts["denovo"] > 0 and all(counts[t] > 0 for t in FRAGMENT_TASKS)
    for ex in train:
        assert ex.target[: len(ex.prompt)] == ex.prompt
        assert bracket_safe.decode(task.format(ex.target)) is not None
    held_out = {p.source for p in fragments.read_jsonl(BENCHMARK_FILE)}
    assert not {bracket_safe.decode(task.format(ex.target)) for ex in train} & held_out


def test_augmentation_keeps_the_prompt_and_the_molecule(task):
    train = [ex for ex in task.examples("train") if ex.prompt][:16]
    batch = collate(train, task.vocab, task.buffer_len, prompt_in_target=True)
    shuffled = task.augment(batch.tokens, (0, 3), batch.fixed)
    assert not torch.equal(shuffled, batch.tokens)
    assert torch.equal(shuffled[batch.fixed], batch.tokens[batch.fixed])  # fixed tokens never move
    for row, ex in zip(shuffled.tolist(), train):
        end = row.index(task.vocab.eos_id)
        assert bracket_safe.decode(task.format(row[1:end])) == bracket_safe.decode(task.format(ex.target))


def test_parse_prompt_renumbers_and_refuses_bad_fragments(task):
    assert task.format(task.parse_prompt("c1ccc<3>cc1.C<3>C<7>")) == "c1ccc<1>cc1.C<1>C<2>"
    assert task.format(task.parse_prompt("*c1ccccc1")) == "c1<1>ccccc1"
    assert task.format(task.parse_prompt("[*:2]c1ccccc1.[1*]C1CCNCC1")) == "C1<1>CCNCC1.c1<2>ccccc1"
    ids = task.parse_prompt("O=C(c1ccccc1)N1CCC(*)CC1")  # BRICS-cut like the training prompts
    assert task.format(ids) == "N1<1>CCC<2>CC1.c1<3>ccccc1.O=C<1><3>"
    assert FragmentQuery.of(task.format(ids), "motif").matches(Chem.MolFromSmiles("O=C(c1ccccc1)N1CCC(C)CC1"))
    for text, message in (("", "needs a fragment"), ("C(*)(*)C=*", "must be a dummy atom with one single bond"),
                          ("*1CC1", "must be a dummy atom"), ("c1cc*", "cannot read"),
                          ("c1ccc[Se]cc1<1>", "not in the fragment-all vocabulary"),
                          ("C<1>C<1>C<1>", "occurs 3 times"), ("<1>CC", "starts with an attachment")):
        with pytest.raises(InsertgenError, match=message):
            task.parse_prompt(text)


# ----------------------------------------------------------------------------------- conditioning


def test_collate_and_canvas_put_the_prompt_inside_the_target(task):
    ex = next(ex for ex in task.examples("train") if ex.prompt)
    batch = collate([ex], task.vocab, prompt_in_target=True)
    row, fixed = batch.tokens[0].tolist(), batch.fixed[0].tolist()
    assert row == [task.vocab.bos_id] + list(ex.target) + [task.vocab.eos_id]
    assert fixed == [True] * (len(ex.prompt) + 1) + [False] * (len(ex.target) - len(ex.prompt)) + [True]
    tokens, canvas_fixed = Requests.of([list(ex.prompt)], task.vocab, 90, prompt_in_target=True).canvas(90)
    assert tokens[0, : len(ex.prompt) + 2].tolist() == [task.vocab.bos_id, *ex.prompt, task.vocab.eos_id]
    assert canvas_fixed[0].sum() == len(ex.prompt) + 1
    with pytest.raises(ValueError, match="does not begin with its prompt"):
        collate([Example(ex.prompt, ex.target[1:])], task.vocab, prompt_in_target=True)


def test_sampler_inserts_around_and_between_fixed_prompt_tokens():
    """A predictor that wants one token in every gap: with the prompt in the canvas (open_from = 1) masks
    go before, between and after the prompt tokens, which keep their order; with the prompt as a prefix
    (open_from = prompt + BOS) nothing lands inside it."""
    from insertgen.core.vocab import Vocab

    vocab = Vocab([str(i) for i in range(6)])
    prompt = [4, 5, 6]
    V = len(vocab)

    def predict(tokens, t):
        logits = torch.full((*tokens.shape, V), -1e9)
        logits[..., 9] = 0.0  # always write token "5"
        g = torch.full(tokens.shape, 2.0)
        return logits, g, None

    for in_target in (True, False):
        tokens, fixed = Requests.of([prompt], vocab, 24, prompt_in_target=in_target).canvas(24)
        open_from = torch.tensor([1 if in_target else len(prompt) + 1])
        out = tau_leaping_sample(predict, LinearSchedule().integrated_hazard, tokens, fixed,
                                 [vocab.pad_id, vocab.mask_id, vocab.bos_id, vocab.eos_id], vocab.pad_id,
                                 vocab.mask_id, TauLeapingOptions(steps=8), torch.Generator().manual_seed(0),
                                 open_from=open_from).tokens[0]
        kept = [k for k, tok in enumerate(out) if tok in prompt]
        assert [out[k] for k in kept] == prompt
        if in_target:
            assert kept[0] > 1 and kept[-1] - kept[0] > len(prompt) - 1  # before and between
        else:
            assert kept == [0, 1, 2] and out[3] == vocab.bos_id


MODELS = ("flexmdm", "loflexmdm", "ip", "ao-ip", "arm", "mdm")


def _tiny(model_id: str, task):
    cfg = {"d_model": 32, "n_layers": 1, "n_heads": 2, **task_defaults(model_id, task)}
    if model_id == "loflexmdm":
        cfg.update(aux_d_model=32, aux_n_layers=1, aux_n_heads=2)
    if model_id == "ip":
        cfg.update(posterior_d_model=32, posterior_n_layers=1, posterior_n_heads=2)
    torch.manual_seed(0)
    return build_model(model_id, task.vocab, cfg)


def _subsequence(a, b) -> bool:
    it = iter(b)
    return all(x in it for x in a)


@pytest.mark.parametrize("model_id", MODELS)
def test_every_model_trains_and_keeps_the_prompt(model_id, task):
    model = _tiny(model_id, task)
    train = task.examples("train")[:8]
    loss, _ = model.loss(collate(train, task.vocab, task.buffer_len, prompt_in_target=True),
                         torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)
    loss.backward()
    prompts = [list(ex.prompt) for ex in task.examples("validation")[:6]]
    model.eval()
    outputs, result = model.sample(prompts, TauLeapingOptions(steps=8), torch.Generator().manual_seed(1),
                                   return_trajectory=True, prompt_in_target=True)
    for p, out, row, step in zip(prompts, outputs, result.tokens, result.unmask_step):
        if model_id in ("arm", "mdm"):
            assert out[: len(p)] == p  # the forced start of the sequence
        else:
            assert _subsequence(p, out)  # insertion models may write around and between its tokens
        assert len(row) == len(step) and row[0] == task.vocab.bos_id


def test_ip_given_tokens_act_as_tokens_inserted_before_step_zero():
    """The IP objective with prompt tokens given on the canvas equals the objective in which the same
    tokens are marked as already inserted: they shift the slots of later insertions, nothing else."""
    from insertgen.models.ip.objective import step_value
    from insertgen.models.ip.policy import PolicyTables

    torch.manual_seed(0)
    B, L, V = 3, 9, 7
    tokens = torch.randint(4, V, (B, L))
    tokens[:, 0], tokens[:, -1] = 2, 3  # BOS ... EOS
    given = torch.zeros(B, L, dtype=torch.bool)
    given[:, 1:3] = True
    candidates = torch.zeros(B, L, dtype=torch.bool)
    candidates[:, 3:-1] = True
    inserted = torch.zeros(B, L, dtype=torch.bool)
    inserted[:, 5] = True
    tables = PolicyTables(location=torch.log_softmax(torch.randn(B, L), -1), term=torch.randn(B).log_softmax(0),
                          token=torch.log_softmax(torch.randn(B, L, V), -1), bos=torch.zeros(B, dtype=torch.long),
                          n=torch.full((B,), 3))
    scores = torch.randn(B, L)
    terminal = torch.zeros(B, dtype=torch.bool)
    with_given, _ = step_value(tables, tokens, inserted, candidates, scores, terminal, given)
    as_inserted, _ = step_value(tables, tokens, inserted | given, candidates | given, scores, terminal)
    without, _ = step_value(tables, tokens, inserted, candidates, scores, terminal)
    assert torch.allclose(with_given, as_inserted)
    assert not torch.allclose(with_given, without)  # the given tokens do move the slots


def test_mdm_never_masks_the_prompt(task):
    model = _tiny("mdm", task)
    ex = next(ex for ex in task.examples("train") if ex.prompt)
    canvas, real, slot = model._canvas_from_batch(collate([ex], task.vocab, task.buffer_len, prompt_in_target=True))
    assert canvas[0, 1 : 1 + len(ex.target)].tolist() == list(ex.target)
    assert not slot[0, 1 : 1 + len(ex.prompt)].any() and slot[0, 1 + len(ex.prompt) :].all()


# ----------------------------------------------------------------------------------- CLI


def test_cli_train_eval_sample_on_a_fragment_task(tmp_path, capsys):
    run = tmp_path / "run"
    assert call_main(["train", "--task", "fragment-linker", "--model", "arm", "--steps", "2", "--out", run,
                      "--set", "task.train_size=300", "--set", "task.samples_per_prompt=3", "--set", "task.prompts=2",
                      "--set", "model.d_model=32", "--set", "model.n_layers=1", "--set", "model.n_heads=2",
                      "--quiet"]) == 0
    assert call_main(["eval", "--run", run, "--json"]) == 0
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(json.dumps({"prompt": p}) for p in ("c1ccc<1>cc1.c1ccncc1<2>", "c1ccc[Se]cc1<1>",
                                                                      "*c1ccccc1")) + "\n")
    assert call_main(["sample", "--run", run, "--input", prompts, "--output", tmp_path / "s.jsonl"]) != 0
    assert ":2" in capsys.readouterr().err and not (tmp_path / "s.jsonl").exists()
    assert call_main(["sample", "--run", run, "--input", prompts, "--output", tmp_path / "s.jsonl",
                      "--skip-bad-lines"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rows] == [1, 3] and rows[0]["output"].startswith("c1ccc<1>cc1.c1ccncc1<2>")
    assert rows[1]["output"].startswith("c1<1>ccccc1") and "smiles" in rows[1]
    texts = tmp_path / "texts.jsonl"
    texts.write_text(json.dumps({"prompt": "c1ccc<1>cc1", "text": "c1ccc<1>cc1.C<1>"}) + "\n")
    assert call_main(["score", "--run", run, "--input", texts]) != 0
    assert "does not support task fragment-linker" in capsys.readouterr().err


def test_fine_tuning_a_de_novo_safe_run_on_a_fragment_task(tmp_path):
    """init_from accepts a run of another task with the same vocabulary (safe -> fragment-*)."""
    from insertgen.engine.run import load_run
    from insertgen.engine.training_run import prepare_run

    small = {"d_model": 32, "n_layers": 1, "n_heads": 2, "eval_every": 0}
    source_dir = tmp_path / "denovo"
    assert call_main(["train", "--task", "safe", "--model", "arm", "--steps", "1", "--out", source_dir, "--quiet",
                      "--set", "task.train_size=200", "--set", "task.test_size=20",
                      *[x for k, v in small.items() for x in ("--set", f"{k}={v}")]]) == 0
    _, trainer = prepare_run("fragment-motif", "arm", None, 1, tmp_path / "tuned", 0,
                             {**small, "init_from": str(source_dir), "task.train_size": 200}, resume=False)
    source = load_run(source_dir).state_dict()
    assert all(torch.equal(trainer.model.state_dict()[k], v) for k, v in source.items())
    star = tmp_path / "star"
    assert call_main(["train", "--task", "star-easy", "--model", "arm", "--steps", "1", "--out", star, "--quiet",
                      *[x for k, v in small.items() for x in ("--set", f"{k}={v}")]]) == 0
    with pytest.raises(InsertgenError, match="whose vocabulary is not that of 'fragment-motif'"):
        prepare_run("fragment-motif", "arm", None, 1, tmp_path / "x", 0, {**small, "init_from": str(star)},
                    resume=False)


def test_a_smiles_run_warm_starts_a_fragment_task_by_token_name(tmp_path):
    """init_map_tokens: a de novo SMILES IP seeds a bracket-SAFE fragment task; every tensor indexed by token
    takes the SMILES row of each token both vocabularies have, the SAFE-only tokens (attachments, the
    fragment separator) keep their fresh rows, and everything else is copied whole. Without the option the
    other vocabulary is refused, naming it."""
    from insertgen.engine.training_run import prepare_run

    small = {"d_model": 32, "n_layers": 1, "n_heads": 2, "posterior_d_model": 16, "posterior_n_layers": 1,
             "posterior_n_heads": 2, "eval_every": 0, "task.train_size": 200, "token_shift": True}
    source_dir = tmp_path / "smiles"
    _, trainer = prepare_run("smiles", "ip", None, 1, source_dir, 0, {**small, "task.test_size": 20}, resume=False)
    trainer.train(progress=False)
    source = trainer.model
    with pytest.raises(InsertgenError, match="set init_map_tokens=true"):
        prepare_run("fragment-linker", "ip", None, 1, tmp_path / "x", 0, {**small, "init_from": str(source_dir)},
                    resume=False)
    _, warm = prepare_run("fragment-linker", "ip", None, 1, tmp_path / "warm", 0,
                          {**small, "init_from": str(source_dir), "init_map_tokens": True}, resume=False)
    _, cold = prepare_run("fragment-linker", "ip", None, 1, tmp_path / "cold", 0, small, resume=False)
    src_tokens, dst_tokens = list(source.vocab.tokens), list(warm.model.vocab.tokens)
    weights = load_run_weights(source_dir)
    mine, fresh = warm.model.state_dict(), cold.model.state_dict()
    indexed = [k for k, v in weights.items() if v.dim() and v.shape[0] in (len(src_tokens), len(src_tokens) + 1)]
    assert len(src_tokens) != len(dst_tokens) and any(k.endswith("previous.weight") for k in indexed)
    for name in indexed:
        for j, token in enumerate(dst_tokens):
            expected = weights[name][src_tokens.index(token)] if token in src_tokens else fresh[name][j]
            assert torch.equal(mine[name][j], expected), (name, token)
        if weights[name].shape[0] > len(src_tokens):  # token_shift's "no previous token" row, after the vocabulary
            assert torch.equal(mine[name][len(dst_tokens)], weights[name][len(src_tokens)]), name
    assert any(t not in src_tokens for t in dst_tokens)  # SAFE-only tokens exist and kept their fresh rows
    for name, value in weights.items():
        if name not in indexed:
            assert torch.equal(mine[name], value), name


def load_run_weights(run_dir):
    """The weights a warm start copies from ``run_dir`` (its EMA weights where it has them)."""
    from insertgen.core.checkpoint import CHECKPOINT, load_checkpoint, split_prefix

    tensors, _ = load_checkpoint(run_dir / CHECKPOINT)
    return {**split_prefix(tensors, "model"), **split_prefix(tensors, "ema")}


def test_every_benchmark_prompt_is_its_own_group_even_when_two_tasks_cut_it_alike():
    """Motif extension and superstructure generation can cut the same molecule identically; the groups
    keep them apart, so every task scores exactly its 100 prompts."""
    task = get_task("fragment-all", {"train_size": 300, "samples_per_prompt": 1})
    test = task.examples("test")
    pairs = [(ex.prompt, ex.target) for ex in test]
    assert len(set(pairs)) < len(pairs)  # the collision this test is about does occur
    result = task.evaluate(test, [list(ex.target) for ex in test])
    assert [result[f"{t}/prompts"] for t in FRAGMENT_TASKS] == [100] * 4
    assert all(result[f"{t}/validity"] == 1.0 for t in FRAGMENT_TASKS)


def test_order_statistics_leave_out_the_given_prompt_tokens(task):
    """Generation-order statistics count generated tokens only: prompt tokens on the canvas (step -1)
    would otherwise read as 'generated first'."""
    from insertgen.engine.analysis import class_order_statistics

    v = task.vocab
    out = v.encode(["c", "<1>", ".", "C", "<1>"])  # prompt "c<1>", then ".C<1>" generated at steps 3, 1, 2
    record = {"canvas": [v.bos_id, *out, v.eos_id], "insert_step": [-1, -1, -1, 0, 0, 0, -1],
              "unmask_step": [-1, -1, -1, 3, 1, 2, -1]}
    stats = class_order_statistics(task, [out], [record])["classes"]
    assert stats["fragment"]["unmask"] == 1.0 and stats["atom"]["unmask"] == 0.0
    assert stats["attachment"] == {"unmask": 0.5, "insert": 0.5, "tokens": 1}


def test_evaluating_a_fragment_task_never_builds_its_training_prompts(monkeypatch):
    """The test split is the shipped benchmark and is built alone: the demo and `eval` of a fragment task do not
    pay the minutes of cutting 100,000 training molecules; an unknown split is named."""
    task = get_task("fragment-motif")
    monkeypatch.setattr(task, "_train_records", lambda: pytest.fail("training prompts built for evaluation"))
    test = task.examples("test")
    assert len(test) == task.prompts * task.samples_per_prompt
    assert task.examples("test") == test  # built once
    with pytest.raises(InsertgenError, match="unknown split 'dev'"):
        task.examples("dev")
