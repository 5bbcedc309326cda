"""Vocabulary: special tokens plus a task's data tokens, and text <-> ids.

Ids 0..3 are the special tokens ``[PAD] [MASK] [BOS] [EOS]``; data tokens follow in the order given.
Task text is whitespace-separated tokens, so ``encode("3 7 12")`` maps each token to its id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from insertgen.core.errors import InsertgenError

PAD, MASK, BOS, EOS = "[PAD]", "[MASK]", "[BOS]", "[EOS]"
SPECIAL_TOKENS = (PAD, MASK, BOS, EOS)


class Vocab:
    """Maps tokens to ids. ``pad_id, mask_id, bos_id, eos_id`` are 0, 1, 2, 3."""

    pad_id, mask_id, bos_id, eos_id = 0, 1, 2, 3

    def __init__(self, tokens: Iterable[str]):
        tokens = list(tokens)
        clash = set(tokens) & set(SPECIAL_TOKENS)
        if clash:
            raise ValueError(f"data tokens may not be special tokens: {sorted(clash)}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("data tokens must be distinct")
        self.tokens: list[str] = list(SPECIAL_TOKENS) + tokens
        self._index = {tok: i for i, tok in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and other.tokens == self.tokens

    @property
    def num_special(self) -> int:
        return len(SPECIAL_TOKENS)

    def token_to_id(self, token: str) -> int:
        try:
            return self._index[token]
        except KeyError:
            raise InsertgenError(f"unknown token {token!r} (not in the vocabulary)") from None

    def encode(self, text: str | Sequence[str]) -> list[int]:
        """Whitespace-separated text (or a list of tokens) -> ids. Unknown tokens raise InsertgenError."""
        pieces = text.split() if isinstance(text, str) else list(text)
        return [self.token_to_id(tok) for tok in pieces]

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """Ids -> whitespace-separated text; special tokens are dropped unless ``skip_special=False``."""
        out = []
        for i in ids:
            i = int(i)
            if skip_special and i < self.num_special:
                continue
            out.append(self.tokens[i])
        return " ".join(out)
