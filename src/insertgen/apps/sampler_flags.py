"""The command line's sampler flags, generated from the families' option dataclasses.

Every field declared with ``core.sampling.option`` becomes a flag (``insertion_draw`` -> ``--insertion-draw``)
with the field's help text and allowed values, plus ``--greedy/--no-greedy``; a command decorated with
:func:`sampler_flags` receives them as one dict, ``sampler``, which ``engine.sampler_settings.
resolve_sampler_options`` merges with the run's own settings. Adding a sampler option is adding a field.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing

import click

from insertgen.engine.sampler_settings import option_fields
from insertgen.models.registry import FAMILIES

GREEDY_HELP = ("Greedy token choice (top-k 1). --no-greedy draws tokens from the model even where the run's "
               "settings are greedy (a shipped star or maze model).")


def _option_types() -> dict[str, object]:
    """The resolved type annotation of every sampler option, by name."""
    hints: dict[str, object] = {}
    for family in FAMILIES.values():
        for name, hint in typing.get_type_hints(family.options_class).items():
            hints.setdefault(name, hint)
    return hints


def _value_type(f: dataclasses.Field, hint):
    """The click type of an option field: its choices, or its numeric range, or its Python type."""
    meta = f.metadata
    if meta.get("choices") is not None:
        return click.Choice(list(meta["choices"]))
    args = [a for a in typing.get_args(hint) if a is not type(None)] if typing.get_origin(hint) in (
        typing.Union, types.UnionType) else [hint]
    base = args[0] if args else str
    if base is int:
        return click.IntRange(min=meta.get("low"), max=meta.get("high"), min_open=meta.get("low_open", False),
                              max_open=meta.get("high_open", False))
    if base is float:
        return click.FloatRange(min=meta.get("low"), max=meta.get("high"), min_open=meta.get("low_open", False),
                                max_open=meta.get("high_open", False))
    return base


def flag_options(exclude: tuple[str, ...] = ()) -> list:
    """The click options of every sampler field (but those in ``exclude``), then ``--greedy/--no-greedy``."""
    options, hints = [], _option_types()
    for name, f in option_fields().items():
        if name in exclude:
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        help_text = f.metadata.get("help", "") + (f" (sampler default: {default})" if default is not None else "")
        options.append(click.option(f"--{name.replace('_', '-')}", name, type=_value_type(f, hints[name]), default=None,
                                    help=help_text))
    options.append(click.option("--greedy/--no-greedy", "greedy", default=None, help=GREEDY_HELP))
    return options


def sampler_flags(command=None, *, exclude: tuple[str, ...] = ()):
    """Decorate a click command with the sampler flags (``@sampler_flags``, or ``@sampler_flags(exclude=...)``
    for a command that sets those options its own way); it is called with ``sampler=`` the dict of them (None
    where a flag was not given)."""
    if command is None:
        return functools.partial(sampler_flags, exclude=exclude)
    names = [*(n for n in option_fields() if n not in exclude), "greedy"]

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        return command(*args, sampler={name: kwargs.pop(name, None) for name in names}, **kwargs)

    for opt in reversed(flag_options(exclude)):
        wrapper = opt(wrapper)
    return wrapper
