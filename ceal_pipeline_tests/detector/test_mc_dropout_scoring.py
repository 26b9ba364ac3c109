"""Specification of MC-Dropout scoring: head-only and full-network modes agree, masks are
reproducible from the seed, and scores do not depend on batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ceal_pipeline.core.localization import aggregate_per_frame, minimum_localization_entropy
from ceal_pipeline.detector.builder import build_detector
from ceal_pipeline.detector.head import MCDropout
from ceal_pipeline_tests.detector.batches import load_batch
from ceal_pipeline.detector.scoring import mc_head_outputs_and_embedding, score_frames


@pytest.fixture(scope="module")
def detector():
    # Threshold 0 and a fixed number of peaks: an untrained detector then still
    # "detects" objects, so there is something to score.
    return build_detector("bevfusion_tiny", seed=1, **{"model.bbox_head.score_threshold": 0.0,
                                                       "model.bbox_head.max_detections": 8})


def test_head_only_and_full_network_mc_dropout_agree_for_the_same_seed(detector, frames):
    batch = load_batch(frames[:2], class_names=detector.class_names, point_cloud_range=detector.point_cloud_range,
                       image_size=detector.ceal_config["data"]["image_size"])
    masks = detector.bbox_head.draw_mc_masks(5, (80, 80), seed=7, device="cpu")
    _, peaks_head, samples_head, _ = mc_head_outputs_and_embedding(detector, batch, masks, "head")
    _, peaks_full, samples_full, _ = mc_head_outputs_and_embedding(detector, batch, masks, "full")
    assert torch.equal(peaks_head.cell, peaks_full.cell) and torch.equal(peaks_head.label, peaks_full.label)
    assert samples_head.shape == (5, 16, 7)
    assert torch.allclose(samples_head, samples_full, atol=1e-5, rtol=1e-5)
    assert samples_head.std(dim=0).max() > 0, "dropout must make the T passes differ"

    head = score_frames(detector, frames[:3], T=5, mode="head", seed=7, device="cpu")
    full = score_frames(detector, frames[:3], T=5, mode="full", seed=7, device="cpu")
    np.testing.assert_allclose(head.scores, full.scores, rtol=1e-4, atol=1e-4)
    assert head.backbone_passes == 3 and full.backbone_passes == 15
    assert head.forward_passes == full.forward_passes == 15


def test_scores_do_not_depend_on_batch_size_or_batch_neighbours(detector, frames):
    one = score_frames(detector, frames[:4], T=4, seed=3, batch_size=1, device="cpu")
    four = score_frames(detector, frames[:4], T=4, seed=3, batch_size=4, device="cpu")
    alone = score_frames(detector, frames[2:3], T=4, seed=3, device="cpu")
    np.testing.assert_allclose(one.scores, four.scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(one.scores[2], alone.scores[0], rtol=1e-5, atol=1e-5)


def test_seed_fixes_the_scores_and_a_new_seed_changes_them(detector, frames):
    a = score_frames(detector, frames[:2], T=4, seed=11, device="cpu")
    b = score_frames(detector, frames[:2], T=4, seed=11, device="cpu")
    c = score_frames(detector, frames[:2], T=4, seed=12, device="cpu")
    np.testing.assert_array_equal(a.scores, b.scores)
    assert not np.allclose(a.scores, c.scores)


def test_frame_score_is_the_aggregate_of_its_objects_localization_entropy(detector, frames):
    for how in ("mean", "max", "sum"):
        result = score_frames(detector, frames[:3], T=4, seed=0, aggregate=how, device="cpu")
        entropies = np.concatenate([o.localization_entropy for o in result.objects])
        index = np.concatenate([np.full(len(o.labels), i) for i, o in enumerate(result.objects)])
        expected = aggregate_per_frame(entropies, index, 3, how=how, empty=minimum_localization_entropy())
        np.testing.assert_allclose(result.scores, expected)
        assert result.frame_ids == [f.frame_id for f in frames[:3]]
        for objects in result.objects:
            assert objects.boxes.values.shape == objects.box_std.shape == (len(objects.labels), 7)
            assert (objects.box_std >= 0).all() and ((objects.confidences >= 0) & (objects.confidences <= 1)).all()


def test_frame_without_detections_scores_as_perfectly_certain(frames):
    silent = build_detector("bevfusion_tiny", **{"model.bbox_head.score_threshold": 1.1})
    result = score_frames(silent, frames[:2], T=3, device="cpu")
    assert [len(o.labels) for o in result.objects] == [0, 0]
    np.testing.assert_allclose(result.scores, minimum_localization_entropy())
    assert [e.at_empty_floor for e in result.explanations()] == [True, True]
    assert [e.n_detections for e in result.explanations()] == [0, 0]


def test_each_scored_frame_is_explained_by_its_most_uncertain_objects(detector, frames):
    result = score_frames(detector, frames[:2], T=4, seed=0, aggregate="max", device="cpu")
    for objects, explanation, score in zip(result.objects, result.explanations(), result.scores):
        assert explanation.n_detections == len(objects.labels) == 8  # max_detections, threshold 0
        assert sum(explanation.class_counts.values()) == 8 and not explanation.at_empty_floor
        assert explanation.aggregate == "max" and explanation.acquisition_fn == "localization_entropy"
        entropies = [o.localization_entropy for o in explanation.most_uncertain]
        assert len(entropies) == 3 and entropies == sorted(entropies, reverse=True)
        assert entropies[0] == pytest.approx(score)  # the max aggregate is the top object's entropy
        assert all(o.class_name in detector.class_names for o in explanation.most_uncertain)


def test_scoring_rejects_unknown_mode_and_aggregation(detector, frames):
    with pytest.raises(ValueError, match="mode"):
        score_frames(detector, frames[:1], T=2, mode="backbone")
    with pytest.raises(ValueError, match="aggregation"):
        score_frames(detector, frames[:1], T=2, aggregate="median")


@settings(max_examples=30, deadline=None)
@given(p=st.floats(0.0, 0.9), seed=st.integers(0, 2**31 - 1))
def test_dropout_masks_are_reproducible_and_keep_the_expected_activation(p, seed):
    dropout = MCDropout(p)
    masks = dropout.draw_masks(4, (8, 32, 32), seed, "cpu")
    assert torch.equal(masks, dropout.draw_masks(4, (8, 32, 32), seed, "cpu"))
    kept = masks[masks != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1.0 / (1.0 - p)))
    # Inverted dropout keeps E[mask] = 1, so the MC mean matches the deterministic output.
    assert abs(masks.mean().item() - 1.0) < 6.0 * (p / (1.0 - p)) ** 0.5 / (masks.numel() ** 0.5) + 1e-6
