"""Specification that training teaches the detector something: held-out mAP after a few
epochs is clearly above that of the same detector untrained. Slow (minutes on 2 cores)."""

from __future__ import annotations

import pytest

from ceal_pipeline.detector.evaluation import evaluate_detector


@pytest.mark.slow
def test_training_lifts_held_out_map_clearly_above_the_untrained_detector(tmp_path):
    """Learning, not just running: a few epochs on 32 frames must find held-out objects."""
    from ceal_pipeline.detector.builder import build_detector, load_config
    from ceal_pipeline.detector.checkpoints import load_detector
    from ceal_pipeline.detector.training import train_detector
    from ceal_pipeline_tests.detector.conftest import make_frames

    config = load_config("bevfusion_tiny", **{"model.camera_branch": None, "model.fuser": None,
                                              "data.image_size": None, "train.lr": 4e-3})
    train = make_frames(tmp_path / "train", 32, seed=10, cameras=False)
    held_out = make_frames(tmp_path / "held_out", 8, seed=11, cameras=False)
    checkpoint = train_detector(train, config, tmp_path / "ckpt", epochs=6, seed=0, device="cpu")
    trained, _ = load_detector(checkpoint.path, device="cpu")
    untrained = build_detector(config, seed=0)
    trained_map = evaluate_detector(trained, held_out, device="cpu")["mAP"]
    untrained_map = evaluate_detector(untrained, held_out, device="cpu")["mAP"]
    assert trained_map > untrained_map + 0.2, f"trained mAP {trained_map:.3f}, untrained {untrained_map:.3f}"
