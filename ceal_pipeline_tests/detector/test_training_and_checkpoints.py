"""Specification of detector training and checkpoints: resumable to the bit, loadable with
``weights_only=True``, versioned by content."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ceal_pipeline.detector.checkpoints import (
    latest_checkpoint_path,
    load_detector,
    read_checkpoint,
    weights_version,
)
from ceal_pipeline.detector.training import learning_rate, train_detector

#: Small and fast: LiDAR-only tiny detector, 2 frames per step.
TINY_LIDAR = {"model.camera_branch": None, "model.fuser": None, "data.image_size": None}


def _tiny_lidar_config():
    from ceal_pipeline.detector.builder import load_config

    return load_config("bevfusion_tiny", **TINY_LIDAR)


def test_resumed_training_gives_the_weights_of_an_uninterrupted_run(frames, tmp_path):
    config = _tiny_lidar_config()
    straight = train_detector(frames[:4], config, tmp_path / "straight", epochs=2, seed=5, device="cpu",
                              batch_size=2)
    train_detector(frames[:4], config, tmp_path / "killed", epochs=2, seed=5, device="cpu", batch_size=2)
    (tmp_path / "killed" / "epoch_0002.pt").unlink()  # the run "died" during epoch 2
    resumed = train_detector(frames[:4], config, tmp_path / "killed", epochs=2, seed=5, device="cpu", batch_size=2)

    a, b = read_checkpoint(straight.path), read_checkpoint(resumed.path)
    assert a["epoch"] == b["epoch"] == 2 and a["global_step"] == b["global_step"] == 4
    for key, tensor in a["state_dict"].items():
        assert torch.equal(tensor, b["state_dict"][key]), key
    assert straight.version == resumed.version
    # The loss curve (shown in the UI) carries the killed run's epochs on.
    assert [e["epoch"] for e in resumed.loss_curve] == [1.0, 2.0]
    assert [e["loss"] for e in resumed.loss_curve] == [e["loss"] for e in straight.loss_curve]


def test_finished_run_is_not_retrained_on_resume(frames, tmp_path):
    config = _tiny_lidar_config()
    first = train_detector(frames[:2], config, tmp_path, epochs=1, seed=0, device="cpu", batch_size=2)
    mtime = first.path.stat().st_mtime_ns
    again = train_detector(frames[:2], config, tmp_path, epochs=1, seed=0, device="cpu", batch_size=2)
    assert again.version == first.version and again.path == first.path
    assert first.path.stat().st_mtime_ns == mtime


def test_resume_refuses_checkpoints_of_a_different_run(frames, tmp_path):
    config = _tiny_lidar_config()
    train_detector(frames[:2], config, tmp_path, epochs=1, seed=0, device="cpu", batch_size=2)
    with pytest.raises(ValueError, match="different training run"):
        train_detector(frames[2:4], config, tmp_path, epochs=1, seed=0, device="cpu", batch_size=2)
    restarted = train_detector(frames[2:4], config, tmp_path, epochs=1, seed=0, device="cpu", batch_size=2,
                               resume=False)
    assert read_checkpoint(restarted.path)["run"]["frames"] == 2


def test_repeats_none_or_all_ones_train_exactly_as_before(frames, tmp_path):
    config = _tiny_lidar_config()
    plain = train_detector(frames[:3], config, tmp_path / "plain", epochs=2, seed=2, device="cpu", batch_size=2)
    ones = train_detector(frames[:3], config, tmp_path / "ones", epochs=2, seed=2, device="cpu", batch_size=2,
                          repeats=[1, 1, 1])
    a, b = read_checkpoint(plain.path), read_checkpoint(ones.path)
    assert plain.version == ones.version and a["global_step"] == b["global_step"] == 4
    # The run's identity is that of a run before repeats existed: old checkpoints still resume.
    assert a["run"] == b["run"] and "repeats" not in a["run"]
    assert [e["loss"] for e in plain.loss_curve] == [e["loss"] for e in ones.loss_curve]


def test_repeats_expand_each_epoch_and_are_part_of_the_run(frames, tmp_path, monkeypatch):
    from ceal_pipeline.detector import training

    orders = []
    original = training.BatchOrder.set_order

    def spy(self, order, **kwargs):
        orders.append(np.asarray(order).tolist())
        return original(self, order, **kwargs)

    monkeypatch.setattr(training.BatchOrder, "set_order", spy)
    config = _tiny_lidar_config()
    checkpoint = train_detector(frames[:3], config, tmp_path, epochs=2, seed=2, device="cpu", batch_size=2,
                                repeats=[1, 3, 1])
    # The training order's default, then one per epoch (BatchNorm recalibration reads each frame once).
    default, *epoch_orders = [order for order in orders if len(order) == 5]
    assert default == [0, 1, 1, 1, 2] and len(epoch_orders) == 2
    assert all(sorted(order) == [0, 1, 1, 1, 2] for order in epoch_orders)
    assert [0, 1, 2] in orders  # the recalibration pass
    assert epoch_orders[0] != epoch_orders[1]  # shuffled afresh each epoch
    state = read_checkpoint(checkpoint.path)
    assert state["global_step"] == 2 * 3  # 2 epochs of ceil(5 / 2) steps: the expanded pass
    assert state["run"]["repeats"] == [1, 3, 1] and state["run"]["frames"] == 3
    with pytest.raises(ValueError, match="different training run"):
        train_detector(frames[:3], config, tmp_path, epochs=2, seed=2, device="cpu", batch_size=2, repeats=[1, 2, 1])
    with pytest.raises(ValueError, match="different training run"):
        train_detector(frames[:3], config, tmp_path, epochs=2, seed=2, device="cpu", batch_size=2)


@pytest.mark.parametrize("repeats, message", [
    ([1, 0], r"repeats must be >= 1 .*do not pass it"),
    ([-1, 1], r"repeats must be >= 1"),
    ([1, 1, 1], r"repeats must give one count per frame \(2\), got 3.*as long as the frames"),
])
def test_training_refuses_invalid_repeats_naming_the_fix(frames, tmp_path, repeats, message):
    with pytest.raises(ValueError, match="train_detector: " + message):
        train_detector(frames[:2], _tiny_lidar_config(), tmp_path, epochs=1, device="cpu", batch_size=2,
                       repeats=repeats)
    assert not list(tmp_path.iterdir())  # refused before any training


def _spy_steps(monkeypatch):
    """Records the learning rate of every optimiser step taken, and each BatchNorm recalibration."""
    from ceal_pipeline.detector import training

    seen = {"lrs": [], "recalibrations": 0, "batches": []}
    step, recalibrate = torch.optim.AdamW.step, training.recalibrate_batch_norm
    set_order = training.BatchOrder.set_order

    def step_spy(self, *args, **kwargs):
        seen["lrs"].append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    def recalibrate_spy(*args, **kwargs):
        seen["recalibrations"] += 1
        return recalibrate(*args, **kwargs)

    def set_order_spy(self, order, **kwargs):
        set_order(self, order, **kwargs)
        seen["batches"].append(len(self))

    monkeypatch.setattr(torch.optim.AdamW, "step", step_spy)
    monkeypatch.setattr(training, "recalibrate_batch_norm", recalibrate_spy)
    monkeypatch.setattr(training.BatchOrder, "set_order", set_order_spy)
    return seen


@pytest.mark.parametrize("max_steps, epochs, last_epoch_steps", [(5, 3, 1), (1, 1, 1), (3, 2, 1)])
def test_max_steps_takes_exactly_that_many_steps_the_last_epoch_partial(
        frames, tmp_path, monkeypatch, max_steps, epochs, last_epoch_steps):
    seen = _spy_steps(monkeypatch)
    config = _tiny_lidar_config()
    # 4 frames at batch 2: 2 steps an epoch, so 5 steps are 2 whole epochs and 1 step of a third.
    checkpoint = train_detector(frames[:4], config, tmp_path, seed=3, device="cpu", batch_size=2, num_workers=0,
                                max_steps=max_steps)
    state = read_checkpoint(checkpoint.path)
    assert len(seen["lrs"]) == state["global_step"] == max_steps
    assert state["epoch"] == epochs and checkpoint.path.name == f"epoch_{epochs:04d}.pt"
    assert [path.name for path in sorted(tmp_path.glob("epoch_*.pt"))] == [
        f"epoch_{e:04d}.pt" for e in range(1, epochs + 1)]  # every epoch saved, the partial one too
    # The schedule spans exactly max_steps steps (warm-up, then cosine down to 1 % at the end).
    lr, warmup = config["train"]["lr"], config["train"].get("warmup_iters", 0)
    assert seen["lrs"] == pytest.approx([learning_rate(s, max_steps, lr, warmup) for s in range(max_steps)])
    # Each epoch's order, cut to the steps left in the last (the first set_order is the sampler's default).
    assert seen["batches"][1:epochs + 1] == [2] * (epochs - 1) + [last_epoch_steps]
    assert seen["recalibrations"] == (1 if config["train"].get("bn_recalibration") else 0)
    assert state["run"]["max_steps"] == max_steps and state["run"]["epochs"] == epochs
    assert len(checkpoint.loss_curve) == epochs and all(np.isfinite(e["loss"]) for e in checkpoint.loss_curve)


def test_max_steps_at_whole_epochs_trains_the_epochs_run_and_resumes_to_the_bit(frames, tmp_path):
    config = _tiny_lidar_config()
    by_epochs = train_detector(frames[:4], config, tmp_path / "epochs", epochs=2, seed=5, device="cpu", batch_size=2)
    by_steps = train_detector(frames[:4], config, tmp_path / "steps", max_steps=4, seed=5, device="cpu", batch_size=2)
    a, b = read_checkpoint(by_epochs.path), read_checkpoint(by_steps.path)
    assert by_epochs.version == by_steps.version and a["global_step"] == b["global_step"] == 4
    assert [e["loss"] for e in by_epochs.loss_curve] == [e["loss"] for e in by_steps.loss_curve]
    # Counted in epochs, the identity is that of a run before max_steps existed: old checkpoints still resume.
    assert "max_steps" not in a["run"] and b["run"] == {**a["run"], "max_steps": 4}

    straight = train_detector(frames[:4], config, tmp_path / "straight", max_steps=5, seed=5, device="cpu",
                              batch_size=2)
    train_detector(frames[:4], config, tmp_path / "killed", max_steps=5, seed=5, device="cpu", batch_size=2)
    (tmp_path / "killed" / "epoch_0003.pt").unlink()  # the run "died" in its last, partial epoch
    resumed = train_detector(frames[:4], config, tmp_path / "killed", max_steps=5, seed=5, device="cpu",
                             batch_size=2)
    assert resumed.version == straight.version and read_checkpoint(resumed.path)["global_step"] == 5
    assert [e["loss"] for e in resumed.loss_curve] == [e["loss"] for e in straight.loss_curve]
    # Its first two epochs are those of a 5-step run, not of a 4-step one (the schedule differs).
    assert straight.version != by_steps.version
    for other in ({"max_steps": 6}, {"epochs": 3}):
        with pytest.raises(ValueError, match="different training run"):
            train_detector(frames[:4], config, tmp_path / "killed", seed=5, device="cpu", batch_size=2, **other)


def test_max_steps_counts_the_expanded_pass_of_repeats(frames, tmp_path):
    # 3 frames, repeats [1, 3, 1]: 5 a pass, 3 steps at batch 2; 4 steps = one epoch and one step.
    checkpoint = train_detector(frames[:3], _tiny_lidar_config(), tmp_path, seed=2, device="cpu", batch_size=2,
                                repeats=[1, 3, 1], max_steps=4)
    state = read_checkpoint(checkpoint.path)
    assert state["global_step"] == 4 and state["epoch"] == 2
    assert state["run"]["repeats"] == [1, 3, 1] and state["run"]["max_steps"] == 4


@pytest.mark.parametrize("kwargs, message", [
    ({"max_steps": 0}, r"max_steps must be a whole number of optimiser steps >= 1 .*got 0"),
    ({"max_steps": -3}, r"max_steps must be a whole number of optimiser steps >= 1 .*got -3"),
    ({"max_steps": 2.5}, r"max_steps must be a whole number .*got 2\.5"),
    ({"max_steps": True}, r"max_steps must be a whole number .*got True"),
    ({"max_steps": 4, "epochs": 2}, r"epochs or max_steps, not both"),
    ({"epochs": 0}, r"epochs must be >= 1"),
])
def test_training_refuses_an_invalid_length_naming_the_fix(frames, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        train_detector(frames[:2], _tiny_lidar_config(), tmp_path, device="cpu", batch_size=2, **kwargs)
    assert not list(tmp_path.iterdir())  # refused before any training


def test_checkpoint_round_trips_under_weights_only_and_rebuilds_without_the_config_file(frames, tmp_path):
    checkpoint = train_detector(frames[:2], "bevfusion_tiny", tmp_path, epochs=1, seed=0, device="cpu",
                                batch_size=2)
    payload = torch.load(checkpoint.path, map_location="cpu", weights_only=True)  # must not raise
    assert payload["version"] == checkpoint.version
    assert set(checkpoint.metrics) >= {"loss", "loss_heatmap", "loss_bbox"}
    model, version = load_detector(checkpoint.path, device="cpu")
    assert version == checkpoint.version
    assert weights_version("bevfusion_tiny", model.state_dict()) == version
    for key, tensor in payload["state_dict"].items():
        assert torch.equal(model.state_dict()[key], tensor), key
    assert model.camera_branch is not None and not model.training
    assert latest_checkpoint_path(tmp_path) == checkpoint.path


def test_version_id_changes_with_the_weights_and_only_with_them(tiny_detector):
    state = {k: v.clone() for k, v in tiny_detector.state_dict().items()}
    version = weights_version("bevfusion_tiny", state)
    assert version == weights_version("bevfusion_tiny", {k: v.clone() for k, v in state.items()})
    state["bbox_head.regression_out.bias"][0] += 1e-6
    assert weights_version("bevfusion_tiny", state) != version
    assert version.startswith("bevfusion_tiny-") and len(version.split("-")[-1]) == 12


def test_reading_a_foreign_or_corrupt_file_names_it_and_the_fix(tmp_path):
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(1)}, foreign)
    with pytest.raises(ValueError, match="foreign.pt is not a ceal detector checkpoint"):
        read_checkpoint(foreign)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt.pt cannot be read.*retrain"):
        read_checkpoint(corrupt)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        read_checkpoint(tmp_path / "missing.pt")


def test_training_refuses_unlabeled_frames_naming_them(tmp_path):
    from ceal_pipeline_tests.detector.conftest import make_frames

    unlabeled = make_frames(tmp_path, 2, labeled=False, cameras=False)
    with pytest.raises(ValueError, match="test-0000"):
        train_detector(unlabeled, _tiny_lidar_config(), tmp_path / "ckpt", epochs=1, device="cpu")


def test_learning_rate_warms_up_then_decays_to_one_percent():
    lrs = [learning_rate(s, 100, 1.0, 10) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert learning_rate(100, 100, 1.0, 10) == pytest.approx(0.01)
