"""Example data sets for the sequences task, made by `insertgen example-data NAME --out FILE`.

``addition``: the prompt is two numbers of 1-``digits`` digits, ``a + b`` written digit by digit
(``"4 7 3 + 9 8"``), the target their sum, most significant digit first (``"5 7 1"``). Written left to right,
each digit of the sum depends on the carries from every digit after it, which a left-to-right model must work out
before it writes anything; a model that may insert anywhere can write the last digit first and the carries as
they come. ``digits`` sets the size, ``n`` the number of distinct problems (drawn without repeats with ``seed``).
"""

from __future__ import annotations

import random

from insertgen.core.errors import InsertgenError


def addition(n: int = 20_000, digits: int = 3, seed: int = 0) -> list[dict]:
    """``n`` distinct addition problems as ``{"prompt", "target"}`` rows (module docstring)."""
    largest = 10 ** digits
    if not 1 <= digits <= 9:
        raise InsertgenError(f"--digits must be 1-9, not {digits}")
    if n > largest * largest:
        raise InsertgenError(f"there are only {largest * largest:,} problems of up to {digits} digits, not {n:,}")
    rng = random.Random(seed)
    seen, rows = set(), []
    while len(rows) < n:
        a, b = rng.randrange(largest), rng.randrange(largest)
        if (a, b) in seen:
            continue
        seen.add((a, b))
        rows.append({"prompt": f"{' '.join(str(a))} + {' '.join(str(b))}", "target": " ".join(str(a + b))})
    return rows


EXAMPLES = {"addition": addition}
