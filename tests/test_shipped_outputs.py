"""Every shipped model writes, on fixed inputs under a fixed seed and with its shipped sampler settings, the
outputs recorded in tests/data/shipped_outputs.json (made by tests/shipped_outputs.py --write): the guard for
changes to the samplers and the models' bookkeeping that are meant to change nothing."""

from __future__ import annotations

import json

import pytest

import shipped_outputs


@pytest.mark.parametrize("name", shipped_outputs.shipped_names())
def test_a_shipped_model_writes_its_recorded_outputs(name):
    record = json.loads(shipped_outputs.RECORD.read_text())
    assert name in record, f"{name} has no recorded outputs: run python tests/shipped_outputs.py --write"
    assert shipped_outputs.outputs(name) == record[name]


def test_every_recorded_model_is_shipped():
    assert sorted(json.loads(shipped_outputs.RECORD.read_text())) == shipped_outputs.shipped_names()
