"""Insertion trajectories <-> permutations of target positions
(docs/methods/insertion-process.md#permutations-and-slots).

Fix a target of length L with positions 0..L-1 and a permutation ``sigma`` (``sigma[t]`` = the final
position of the token inserted at step t). At step t the canvas holds the positions ``sigma[:t]`` in
their original order, and the token goes into the 0-based slot

    k_t = #{ s < t : sigma[s] < sigma[t] }        (so k_t in {0..t}; the paper's 1-based z_t = k_t + 1)

Conversely, replaying the slots (insert label t at index k_t of a list) gives the final list of labels
by position, whose inverse is ``sigma``. There are 1 * 2 * ... * L = L! slot sequences, one per
permutation; repeated tokens do not merge trajectories (they are distinct action sequences).

For a set S of inserted positions (a boolean mask), a remaining position j goes into slot
``k(j) = #{i in S : i < j}``, the exclusive cumulative sum of the mask (used vectorised in training).
"""

from __future__ import annotations

from torch import Tensor


def slots_from_permutation(sigma: list[int]) -> list[int]:
    """0-based slot of each step: k_t = #{s < t : sigma[s] < sigma[t]}."""
    return [sum(1 for s in range(t) if sigma[s] < sigma[t]) for t in range(len(sigma))]


def permutation_from_slots(slots: list[int]) -> list[int]:
    """Inverse of :func:`slots_from_permutation`; raises ValueError unless 0 <= slots[t] <= t."""
    canvas: list[int] = []
    for t, k in enumerate(slots):
        if not 0 <= k <= t:
            raise ValueError(f"slot {k} at step {t} is outside 0..{t}")
        canvas.insert(k, t)
    sigma = [0] * len(slots)
    for position, t in enumerate(canvas):
        sigma[t] = position
    return sigma


def slot_of_remaining(inserted: Tensor) -> Tensor:
    """(B, L) bool inserted mask -> (B, L) long: the slot each position would be inserted into,
    k(j) = #{i < j : inserted[i]} (meaningful at the positions not yet inserted)."""
    counts = inserted.long().cumsum(-1)
    return counts - inserted.long()
