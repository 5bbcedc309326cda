"""The training budget every cell of a reproduce grid gets, the same for every model.

* ``240s`` / ``4m`` / ``1.5h``: **wall-clock** seconds of training (evaluation not counted), the
  trainer's ``time_budget_s``; the step cap is set out of reach. Equal time is what a researcher with
  one machine can spend; a model with a cheaper step makes more of them.
* ``2e13flop`` (or ``flops``): **model FLOPs**: the matrix-product FLOPs of one training step
  (forward + backward, counted with ``torch.utils.flop_counter`` as ``insertgen bench`` does, on a
  throw-away copy of the run) give ``steps = floor(budget / flops_per_step)``. Batches of varying
  length (molecules) make the per-step count that of the first batches: an estimate.
* ``preset``: the preset's own step count (the papers' steps at ``--scale paper``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from insertgen.core.errors import InsertgenError

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*(s|m|h|flops?)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Budget:
    kind: str  # "seconds", "flops" or "preset"
    value: float | None = None

    @classmethod
    def parse(cls, text: str) -> "Budget":
        """``"240s"``, ``"4m"``, ``"1h"``, ``"2e13flop"``, ``"preset"``; anything else raises
        InsertgenError naming the accepted forms."""
        if text.strip().lower() == "preset":
            return cls("preset")
        match = _PATTERN.match(text)
        if not match:
            raise InsertgenError(f"--budget {text!r}: give wall-clock seconds (e.g. 240s, 4m, 1h), model FLOPs "
                                 f"(e.g. 2e13flop) or 'preset' (the preset's own steps)")
        value, unit = float(match.group(1)), match.group(2).lower()
        if value <= 0:
            raise InsertgenError(f"--budget {text!r} must be positive")
        if unit.startswith("flop"):
            return cls("flops", value)
        return cls("seconds", value * _UNITS[unit])

    def __str__(self) -> str:
        if self.kind == "seconds":
            return f"{self.value:g}s"
        if self.kind == "flops":
            return f"{self.value:.10g}flop"
        return "preset"

    def describe(self) -> str:
        if self.kind == "seconds":
            return f"{self.value:g} s of training wall-clock per cell"
        if self.kind == "flops":
            return f"{self.value:.3g} model FLOPs of training per cell"
        return "the preset's step count per cell"
