"""Task registry: ``get_task(name)`` returns the task object for a task id."""

from __future__ import annotations

from insertgen.errors import InsertgenError
from insertgen.tasks.base import SPLITS, Example, Task


def _star(level: str):
    def make() -> Task:
        from insertgen.tasks.star import StarTask

        return StarTask(level)

    return make


def _maze(family: str, tier: str):
    def make() -> Task:
        from insertgen.tasks.maze import MazeTask

        return MazeTask(family, tier)

    return make


TASKS = {f"star-{level}": _star(level) for level in ("easy", "medium", "hard")}
TASKS.update({f"maze-{family}-{tier}": _maze(family, tier)
              for family in ("perfect", "imperfect", "braided") for tier in ("easy", "medium", "hard", "paper")})


def get_task(name: str) -> Task:
    """The task with id ``name``; an unknown id raises InsertgenError listing the known ones."""
    try:
        make = TASKS[name]
    except KeyError:
        raise InsertgenError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}") from None
    return make()


__all__ = ["SPLITS", "Example", "Task", "TASKS", "get_task"]
