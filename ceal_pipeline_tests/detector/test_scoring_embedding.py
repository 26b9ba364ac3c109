"""Specification: the scoring pass embeds each frame it scores (pooled BEV features, float16),
so the selection stage can rank frames while the detector still finds nothing."""

from __future__ import annotations

import numpy as np
import pytest

from ceal_pipeline.core.selection import SelectionCandidates, SelectionPolicy, select_batch
from ceal_pipeline.detector.builder import build_detector
from ceal_pipeline_tests.detector.batches import load_batch
from ceal_pipeline.detector.scoring import bev_embedding, score_frames


@pytest.fixture(scope="module")
def silent_detector():
    # No peak reaches a threshold above 1: every frame is a frame without detections (a cold start).
    return build_detector("bevfusion_tiny", seed=1, **{"model.bbox_head.score_threshold": 1.1})


def test_the_embedding_is_the_pooled_bev_features_of_the_scoring_pass_in_both_modes(silent_detector, frames):
    scored = {mode: score_frames(silent_detector, frames[:3], T=2, mode=mode, seed=4, device="cpu", num_workers=0)
              for mode in ("head", "full")}
    batch = load_batch(frames[:3], class_names=silent_detector.class_names,
                       point_cloud_range=silent_detector.point_cloud_range,
                       image_size=silent_detector.ceal_config["data"]["image_size"])
    expected = bev_embedding(silent_detector.eval().extract_bev(batch)).detach().numpy()
    channels = expected.shape[1] // 2
    np.testing.assert_allclose(expected[:, :channels].mean(), silent_detector.extract_bev(batch).mean().item(),
                               rtol=1e-4)  # the first half is the per-channel mean
    for mode, result in scored.items():
        assert result.embeddings.dtype == np.float16 and result.embeddings.shape == expected.shape, mode
        np.testing.assert_allclose(result.embeddings.astype(np.float32), expected, rtol=2e-3, atol=2e-3, err_msg=mode)
    assert np.ptp(scored["head"].embeddings.astype(np.float32), axis=0).max() > 0  # frames differ


def test_a_cold_start_round_is_decided_by_diversity_on_the_embedding_not_by_frame_id(silent_detector, frames):
    scored = score_frames(silent_detector, frames, T=2, seed=0, device="cpu", num_workers=0)
    assert scored.scored_at_empty_floor.all() and np.ptp(scored.scores) == 0  # every value is the floor
    candidates = SelectionCandidates(np.asarray(scored.frame_ids), scored.scores, embeddings=scored.embeddings)
    chosen = select_batch(candidates, SelectionPolicy(), k=3)
    assert chosen.decided_by == ("diversity",) * 3
    assert chosen.summary()["decided_by"] == "diversity"
