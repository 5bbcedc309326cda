"""Setting up a training run from CLI-level choices: task, model, preset, overrides, run directory."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from insertgen.core.checkpoint import (
    CHECKPOINT,
    PREVIOUS,
    load_checkpoint,
    split_prefix,
)
from insertgen.core.distributed import World, barrier, check_same_on_every_rank
from insertgen.core import run_lock
from insertgen.core.errors import InsertgenError
from insertgen.core.rundir import CONFIG, environment, read_config, write_config
from insertgen.core.threads import govern, thread_report
from insertgen.engine.presets import get_preset, has_preset
from insertgen.engine.sampler_settings import EVAL_SAMPLER, LEGACY_EVAL_KEYS
from insertgen.engine.train import TrainConfig, Trainer
from insertgen.models.registry import build_model, get_family, task_defaults
from insertgen.tasks import get_task


def _apply_overrides(model: str, model_config: dict, train_config: dict, overrides: dict, task_options: dict) -> None:
    """Sort ``--set`` overrides: ``task.KEY`` / ``model.KEY`` / ``train.KEY`` go where they say,
    ``eval_sampler.OPTION`` (or the older ``eval_sampler_steps`` / ``_order``) into the training option
    ``eval_sampler``; a bare key is a training option when it names one, else an option of ``model``, and is
    refused, with both lists, when it names neither."""
    train_keys = set(TrainConfig.__dataclass_fields__)
    model_keys = {f.name for f in dataclasses.fields(get_family(model).config_class)}
    for key, value in overrides.items():
        legacy = LEGACY_EVAL_KEYS.get(key.removeprefix("train."))
        if key.startswith(("eval_sampler.", "train.eval_sampler.")) or legacy:  # one option of train.eval_sampler
            name = legacy or key.split("eval_sampler.", 1)[1]
            train_config["eval_sampler"] = {**EVAL_SAMPLER, **train_config.get("eval_sampler", {}), name: value}
        elif key.startswith("task."):
            task_options[key[len("task."):]] = value
        elif key.startswith("model."):
            model_config[key[len("model."):]] = value
        elif key.startswith("train."):
            train_config[key[len("train."):]] = value
        elif key in train_keys:
            train_config[key] = value
        elif key in model_keys:
            model_config[key] = value
        else:
            raise InsertgenError(
                f"--set {key}: unknown option, neither a training option ({', '.join(sorted(train_keys))}) "
                f"nor an option of model "
                f"{model!r} ({', '.join(sorted(model_keys))}); a task option is written task.KEY")


def renamed(weights: dict, rename: str | None) -> dict:
    """``weights`` with every name that starts with a source prefix ``SRC.`` of ``rename`` (``"SRC:DST"`` pairs,
    comma-separated, e.g. ``"policy.trunk:trunk"``: an IP policy's trunk as a FlexMDM / MDM trunk) written
    ``DST.`` instead; other names stay. A malformed ``rename`` is refused, named."""
    if not rename:
        return weights
    pairs = []
    for item in rename.split(","):
        src, sep, dst = item.strip().partition(":")
        if not sep or not src or not dst:
            raise InsertgenError(f"init_rename={rename!r}: each item is SOURCE_PREFIX:TARGET_PREFIX "
                                 "(e.g. policy.trunk:trunk), comma-separated")
        pairs.append((src.rstrip("."), dst.rstrip(".")))
    out = {}
    for name, value in weights.items():
        for src, dst in pairs:
            if name.startswith(src + "."):
                name = dst + name[len(src):]
                break
        out[name] = value
    return out


def warm_start(model: torch.nn.Module, task, source: Path, map_tokens: bool = False,
               rename: str | None = None) -> Path:
    """Copy into ``model`` the weights of run ``source`` (its EMA weights when it has them) for every
    parameter or buffer of the same name, e.g. a FlexMDM run's trunk and heads into a LoFlexMDM generator,
    or a de novo ``safe`` run into a fragment task (fine-tuning). The source must be a run of a task with
    the same vocabulary as ``task`` and its shared tensors must have the same shapes (same sizes); the rest
    of the model keeps its fresh initialisation. With ``map_tokens`` (training option ``init_map_tokens``)
    the vocabularies may differ: in every tensor indexed by token (embeddings, output heads: first dimension
    the vocabulary's size, e.g. a de novo SMILES run into a bracket-SAFE fragment task) row ``j`` of the new
    vocabulary's token ``w`` is the source's row of ``w`` where the source has ``w``, else stays fresh
    (:func:`rows_by_token`). With ``rename`` (training option ``init_rename``) the source's names are first
    re-prefixed (:func:`renamed`), so another family's trunk can seed this one's (an IP policy's
    ``policy.trunk`` as a FlexMDM ``trunk``; its time modulation, absent there, starts at zero: identity).
    Returns the resolved source path."""

    config = read_config(source)
    vocabulary = config.get("task_config", {}).get("vocabulary")
    if vocabulary is None:  # tasks that do not record theirs (star graphs, mazes) rebuild it from their options
        vocabulary = list(get_task(config["task"], config.get("task_options") or {}).vocab.tokens)
    target = list(task.vocab.tokens)
    if vocabulary != target and not map_tokens:
        raise InsertgenError(f"init_from={source} is a run of task {config['task']!r}, whose vocabulary is not "
                             f"that of {task.name!r} (set init_map_tokens=true to copy the rows of the tokens "
                             "both have)")
    if vocabulary != target and len(vocabulary) == len(target):
        raise InsertgenError(f"init_from={source}: its vocabulary and {task.name!r}'s have the same size but "
                             "other tokens, so the tensors indexed by token cannot be told apart by shape")
    tensors, _ = load_checkpoint(source / CHECKPOINT)
    weights = renamed({**split_prefix(tensors, "model"), **split_prefix(tensors, "ema")}, rename)
    own = model.state_dict()
    if vocabulary != target:
        weights, shared = rows_by_token(weights, own, vocabulary, target)
        print(f"warm start from {source}: {shared} of {len(target)} tokens' rows copied from its vocabulary "
              f"of {len(vocabulary)}")
    clash = next((k for k, v in weights.items() if k in own and own[k].shape != v.shape), None)
    if clash is not None:
        raise InsertgenError(f"init_from={source}: {clash} has shape {tuple(weights[clash].shape)} there but "
                             f"{tuple(own[clash].shape)} here (the two models differ in size)")
    matched = {k: v for k, v in weights.items() if k in own}
    if not matched:
        raise InsertgenError(f"init_from={source}: no parameter of its {config['model']!r} model has a "
                             "name in this model (a model of another family may need init_rename, e.g. "
                             "policy.trunk:trunk)")
    model.load_state_dict(matched, strict=False)
    print(f"warm start from {source}: {len(matched)} of {len(own)} tensors copied "
          f"({sum(v.numel() for v in matched.values()):,} values)")
    return source.resolve()


def _curriculum(task, train_cfg):
    return curriculum_rung(task, train_cfg.curriculum_task) if train_cfg.curriculum_task else None


def curriculum_rung(task, name: str):
    """The task ``name`` drawn over ``task``'s vocabulary (``task.vocabulary_options()``, e.g. a star rung
    over the same node ids), for ``train.curriculum_task``; refused, named, when its vocabulary differs or
    its sequences do not fit ``task``'s buffer."""
    try:
        rung = get_task(name, task.vocabulary_options())
    except InsertgenError as e:
        raise InsertgenError(f"train.curriculum_task={name!r} cannot be drawn over {task.name!r}'s vocabulary "
                             f"({e})") from None
    if list(rung.vocab.tokens) != list(task.vocab.tokens):
        raise InsertgenError(f"train.curriculum_task={name!r}: its vocabulary is not that of {task.name!r}")
    if rung.buffer_len > task.buffer_len:
        raise InsertgenError(f"train.curriculum_task={name!r}: its sequences ({rung.buffer_len} tokens) do not fit "
                             f"{task.name!r}'s buffer of {task.buffer_len}; a curriculum starts smaller")
    return rung


def _record_threads(config: dict, world: World) -> None:
    """Record the threads this (resumed) process computes with; a change is said, since float reductions
    then differ from an uninterrupted run (resume is bit-exact at an unchanged thread count)."""
    now, before = thread_report(), config.get("threads")
    if before and (before.get("adaptive"), before.get("threads")) != (now["adaptive"], now["threads"]):
        if world.is_main and not before.get("adaptive"):
            what = "an adaptive count" if now["adaptive"] else f"{now['threads']}"
            print(f"note: this run trained with {before.get('threads')} thread(s) so far and continues with "
                  f"{what}: results will not be bit-identical to an uninterrupted run (give --threads "
                  f"{before.get('threads')})")
        config.setdefault("threads_before", []).append(before)
    config["threads"] = now


def rows_by_token(weights: dict, own: dict, source_tokens: list[str], target_tokens: list[str]) -> tuple[dict, int]:
    """``weights`` with every tensor indexed by token re-indexed to ``target_tokens``: a tensor of shape
    ``(len(source_tokens) + e, *rest)`` whose counterpart in ``own`` has shape ``(len(target_tokens) + e,
    *rest)`` becomes ``own``'s tensor with row ``j`` replaced by the source row of ``target_tokens[j]`` wherever
    the source has that token; the ``e`` rows after the vocabulary (e.g. token_shift's "no previous token")
    are copied in order. Also returns the number of shared tokens."""
    index = {token: i for i, token in enumerate(source_tokens)}
    pairs = [(j, index[token]) for j, token in enumerate(target_tokens) if token in index]
    out = dict(weights)
    for name, value in weights.items():
        mine = own.get(name)
        extra = value.shape[0] - len(source_tokens) if value.dim() else -1
        if mine is None or not 0 <= extra < 4 or mine.shape != (len(target_tokens) + extra, *value.shape[1:]):
            continue
        rows = pairs + [(len(target_tokens) + k, len(source_tokens) + k) for k in range(extra)]
        mapped = mine.clone()
        if rows:
            rows_to, rows_from = (torch.tensor(x, dtype=torch.long) for x in zip(*rows))
            mapped[rows_to] = value[rows_from].to(mapped.dtype)
        out[name] = mapped
    return out, len(pairs)


def prepare_run(task: str | None, model: str | None, preset: str | None, steps: int | None, out: Path | None,
                seed: int | None, overrides: dict, resume: bool, time_budget: float | None = None,
                device: str | torch.device = "cpu", world: World | None = None,
                from_previous: bool = False) -> tuple[Path, Trainer]:
    """Create (or reopen with ``resume``; ``from_previous``: from the checkpoint before the last) a run
    directory and return it with a ready Trainer. Under torchrun (``world``) every rank calls this with
    the same arguments; rank 0 alone writes the directory."""
    world = world or World()
    if from_previous and not resume:
        raise InsertgenError("--from-previous only applies with --resume")
    if resume:
        if out is None:
            raise InsertgenError("--resume needs --out RUN_DIR (the run to continue)")
        check_same_on_every_rank(str(Path(out).resolve()), "the run directory", world)
        config = read_config(out)  # a missing run is refused before its directory is locked (created)
        if world.is_main:
            run_lock.acquire(out)  # one writer per run directory, from here until training ends
        if steps is not None:
            config["train"]["steps"] = steps
        if time_budget is not None:
            config["train"]["time_budget_s"] = time_budget
        try:
            train_cfg = TrainConfig.from_dict(config["train"])
        except (ValueError, TypeError) as e:
            raise InsertgenError(f"bad training option: {e}") from None
        # killed before its first checkpoint: nothing to resume, so start again exactly as the run began
        from_start = not from_previous and not any((Path(out) / name).exists() for name in (CHECKPOINT, PREVIOUS))
        task_obj = get_task(config["task"], config.get("task_options"))
        torch.manual_seed(config["seed"])  # the initial parameters, as when the run was created
        model_obj = build_model(config["model"], task_obj.vocab, config["model_config"])
        govern(model_obj)
        if from_start and train_cfg.init_from:
            warm_start(model_obj, task_obj, Path(train_cfg.init_from), train_cfg.init_map_tokens,
                       train_cfg.init_rename)
        trainer = Trainer(out, task_obj, model_obj, train_cfg, seed=config["seed"], device=device, world=world,
                          curriculum=_curriculum(task_obj, train_cfg))
        if from_start:
            if world.is_main:
                print(f"{out} has no checkpoint yet: training it again from step 0")
            trainer.restart()
        else:
            trainer.resume(from_previous)  # refuses a corrupt checkpoint before anything is rewritten
        barrier(world)  # every rank has read the checkpoint before rank 0 may write again
        _record_threads(config, world)
        if world.is_main:
            write_config(out, config)
        return out, trainer

    if preset is None and task is not None:  # the task's CPU preset for this model, else the task's
        preset = next((name for name in (f"{task}-{model}-cpu", f"{task}-cpu") if has_preset(name)), None)
    spec = get_preset(preset) if preset else {"model_config": {}, "train": {}}
    task = task or spec.get("task")
    model = model or spec.get("model")
    if task is None or model is None:
        raise InsertgenError("give --task and --model (or a --preset that names them)")
    model_config = dict(spec["model_config"]) if spec.get("model") == model else {}
    train_config = dict(spec["train"])
    task_options = dict(spec.get("task_options", {}))
    _apply_overrides(model, model_config, train_config, overrides, task_options)
    task_obj = get_task(task, task_options)
    for key, value in task_defaults(model, task_obj).items():
        model_config.setdefault(key, value)
    if steps is not None:
        train_config["steps"] = steps
    if time_budget is not None:
        train_config["time_budget_s"] = time_budget
    try:
        train_cfg = TrainConfig.from_dict(train_config)
    except (ValueError, TypeError) as e:
        raise InsertgenError(f"bad training option: {e}") from None
    seed = 0 if seed is None else seed
    if seed < 0:
        raise InsertgenError(f"--seed must be a non-negative integer, not {seed}")
    torch.manual_seed(seed)  # the initial parameters are a function of the seed
    model_obj = build_model(model, task_obj.vocab, model_config)
    govern(model_obj)
    if train_cfg.init_from:
        train_cfg.init_from = str(warm_start(model_obj, task_obj, Path(train_cfg.init_from),
                                             train_cfg.init_map_tokens, train_cfg.init_rename))
    if out is None and world.distributed:
        raise InsertgenError("give --out RUN_DIR when training with several processes")
    out = out or Path("runs") / f"{task}-{model}-{time.strftime('%Y%m%d-%H%M%S')}"
    check_same_on_every_rank(str(Path(out).resolve()), "the run directory", world)
    if (out / CONFIG).exists():
        raise InsertgenError(f"{out} already holds a run; use --resume to continue it or choose another --out")
    barrier(world)  # every rank has checked before rank 0 writes the config
    trainer = Trainer(out, task_obj, model_obj, train_cfg, seed=seed, device=device, world=world,
                      curriculum=_curriculum(task_obj, train_cfg))
    config = {"task": task, "task_options": task_obj.stored_options(task_options), "model": model, "preset": preset,
              "seed": seed,
              "model_config": model_obj.config.to_dict(),
              "train": train_cfg.to_dict(), "task_config": task_obj.config(), "environment": environment(),
              "threads": thread_report()}
    if spec.get("model") == model and spec.get("sampler_defaults"):  # how `sample` / `eval` draw by default
        config["sampler_defaults"] = dict(spec["sampler_defaults"])
    if world.is_main:
        out.mkdir(parents=True, exist_ok=True)
        run_lock.acquire(out)  # one writer per run directory, from here until training ends
        if (out / CONFIG).exists():  # another process made the run after the check above
            run_lock.release(out)
            raise InsertgenError(f"{out} already holds a run; use --resume to continue it or choose another --out")
        task_obj.save_held_out(out)
        write_config(out, config)
    barrier(world)
    return out, trainer


def run_training(trainer: Trainer, progress: bool = True) -> dict:
    """Train, then give back the run directory's lock that prepare_run took."""
    try:
        return trainer.train(progress=progress)
    finally:
        if trainer.world.is_main:
            run_lock.release(trainer.run_dir)
