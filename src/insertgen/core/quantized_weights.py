"""Weights stored as 8-bit integers with one float32 scale per row: how the shipped models travel.

A float tensor ``W`` with rows ``r`` (its first axis; the other axes flattened into columns ``c``) is stored as

    s_r = max_c |W_rc| / 127,        q_rc = round(W_rc / s_r)  in  [-127, 127]  (int8),

and read back as ``W'_rc = q_rc * s_r``, so that ``|W_rc - W'_rc| <= s_r / 2`` elementwise: a quarter of the
float32 bytes, with an error below half a step of each row's own grid. A row of zeros keeps scale 0 and reads back
as zeros. Vectors (biases, norm gains) and tensors under ``MIN_ELEMENTS`` stay float32: they are a small share of
the bytes and the ones a model is most sensitive to. Training checkpoints keep full precision; only the copies
under ``src/insertgen/pretrained`` are stored this way (scripts/ship_pretrained.py), and reading dequantizes them
back to float32, so that everything downstream (sampling, warm starts) sees ordinary weights.
"""

from __future__ import annotations

import torch

FORMAT = "int8-rows"  # the checkpoint state's "weights_format" for tensors stored by quantize()
SCALE_SUFFIX = ".__row_scale"
MIN_ELEMENTS = 1024
LEVELS = 127


def is_quantizable(tensor: torch.Tensor) -> bool:
    """Float tensors of two or more axes and at least ``MIN_ELEMENTS`` entries are stored as integers."""
    return tensor.is_floating_point() and tensor.dim() >= 2 and tensor.numel() >= MIN_ELEMENTS


def quantize(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors to store: each quantizable ``W`` as int8 ``q`` under its name and its row scales ``s`` under
    ``name + SCALE_SUFFIX``; the others as float32."""
    stored = {}
    for name, tensor in tensors.items():
        if name.endswith(SCALE_SUFFIX):
            raise ValueError(f"tensor name {name!r} ends with the reserved suffix {SCALE_SUFFIX!r}")
        tensor = tensor.detach().float() if tensor.is_floating_point() else tensor.detach()
        if not is_quantizable(tensor):
            stored[name] = tensor
            continue
        rows = tensor.reshape(tensor.shape[0], -1)
        scale = rows.abs().amax(dim=1) / LEVELS
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        stored[name] = torch.round(rows / safe[:, None]).clamp(-LEVELS, LEVELS).to(torch.int8).reshape(tensor.shape)
        stored[name + SCALE_SUFFIX] = scale
    return stored


def dequantize(stored: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Float32 tensors back from :func:`quantize`'s output: ``W' = q * s`` row by row."""
    tensors = {}
    for name, tensor in stored.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        scale = stored.get(name + SCALE_SUFFIX)
        if scale is None:
            tensors[name] = tensor
            continue
        if tensor.dtype != torch.int8 or scale.shape != (tensor.shape[0],):
            raise ValueError(f"{name}: expected int8 values with one scale per row, found {tensor.dtype} "
                             f"{tuple(tensor.shape)} with scales {tuple(scale.shape)}")
        rows = tensor.reshape(tensor.shape[0], -1).float() * scale.float()[:, None]
        tensors[name] = rows.reshape(tensor.shape)
    orphans = [n for n in stored if n.endswith(SCALE_SUFFIX) and n[: -len(SCALE_SUFFIX)] not in stored]
    if orphans:
        raise ValueError(f"row scales without their tensor: {', '.join(orphans)}")
    return tensors
