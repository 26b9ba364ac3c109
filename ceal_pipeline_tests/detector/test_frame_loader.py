"""Specification of the prefetching frame loader: worker processes change where frames are
decoded, never the batches, the scores, the trained weights or the errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from ceal_pipeline.detector.builder import build_detector, load_config
from ceal_pipeline_tests.detector.batches import load_batch
from ceal_pipeline.detector.loader import BatchOrder, FrameDataset, check_repeats, default_num_workers, frame_loader
from ceal_pipeline.detector.scoring import score_frames
from ceal_pipeline.detector.training import train_detector
from ceal_pipeline.frames.points import LidarReadError


@pytest.fixture(scope="module")
def detector():
    # Threshold 0 and a fixed number of peaks: an untrained detector then still
    # "detects" objects, so there is something to score.
    return build_detector("bevfusion_tiny", seed=1, **{"model.bbox_head.score_threshold": 0.0,
                                                       "model.bbox_head.max_detections": 8})


def test_scores_are_identical_with_and_without_loader_workers(detector, frames):
    in_process = score_frames(detector, frames[:5], T=4, seed=3, batch_size=2, device="cpu", num_workers=0)
    with_workers = score_frames(detector, frames[:5], T=4, seed=3, batch_size=2, device="cpu", num_workers=2)
    assert with_workers.frame_ids == in_process.frame_ids == [f.frame_id for f in frames[:5]]
    np.testing.assert_array_equal(with_workers.scores, in_process.scores)
    for a, b in zip(with_workers.objects, in_process.objects):
        np.testing.assert_array_equal(a.boxes.values, b.boxes.values)
        np.testing.assert_array_equal(a.localization_entropy, b.localization_entropy)
    assert in_process.forward_passes == with_workers.forward_passes == 5 * 4


def test_loader_batches_are_the_in_process_batches_in_the_given_order(detector, frames):
    order = BatchOrder(len(frames), batch_size=4, order=[5, 0, 3, 1, 4, 2])
    dataset = FrameDataset.for_model(frames, detector, with_labels=True)
    batches = list(frame_loader(dataset, batch_order=order, num_workers=2))
    assert [b.frame_ids for b in batches] == [[frames[i].frame_id for i in (5, 0, 3, 1)],
                                              [frames[i].frame_id for i in (4, 2)]]
    for batch, chunk in zip(batches, ([5, 0, 3, 1], [4, 2])):
        expected = load_batch([frames[i] for i in chunk], class_names=detector.class_names,
                              point_cloud_range=detector.point_cloud_range,
                              image_size=detector.ceal_config["data"]["image_size"], with_labels=True)
        for name in expected.TENSOR_FIELDS:
            got, want = getattr(batch, name), getattr(expected, name)
            assert len(got) == len(want) == len(chunk), name
            assert all(torch.equal(g, w) for g, w in zip(got, want)), name


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_worker_that_cannot_read_a_frame_names_the_frame_and_file(detector, frames, tmp_path, num_workers):
    missing = tmp_path / "gone.bin"
    broken_lidar = dataclasses.replace(frames[3], lidar_path=str(missing))
    with pytest.raises(LidarReadError) as lidar_error:
        score_frames(detector, [*frames[:3], broken_lidar], T=2, batch_size=1, device="cpu",
                     num_workers=num_workers)
    assert frames[3].frame_id in str(lidar_error.value) and str(missing) in str(lidar_error.value)

    corrupt = tmp_path / "front.png"
    corrupt.write_bytes(b"not an image")
    camera = dataclasses.replace(frames[1].cameras[0], path=str(corrupt))
    broken_camera = dataclasses.replace(frames[1], cameras=(camera,))
    with pytest.raises(FileNotFoundError) as camera_error:
        score_frames(detector, [frames[0], broken_camera], T=2, batch_size=1, device="cpu",
                     num_workers=num_workers)
    assert frames[1].frame_id in str(camera_error.value) and str(corrupt) in str(camera_error.value)


def test_trained_weights_do_not_depend_on_loader_workers(frames, tmp_path):
    config = load_config("bevfusion_tiny", **{"model.camera_branch": None, "model.fuser": None,
                                              "data.image_size": None})
    # Two epochs of two steps: the persistent workers must follow each epoch's new frame order.
    runs = [train_detector(frames[:2], config, tmp_path / f"workers{n}", epochs=2, seed=5, device="cpu",
                           batch_size=1, num_workers=n) for n in (0, 1)]
    assert runs[0].version == runs[1].version
    assert runs[0].metrics["loss"] == runs[1].metrics["loss"]


def test_reading_frames_leaves_the_callers_torch_random_stream_untouched(detector, frames):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    for num_workers in (0, 1):
        for _ in frame_loader(FrameDataset.for_model(frames[:2], detector), batch_size=1, num_workers=num_workers):
            pass
    assert torch.equal(torch.get_rng_state(), state)


def test_batch_order_takes_only_a_permutation_of_the_frames():
    order = BatchOrder(5, batch_size=2)
    assert list(order) == [[0, 1], [2, 3], [4]] and len(order) == 3
    order.set_order([4, 3, 2, 1, 0])
    assert list(order) == [[4, 3], [2, 1], [0]]
    for bad in ([0, 1, 2, 3], [0, 0, 1, 2, 3], [0, 1, 2, 3, 5]):
        with pytest.raises(ValueError, match="permutation of range"):
            order.set_order(bad)


def test_batch_order_with_repeats_visits_each_frame_its_count_per_pass():
    order = BatchOrder(4, batch_size=3, repeats=[1, 3, 1, 2])
    assert order.pass_length == 7 and len(order) == 3
    assert order.expanded().tolist() == [0, 1, 1, 1, 2, 3, 3]
    assert list(order) == [[0, 1, 1], [1, 2, 3], [3]]  # the default order: the expanded one
    order.set_order([3, 1, 0, 1, 3, 2, 1])
    assert list(order) == [[3, 1, 0], [1, 3, 2], [1]]
    assert np.bincount(np.concatenate([np.asarray(b) for b in order]), minlength=4).tolist() == [1, 3, 1, 2]
    for bad in ([0, 1, 2, 3], [0, 1, 1, 1, 2, 3, 4], [0, 1, 1, 2, 2, 3, 3], [0, 1, 1, 1, 2, 3, 3, 3]):
        with pytest.raises(ValueError, match=r"exactly repeats\[i\] times"):
            order.set_order(bad)


def test_batch_order_can_cut_a_pass_short_after_its_first_batches():
    order = BatchOrder(5, batch_size=2)
    order.set_order([4, 3, 2, 1, 0], batches=2)
    assert list(order) == [[4, 3], [2, 1]] and len(order) == 2
    order.set_order([4, 3, 2, 1, 0])  # the next pass is whole again
    assert list(order) == [[4, 3], [2, 1], [0]] and len(order) == 3
    order.set_order([0, 1, 2, 3, 4], batches=3)
    assert list(order) == [[0, 1], [2, 3], [4]]
    for bad in (0, -1, 4, 1.5, True):
        with pytest.raises(ValueError, match=r"batches must be a whole number in \[1, 3\]"):
            order.set_order([0, 1, 2, 3, 4], batches=bad)
    assert list(order) == [[0, 1], [2, 3], [4]]  # a refused order changes nothing


def test_batch_order_without_repeats_or_with_ones_is_the_permutation_order():
    plain, ones = BatchOrder(5, batch_size=2), BatchOrder(5, batch_size=2, repeats=[1] * 5)
    assert list(plain) == list(ones) == [[0, 1], [2, 3], [4]]
    assert plain.expanded().tolist() == ones.expanded().tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="permutation of range"):
        ones.set_order([0, 0, 1, 2, 3])


@pytest.mark.parametrize("repeats, message", [
    ([1, 0, 1], r"repeats must be >= 1 for every frame .*do not pass it.*\[0\] at frame indices \[1\]"),
    ([1, -2, 1], r"repeats must be >= 1 for every frame .*\[-2\] at frame indices \[1\]"),
    ([1, 2], r"one count per frame \(3\), got 2.*as long as the frames, or None"),
    ([[1, 1, 1]], r"one count per frame \(3\)"),
    ([1, 1.5, 1], r"whole numbers >= 1"),
])
def test_batch_order_refuses_invalid_repeats_naming_the_fix(repeats, message):
    with pytest.raises(ValueError, match=message):
        BatchOrder(3, batch_size=2, repeats=repeats)
    with pytest.raises(ValueError, match=message):
        check_repeats(repeats, 3)


def test_loader_starts_no_more_workers_than_batches_and_none_for_a_single_batch(detector, frames):
    dataset = FrameDataset.for_model(frames[:3], detector)
    assert frame_loader(dataset, batch_size=2, num_workers=4).num_workers == 2
    assert frame_loader(dataset, batch_size=2, num_workers=0).num_workers == 0
    assert frame_loader(dataset, batch_size=3, num_workers=4).num_workers == 0
    with pytest.raises(ValueError, match="num_workers"):
        frame_loader(dataset, batch_size=2, num_workers=-1)


@pytest.mark.parametrize("cores, workers", [(1, 0), (2, 1), (4, 3), (64, 4)])
def test_default_loader_workers_leave_a_core_to_the_model(monkeypatch, cores, workers):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    assert default_num_workers() == workers
