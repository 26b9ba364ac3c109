"""Train a classifier, measure test accuracy, draw MC-Dropout class probabilities.

Images stay ``uint8 (N, H, W, C)`` in memory and are converted per batch
(scale to [0, 1], optional augmentation, per-channel standardisation), which
keeps CIFAR-10 at 150 MB instead of 600 MB of floats. Every random draw
(weight init, shuffling, augmentation, dropout masks) is seeded from the seed
passed in, inside ``torch.random.fork_rng`` so the caller's global RNG is
untouched, which makes a benchmark run reproducible from its recorded seeds.
``device`` is any torch device (``"cpu"``, ``"cuda"``); images are moved to it
one batch at a time.
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass
from typing import Iterator
import numpy as np
import torch
from torch import nn

from ceal_pipeline.validation.augmentation import Augmentation
from ceal_pipeline.validation.networks import MCDropoutNetwork, build_network, enable_mc_dropout

#: Per-channel mean and standard deviation of the training images, in [0, 1] units.
NORMALISATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}


@dataclass(frozen=True)
class TrainingConfig:
    """How one model is trained.

    ``epochs`` is the maximum number of epochs; with a validation set,
    training stops after ``patience`` epochs without a better validation
    accuracy and the best epoch's weights are kept (``patience=0`` trains all
    epochs and keeps the last weights). An epoch is one pass over the labeled
    set but at least ``min_steps_per_epoch`` optimiser steps: an active-learning
    run starts from a few dozen images, where a pass is two or three steps, and
    early stopping on such epochs halts a network that has not yet left its
    constant-prediction plateau (seen on MNIST: 9% test accuracy after a round).
    """

    epochs: int = 20
    min_steps_per_epoch: int = 25
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 3
    augment: bool = False
    width: float = 1.0
    eval_batch_size: int = 1024


@dataclass(frozen=True)
class TrainingOutcome:
    """A trained network with its training record (seconds are wall-clock)."""

    network: MCDropoutNetwork
    epochs_run: int
    best_epoch: int
    validation_accuracy: float | None
    seconds: float


class BatchLoader:
    """Turns uint8 NHWC images into standardised float NCHW batches for one dataset."""

    def __init__(self, dataset: str, augmentation: Augmentation | None = None) -> None:
        if dataset not in NORMALISATION:
            raise ValueError(f"no normalisation constants for dataset {dataset!r}; known: {sorted(NORMALISATION)}")
        mean, std = NORMALISATION[dataset]
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)
        self.augmentation = augmentation

    def __call__(self, images: np.ndarray, generator: torch.Generator | None = None) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
        if self.augmentation is not None and generator is not None:
            x = self.augmentation(x, generator)
        return (x - self.mean) / self.std


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Seed torch's RNGs (CPU, and the device's when it is a GPU) inside the
    block and restore the caller's RNG state afterwards."""
    device = torch.device(device)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def train_network(
    dataset: str,
    images: np.ndarray,
    labels: np.ndarray,
    config: TrainingConfig,
    seed: int,
    *,
    num_classes: int = 10,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    device: torch.device | str = "cpu",
) -> TrainingOutcome:
    """Train a fresh network for ``dataset`` on ``images``/``labels`` from ``seed``.

    Adam with cross-entropy; ``validation`` (images, labels) drives early stopping.
    """
    if len(images) == 0:
        raise ValueError(f"cannot train the {dataset} network on an empty labeled set")
    start = time.perf_counter()
    loader = BatchLoader(dataset, Augmentation() if config.augment else None)
    with seeded(seed, device):
        generator = torch.Generator().manual_seed(seed)
        network = build_network(dataset, num_classes, width=config.width).to(device)
        optimiser = torch.optim.Adam(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        labels_t = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)
        best_state, best_accuracy, best_epoch, epochs_run, stale = None, -1.0, 0, 0, 0
        for epoch in range(1, config.epochs + 1):
            network.train()
            order = _epoch_order(len(images), config.batch_size * config.min_steps_per_epoch, generator)
            for begin in range(0, len(order), config.batch_size):
                batch = order[begin: begin + config.batch_size]
                if len(batch) < 2 and len(order) > 1:
                    continue  # batch norm cannot normalise a single image
                optimiser.zero_grad(set_to_none=True)
                x = loader(images[batch], generator).to(device, non_blocking=True)
                loss = nn.functional.cross_entropy(network(x), labels_t[batch])
                loss.backward()
                optimiser.step()
            epochs_run = epoch
            if validation is None or config.patience <= 0:
                continue
            accuracy = evaluate_accuracy(network, dataset, *validation, batch_size=config.eval_batch_size)
            if accuracy > best_accuracy:
                best_state, best_accuracy, best_epoch, stale = copy.deepcopy(network.state_dict()), accuracy, epoch, 0
            else:
                stale += 1
                if stale >= config.patience:
                    break
        if best_state is not None:
            network.load_state_dict(best_state)
        else:
            best_epoch = epochs_run
    network.eval()
    return TrainingOutcome(
        network=network,
        epochs_run=epochs_run,
        best_epoch=best_epoch,
        validation_accuracy=best_accuracy if best_state is not None else None,
        seconds=time.perf_counter() - start,
    )


def _epoch_order(n: int, minimum: int, generator: torch.Generator) -> np.ndarray:
    """Indices for one epoch: a permutation of ``range(n)``, or as many
    concatenated permutations as needed (truncated) to give ``minimum`` draws."""
    if n >= minimum:
        return torch.randperm(n, generator=generator).numpy()
    repeats = -(-minimum // n)
    return torch.cat([torch.randperm(n, generator=generator) for _ in range(repeats)])[:minimum].numpy()


@torch.no_grad()
def evaluate_accuracy(
    network: MCDropoutNetwork, dataset: str, images: np.ndarray, labels: np.ndarray, batch_size: int = 1024
) -> float:
    """Fraction of ``images`` classified correctly with dropout off (the usual test accuracy)."""
    if len(images) == 0:
        raise ValueError(f"cannot measure {dataset} accuracy on an empty set")
    was_training = network.training
    network.eval()
    loader = BatchLoader(dataset)
    device = next(network.parameters()).device
    correct = 0
    for begin in range(0, len(images), batch_size):
        predictions = network(loader(images[begin: begin + batch_size]).to(device)).argmax(dim=1).cpu().numpy()
        correct += int((predictions == labels[begin: begin + batch_size]).sum())
    network.train(was_training)
    return correct / len(images)


@torch.no_grad()
def mc_dropout_probabilities(
    network: MCDropoutNetwork,
    dataset: str,
    images: np.ndarray,
    mc_samples: int,
    seed: int,
    *,
    batch_size: int = 512,
    head_only: bool = True,
) -> np.ndarray:
    """Class probabilities of ``mc_samples`` MC-Dropout passes, ``(T, N, C)`` float32.

    With ``head_only`` the deterministic part runs once per batch and the
    stochastic part runs on ``T`` stacked copies of its output in one call; with
    ``head_only=False`` the whole network runs ``T`` times (the reference the
    shortcut must agree with in distribution). Forward passes counted by the
    ledger are ``N * T`` stochastic passes either way.
    """
    if mc_samples < 1:
        raise ValueError(f"mc_samples must be >= 1, got {mc_samples}")
    loader = BatchLoader(dataset)
    device = next(network.parameters()).device
    outputs = []
    with seeded(seed, device):
        enable_mc_dropout(network)
        for begin in range(0, len(images), batch_size):
            x = loader(images[begin: begin + batch_size]).to(device)
            if head_only:
                h = network.deterministic(x)
                stacked = h.unsqueeze(0).expand(mc_samples, *h.shape).reshape(-1, *h.shape[1:])
                logits = network.stochastic(stacked).view(mc_samples, len(x), -1)
            else:
                logits = torch.stack([network(x) for _ in range(mc_samples)])
            outputs.append(torch.softmax(logits, dim=-1).cpu())
        network.eval()
    if not outputs:
        return np.zeros((mc_samples, 0, 0), dtype=np.float32)
    return torch.cat(outputs, dim=1).numpy()

