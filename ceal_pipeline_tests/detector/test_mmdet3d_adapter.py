"""Specification of the brought mmdet3d detector: official configs, MC-Dropout in their box heads, on the CPU.

The configs are mmdet3d's own, as the installed mmdet3d ships them
(``mmdet3d/.mim/configs``): PointPillars for KITTI's three classes
(``Anchor3DHead``) and CenterPoint pillar02 for nuScenes (``CenterHead``),
randomly initialised. A random PointPillars' class scores sit near its prior
(sigmoid 0.01), so it is scored with a low detection threshold to have objects.
"""

from __future__ import annotations

import math

from pathlib import Path

import numpy as np
import pytest

from ceal_pipeline.frames.points import load_points
from ceal_pipeline_tests.detector.conftest import make_frames

pytestmark = pytest.mark.mmdet3d

POINTPILLARS = "pointpillars/pointpillars_hv_secfpn_8xb6-160e_kitti-3d-3class.py"
CENTERPOINT = "centerpoint/centerpoint_pillar02_second_secfpn_head-circlenms_8xb4-cyclic-20e_nus-3d.py"
THRESHOLD = {POINTPILLARS: 0.005, CENTERPOINT: 0.1}
FUNCTIONS = ("localization_entropy", "heatmap_entropy", "localization_and_heatmap_entropy",
             "localization_and_class_entropy")


def official_config(name: str) -> Path:
    import mmdet3d

    return Path(mmdet3d.__file__).parent / ".mim" / "configs" / name


def _build(name: str, seed: int = 0, **kwargs):
    from ceal_pipeline.detector.mmdet3d_adapter import build_mmdet3d_detector

    return build_mmdet3d_detector(official_config(name), seed=seed, score_threshold=THRESHOLD[name], **kwargs)


def _score(detector, frames, seed: int = 0, mode: str = "head"):
    from ceal_pipeline.detector.mmdet3d_scoring import score_frames_mmdet3d

    return score_frames_mmdet3d(detector, frames, T=2, mode=mode, seed=seed, acquisition_fn=FUNCTIONS[0],
                                extra_acquisition_fns=FUNCTIONS[1:])


@pytest.fixture(scope="module")
def lidar_frames(tmp_path_factory):
    return make_frames(tmp_path_factory.mktemp("mmdet3d_frames"), 1, seed=3, cameras=False)


@pytest.fixture(scope="module", params=[POINTPILLARS, CENTERPOINT], ids=["pointpillars", "centerpoint"])
def scored(request, lidar_frames):
    """``(config name, detector, its scores)`` for each official config."""
    detector = _build(request.param)
    return request.param, detector, _score(detector, lidar_frames)


def test_scores_are_finite_for_every_acquisition_function_and_objects_are_detected(scored):
    _, _, scores = scored
    assert scores.n_detections.min() > 0
    for name in FUNCTIONS:
        assert np.isfinite(scores.scores_by_fn[name]).all()
    assert scores.forward_passes == 2 and scores.backbone_passes == 1
    (objects,) = scores.objects
    assert objects.boxes.values.shape[1] == 7 and np.isfinite(objects.localization_entropy).all()
    assert (objects.box_std > 0).any()  # the T passes differ: dropout is in the head
    # the selection stage's diversity reads an embedding per frame: mean and max of the neck's channels
    assert scores.embeddings.shape == (1, 2 * 384) and np.isfinite(scores.embeddings.astype(np.float32)).all()


def test_dropout_reaches_the_classification_branch_so_class_scores_vary_over_the_passes(scored, lidar_frames):
    import torch

    from ceal_pipeline.detector.mmdet3d_scoring import mc_passes

    _, detector, _ = scored
    points = [detector.prepare_points(load_points(lidar_frames[0]))]
    outputs, peaks, _ = mc_passes(detector, points, T=2, mode="head", seed=0)
    assert outputs.heatmap_probs.shape[0] == 2 and len(peaks.label) == outputs.box_samples.shape[1]
    assert not np.array_equal(outputs.heatmap_probs[0], outputs.heatmap_probs[1])
    class_probs = outputs.peak_class_probs()  # (T, K, C) at the objects
    assert class_probs.shape[0] == 2 and np.allclose(class_probs.sum(axis=-1), 1.0)
    assert torch.is_tensor(peaks.label)


def test_scores_are_deterministic_for_a_seed_and_change_with_the_dropout_seed(scored, lidar_frames):
    _, detector, scores = scored
    again = _score(detector, lidar_frames, seed=0)
    for name in FUNCTIONS:
        np.testing.assert_array_equal(again.scores_by_fn[name], scores.scores_by_fn[name])
    assert not np.array_equal(_score(detector, lidar_frames, seed=1).scores, scores.scores)


def test_other_weights_give_other_scores(scored, lidar_frames):
    name, _, scores = scored
    other = _score(_build(name, seed=1), lidar_frames)
    assert not np.allclose(other.scores_by_fn["heatmap_entropy"], scores.scores_by_fn["heatmap_entropy"])
    assert not np.allclose(other.scores, scores.scores)


def test_checkpoint_saved_and_reloaded_gives_the_same_scores(scored, lidar_frames, tmp_path):
    from ceal_pipeline.detector.mmdet3d_adapter import load_mmdet3d_checkpoint, save_checkpoint

    name, detector, scores = scored
    version = save_checkpoint(detector, tmp_path / "team.pth")
    reloaded, reloaded_version = load_mmdet3d_checkpoint(tmp_path / "team.pth")
    assert reloaded_version == version
    np.testing.assert_array_equal(_score(reloaded, lidar_frames).scores, scores.scores)
    # the weights also load into a detector built from the config with another seed (detector.checkpoint)
    from_config = _build(name, seed=5, checkpoint=tmp_path / "team.pth")
    np.testing.assert_array_equal(_score(from_config, lidar_frames).scores, scores.scores)


def test_head_mode_gives_the_scores_of_the_full_network(lidar_frames):
    detector = _build(POINTPILLARS)
    head, full = _score(detector, lidar_frames, mode="head"), _score(detector, lidar_frames, mode="full")
    np.testing.assert_allclose(full.scores, head.scores, rtol=1e-6)
    assert (head.backbone_passes, full.backbone_passes) == (1, 2)


def _mapped(mapping) -> dict[str, str | None]:
    """Model class -> the ontology class it is scored as (None: unmapped)."""
    return {name: (mapping.ontology[label] if label >= 0 else None)
            for name, label in zip(mapping.model_classes, mapping.to_ontology)}


def test_model_classes_are_mapped_explicitly_and_unmapped_ones_reported(scored, caplog):
    name, detector, scores = scored
    mapping = detector.class_mapping
    if name == POINTPILLARS:
        assert _mapped(mapping) == {"Pedestrian": "pedestrian", "Cyclist": "cyclist", "Car": "car"}
        assert mapping.unmapped == ()
        assert [c for i, c in enumerate(mapping.ontology) if i not in mapping.to_ontology] == ["truck"]  # untrained
    else:
        assert mapping.unmapped == ("barrier", "traffic_cone")
        assert _mapped(mapping)["construction_vehicle"] == "truck"
    # explanations name the model's classes, unmapped ones included, never dropping them
    (explanation,) = scores.explanations()
    assert set(explanation.class_counts) <= set(detector.class_names)
    assert sum(explanation.class_counts.values()) == scores.n_detections[0]


def test_class_map_overrides_the_table_and_rejects_a_class_outside_the_ontology():
    from ceal_pipeline.detector.mmdet3d_adapter import ClassMapping

    mapping = ClassMapping.build(["car", "barrier", "bus"], {"barrier": None, "bus": "car"})
    assert _mapped(mapping) == {"car": "car", "barrier": None, "bus": "car"}
    assert mapping.unmapped == ("barrier",) and mapping.model_label_of(0) == 0
    with pytest.raises(ValueError, match="not an ontology class"):
        ClassMapping.build(["car"], {"car": "sedan"})


def test_fine_tune_changes_the_weights_through_the_models_own_loss_and_frozen_keeps_them(lidar_frames):
    import torch

    from ceal_pipeline.detector.mmdet3d_training import fine_tune

    detector = _build(POINTPILLARS)
    before = {k: v.clone() for k, v in detector.model.state_dict().items()}
    assert fine_tune(detector, lidar_frames, mode="frozen").steps == 0
    assert all(torch.equal(before[k], v) for k, v in detector.model.state_dict().items())
    report = fine_tune(detector, lidar_frames, epochs=1, seed=0, max_steps=1)
    assert report.steps == 1 and np.isfinite(report.epoch_losses).all()
    assert report.boxes_left_out.get("truck", 0) == sum(int((f.labels == 1).sum()) for f in lidar_frames)
    changed = [k for k, v in detector.model.state_dict().items() if v.is_floating_point()
               and not torch.equal(before[k], v)]
    assert any(k.startswith("bbox_head.conv_cls") for k in changed)


def test_ceal_bench_mc_prints_head_only_and_full_network_figures_for_an_official_config(capsys, tmp_path):
    import json

    from ceal_pipeline.cli import main as ceal

    assert ceal(["bench", "mc", "--config", str(official_config(POINTPILLARS)), "--frames", "2", "--passes", "2",
                 "--device", "cpu", "--data-dir", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["detector"] == "mmdet3d VoxelNet / Anchor3DHead" and result["weights"] == "random init"
    assert result["frames"] == 2 and result["T"] == 2
    assert (result["backbone_passes_head"], result["backbone_passes_full"]) == (2, 4)
    assert result["head_only_s_per_frame"] > 0 and result["full_s_per_frame"] > 0 and result["speedup"] > 0
    assert result["max_abs_score_diff"] < 1e-6


def test_model_store_runs_a_round_with_the_teams_mmdet3d_detector_frozen_then_fine_tuned(lidar_frames, tmp_path):
    from ceal_pipeline.defs.resources import ModelStoreResource
    from ceal_pipeline.detector.mmdet3d_adapter import save_checkpoint
    from ceal_pipeline.frames.records import DETECTION_CLASSES

    team_version = save_checkpoint(_build(POINTPILLARS, seed=3), tmp_path / "team.pth")
    store = ModelStoreResource(model_dir=str(tmp_path / "models"), detector_config=str(official_config(POINTPILLARS)),
                               device="cpu", loader_workers=0, detector_checkpoint=str(tmp_path / "team.pth"),
                               detector_train="frozen")
    frozen = store.train(lidar_frames, 0, epochs=1, seed=0)
    assert frozen.version == team_version  # frozen: the team's weights as they are
    model, version = store.load(str(frozen.path))
    assert version == team_version and model.class_names == ("Pedestrian", "Cyclist", "Car")
    scores = store.score(model, lidar_frames, mc_passes=2, mode="head", seed=0, aggregate="mean", batch_size=1,
                         acquisition_fn="heatmap_entropy")
    assert scores.frame_ids == [f.frame_id for f in lidar_frames] and np.isfinite(scores.scores).all()
    for boxes, names, confidences in store.predict(model, lidar_frames):
        assert set(names) <= set(DETECTION_CLASSES) and len(boxes) == len(names) == len(confidences)

    tuned = store.model_copy(update={"detector_train": "fine_tune"}).train(
        lidar_frames, 1, epochs=1, seed=0, init_checkpoint=str(frozen.path))
    assert tuned.version != team_version and np.isfinite(tuned.metrics["loss"])


def test_a_rounds_63_bit_seed_draws_each_pass_its_own_dropout_mask():
    # The pipeline seeds scoring with derive_seed (up to 2**63 - 1); a pass's mask must not overflow.
    from ceal_pipeline.detector.mmdet3d_mc_heads import dropout_mask

    seed = 2**63 - 1
    first, again, second = (dropout_mask((4, 8, 8), 0.5, seed, t) for t in (0, 0, 1))
    assert (first == again).all() and not (first == second).all()
    assert set(first.unique().tolist()) <= {0.0, 2.0}


def test_an_anchor_pass_with_an_overflowing_size_delta_still_decodes_a_finite_box():
    # A young model's dropout pass can regress a size delta of 1e3: exp(1e3) * anchor is inf.
    import torch
    from mmdet3d.registry import TASK_UTILS

    from ceal_pipeline.detector.builder import register_modules
    from ceal_pipeline.detector.mmdet3d_mc_heads import AnchorHeadMC

    register_modules()

    class _Head:  # what AnchorHeadMC reads of an Anchor3DHead
        use_sigmoid_cls, box_code_size, dir_offset, dir_limit_offset = True, 7, -0.7854, 0.0
        bbox_coder = TASK_UTILS.build(dict(type="DeltaXYZWLHRBBoxCoder"))

    head = AnchorHeadMC(_Head())
    head.anchors = lambda outputs: torch.tensor([[10.0, 0.0, -1.0, 3.9, 1.6, 1.56, 0.0]])
    deltas = torch.zeros(1, 7, 1, 1)
    deltas[0, 5] = 1e3  # the height
    boxes = head.decode_all([None, deltas, None], torch.tensor([0]), torch.tensor([0]), None)
    assert torch.isfinite(boxes).all() and boxes[0, 5] == pytest.approx(1.56 * math.exp(6.0), rel=1e-5)
