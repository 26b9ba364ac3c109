"""Training-time augmentation for CIFAR-10 in plain torch (torchvision is not a dependency).

The paper trains VGG-11 with random brightness, random contrast and horizontal
flips. Each acts on a batch of float images in ``[0, 1]``, shaped ``(B, C, H, W)``,
with one independent draw per image from an explicit ``torch.Generator`` so a
training run is reproducible from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def random_brightness(x: torch.Tensor, max_delta: float, generator: torch.Generator) -> torch.Tensor:
    """Add a per-image offset drawn uniformly from ``[-max_delta, max_delta]`` (intensity units), then clip to [0, 1]."""
    delta = (torch.rand(x.shape[0], 1, 1, 1, generator=generator) * 2 - 1) * max_delta
    return (x + delta).clamp_(0.0, 1.0)


def random_contrast(x: torch.Tensor, max_factor_change: float, generator: torch.Generator) -> torch.Tensor:
    """Scale each image's deviation from its own mean by a factor drawn from
    ``[1 - max_factor_change, 1 + max_factor_change]``, then clip to [0, 1]."""
    factor = 1 + (torch.rand(x.shape[0], 1, 1, 1, generator=generator) * 2 - 1) * max_factor_change
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * factor + mean).clamp_(0.0, 1.0)


def random_horizontal_flip(x: torch.Tensor, generator: torch.Generator, probability: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with ``probability``."""
    flip = torch.rand(x.shape[0], generator=generator) < probability
    if flip.any():
        x = x.clone()
        x[flip] = x[flip].flip(-1)
    return x


@dataclass(frozen=True)
class Augmentation:
    """Brightness offset up to ``brightness``, contrast factor within ``1 ± contrast``,
    horizontal flip with probability ``flip``; zero disables a transform."""

    brightness: float = 0.2
    contrast: float = 0.2
    flip: float = 0.5

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.brightness > 0:
            x = random_brightness(x, self.brightness, generator)
        if self.contrast > 0:
            x = random_contrast(x, self.contrast, generator)
        if self.flip > 0:
            x = random_horizontal_flip(x, generator, self.flip)
        return x
