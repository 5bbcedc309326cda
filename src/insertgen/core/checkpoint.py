"""Checkpoints: one safetensors file holding tensors, with the JSON state in its metadata.

Loading never executes code (no pickle). Writing is atomic: the file is written under a temporary
name, flushed to disk (fsync) and renamed over the old one, so a crash leaves either the previous
complete checkpoint or the new one. The previous checkpoint is kept as ``checkpoint.prev.safetensors``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from insertgen.core.errors import InsertgenError
from insertgen.core.io import writing
from insertgen.core.quantized_weights import FORMAT as INT8_ROWS
from insertgen.core.quantized_weights import dequantize

CHECKPOINT = "checkpoint.safetensors"
PREVIOUS = "checkpoint.prev.safetensors"


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], state: dict) -> None:
    """Atomically write ``tensors`` and the JSON-serialisable ``state`` to ``path``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with writing(path, "checkpoint", leftovers=(tmp,)):  # a full disk: the previous checkpoint stays
        try:
            save_file(tensors, str(tmp), metadata={"state": json.dumps(state)})
        except Exception as e:  # safetensors reports a full disk or an I/O error as its own SafetensorError
            if isinstance(e, OSError):
                raise
            code = errno.ENOSPC if "No space left" in str(e) else errno.EIO
            raise OSError(code, os.strerror(code)) from None
        os.chmod(tmp, 0o644)  # safetensors creates it for its owner alone; a run is read by other users too
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
    if path.exists():
        os.replace(path, path.with_name(PREVIOUS) if path.name == CHECKPOINT else path.with_name(path.name + ".prev"))
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, state) of a checkpoint file; a missing or corrupt file raises InsertgenError. Weights stored as
    8-bit integers (state ``weights_format`` = ``"int8-rows"``, the shipped models) come back as float32."""
    path = Path(path)
    if not path.is_file():
        raise InsertgenError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        state = json.loads(meta["state"])
    except InsertgenError:
        raise
    except Exception as e:  # safetensors raises several types for truncated / garbled files
        raise InsertgenError(f"checkpoint {path} is corrupt or unreadable ({type(e).__name__}: {e})") from None
    weights_format = state.get("weights_format", "float") if isinstance(state, dict) else "float"
    if weights_format == INT8_ROWS:
        try:
            tensors = dequantize(tensors)
        except ValueError as e:
            raise InsertgenError(f"checkpoint {path} is corrupt: {e}") from None
    elif weights_format != "float":
        raise InsertgenError(f"checkpoint {path} stores its weights as {weights_format!r}; this version of insertgen "
                             f"reads 'float' and {INT8_ROWS!r}")
    return tensors, state


def split_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of ``tensors`` under ``prefix.`` with the prefix removed."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def vocab_digest(vocab) -> str:
    """A short hash of the token list: a checkpoint is tied to the vocabulary it was trained on."""
    return hashlib.sha256("\n".join(vocab.tokens).encode()).hexdigest()[:16]


def check_checkpoint_identity(state: dict, model, vocab, path: Path) -> None:
    """Refuse a checkpoint written for another model id or vocabulary than the run's config describes
    (checkpoints written before these were recorded are accepted; their shapes are still checked)."""
    saved_model, saved_vocab = state.get("model"), state.get("vocab")
    if saved_model is not None and saved_model != model.model_id:
        raise InsertgenError(f"{path} holds a {saved_model!r} model but the run's config says {model.model_id!r}")
    if saved_vocab is not None and saved_vocab != vocab_digest(vocab):
        raise InsertgenError(f"{path} was trained on another vocabulary than the run's task builds now "
                             f"({len(vocab)} tokens, digest {vocab_digest(vocab)} != {saved_vocab})")
