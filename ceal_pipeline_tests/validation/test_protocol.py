"""Specification of the networks, MC-Dropout, training and the round protocol
(tiny synthetic data: seconds on a CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ceal_pipeline.validation.augmentation import Augmentation, random_horizontal_flip
from ceal_pipeline.validation.datasets import ImageClassificationData, load_mnist
from ceal_pipeline.validation.networks import MnistCNN, VGG11BN, enable_mc_dropout
from ceal_pipeline.validation.protocol import ProtocolConfig, run_seed_protocol
from ceal_pipeline.validation.training import TrainingConfig, _epoch_order, mc_dropout_probabilities, train_network
from ceal_pipeline_tests.validation.conftest import write_cifar_batches

TINY = dict(dataset="mnist", initial_fraction=0.1, rounds=2, acquire_per_round=40, trainings_per_round=1,
            mc_samples=4, pool_size=600, test_size=200, validation_size=100, epochs=2, patience=1, width=0.25)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("network, shape", [(MnistCNN(width=0.25), (5, 1, 28, 28)), (VGG11BN(width=0.125), (5, 3, 32, 32))])
def test_forward_is_the_stochastic_part_applied_to_the_deterministic_part(network, shape):
    network.eval()
    x = torch.randn(shape)
    torch.testing.assert_close(network(x), network.stochastic(network.deterministic(x)))
    assert network(x).shape == (5, 10)


def test_mnist_cnn_caches_relu_before_dropout_without_changing_the_function():
    # relu(dropout(x)) == dropout(relu(x)) for the same mask: why conv1's ReLU may be cached.
    network = MnistCNN(width=0.25)
    enable_mc_dropout(network)
    x = torch.randn(4, 1, 28, 28)
    torch.manual_seed(0)
    cached = network.stochastic(network.deterministic(x))
    torch.manual_seed(0)
    h = network.pool(network.conv1(x))
    reference = network.head(torch.relu(network.dropout2(network.pool(network.conv2(torch.relu(network.dropout1(h))))))
                             .flatten(1))
    torch.testing.assert_close(cached, reference)


def test_mc_dropout_keeps_dropout_sampling_and_batch_norm_frozen():
    network = VGG11BN(width=0.125)
    enable_mc_dropout(network)
    assert all(m.training for m in network.modules() if isinstance(m, torch.nn.Dropout))
    assert not any(m.training for m in network.modules() if isinstance(m, torch.nn.BatchNorm2d))
    images = np.random.default_rng(0).integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
    probs = mc_dropout_probabilities(network, "cifar10", images, mc_samples=5, seed=1)
    assert probs.shape == (5, 6, 10)
    np.testing.assert_allclose(probs.sum(axis=2), 1.0, rtol=1e-5)
    assert probs.std(axis=0).max() > 0  # the T passes differ: dropout is on


def test_head_only_mc_dropout_matches_the_full_network_in_distribution():
    network = MnistCNN(width=0.25)
    images = np.random.default_rng(0).integers(0, 256, size=(8, 28, 28, 1), dtype=np.uint8)
    head = mc_dropout_probabilities(network, "mnist", images, mc_samples=400, seed=2, head_only=True)
    full = mc_dropout_probabilities(network, "mnist", images, mc_samples=400, seed=3, head_only=False)
    # Same stochastic layers, so the MC means agree up to sampling noise.
    np.testing.assert_allclose(head.mean(axis=0), full.mean(axis=0), atol=0.02)


def test_mc_dropout_probabilities_are_reproducible_from_the_seed():
    network = MnistCNN(width=0.25)
    images = np.random.default_rng(0).integers(0, 256, size=(8, 28, 28, 1), dtype=np.uint8)
    first = mc_dropout_probabilities(network, "mnist", images, 3, seed=5)
    np.testing.assert_array_equal(first, mc_dropout_probabilities(network, "mnist", images, 3, seed=5))
    assert not np.array_equal(first, mc_dropout_probabilities(network, "mnist", images, 3, seed=6))


def test_training_is_reproducible_from_its_seed_and_early_stopping_keeps_the_best_epoch(tiny_mnist_root):
    data = load_mnist(tiny_mnist_root)
    config = TrainingConfig(epochs=4, patience=1, width=0.25)
    validation = (data.test_images[:100], data.test_labels[:100])
    a = train_network("mnist", data.train_images[:200], data.train_labels[:200], config, seed=11, validation=validation)
    b = train_network("mnist", data.train_images[:200], data.train_labels[:200], config, seed=11, validation=validation)
    for pa, pb in zip(a.network.parameters(), b.network.parameters()):
        torch.testing.assert_close(pa, pb)
    assert a.best_epoch <= a.epochs_run <= 4 and a.validation_accuracy is not None


def test_an_epoch_on_a_small_labeled_set_still_takes_the_minimum_number_of_steps():
    # 60 images at batch 32 would be 2 steps: too few for early stopping to judge.
    order = _epoch_order(60, minimum=32 * 25, generator=torch.Generator().manual_seed(0))
    assert len(order) == 800
    blocks = [order[i: i + 60] for i in range(0, 780, 60)]
    assert all(sorted(block) == list(range(60)) for block in blocks)  # whole passes, each image once
    assert sorted(_epoch_order(1000, minimum=800, generator=torch.Generator())) == list(range(1000))


def test_augmentation_keeps_images_in_range_and_flips_mirror_them():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 8, 8)
    out = Augmentation(brightness=0.5, contrast=0.5, flip=0.5)(x, generator)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    torch.testing.assert_close(random_horizontal_flip(x, generator, probability=1.0), x.flip(-1))


def test_ceal_with_pool_at_least_the_unlabeled_count_reproduces_full_pool_accuracy(tiny_mnist_root):
    data = load_mnist(tiny_mnist_root)
    runs = run_seed_protocol(data, ProtocolConfig(**TINY), ["entropy", "ceal_entropy_100000", "random"], run_seed=0)
    full, ceal, random = runs
    assert ceal.accuracy_per_round == full.accuracy_per_round
    assert ceal.forward_passes == full.forward_passes
    assert ceal.labeled_per_round == full.labeled_per_round == [60, 100, 140]
    assert random.forward_passes == 0


def test_protocol_records_every_seed_and_a_ledger_per_round(tiny_mnist_root):
    data = load_mnist(tiny_mnist_root)
    config = ProtocolConfig(**{**TINY, "trainings_per_round": 2})
    (run,) = run_seed_protocol(data, config, ["ceal_variation_ratios_100"], run_seed=4)
    record = run.to_dict()
    assert len(record["accuracy_per_round"]) == 3 and all(0 <= a <= 1 for a in record["accuracy_per_round"])
    assert [len(t) for t in record["seeds"]["training"]] == [2, 2, 2]
    assert len({s for round_seeds in record["seeds"]["training"] for s in round_seeds}) == 6
    # Round 1 backfills the pool (no candidate seed); round 2 samples a candidate pool.
    assert record["seeds"]["acquisition"][0] is None and isinstance(record["seeds"]["acquisition"][1], int)
    assert [e["frames_scored"] for e in record["ledger"]] == [0, 600 - 60, 100]
    assert record["forward_passes"] == (540 + 100) * 4
    assert record["accuracy_per_round"][0] == pytest.approx(np.mean(record["accuracy_per_training"][0]))


def test_cifar10_protocol_runs_vgg11_with_augmentation_on_python_batches(tmp_path):
    expected = write_cifar_batches(tmp_path / "cifar-10-batches-py", per_batch=60)
    labels = np.arange(300) % 10
    data = ImageClassificationData("cifar10", expected["train"], labels, expected["test"], np.arange(60) % 10,
                                   tuple(str(i) for i in range(10)), str(tmp_path))
    config = ProtocolConfig(dataset="cifar10", initial_fraction=0.1, rounds=1, acquire_per_round=20,
                            trainings_per_round=1, mc_samples=3, pool_size=250, validation_size=50, epochs=1,
                            width=0.125, augment=True)
    (run,) = run_seed_protocol(data, config, ["ceal_entropy_100"], run_seed=0)
    assert run.labeled_per_round == [25, 45] and run.forward_passes == 225 * 3
