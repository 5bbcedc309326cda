"""A fast replay of NumPy's legacy scalar ``randint``, for the star generator's many small draws."""

from __future__ import annotations

import numpy as np


class BufferedRandint:
    """A fast stand-in for ``RandomState.randint(low, high)`` scalar draws (legacy, int64 result).

    NumPy's legacy ``randint(low, high)`` with ``high - low - 1 = r < 2**32`` takes raw 32-bit
    Mersenne-Twister outputs ``u`` and returns ``low + (u & mask)`` for the first one with
    ``u & mask <= r``, where ``mask`` is the smallest ``2**k - 1 >= r`` (no draw when ``r == 0``).
    This class fetches the raw outputs in blocks (``randint(0, 2**32, size, dtype=uint32)``, one raw
    output per element) and replays that rule in Python, giving the same values as calling
    ``np_rng.randint`` each time, several times faster. It reads ahead, so ``np_rng`` must not be used
    directly afterwards: use it only where every draw goes through this object (the simple generator).
    """

    __slots__ = ("_rng", "_buf", "_pos", "_block")

    def __init__(self, np_rng: np.random.RandomState, block: int = 1 << 14):
        self._rng = np_rng
        self._buf: list[int] = []
        self._pos = 0
        self._block = block

    def randint(self, low: int, high: int) -> int:
        r = high - low - 1
        if r < 0 or r >= 1 << 32:
            raise ValueError(f"unsupported range [{low}, {high})")
        if r == 0:
            return low
        mask = (1 << r.bit_length()) - 1
        buf, pos = self._buf, self._pos
        while True:
            if pos == len(buf):
                buf = self._buf = self._rng.randint(0, 1 << 32, self._block, dtype=np.uint32).tolist()
                pos = 0
            value = buf[pos] & mask
            pos += 1
            if value <= r:
                self._pos = pos
                return low + value
