"""`ceal vendor selfcheck` on the real samples: every box comes back within 1 mm / 1e-4 rad."""

from __future__ import annotations

import json

import pytest

from ceal_pipeline.cli import main
from ceal_pipeline_tests.frames.conftest import DATASETS

AIMOTIVE = DATASETS / "aimotive-sequence"
NUSCENES = DATASETS / "nuscenes-sample"
NUSCENES_INFO = "n015-2018-07-24-11-22-45+0800.pkl"

SAMPLES = {
    "aimotive": (AIMOTIVE, ["--source", "aimotive", "--root", str(AIMOTIVE)], 44, 349),
    "nuscenes": (NUSCENES, ["--source", "mmdet3d", "--root", str(NUSCENES), "--info", NUSCENES_INFO], 1, 43),
}


@pytest.mark.parametrize("fmt", ["openlabel", "mmdet3d"])
@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_selfcheck_returns_every_box_of_the_sample_unchanged(sample, fmt, capsys):
    root, args, frames, boxes = SAMPLES[sample]
    if not root.is_dir():
        pytest.skip(f"{root} absent (the shared datasets folder)")

    code = main(["vendor", "selfcheck", *args, "--format", fmt, "--json"])

    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["passed"]
    assert (summary["frames"], summary["boxes"], summary["boxes_returned"]) == (frames, boxes, boxes)
    assert summary["max_center_error_m"] <= 1e-3 and summary["max_size_error_m"] <= 1e-3
    assert summary["max_yaw_error_rad"] <= 1e-4


@pytest.mark.skipif(not NUSCENES.is_dir(), reason=f"{NUSCENES} absent (the shared datasets folder)")
def test_selfcheck_fails_when_the_delivery_loses_a_box(monkeypatch, capsys):
    import ceal_pipeline.export.selfcheck as selfcheck

    real = selfcheck.write_label_delivery

    def lossy(inbox, round_index, labels, **kwargs):
        frame_id, (boxes, names) = next(iter(labels.items()))
        return real(inbox, round_index, {**labels, frame_id: (boxes[1:], names[1:])}, **kwargs)

    monkeypatch.setattr(selfcheck, "write_label_delivery", lossy)

    code = main(["vendor", "selfcheck", *SAMPLES["nuscenes"][1], "--format", "openlabel", "--json"])

    summary = json.loads(capsys.readouterr().out)
    assert code == 1 and not summary["passed"] and summary["frames_lost"] == ["ca9a282c9e77460f8360f564131a8af5"]
