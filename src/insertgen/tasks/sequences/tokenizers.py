"""How the ``sequences`` task cuts a line's text into tokens, and joins tokens back into text.

    whitespace      tokens separated by whitespace; joined with one space (the default)
    chars           every character a token (spaces too); joined with nothing
    regex:PATTERN   the successive matches of PATTERN, which must cover the text (nothing may be left between
                    or after them); joined with nothing
    smiles          regex: with the atom-level SMILES pattern of the molecule tasks (brackets, Cl, Br, %nn ...)

Whatever the tokeniser, ``join(split(text)) == text`` for every text it accepts (whitespace: up to the
spacing), which is what lets outputs be read back as task text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from insertgen.core.errors import InsertgenError
from insertgen.tasks.molecules.tokens import TOKEN_PATTERN as SMILES_PATTERN

NAMED = ("whitespace", "chars", "smiles")


@dataclass(frozen=True)
class Tokenizer:
    """One tokeniser: ``spec`` as the option names it, ``pattern`` the regular expression (regex and smiles)."""

    spec: str
    pattern: re.Pattern | None = None

    def split(self, text: str) -> list[str]:
        """``text`` -> tokens; text the pattern does not cover raises InsertgenError naming the place."""
        if self.spec == "whitespace":
            return text.split()
        if self.spec == "chars":
            return list(text)
        tokens, pos = [], 0
        for match in self.pattern.finditer(text):
            if match.start() != pos or not match.group():
                break
            tokens.append(match.group())
            pos = match.end()
        if pos != len(text):
            raise InsertgenError(f"the {self.spec} tokeniser cannot read {text[pos:pos + 12]!r} "
                                 f"(character {pos + 1} of {text[:40]!r}{'...' if len(text) > 40 else ''})")
        return tokens

    def join(self, tokens: list[str]) -> str:
        return " ".join(tokens) if self.spec == "whitespace" else "".join(tokens)


def tokenizer_of(spec: str) -> Tokenizer:
    """The tokeniser named by ``spec`` (module docstring); an unknown name or a bad pattern raises
    InsertgenError."""
    if spec in ("whitespace", "chars"):
        return Tokenizer(spec)
    if spec == "smiles":
        return Tokenizer(spec, SMILES_PATTERN)
    if spec.startswith("regex:"):
        try:
            pattern = re.compile(spec[len("regex:"):])
        except re.error as e:
            raise InsertgenError(f"tokenizer {spec!r}: not a regular expression ({e})") from None
        if pattern.fullmatch(""):
            raise InsertgenError(f"tokenizer {spec!r}: the pattern matches the empty string")
        return Tokenizer(spec, pattern)
    raise InsertgenError(f"unknown tokenizer {spec!r}; choose {', '.join(NAMED)} or regex:PATTERN")
