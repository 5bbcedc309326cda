"""Families and tasks from other installed packages, found through package entry points.

A package that provides a model family declares, in its pyproject.toml,

    [project.entry-points."insertgen.models"]
    toy = "my_package:FAMILY"          # a ModelFamily, or a function that registers families

and a task

    [project.entry-points."insertgen.tasks"]
    my-task = "my_package:MyTask"      # called with the task's options: MyTask(**options) -> Task

insertgen looks the entry points up the first time an id is not among its own (and when it lists the known
ids), in every process, so that a run of a plugin family opens in `load_run`, reproduce's workers and torchrun's
ranks as in the process that trained it. A plugin that cannot be imported is an error naming it.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from insertgen.core.errors import InsertgenError

MODELS_GROUP = "insertgen.models"
TASKS_GROUP = "insertgen.tasks"
_loaded: dict[str, dict[str, object]] = {}


def load_entry_points(group: str) -> dict[str, object]:
    """``{name: object}`` of the installed entry points of ``group``, each loaded once per process."""
    if group not in _loaded:
        found = {}
        for point in entry_points(group=group):
            try:
                found[point.name] = point.load()
            except Exception as e:  # an import error inside someone else's package
                package = getattr(point.dist, "name", "?")
                raise InsertgenError(f"the {group} entry point {point.name!r} ({point.value}) of package {package!r} "
                                     f"cannot be loaded: {type(e).__name__}: {e}") from None
        _loaded[group] = found
    return _loaded[group]
