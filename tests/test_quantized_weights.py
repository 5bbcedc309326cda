"""The shipped models' 8-bit storage (core/quantized_weights.py): the per-row error bound, what stays float,
the checkpoint round trip and its errors on damaged files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from insertgen.core.checkpoint import load_checkpoint, save_checkpoint
from insertgen.core.errors import InsertgenError
from insertgen.core.quantized_weights import FORMAT, SCALE_SUFFIX, dequantize, is_quantizable, quantize

PRETRAINED = Path(__file__).resolve().parent.parent / "src" / "insertgen" / "pretrained"


def test_each_entry_is_within_half_a_step_of_its_rows_grid():
    torch.manual_seed(0)
    weights = {"w": torch.randn(64, 48) * torch.logspace(-3, 1, 64)[:, None], "e": torch.randn(10, 4, 32)}
    stored = quantize(weights)
    assert stored["w"].dtype == torch.int8 and stored["w"].abs().max() == 127
    back = dequantize(stored)
    for name, w in weights.items():
        rows = w.reshape(w.shape[0], -1)
        step = rows.abs().amax(dim=1) / 127
        error = (back[name] - w).reshape(w.shape[0], -1).abs()
        assert back[name].dtype == torch.float32 and back[name].shape == w.shape
        assert (error <= step[:, None] / 2 + 1e-7 * rows.abs()).all()
        assert error.max() > 0  # it is a lossy code, not a copy
        # the row's largest entry is exact: it sits on the grid
        top = rows.abs().argmax(dim=1)
        assert torch.allclose(back[name].reshape(w.shape[0], -1).gather(1, top[:, None]),
                              rows.gather(1, top[:, None]), rtol=1e-6)


def test_vectors_small_tensors_integers_and_zero_rows():
    w = torch.randn(40, 40)
    w[3] = 0
    tensors = {"bias": torch.randn(4096), "small": torch.randn(8, 8), "ids": torch.arange(2048).reshape(2, 1024),
               "w": w, "half": torch.randn(32, 64, dtype=torch.float16)}
    assert [is_quantizable(t) for t in tensors.values()] == [False, False, False, True, True]
    stored = quantize(tensors)
    assert stored["bias"].dtype == torch.float32 and torch.equal(stored["bias"], tensors["bias"])
    assert torch.equal(stored["small"], tensors["small"]) and torch.equal(stored["ids"], tensors["ids"])
    assert set(stored) == {*tensors, "w" + SCALE_SUFFIX, "half" + SCALE_SUFFIX}
    back = dequantize(stored)
    assert set(back) == set(tensors) and torch.equal(back["w"][3], torch.zeros(40))
    assert back["half"].dtype == torch.float32


def test_damaged_stored_tensors_are_refused():
    stored = quantize({"w": torch.randn(32, 64)})
    with pytest.raises(ValueError, match="one scale per row"):
        dequantize({**stored, "w" + SCALE_SUFFIX: torch.ones(31)})
    with pytest.raises(ValueError, match="without their tensor"):
        dequantize({"x" + SCALE_SUFFIX: torch.ones(3)})
    with pytest.raises(ValueError, match="reserved suffix"):
        quantize({"w" + SCALE_SUFFIX: torch.ones(3)})


def test_a_quantized_checkpoint_loads_as_float_and_a_bad_one_names_the_problem(tmp_path):
    weights = {"model.w": torch.randn(128, 64), "model.b": torch.randn(64)}
    path = tmp_path / "checkpoint.safetensors"
    save_checkpoint(path, quantize(weights), {"step": 5, "weights_format": FORMAT})
    assert path.stat().st_size < 128 * 64 * 4 / 3  # about a quarter of the float32 bytes, plus the scales
    tensors, state = load_checkpoint(path)
    assert state["step"] == 5 and set(tensors) == set(weights)
    assert (tensors["model.w"] - weights["model.w"]).abs().max() <= weights["model.w"].abs().max() / 254 + 1e-6
    assert torch.equal(tensors["model.b"], weights["model.b"])
    save_file({"model.w" + SCALE_SUFFIX: torch.ones(3)}, str(path),
              metadata={"state": json.dumps({"weights_format": FORMAT})})
    with pytest.raises(InsertgenError, match="corrupt: row scales without their tensor"):
        load_checkpoint(path)
    save_file({"model.w": torch.ones(3)}, str(path), metadata={"state": json.dumps({"weights_format": "int4"})})
    with pytest.raises(InsertgenError, match="stores its weights as 'int4'"):
        load_checkpoint(path)


@pytest.mark.skipif(not PRETRAINED.is_dir(), reason="no shipped models in this checkout")
def test_every_shipped_model_is_stored_as_8_bit_rows():
    names = sorted(p.parent.name for p in PRETRAINED.glob("*/checkpoint.safetensors"))
    assert names
    for name in names:
        with safe_open(str(PRETRAINED / name / "checkpoint.safetensors"), framework="pt") as f:
            assert json.loads(f.metadata()["state"])["weights_format"] == FORMAT, name
            matrices = [k for k in f.keys() if not k.endswith(SCALE_SUFFIX) and k + SCALE_SUFFIX in f.keys()]
            assert matrices and all(f.get_tensor(k).dtype == torch.int8 for k in matrices), name
