"""scripts/probe_against_floor.py and scripts/is_against_null.py: the findings' lens-against-floor
and lens-against-null comparisons read the right numbers out of a record."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _probing_record(gain: float) -> dict:
    items = [
        {
            "id": f"feature{i}",
            "curve": {"1": {"f1": 0.5 + 0.03 * i + gain}, "16": {"f1": 0.9}},
            "f1_random_basis": {"1": 0.5 + 0.03 * i, "16": 0.9},
        }
        for i in range(12)
    ]
    return {"lens": {"name": "x", "site": "s"}, "items": items}


def test_probe_against_floor_pairs_each_feature_with_its_floor() -> None:
    script = _script("probe_against_floor")
    lens, floor = script.lens_and_floor(_probing_record(0.05), 1)
    assert set(lens) == set(floor) and len(lens) == 12
    assert all(lens[f] - floor[f] == pytest.approx(0.05) for f in lens)
    lens16, floor16 = script.lens_and_floor(_probing_record(0.05), 16)
    assert lens16 == floor16


def test_probe_against_floor_refuses_a_compact_record() -> None:
    from bench.errors import BenchError

    with pytest.raises(BenchError, match="compact published copy"):
        _script("probe_against_floor").lens_and_floor({"id": "r", "items": None}, 1)


def test_is_against_null_splits_sampled_units_from_null_directions() -> None:
    items = [{"id": str(u), "is": 0.1 * u} for u in (3, 5, 7)] + [{"id": f"random{i}", "is": -1.0} for i in range(4)]
    record = {
        "task": {"config": {"units": {"random_directions": 4}}},
        "units": {"sampled": [3, 5], "attributed": [7]},
        "items": items,
    }
    sampled, null = _script("is_against_null").lens_and_null(record)
    assert sampled == pytest.approx([0.3, 0.5]) and null == [-1.0] * 4
