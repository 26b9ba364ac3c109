"""The paper's classifiers, each split into a deterministic part and a stochastic part.

MC-Dropout draws ``T`` forward passes with dropout active. Only layers at or
after the first dropout differ between passes, so every network here exposes
``deterministic(x)`` (run once per image) and ``stochastic(h)`` (run ``T`` times
on the cached ``h``); ``forward = stochastic . deterministic``.

- :class:`MnistCNN`: two Conv-MaxPool-Dropout-ReLU blocks and a linear head.
  Dropout sits inside the first block, so only ``conv1 + maxpool`` can be cached;
  the first ReLU is moved in front of the first dropout, which is exact because
  dropout multiplies by a non-negative mask (``relu(m*x) = m*relu(x)`` for
  ``m >= 0``), so the cached part is ``relu(maxpool(conv1(x)))``.
- :class:`VGG11BN`: VGG-11 with batch normalisation; dropout only in the
  classifier head, so the whole convolutional stack is cached and only the
  two-layer head runs ``T`` times.

``width`` scales every channel count (1.0 = the paper's network) so that the
CPU presets can use a narrower network with the same structure.
"""

from __future__ import annotations

import torch
from torch import nn


class MCDropoutNetwork(nn.Module):
    """Base: ``forward(x) = stochastic(deterministic(x))``."""

    def deterministic(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def stochastic(self, h: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stochastic(self.deterministic(x))


def _channels(base: int, width: float) -> int:
    if width <= 0:
        raise ValueError(f"network width must be > 0 (1.0 is the paper's network), got {width}")
    return max(4, int(round(base * width)))


class MnistCNN(MCDropoutNetwork):
    """Conv(5x5)-MaxPool-Dropout-ReLU twice, then a linear layer, for 28x28x1 input.

    Channels are 32 and 64 at ``width=1``; logits ``(B, num_classes)``.
    """

    def __init__(self, num_classes: int = 10, width: float = 1.0, dropout: float = 0.25) -> None:
        super().__init__()
        c1, c2 = _channels(32, width), _channels(64, width)
        self.conv1 = nn.Conv2d(1, c1, kernel_size=5)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=5)
        self.pool = nn.MaxPool2d(2)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        # 28 -conv5-> 24 -pool-> 12 -conv5-> 8 -pool-> 4
        self.head = nn.Linear(c2 * 4 * 4, num_classes)

    def deterministic(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1:] != (1, 28, 28):
            raise ValueError(f"MnistCNN expects (B, 1, 28, 28) images, got {tuple(x.shape)}")
        return torch.relu(self.pool(self.conv1(x)))

    def stochastic(self, h: torch.Tensor) -> torch.Tensor:
        h = self.dropout1(h)
        h = torch.relu(self.dropout2(self.pool(self.conv2(h))))
        return self.head(h.flatten(1))


#: VGG-11 ("configuration A" of Simonyan & Zisserman): conv widths, "M" = 2x2 max-pool.
VGG11_LAYERS: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG11BN(MCDropoutNetwork):
    """VGG-11 with batch norm for 32x32x3 input and a dropout classifier head.

    The five max-pools reduce 32x32 to 1x1, so the head sees a ``512*width``
    vector: Dropout - Linear - ReLU - Dropout - Linear.
    """

    def __init__(self, num_classes: int = 10, width: float = 1.0, dropout: float = 0.5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for spec in VGG11_LAYERS:
            if spec == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                out = _channels(int(spec), width)
                layers += [nn.Conv2d(in_channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
                in_channels = out
        self.features = nn.Sequential(*layers)
        hidden = _channels(512, width)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(in_channels, hidden), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(hidden, num_classes),
        )

    def deterministic(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1:] != (3, 32, 32):
            raise ValueError(f"VGG11BN expects (B, 3, 32, 32) images, got {tuple(x.shape)}")
        return self.features(x).flatten(1)

    def stochastic(self, h: torch.Tensor) -> torch.Tensor:
        return self.classifier(h)


def build_network(dataset: str, num_classes: int = 10, width: float = 1.0) -> MCDropoutNetwork:
    """The paper's network for ``dataset`` (``"mnist"`` or ``"cifar10"``)."""
    if dataset == "mnist":
        return MnistCNN(num_classes, width=width)
    if dataset == "cifar10":
        return VGG11BN(num_classes, width=width)
    raise ValueError(f"no network for dataset {dataset!r}; choose 'mnist' or 'cifar10'")


def enable_mc_dropout(network: nn.Module) -> None:
    """Evaluation mode everywhere (batch norm uses its running statistics) except
    the dropout layers, which keep sampling masks: the MC-Dropout setting."""
    network.eval()
    for module in network.modules():
        if isinstance(module, nn.Dropout):
            module.train()
