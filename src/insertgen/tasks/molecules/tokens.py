"""Atom-level tokenisation of SMILES and bracket-SAFE strings.

One regular expression splits a string into tokens: a bracket atom ``[...]`` whole, the two-letter
halogens ``Br`` and ``Cl``, single-letter atoms (aliphatic and aromatic), bonds ``- = # $ : / \\``,
branches ``( )``, the fragment separator ``.``, ring closures ``%nn`` and single digits, charges and
chirality marks, and (bracket SAFE only) attachment points ``<n>`` / ``<%nn>``. A string tokenises
only when the tokens concatenate back to it; any other character is an error naming its position.

The vocabularies are fixed lists, so a run directory needs no data to rebuild them:
:data:`SMILES_TOKENS` are all 24 tokens of the 1,584,663 MOSES training SMILES (ordered by frequency,
as printed by ``python -m insertgen.tasks.molecules.moses``); the SAFE vocabulary adds the ring digits
SAFE may use and the attachment tokens ``<1>`` ... ``<MAX_ATTACHMENTS>``.
"""

from __future__ import annotations

import re

from insertgen.core.errors import InsertgenError

TOKEN_PATTERN = re.compile(
    r"(\[[^\[\]]+\]|<%?\d+>|Br|Cl|%\d{2}|[BCNOSPFI]|[bcnosp]|[()\.=#\-+\\/:~@?*$]|\d)")

_WHOLE = re.compile(f"(?:{TOKEN_PATTERN.pattern})+")

SMILES_TOKENS = ("c", "C", "(", ")", "1", "O", "2", "N", "=", "n", "3", "F", "-", "S", "s", "o", "Cl", "[nH]",
                 "#", "4", "Br", "5", "[H]", "6")
MAX_ATTACHMENTS = 16
SAFE_TOKENS = SMILES_TOKENS + (".", "7", "8", "9") + tuple(f"<{i}>" for i in range(1, MAX_ATTACHMENTS + 1))


def is_ring_label(token: str) -> bool:
    """A ring-closure token: a single digit or ``%nn``."""
    return token.isdigit() or (token.startswith("%") and token[1:].isdigit())


def is_tokenizable(text: str) -> bool:
    """Whether ``text`` splits into tokens with nothing left over (fast: one regular-expression match)."""
    return _WHOLE.fullmatch(text) is not None


def tokenize(text: str) -> list[str]:
    """``text`` -> tokens; raises InsertgenError at the first character no token covers."""
    tokens, pos = [], 0
    for match in TOKEN_PATTERN.finditer(text):
        if match.start() != pos:
            break
        tokens.append(match.group())
        pos = match.end()
    if pos != len(text):
        raise InsertgenError(f"cannot tokenise {text!r}: unexpected character {text[pos]!r} at position {pos}")
    return tokens
