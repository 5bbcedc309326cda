"""Named configurations: a task, a model and its options, and training options, sized for a 2-core CPU.

``insertgen train --task T --model M`` without ``--preset`` uses ``{T}-{M}-cpu`` or else ``{T}-cpu`` when
it exists (its model options only when its model is M). What the presets reach here is in docs/results.md.

The presets are built once, in two declared stages: :func:`base_presets` (each task's base preset, FlexMDM's,
at each scale, and every other family's derived from it) and :data:`RECIPES` (what the studies measured to
help, as data rows: options, heads, training options and token drawing for named tasks x models), applied in
order by :func:`build_presets`. Names outside the table (a family registered later, a maze ladder rung) are
derived when asked for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from insertgen.core.errors import InsertgenError
from insertgen.models.registry import FAMILIES, get_family

BASE_FAMILY = "flexmdm"  # its presets are each task's base ones ({task}-cpu); every other family derives its own


def backbone_config(base: dict, aux: tuple[int, int, int]) -> dict:
    """A family's model options at the size of a task's base preset: the trunk's width, depth and heads
    (``aux``, the size of a second network, is not used)."""
    return {key: base[key] for key in ("d_model", "n_layers", "n_heads")}


def _loflex_config(base: dict, aux: tuple[int, int, int]) -> dict:
    """FlexMDM's generator options (equal settings) and a smaller auxiliary trunk of size ``aux``."""
    return {**base, "aux_d_model": aux[0], "aux_n_layers": aux[1], "aux_n_heads": aux[2]}


def _ip_config(base: dict, aux: tuple[int, int, int]) -> dict:
    """The decoder at the base size and the Plackett-Luce posterior a smaller trunk of size ``aux``."""
    return {**{k: base[k] for k in ("d_model", "n_layers", "n_heads")},
            "posterior_d_model": aux[0], "posterior_n_layers": aux[1], "posterior_n_heads": aux[2]}


# How a family's model options come from a task's base preset, by family id (equal settings for every
# family; ``aux``: the size of its second network: width, layers, heads); a family not named here (AO-IP, ARM,
# MDM, one registered later) takes the base trunk's size (:func:`backbone_config`).
CONFIG_DERIVATION = {BASE_FAMILY: lambda base, aux: dict(base), "loflexmdm": _loflex_config, "ip": _ip_config}


def preset_name(stem: str, model: str, scale: str) -> str:
    """The preset of ``model`` for a task stem and scale: ``star-easy-cpu`` for the base family (FlexMDM),
    ``star-easy-ip-cpu`` for the others."""
    get_family(model)  # an unknown model is refused, naming the known ones
    return f"{stem}-{scale}" if model == BASE_FAMILY else f"{stem}-{model}-{scale}"


def cpu_preset_name(task: str, model: str) -> str:
    """The CPU preset of ``model`` on ``task``."""
    return preset_name(task, model, "cpu")


def derive(base: dict, model: str, aux: tuple[int, int, int]) -> dict:
    """``model``'s preset from a task's base (FlexMDM) preset: the same task and training options, its
    model options from :data:`CONFIG_DERIVATION` (``aux``: the size of its second network, if any)."""
    derivation = CONFIG_DERIVATION.get(model, backbone_config)
    return {**base, "model": model, "model_config": derivation(base["model_config"], aux)}


def _star(d_model: int, n_layers: int, n_heads: int, lr: float, steps: int, eval_every: int) -> dict:
    return {
        "model": "flexmdm",
        "model_config": {"d_model": d_model, "n_layers": n_layers, "n_heads": n_heads, "time_weighting": "none"},
        "train": {"steps": steps, "batch_size": 64, "lr": lr, "warmup_steps": 100, "lr_schedule": "constant",
                  "ema_decay": 0.999, "eval_every": eval_every, "checkpoint_every": 500},
    }


STAR_CPU_LEVELS = ("tiny", "small", "easy", "medium", "hard")  # the size rungs (tiny, small) and the paper levels
MAZE_FAMILIES = ("perfect", "imperfect", "braided")
FRAGMENT_TASK_IDS = tuple(f"fragment-{w}" for w in ("linker", "motif", "scaffold", "superstructure", "all"))


# ----- the base presets (FlexMDM's) of every task and scale, and every other family's derived from them -----

# Star graphs at the papers' scale, for a GPU (docs/methods/flexmdm.md#presets): a 768 x 12 trunk with 12 heads,
# batch 64, AdamW 1e-4 constant, EMA 0.9999, 80,000 steps, the hazard-weighted (reference) loss; LoFlexMDM's auxiliary network a separate
# 768 x 6 trunk ("xtiny"), rates min 1.001 (easy) / 1.01 (medium, hard); the other models at the same size.
def _star_paper(level: str) -> dict:
    preset = {"task": f"star-{level}", **_star(768, 12, 12, 1e-4, 80_000, 5_000)}
    preset["model_config"]["time_weighting"] = "hazard"  # the reference objective (the ELBO)
    preset["train"].update(warmup_steps=0, ema_decay=0.9999, checkpoint_every=2_000)
    return preset


# Mazes: the same sizes and training options per tier as the star levels (easy/medium/hard), and the
# paper's scale for the 41x41 tier (decoder 128 x 12 with 8 heads, AdamW 1e-4 with 1,000 warm-up steps
# and cosine decay, batch 64, 78,100 steps: docs/methods/flexmdm.md#presets), meant for a GPU.
_MAZE_SIZES = {"easy": (64, 4, 2, 2e-3, 30_000, 5_000), "medium": (128, 4, 4, 2e-3, 30_000, 5_000),
               "hard": (192, 6, 6, 5e-4, 60_000, 10_000)}
_MAZE_AUX = {"easy": (64, 2, 2), "medium": (64, 2, 2), "hard": (96, 3, 4), "paper": (64, 6, 4)}


def _maze_paper() -> dict:
    preset = _star(128, 12, 8, 1e-4, 78_100, 5_000)
    preset["train"].update(warmup_steps=1_000, lr_schedule="cosine", checkpoint_every=2_000)
    return preset


# Molecules (smiles, safe): CPU scale = d_model 128 x 4 on 100,000 MOSES training molecules, meant for
# about an hour of training (steps is a cap; pass --time-budget); paper scale = LoFlexMDM's SAFE setting
# (768 x 12, batch 2048, lr 1e-4 with 2,000 warm-up steps then cosine, 50k steps; docs/methods/flexmdm.md#presets) for
# `safe`, and the IP paper's SMILES decoder (18 layers, width 256, 8 heads; posterior 3 x 128, 4 heads;
# lr 5e-4 with 1,000 warm-up steps then cosine; docs/methods/insertion-process.md#presets) for `smiles`, both on the
# whole MOSES training set, meant for GPUs. (Our cosine is one half-period, not the reference's 3 cycles.)
# The fragment tasks (fragment-{linker,motif,scaffold,superstructure,all}) take the `safe` settings.
def _molecule_cpu(task: str) -> dict:
    preset = {"task": task, "task_options": {"train_size": 100_000}, **_star(128, 4, 4, 1e-3, 100_000, 5_000)}
    preset["train"].update(warmup_steps=200, checkpoint_every=1_000)
    return preset


def _molecule_paper(task: str) -> dict:
    if task != "smiles":
        preset = _star(768, 12, 12, 1e-4, 50_000, 5_000)
        preset["train"].update(batch_size=2048, warmup_steps=2_000, lr_schedule="cosine", min_lr=1e-6,
                               ema_decay=0.9999, checkpoint_every=1_000)
    else:
        preset = _star(256, 18, 8, 5e-4, 200_000, 10_000)
        preset["train"].update(warmup_steps=1_000, lr_schedule="cosine", ema_decay=0.9999, weight_decay=1e-12,
                               checkpoint_every=2_000)
    options = {"train_size": 0} if task in FRAGMENT_TASK_IDS else {"train_size": 0, "test_size": 0}
    return {"task": task, "task_options": options, **preset}


def base_presets() -> dict[str, dict]:
    """Every task's base (FlexMDM) preset at each scale, and every registered family's derived from it
    (:func:`derive`; the second networks, LoFlexMDM's auxiliary trunk and IP's posterior, are smaller trunks
    of the sizes given per task), before the recipes."""
    presets: dict[str, dict] = {}

    def add(stem: str, scale: str, base: dict, aux: tuple[int, int, int]) -> None:
        presets[f"{stem}-{scale}"] = base
        for family in FAMILIES.values():
            if family.id != BASE_FAMILY:
                presets[preset_name(stem, family.id, scale)] = derive(base, family.id, aux)

    star_sizes = {"tiny": (64, 4, 2, 2e-3, 10_000, 1_000), "small": (64, 4, 2, 2e-3, 20_000, 1_000),
                  "easy": (64, 4, 2, 2e-3, 30_000, 5_000), "medium": (128, 4, 4, 2e-3, 30_000, 5_000),
                  "hard": (192, 6, 6, 5e-4, 60_000, 10_000)}
    for level in STAR_CPU_LEVELS:
        add(f"star-{level}", "cpu", {"task": f"star-{level}", **_star(*star_sizes[level])},
            (96, 3, 4) if level == "hard" else (64, 2, 2))
    # IP's posterior stays at (64, 2, 2) on star-hard too (only LoFlexMDM's auxiliary trunk grows there)
    presets["star-hard-ip-cpu"] = derive(presets["star-hard-cpu"], "ip", (64, 2, 2))
    for level in ("easy", "medium", "hard"):
        add(f"star-{level}-paper", "gpu", _star_paper(level), (768, 6, 6))
        presets[f"star-{level}-paper-loflexmdm-gpu"]["model_config"]["aux_min_rate"] = \
            1.001 if level == "easy" else 1.01
    for family in MAZE_FAMILIES:
        for tier in ("easy", "medium", "hard", "paper"):
            task = f"maze-{family}-{tier}"
            base = {"task": task, **(_maze_paper() if tier == "paper" else _star(*_MAZE_SIZES[tier]))}
            add(task, "gpu" if tier == "paper" else "cpu", base, _MAZE_AUX[tier])
    for task in ("smiles", "safe") + FRAGMENT_TASK_IDS:
        add(task, "cpu", _molecule_cpu(task), (64, 2, 2))
        add(f"{task}-paper", "gpu", _molecule_paper(task), (768, 6, 12) if task != "smiles" else (128, 3, 4))
    return presets


# ----- the recipes: what the studies measured to help, as data -----

@dataclass(frozen=True)
class Recipe:
    """A change to the CPU presets of ``tasks`` x ``models``: options merged into their model options
    (``model``) and training options (``train``), their trunk's heads raised to at least ``min_heads``, and
    the token drawing they are sampled with (``sampler_defaults``)."""

    tasks: tuple[str, ...]
    models: tuple[str, ...]
    model: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    min_heads: int = 0
    sampler_defaults: dict = field(default_factory=dict)

    def apply(self, presets: dict[str, dict]) -> None:
        for task in self.tasks:
            for model in self.models:
                preset = presets[cpu_preset_name(task, model)]
                config = preset["model_config"]
                preset["model_config"] = {**config, **self.model, "n_heads": max(config["n_heads"], self.min_heads)}
                preset["train"] = {**preset["train"], **self.train}
                if self.sampler_defaults:
                    preset["sampler_defaults"] = dict(self.sampler_defaults)


# The star CPU recipe (docs/lab/learning.md, issue 21). Every model: the trunk also embeds each position's
# previous token ("token_shift"), so that one attention hop reads an edge pair (u, v) at v's position; on
# star-tiny FlexMDM goes from 28.8% / 41.4% to 90.4% / 71.8% exact match at 6,000 steps and IP from
# 50.8% / 51.6% to 100% / 99.2% at 2,000 (seeds 0 / 1). IP and AO-IP also embed the index modulo 2
# ("position_period": first or second node of an edge pair), without which their parent look-ups read
# the wrong one of a node's two occurrences: on star-easy they stall near 50% with the shift alone and
# solve it with both (IP 97.8% at 5,000 steps, AO-IP 99.0% at 6,000, seed 0). Applied to the models where
# it was measured to help, and to LoFlexMDM's generator (kept equal to FlexMDM's); the paper presets keep the
# papers' plain trunk. Every star CPU preset (all six models) also draws each training batch anew from the
# generator ("fresh_data"), as every row of the study did.
STAR_CPU_INPUTS = {
    "flexmdm": {"token_shift": True},
    "loflexmdm": {"token_shift": True},  # its generator stays FlexMDM's, so the two differ only in the schedule
    "ip": {"token_shift": True, "position_period": 2},
    "ao-ip": {"token_shift": True, "position_period": 2},
}
# FlexMDM's trunk also gets at least 4 attention heads (at d_model 64: head width 16, the same FLOPs): on
# star-tiny it reaches 50% exact match at 2,000 steps on both seeds instead of 3,500 / 4,000, and on
# star-easy it is the first FlexMDM to learn a look-up (child probe 0.76, 4.8% exact match at 12,000 steps,
# where 2 heads stay at 0.00 and 0.0%). LoFlexMDM's generator follows (kept equal to FlexMDM's).
STAR_CPU_MIN_HEADS = {"flexmdm": 4, "loflexmdm": 4}

# AO-IP's star-easy preset starts with a curriculum: its first 3,000 batches are star-small graphs drawn over
# star-easy's node ids (train.curriculum_task), then star-easy's. On two seeds it then reaches 95% on
# star-easy after 3,500 / 4,000 steps, where it needs 6,000 / 11,000 from scratch (docs/lab/learning.md, rows
# 14-15). Measured for AO-IP only, so IP and the other levels keep single-task training.
STAR_CPU_CURRICULUM = {("star-easy", "ao-ip"): ("star-small", 3_000)}

# The maze CPU recipe (docs/lab/learning-mazes.md, issue 36, rows 3 and 15). The trunk also embeds each position's
# previous token ("token_shift"): a plan is a chain of neighbouring cells, and with the shift the cell on the
# canvas to the left of a slot is read without an attention hop. On maze-perfect-easy at equal FLOPs (seeds 0 / 1):
# IP plans 92.8% / 93.2% of the test problems at 5,000 steps with it against 73.4% / 33.8% without it, and 95%
# from 6,000 steps (20-24 minutes of one core) on both seeds; FlexMDM (with 4 heads, as on stars) is ahead of or
# level with its preset's trunk at every point from 1,000 to 5,000 steps on both seeds (46.8 / 36.4% against 34.6 /
# 34.8% at 5,000); MDM (4 heads) plans 47.2 / 41.6% at 2,000 steps against 19.6 / 24.2% plain. LoFlexMDM's
# generator follows FlexMDM's (the two differ only in the schedules). AO-IP's policy is IP's network, so it reads
# plans as IP does and IP against AO-IP compares the orders alone (the reproduce grid's maze cells); with the shift
# AO-IP plans 92.6 / 87.4% after 10,000 steps on two seeds (rows 11 and 13; without it, row 26: behind at 1,000-4,000
# steps, level at 5,000). Applied to those models' CPU presets of every maze family and tier (it changes how a
# plan is read, not the maze); the paper presets keep the plain trunk.
MAZE_CPU_INPUTS = {"ip": {"token_shift": True}, "ao-ip": {"token_shift": True}, "flexmdm": {"token_shift": True},
                   "loflexmdm": {"token_shift": True}, "mdm": {"token_shift": True}}
MAZE_CPU_MIN_HEADS = {"flexmdm": 4, "loflexmdm": 4, "mdm": 4}  # at the easy tier's d_model 64 (medium has 4 already)

# The molecule CPU recipe (docs/lab/learning-molecules.md, issue 35). IP and AO-IP runs sample at temperature 0.5
# by default (`sample`, `eval`, `report`; a --temperature flag overrides it): the same weights write two to four
# times as many valid SMILES as at temperature 1 (IP seed 0: 24.2% -> 71.2% at step 6,200; seed 1: 17.6% ->
# 70.0% at T = 0.4 at step 5,000; AO-IP seed 0: 13.2% -> 48.8% at step 4,450), and 0.5 is the lowest of
# 0.4 / 0.45 / 0.5 / 0.6 at which uniqueness stays above 95% (IP at 12,000 steps, 1,000 samples). Measured for
# IP and AO-IP on SMILES only, so the other models and SAFE keep temperature 1.
MOLECULE_CPU_SAMPLING = {("smiles", "ip"): {"temperature": 0.5}, ("smiles", "ao-ip"): {"temperature": 0.5}}

STAR_CPU_TASKS = tuple(f"star-{level}" for level in STAR_CPU_LEVELS)
MAZE_CPU_TASKS = tuple(f"maze-{family}-{tier}" for family in MAZE_FAMILIES for tier in ("easy", "medium", "hard"))
RECIPES = (
    *(Recipe(STAR_CPU_TASKS, (model,), model=STAR_CPU_INPUTS.get(model, {}), train={"fresh_data": True},
             min_heads=STAR_CPU_MIN_HEADS.get(model, 0)) for model in FAMILIES),
    *(Recipe((task,), (model,), train={"curriculum_task": rung, "curriculum_steps": steps})
      for (task, model), (rung, steps) in STAR_CPU_CURRICULUM.items()),
    *(Recipe(MAZE_CPU_TASKS, (model,), model=inputs, min_heads=MAZE_CPU_MIN_HEADS.get(model, 0))
      for model, inputs in MAZE_CPU_INPUTS.items()),
    *(Recipe((task,), (model,), sampler_defaults=defaults)
      for (task, model), defaults in MOLECULE_CPU_SAMPLING.items()),
)


def build_presets() -> dict[str, dict]:
    """The named presets: :func:`base_presets`, then every recipe of :data:`RECIPES` in order."""
    presets = base_presets()
    for recipe in RECIPES:
        recipe.apply(presets)
    return presets


PRESETS: dict[str, dict] = build_presets()


BASE_AUX = (64, 2, 2)  # the second network of a family registered after this module was built


def _derived(name: str) -> dict | None:
    """The preset ``name`` of a family registered later (e.g. ``star-tiny-toy-cpu``), derived from the
    task's base preset (``star-tiny-cpu``) with a second network of size :data:`BASE_AUX`; None when
    ``name`` is not of that form."""
    for family in FAMILIES.values():
        match = re.fullmatch(rf"(.+)-{re.escape(family.id)}-(cpu|gpu)", name)
        if match and family.id != BASE_FAMILY and f"{match[1]}-{match[2]}" in PRESETS:
            return derive(PRESETS[f"{match[1]}-{match[2]}"], family.id, BASE_AUX)
    return None


MAZE_RUNG_PRESET = re.compile(r"maze-(perfect|imperfect|braided)-(\d+)x\d+-k\d+(-.+)?-cpu")


def _maze_rung(name: str) -> dict | None:
    """The CPU preset ``name`` of a maze ladder rung (``maze-perfect-11x11-k3-ip-cpu``): that of the named tier
    of the nearest size (easy 9 x 9 up to 11 x 11, medium 13 x 13 up to 15 x 15, hard above) with the
    rung as its task; None when ``name`` is not of that form."""
    match = MAZE_RUNG_PRESET.fullmatch(name)
    if match is None:
        return None
    size = int(match[2])
    tier = "easy" if size <= 11 else "medium" if size <= 15 else "hard"
    base = f"maze-{match[1]}-{tier}{match[3] or ''}-cpu"
    preset = PRESETS.get(base) or _derived(base)
    return None if preset is None else {**preset, "task": name[: -len(f"{match[3] or ''}-cpu")]}


def has_preset(name: str) -> bool:
    return name in PRESETS or _derived(name) is not None or _maze_rung(name) is not None


def get_preset(name: str) -> dict:
    preset = PRESETS.get(name) or _derived(name) or _maze_rung(name)
    if preset is None:
        raise InsertgenError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}")
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in preset.items()}
