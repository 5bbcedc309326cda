"""What the molecule tasks need beyond the base package, checked once before a task is built, so that a
missing piece is one ``error:`` line naming the command that installs it (not a traceback half-way in).

The ``molecules`` extra (RDKit, safe-mol, fcd_torch) and the MOSES data files of ``molsets==0.3.1``,
installed without its obsolete dependencies. ``python3 scripts/dev.py run -- ARGS`` (and ``demo``) install
all of it by themselves when ARGS name a molecule task.
"""

from __future__ import annotations

import importlib.util

from insertgen.core.errors import InsertgenError

PACKAGES = {"rdkit": "rdkit", "safe": "safe-mol", "fcd_torch": "fcd_torch"}  # import name -> distribution
INSTALL = "pip install 'insertgen[molecules]' && pip install --no-deps molsets==0.3.1"
DEV_INSTALL = "python3 scripts/dev.py run -- ARGS"


def install_hint() -> str:
    return (f"install them with `{INSTALL}` (in a checkout, `{DEV_INSTALL}` installs them itself when ARGS name "
            "a molecule task)")


def missing() -> list[str]:
    """The distributions of :data:`PACKAGES` that cannot be imported, and ``molsets`` (the MOSES data)."""
    out = [dist for module, dist in PACKAGES.items() if importlib.util.find_spec(module) is None]
    if importlib.util.find_spec("moses") is None:
        out.append("molsets (the MOSES data files)")
    return out


def require(task: str) -> None:
    """Raise InsertgenError naming what is missing for molecule task ``task`` and how to install it."""
    absent = missing()
    if absent:
        raise InsertgenError(f"task {task} needs {', '.join(absent)}, which {'is' if len(absent) == 1 else 'are'} "
                             f"not installed: {install_hint()}")
