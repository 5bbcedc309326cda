"""Training: loss decreases when overfitting, checkpoints round-trip, resume is bit-exact."""

import json

import numpy as np
import pytest
import torch

from insertgen.engine.run import load_run
from insertgen.core.checkpoint import CHECKPOINT, load_checkpoint
from insertgen.core.data import BatchOrder, collate, micro_batch_indices
from insertgen.core.errors import InsertgenError
from insertgen.engine.train import TrainConfig, learning_rate
from insertgen.engine.training_run import prepare_run
from insertgen.models.flexmdm.sampler import TauLeapingOptions
from insertgen.models.registry import build_model
from insertgen.tasks import get_task

TINY = {"model.d_model": 32, "model.n_layers": 1, "model.n_heads": 2, "batch_size": 8, "eval_every": 0,
        "log_every": 1}


def make_run(path, steps, **extra):
    _, trainer = prepare_run(task="star-easy", model="flexmdm", preset=None, steps=steps, out=path, seed=3,
                             overrides={**TINY, **extra}, resume=False)
    return trainer


def test_loss_decreases_when_overfitting_a_few_examples():
    task = get_task("star-easy")
    model = build_model("flexmdm", task.vocab, {"d_model": 64, "n_layers": 2, "n_heads": 2, "max_len": 44,
                                                "time_weighting": "none"})
    batch = collate(task.examples("validation")[:8], task.vocab)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(150):
        loss, _ = model.loss(batch, gen)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-20:]) / 20 < 0.5 * sum(losses[:20]) / 20


def test_hazard_weighted_loss_is_finite_near_t_one():
    task = get_task("star-easy")
    model = build_model("flexmdm", task.vocab, {"d_model": 32, "n_layers": 1, "n_heads": 2, "max_len": 44})
    batch = collate(task.examples("validation")[:64], task.vocab)
    loss, stats = model.loss(batch, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_checkpoint_round_trip(tmp_path):
    trainer = make_run(tmp_path / "run", steps=3)
    trainer.train(progress=False)
    tensors, state = load_checkpoint(tmp_path / "run" / CHECKPOINT)
    assert state["step"] == 3
    loaded = load_run(tmp_path / "run", weights="raw")
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    ema = load_run(tmp_path / "run")
    assert all(torch.equal(ema.state_dict()[k], v) for k, v in trainer.ema.shadow.items())
    prompts = [list(ex.prompt) for ex in ema.task.examples("validation")[:3]]
    opts = TauLeapingOptions(steps=6, top_k=1)
    a = ema.sample(prompts, opts, torch.Generator().manual_seed(1))
    b = load_run(tmp_path / "run").sample(prompts, opts, torch.Generator().manual_seed(1))
    assert a == b


def test_resume_is_bit_exact(tmp_path):
    straight = make_run(tmp_path / "a", steps=6)
    straight.train(progress=False)
    first = make_run(tmp_path / "b", steps=3)
    first.train(progress=False)
    _, resumed = prepare_run(task=None, model=None, preset=None, steps=6, out=tmp_path / "b", seed=None,
                             overrides={}, resume=True)
    assert resumed.step == 3
    resumed.train(progress=False)
    for (k, v), (k2, v2) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k
    for k, v in straight.ema.shadow.items():
        assert torch.equal(v, resumed.ema.shadow[k])
    log = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]


def test_corrupt_checkpoint_is_refused(tmp_path):
    make_run(tmp_path / "run", steps=2).train(progress=False)
    path = tmp_path / "run" / CHECKPOINT
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InsertgenError, match="corrupt"):
        load_run(tmp_path / "run")


def test_learning_rate_schedule():
    cfg = TrainConfig(steps=100, lr=1.0, warmup_steps=10, lr_schedule="cosine", min_lr=0.0)
    assert learning_rate(cfg, 0) == pytest.approx(0.1)
    assert learning_rate(cfg, 9) == pytest.approx(1.0)
    assert learning_rate(cfg, 55) == pytest.approx(0.5, abs=0.02)
    assert learning_rate(cfg, 99) < 0.01
    assert learning_rate(TrainConfig(steps=100, lr=1.0, warmup_steps=10), 70) == 1.0


def test_batch_order_covers_each_epoch_once_and_resumes():
    order = BatchOrder(100, 10, seed=0)
    seen = [i for _ in range(10) for i in order.next().tolist()]
    assert sorted(seen) == list(range(100))
    state = order.state_dict()
    nxt = order.next()
    again = BatchOrder(100, 10, seed=0)
    again.load_state_dict(state)
    assert torch.equal(torch.from_numpy(nxt), torch.from_numpy(again.next()))


def test_length_bucketing_uses_each_example_once_and_cuts_padding():
    """With bucketing every epoch still uses each kept example once, resumes exactly, and the batches'
    padding (longest minus mean length) shrinks against plain shuffling."""
    lengths = np.random.default_rng(0).integers(10, 60, size=1000)
    plain = BatchOrder(1000, 32, seed=1)
    bucketed = BatchOrder(1000, 32, seed=1, lengths=lengths, bucket_batches=8)
    padding = {}
    for name, order in (("plain", plain), ("bucketed", bucketed)):
        batches = [order.next() for _ in range(31)]
        seen = [i for b in batches for i in b.tolist()]
        assert len(seen) == len(set(seen)) == 31 * 32
        padding[name] = np.mean([lengths[b].max() - lengths[b].mean() for b in batches])
    assert padding["bucketed"] < 0.3 * padding["plain"]
    state = bucketed.state_dict()
    nxt = bucketed.next()  # the first batch of epoch 1
    again = BatchOrder(1000, 32, seed=1, lengths=lengths, bucket_batches=8)
    again.load_state_dict(state)
    assert np.array_equal(again.next(), nxt)


def test_micro_batches_of_every_rank_split_each_epoch_without_overlap_or_loss():
    """4 ranks x 2 accumulation steps over 103 examples with global batch 24: each epoch's 4 batches
    give 32 disjoint micro-batches of 3 that cover exactly the first 96 indices of the epoch's permutation
    (the trailing 7 are the dropped partial batch)."""
    order = BatchOrder(103, 24, seed=5)
    for epoch in range(2):
        batches = [order.next() for _ in range(4)]
        parts = [micro_batch_indices(batch, r * 2 + m, 8) for batch in batches for r in range(4) for m in range(2)]
        assert all(len(p) == 3 for p in parts)
        seen = [i for p in parts for i in p.tolist()]
        assert len(seen) == len(set(seen)) == 96
        assert sorted(seen) == sorted(np.random.default_rng([5, epoch]).permutation(103)[:96].tolist())
    with pytest.raises(ValueError, match="does not split into 5"):
        micro_batch_indices(order.next(), 0, 5)


def test_warm_start_copies_matching_weights_and_refuses_mismatches(tiny_run, tmp_path):
    """init_from copies the source run's EMA weights wherever name and shape match (a FlexMDM trunk into a
    LoFlexMDM generator); the auxiliary network keeps its fresh initialisation."""
    small = {"d_model": 32, "n_layers": 1, "n_heads": 2, "eval_every": 0}
    source = load_run(tiny_run)
    _, trainer = prepare_run("star-easy", "loflexmdm", None, 1, tmp_path / "warm", 0,
                             {**small, "init_from": str(tiny_run)}, resume=False)
    target = trainer.model.state_dict()
    for name, value in source.state_dict().items():
        assert torch.equal(target[name], value), name
    _, fresh = prepare_run("star-easy", "loflexmdm", None, 1, tmp_path / "cold", 0, small, resume=False)
    assert all(torch.equal(v, fresh.model.state_dict()[k]) for k, v in target.items() if k.startswith("aux."))
    assert not torch.equal(target["trunk.embed.weight"], fresh.model.state_dict()["trunk.embed.weight"])
    assert json.loads((tmp_path / "warm" / "config.json").read_text())["train"]["init_from"] == str(tiny_run.resolve())
    # a run of another task with the same vocabulary is accepted (a curriculum): star-easy into star-medium
    # (both name nodes 0-19), and star-small drawn over star-easy's 20 node ids into star-easy
    prepare_run("star-medium", "loflexmdm", None, 1, tmp_path / "medium", 0, {**small, "init_from": str(tiny_run)},
                resume=False)
    _, rung = prepare_run("star-small", "flexmdm", None, 1, tmp_path / "small20", 0,
                          {**small, "task.num_nodes": 20}, resume=False)
    rung.train(progress=False)
    _, grown = prepare_run("star-easy", "flexmdm", None, 1, tmp_path / "grown", 0,
                           {**small, "init_from": str(tmp_path / "small20")}, resume=False)
    assert torch.equal(grown.model.state_dict()["trunk.embed.weight"],
                       load_run(tmp_path / "small20").state_dict()["trunk.embed.weight"])
    # another vocabulary is refused, named: star-easy's (nodes 0-19) into star-tiny (nodes 0-9)
    with pytest.raises(InsertgenError, match="a run of task 'star-easy', whose vocabulary is not that of 'star-tiny'"):
        prepare_run("star-tiny", "loflexmdm", None, 1, tmp_path / "x", 0, {**small, "init_from": str(tiny_run)},
                    resume=False)
    with pytest.raises(InsertgenError, match=r"has shape \([\d, ]*32,?\) there but \([\d, ]*48,?\) here \(the two models differ in size\)"):
        prepare_run("star-easy", "flexmdm", None, 1, tmp_path / "y", 0,
                    {**small, "d_model": 48, "n_heads": 4, "init_from": str(tiny_run)}, resume=False)


def test_warm_start_across_families_renames_the_trunk(tmp_path):
    """init_rename: an IP run's policy trunk seeds a FlexMDM trunk tensor for tensor (policy.trunk.X ->
    trunk.X); FlexMDM's time modulation and heads, absent from IP, keep their fresh initialisation; without
    the rename nothing matches and the error names the option; a malformed rename is refused, named."""
    small = {"d_model": 32, "n_layers": 1, "n_heads": 2, "eval_every": 0, "posterior_d_model": 16,
             "posterior_n_layers": 1, "posterior_n_heads": 2}
    _, ip = prepare_run("star-easy", "ip", None, 1, tmp_path / "ip", 0, small, resume=False)
    ip.train(progress=False)
    source = load_run(tmp_path / "ip").state_dict()
    flex = {k: v for k, v in small.items() if not k.startswith("posterior")}
    warm = {**flex, "init_from": str(tmp_path / "ip"), "init_rename": "policy.trunk:trunk"}
    _, trainer = prepare_run("star-easy", "flexmdm", None, 1, tmp_path / "warm", 0, warm, resume=False)
    _, fresh = prepare_run("star-easy", "flexmdm", None, 1, tmp_path / "cold", 0, flex, resume=False)
    target, cold = trainer.model.state_dict(), fresh.model.state_dict()
    copied = {"trunk." + k[len("policy.trunk."):]: v for k, v in source.items() if k.startswith("policy.trunk.")}
    copied = {k: v for k, v in copied.items() if k in target}
    assert {"trunk.embed.weight", "trunk.blocks.0.qkv.weight", "trunk.norm.weight"} <= set(copied)
    assert all(torch.equal(target[k], v) for k, v in copied.items())
    untouched = [k for k in target if k not in copied]
    assert any("modulation" in k for k in untouched) and any(k.startswith("token_head") for k in untouched)
    assert all(torch.equal(target[k], cold[k]) for k in untouched)
    with pytest.raises(InsertgenError, match="may need init_rename"):
        prepare_run("star-easy", "flexmdm", None, 1, tmp_path / "x", 0, {**flex, "init_from": str(tmp_path / "ip")},
                    resume=False)
    with pytest.raises(InsertgenError, match="each item is SOURCE_PREFIX:TARGET_PREFIX"):
        prepare_run("star-easy", "flexmdm", None, 1, tmp_path / "y", 0, {**warm, "init_rename": "policy.trunk"},
                    resume=False)


def test_every_preset_names_a_known_task_model_and_valid_options():
    from insertgen.engine.presets import PRESETS
    from insertgen.models.registry import get_family
    from insertgen.tasks import TASKS

    assert len(PRESETS) > 100
    for name, preset in PRESETS.items():
        assert preset["task"] in TASKS and name.startswith(preset["task"]), name
        assert name.endswith(("-cpu", "-gpu")), name
        TrainConfig.from_dict(preset["train"])
        get_family(preset["model"]).config_class.from_dict(dict(preset["model_config"]))
        assert set(preset.get("task_options", {})) <= {"train_size", "test_size"}


def test_star_cpu_presets_carry_the_recipe_and_paper_presets_stay_plain():
    """The star CPU presets switch on the input options of the study (presets.STAR_CPU_INPUTS) for
    exactly the models it lists, and draw fresh graphs for every model; the maze CPU presets those of the maze
    study (presets.MAZE_CPU_INPUTS: the previous-token embedding for IP, FlexMDM, LoFlexMDM and MDM); every other
    preset (other models, molecules, the papers' scale) keeps the plain trunk and the fixed training set."""
    from insertgen.engine.presets import MAZE_CPU_INPUTS, PRESETS, STAR_CPU_INPUTS, get_preset
    from insertgen.nn.backbone_config import BackboneConfig

    inputs = tuple(BackboneConfig().input_options())
    for name, preset in PRESETS.items():
        on = {k: v for k, v in preset["model_config"].items() if k in inputs and v}
        star_cpu = preset["task"].startswith("star-") and name.endswith("-cpu")
        maze_cpu = preset["task"].startswith("maze-") and name.endswith("-cpu")
        recipe = STAR_CPU_INPUTS if star_cpu else MAZE_CPU_INPUTS if maze_cpu else {}
        expected = recipe.get(preset["model"], {})
        assert on == expected, name
        assert preset["train"].get("fresh_data", False) == star_cpu, name
    assert {f"star-{rung}-{m}-cpu" for rung in ("tiny", "small") for m in ("ip", "ao-ip", "arm", "mdm", "loflexmdm")} \
        <= set(PRESETS)
    assert PRESETS["star-easy-ao-ip-cpu"]["model_config"]["position_period"] == 2
    assert PRESETS["maze-braided-medium-ip-cpu"]["model_config"]["token_shift"] is True
    # AO-IP's policy is IP's network: the same inputs, so that IP against AO-IP compares the orders alone
    for tier in ("perfect-easy", "braided-medium"):
        ip, ao_ip = (PRESETS[f"maze-{tier}-{m}-cpu"]["model_config"] for m in ("ip", "ao-ip"))
        assert {k: ao_ip.get(k) for k in inputs} == {k: ip.get(k) for k in inputs}, tier
    assert get_preset("maze-perfect-11x11-k3-ip-cpu")["model_config"]["token_shift"] is True  # a ladder rung's too
    assert not PRESETS["maze-perfect-paper-ip-gpu"]["model_config"].get("token_shift")
    # the maze CPU trunks of FlexMDM, LoFlexMDM and MDM get at least MAZE_CPU_MIN_HEADS heads; IP, AO-IP, ARM keep 2
    maze_heads = {name: p["model_config"]["n_heads"] for name, p in PRESETS.items() if name.startswith("maze-")}
    assert maze_heads["maze-perfect-easy-cpu"] == maze_heads["maze-braided-easy-mdm-cpu"] == 4
    assert maze_heads["maze-perfect-easy-loflexmdm-cpu"] == 4 and maze_heads["maze-perfect-hard-cpu"] == 6
    assert maze_heads["maze-perfect-easy-ip-cpu"] == maze_heads["maze-perfect-easy-arm-cpu"] == 2
    assert maze_heads["maze-perfect-paper-gpu"] == 8
    # FlexMDM's and LoFlexMDM's star CPU trunks get at least STAR_CPU_MIN_HEADS heads; the others keep the level's
    heads = {name: p["model_config"]["n_heads"] for name, p in PRESETS.items()}
    assert heads["star-easy-cpu"] == heads["star-tiny-loflexmdm-cpu"] == 4 and heads["star-hard-cpu"] == 6
    assert heads["star-easy-ip-cpu"] == heads["star-easy-mdm-cpu"] == 2 and heads["star-easy-paper-gpu"] == 12
    # a curriculum only where it was measured (presets.STAR_CPU_CURRICULUM)
    curricula = {name: p["train"]["curriculum_task"] for name, p in PRESETS.items()
                 if p["train"].get("curriculum_task")}
    assert curricula == {"star-easy-ao-ip-cpu": "star-small"}


def test_a_damaged_last_metrics_line_is_dropped_on_resume_with_a_warning(tmp_path, capsys):
    """A process killed while it appends to metrics.jsonl leaves half a line: resume drops it, says so, and
    carries on (it used to stop with a JSON traceback)."""
    from conftest import call_main

    run = tmp_path / "run"
    args = ["--set", "d_model=32", "--set", "n_layers=1", "--set", "n_heads=2", "--set", "batch_size=8",
            "--set", "eval_every=0", "--set", "checkpoint_every=2", "--quiet"]
    assert call_main(["train", "--task", "star-tiny", "--model", "arm", "--steps", "4", "--out", run, *args]) == 0
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "loss": 1.2')
    assert call_main(["train", "--out", run, "--resume", "--steps", "6", "--quiet"]) == 0
    assert "metrics.jsonl:" in (err := capsys.readouterr().err) and "a damaged metrics line, dropped" in err
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 6 and all("loss" in r for r in records if "step" in r and "split" not in r)


def test_a_checkpoint_with_other_tensors_than_the_model_is_refused_naming_one(tmp_path):
    """load_run checks every tensor's name, shape and dtype against the model before loading (loading would
    convert another dtype silently), and says which in one line."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from conftest import call_main
    from insertgen.core.errors import InsertgenError
    from safetensors import safe_open

    run = tmp_path / "run"
    assert call_main(["train", "--task", "star-tiny", "--model", "arm", "--steps", "1", "--out", run, "--quiet",
                      "--set", "d_model=32", "--set", "n_layers=1", "--set", "n_heads=2", "--set", "batch_size=8",
                      "--set", "eval_every=0"]) == 0
    path = run / "checkpoint.safetensors"
    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
    tensors = load_file(str(path))
    name = next(k for k in tensors if k.startswith("model.") and tensors[k].dim() == 2)
    for change, message in [
        (lambda t: t.__setitem__(name, t[name].to(torch.float16)),
         rf"{name[6:]} is float16 \(\d+, \d+\), the model's float32"),
        (lambda t: t.__setitem__(name, t[name][:-1]), rf"{name[6:]} is float32 \(\d+, \d+\), the model's float32"),
        (lambda t: t.pop(name), rf"it lacks {name[6:]}"),
        (lambda t: t.__setitem__("model.bogus.weight", torch.zeros(2)), "it has bogus.weight, which the model has not"),
    ]:
        broken = tmp_path / "broken"
        shutil.rmtree(broken, ignore_errors=True)
        shutil.copytree(run, broken)
        changed = {k: v.clone() for k, v in tensors.items() if not k.startswith("ema.")}
        change(changed)
        save_file(changed, str(broken / "checkpoint.safetensors"), metadata=metadata)
        with pytest.raises(InsertgenError, match=message):
            load_run(broken)


@pytest.mark.parametrize("change,message", [
    (lambda c: [1, 2], "a JSON object is expected, not list"),
    (lambda c: {**c, "task": ["star-tiny"]}, r"'task' must be a string, not \[\"star-tiny\"\]"),
    (lambda c: {**c, "train": "fast"}, "'train' must be an object, not \"fast\""),
    (lambda c: {**c, "model_config": "big"}, "'model_config' must be an object"),
    (lambda c: {**c, "seed": True}, "'seed' must be an integer, not true"),
    (lambda c: {k: v for k, v in c.items() if k != "model"}, "lacks the key 'model'"),
])
def test_a_config_of_the_wrong_shape_is_refused_in_one_line(tmp_path, change, message):
    import shutil

    from conftest import call_main
    from insertgen.core.errors import InsertgenError

    run = tmp_path / "run"
    assert call_main(["train", "--task", "star-tiny", "--model", "arm", "--steps", "1", "--out", run, "--quiet",
                      "--set", "d_model=32", "--set", "n_layers=1", "--set", "n_heads=2", "--set", "batch_size=8",
                      "--set", "eval_every=0"]) == 0
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(change(config)))
    with pytest.raises(InsertgenError, match=message) as refused:
        load_run(run)
    assert "\n" not in str(refused.value)
    shutil.rmtree(run)


def test_the_metrics_readers_leave_a_damaged_line_out(tmp_path, capsys):
    from insertgen.engine.plots import read_metrics

    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n[1, 2]\n{"step": 2, "lo\n{"step": 3, "loss": 1.0}\n')
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 3]
    err = capsys.readouterr().err
    assert "metrics.jsonl:2: a damaged metrics line" in err and "metrics.jsonl:3:" in err
