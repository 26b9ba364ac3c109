"""Spec: each round's compute is recorded as plain numbers."""

import json

import pytest

from ceal_pipeline.core.ledger import ComputeLedger


def test_ledger_serialises_to_plain_json_numbers():
    ledger = ComputeLedger(round_index=3, pool_frames=1000, frames_scored=50, forward_passes=500,
                           training_s=12.5, scoring_s=3.0, selection_s=0.25, estimated_label_cost=120.0)
    record = ledger.to_dict()
    assert record == {
        "round_index": 3, "pool_frames": 1000, "frames_scored": 50, "forward_passes": 500,
        "training_s": 12.5, "scoring_s": 3.0, "selection_s": 0.25, "estimated_label_cost": 120.0,
    }
    assert json.loads(json.dumps(record)) == record


@pytest.mark.parametrize("field, value", [("frames_scored", -1), ("scoring_s", float("nan")), ("round_index", 1.5),
                                                ("estimated_label_cost", -2.0)])
def test_ledger_rejects_negative_or_non_numeric_values(field, value):
    with pytest.raises(ValueError, match=field):
        ComputeLedger(round_index=0, **{field: value}) if field != "round_index" else ComputeLedger(round_index=value)
