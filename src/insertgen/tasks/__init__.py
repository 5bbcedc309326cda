"""Task registry: ``get_task(name, options)`` returns the task object for a task id.

Options are the keyword arguments of the task's class beyond its id (e.g. ``train_size`` of the
molecule tasks); ``insertgen train --set task.KEY=VALUE`` passes them and the run's config.json keeps
them (``task_options``)."""

from __future__ import annotations

import re

from insertgen.core.errors import InsertgenError
from insertgen.core.plugins import TASKS_GROUP, load_entry_points
from insertgen.tasks.base import SPLITS, Example, Task
from insertgen.tasks.maze.task import MazeTask
from insertgen.tasks.molecules.fragment_task import FragmentTask
from insertgen.tasks.molecules.requirements import require as require_molecule_packages
from insertgen.tasks.molecules.task import MoleculeTask
from insertgen.tasks.sequences.task import SequenceTask
from insertgen.tasks.star.task import StarTask


def _star(level: str):
    def make(**options) -> Task:

        return StarTask(level, **options)

    return make


def _maze(family: str, tier: str):
    def make(**options) -> Task:

        return MazeTask(family, tier, **options)

    return make


def _molecules(kind: str):
    def make(**options) -> Task:
        require_molecule_packages(kind)
        return MoleculeTask(kind, **options)

    return make


def _fragments(which: str):
    def make(**options) -> Task:
        require_molecule_packages(f"fragment-{which}")
        return FragmentTask(which, **options)

    return make


TASKS = {f"star-{level}": _star(level) for level in ("easy", "medium", "hard", "tiny", "small")}
TASKS.update({f"maze-{family}-{tier}": _maze(family, tier)
              for family in ("perfect", "imperfect", "braided") for tier in ("easy", "medium", "hard", "paper")})
TASKS.update({kind: _molecules(kind) for kind in ("smiles", "safe")})
TASKS.update({f"fragment-{which}": _fragments(which)
              for which in ("linker", "motif", "scaffold", "superstructure", "all")})
TASKS["sequences"] = SequenceTask  # a user's own JSONL files (tasks/sequences/task.py)


# maze ladder rungs: maze-FAMILY-NxN-kK (tasks/maze/task.py), a family of ids rather than a list
MAZE_RUNG = re.compile(r"maze-(perfect|imperfect|braided)-(\d+x\d+-k\d+)")


def register_task(name: str, factory) -> None:
    """Make ``get_task(name, options)`` build ``factory(**options)`` (a Task); the id must be new. Another
    installed package's tasks are found through the ``insertgen.tasks`` entry points (core/plugins.py)."""
    if name in TASKS or MAZE_RUNG.fullmatch(name):
        raise ValueError(f"task {name!r} is already registered")
    TASKS[name] = factory


def unregister_task(name: str) -> None:
    TASKS.pop(name, None)


def task_ids() -> tuple[str, ...]:
    """Every task id (the maze ladder rungs aside), installed plugins' included."""
    _load_plugins()
    return tuple(TASKS)


def _load_plugins() -> None:
    for name, factory in load_entry_points(TASKS_GROUP).items():
        if TASKS.get(name) is not factory:
            register_task(name, factory)


def get_task(name: str, options: dict | None = None) -> Task:
    """The task with id ``name`` built with ``options``; an unknown id or option raises InsertgenError
    naming it."""
    rung = MAZE_RUNG.fullmatch(name)
    if name not in TASKS and rung is None:
        _load_plugins()
    make = TASKS.get(name) or (_maze(*rung.groups()) if rung else None)
    if make is None:
        raise InsertgenError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}, and the maze "
                             "ladder rungs maze-FAMILY-NxN-kK (e.g. maze-perfect-11x11-k3)")
    try:
        return make(**(options or {}))
    except TypeError as e:
        raise InsertgenError(f"bad option for task {name!r}: {e}") from None
    except ValueError as e:
        if rung is None:
            raise
        raise InsertgenError(str(e)) from None


__all__ = ["SPLITS", "Example", "Task", "TASKS", "get_task", "register_task", "task_ids"]
