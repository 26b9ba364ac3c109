"""Specification of detection-aware scoring: ``score_frames(acquisition_fn=...)`` reads the
head's heatmap from the same MC-Dropout passes, so frames without detections get a value
from the heatmap, while the default stays CEAL's localization entropy, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch.nn.functional as F

from ceal_pipeline.core.detection_acquisition import DETECTION_ACQUISITION_FUNCTIONS
from ceal_pipeline.core.heatmap_entropy import HEATMAP_TOP_K
from ceal_pipeline.core.localization import aggregate_per_frame, minimum_localization_entropy
from ceal_pipeline.detector.builder import build_detector
from ceal_pipeline_tests.detector.batches import load_batch
from ceal_pipeline.detector.scoring import mc_head_outputs_and_embedding, mc_outputs_to_numpy, score_frames


@pytest.fixture(scope="module")
def detector():
    # Threshold 0 and 8 peaks a frame: the untrained detector "detects" objects.
    return build_detector("bevfusion_tiny", seed=1, **{"model.bbox_head.score_threshold": 0.0,
                                                       "model.bbox_head.max_detections": 8})


@pytest.fixture(scope="module")
def silent_detector():
    # No peak reaches a threshold above 1: every frame is a frame without detections.
    return build_detector("bevfusion_tiny", seed=1, **{"model.bbox_head.score_threshold": 1.1})


def _batch(model, frames):
    return load_batch(frames, class_names=model.class_names, point_cloud_range=model.point_cloud_range,
                      image_size=model.ceal_config["data"]["image_size"])


def test_every_acquisition_function_agrees_between_head_only_and_full_network_mc_dropout(detector, frames):
    masks = detector.bbox_head.draw_mc_masks(2, (80, 80), seed=5, device="cpu")
    batch = _batch(detector, frames[:2])
    head = mc_outputs_to_numpy(*mc_head_outputs_and_embedding(detector, batch, masks, "head")[:3])
    full = mc_outputs_to_numpy(*mc_head_outputs_and_embedding(detector, batch, masks, "full")[:3])
    for name, fn in DETECTION_ACQUISITION_FUNCTIONS.items():
        np.testing.assert_allclose(fn(head), fn(full), rtol=1e-4, atol=1e-4, err_msg=name)

    scored = {mode: score_frames(detector, frames[:2], T=2, mode=mode, seed=5, device="cpu",
                                 acquisition_fn="localization_and_heatmap_entropy") for mode in ("head", "full")}
    np.testing.assert_allclose(scored["head"].scores, scored["full"].scores, rtol=1e-4, atol=1e-4)


def test_the_default_is_localization_entropy_unchanged_bit_for_bit(detector, frames):
    default = score_frames(detector, frames[:3], T=4, seed=2, device="cpu")
    named = score_frames(detector, frames[:3], T=4, seed=2, device="cpu", acquisition_fn="localization_entropy")
    entropies = np.concatenate([o.localization_entropy for o in default.objects])
    index = np.concatenate([np.full(len(o.labels), i) for i, o in enumerate(default.objects)])
    np.testing.assert_array_equal(default.scores, aggregate_per_frame(entropies, index, 3,
                                                                      empty=minimum_localization_entropy()))
    np.testing.assert_array_equal(default.scores, named.scores)
    assert default.acquisition_fn == "localization_entropy"
    np.testing.assert_array_equal(default.n_detections, [8, 8, 8])
    assert not default.scored_at_empty_floor.any()


def test_a_frame_without_detections_gets_its_heatmap_entropy_not_a_constant(silent_detector, frames):
    heatmap = score_frames(silent_detector, frames[:3], T=3, device="cpu", acquisition_fn="heatmap_entropy")
    np.testing.assert_array_equal(heatmap.n_detections, [0, 0, 0])
    assert heatmap.acquisition_fn == "heatmap_entropy" and not heatmap.scored_at_empty_floor.any()
    assert np.ptp(heatmap.scores) > 0, "frames with different heatmaps must score differently"

    # An independent reading of the same number: the binary cross-entropy of p with
    # itself is its binary entropy; summed over classes, top-k cells, averaged.
    masks = silent_detector.bbox_head.draw_mc_masks(3, (80, 80), seed=0, device="cpu")
    logits, _, _, _ = mc_head_outputs_and_embedding(silent_detector, _batch(silent_detector, frames[:3]), masks, "head")
    p = logits.sigmoid().double()  # the sigmoid in the model's float32, as scoring takes it
    cells = F.binary_cross_entropy(p, p, reduction="none").sum(dim=1).flatten(1)
    expected = cells.topk(HEATMAP_TOP_K, dim=1).values.mean(dim=1)
    np.testing.assert_allclose(heatmap.scores, expected.numpy(), rtol=1e-9)

    # Nothing to localize: the combination is the heatmap entropy alone.
    combined = score_frames(silent_detector, frames[:3], T=3, device="cpu",
                            acquisition_fn="localization_and_heatmap_entropy")
    np.testing.assert_allclose(combined.scores, heatmap.scores, rtol=1e-12)

    # The localization-only functions still give every such frame the floor, and say so.
    for name in ("localization_entropy", "localization_and_class_entropy"):
        floor = score_frames(silent_detector, frames[:3], T=3, device="cpu", acquisition_fn=name)
        np.testing.assert_allclose(floor.scores, minimum_localization_entropy())
        assert floor.scored_at_empty_floor.all()


def test_class_entropy_is_read_at_each_detection_s_heatmap_peak(detector, frames):
    result = score_frames(detector, frames[:2], T=3, seed=4, device="cpu",
                          acquisition_fn="localization_and_class_entropy")
    localization = score_frames(detector, frames[:2], T=3, seed=4, device="cpu")
    # Four classes: the class entropy of a detection lies in [0, log 4] nats.
    extra = result.scores - localization.scores
    assert ((extra >= 0) & (extra <= np.log(4) + 1e-9)).all() and (extra > 0).any()


def test_scoring_rejects_unknown_acquisition_functions_and_an_unused_empty_value(detector, frames):
    with pytest.raises(ValueError, match="choose one of"):
        score_frames(detector, frames[:1], T=2, device="cpu", acquisition_fn="entropy")
    with pytest.raises(ValueError, match="leave empty=None"):
        score_frames(detector, frames[:1], T=2, device="cpu", acquisition_fn="heatmap_entropy", empty=0.0)


def test_extra_acquisition_functions_come_from_the_same_passes_and_equal_scoring_each_alone(detector, frames):
    names = ["localization_entropy", "heatmap_entropy", "localization_and_heatmap_entropy"]
    together = score_frames(detector, frames[:2], T=2, seed=3, device="cpu", num_workers=0,
                            acquisition_fn=names[0], extra_acquisition_fns=names[1:])
    assert list(together.scores_by_fn) == names and together.forward_passes == 2 * 2
    np.testing.assert_array_equal(together.scores, together.scores_by_fn[names[0]])
    for name in names:
        alone = score_frames(detector, frames[:2], T=2, seed=3, device="cpu", num_workers=0, acquisition_fn=name)
        np.testing.assert_allclose(together.scores_by_fn[name], alone.scores, rtol=0, atol=1e-12)


def test_a_rank_combination_ranks_the_frames_of_the_whole_call_not_of_each_batch(detector, frames):
    from ceal_pipeline.core.ranks import rank_normalised_combination

    name = "localization_and_heatmap_ranks"
    kwargs = dict(T=3, seed=4, device="cpu", acquisition_fn=name, extra_acquisition_fns=["localization_and_heatmap_entropy"])
    by_one = score_frames(detector, frames[:4], batch_size=1, **kwargs)
    together = score_frames(detector, frames[:4], batch_size=4, **kwargs)
    terms = by_one.terms_by_fn[name]
    np.testing.assert_allclose(terms["localization"] + terms["heatmap"],
                               by_one.scores_by_fn["localization_and_heatmap_entropy"], rtol=1e-9)
    # One frame per forward pass, yet each value is the frame's place among all four.
    np.testing.assert_allclose(by_one.scores, rank_normalised_combination(terms, by_one.term_weights_by_fn[name]))
    np.testing.assert_allclose(by_one.scores, together.scores, atol=1e-12)
    assert by_one.term_weights_by_fn == {name: {"localization": 1.0, "heatmap": 1.0}}
    assert "localization_and_heatmap_entropy" not in by_one.terms_by_fn  # a plain sum keeps no terms
