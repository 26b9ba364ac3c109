"""Build the detector from an mmengine config file in ``models/``.

Configs are found by name (``build_detector("bevfusion_tiny")``) in the
repository's top-level ``models/`` folder. A built package carries that folder
as package data, ``ceal_pipeline/detector/configs/`` (copied at build time by
``setup.py``; the repository keeps the only hand-edited copy), so names resolve
the same after a plain ``pip install .`` run from any directory.

A config file defines ``name``, ``model`` (the registered modules), ``data``
(``image_size`` or ``None`` for LiDAR-only, batch sizes) and ``train``
(optimiser settings). The whole config travels with the model as
``model.ceal_config`` (a plain dict) and into every checkpoint, so a checkpoint
rebuilds its detector without the file.
"""

from __future__ import annotations

import copy
import logging
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: Where a built package carries the config files of ``models/`` (see ``setup.py``).
PACKAGED_CONFIGS = "configs"
DEFAULT_CONFIG = "bevfusion_lite"

_REGISTERED = False


def register_modules() -> None:
    """Register mmdet/mmdet3d modules and ours, and make mmdet3d the default scope."""
    global _REGISTERED
    if _REGISTERED:
        return
    from mmdet3d.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    # Importing registers CealBEVFusion, ConvFuser, LSSCameraBranch, MCDropoutCenterHead.
    from ceal_pipeline.detector import bevfusion, camera_lift, head  # noqa: F401

    _REGISTERED = True


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available: use device='auto' or 'cpu'")
    return resolved


def models_dir() -> Path:
    """The folder of the shipped detector configs.

    In an installed package: the package data ``ceal_pipeline/detector/configs``.
    In a source checkout (tests, ``pip install -e``, ``PYTHONPATH``), which has no
    such folder: the repository's top-level ``models/``, where they are edited.
    """
    packaged = resources.files("ceal_pipeline.detector") / PACKAGED_CONFIGS
    if packaged.is_dir():
        if not isinstance(packaged, Path):
            raise RuntimeError(
                f"ceal_pipeline is installed zipped ({packaged}); mmengine reads configs from files: "
                "install the package unzipped (pip install does)"
            )
        return packaged
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "models").is_dir() and (checkout / "pyproject.toml").is_file():
        return checkout / "models"
    raise FileNotFoundError(
        f"no detector configs: neither package data {packaged} nor a source checkout's models/ at {checkout}; "
        "reinstall ceal-pipeline from a wheel or sdist built by its setup.py, or pass a config path"
    )


def config_path(config_path_or_name: str | Path) -> Path:
    """Resolve a config name (``"bevfusion_tiny"``) or a path to an existing ``.py`` file.

    A relative ``models/<name>.py`` that does not exist from the working directory
    (an installed package run from elsewhere) means the shipped config ``<name>``.
    """
    candidate = Path(config_path_or_name)
    if candidate.suffix == ".py" and candidate.is_file():
        return candidate
    name = candidate.stem if candidate.suffix == ".py" and candidate.parent == Path("models") else str(candidate)
    named = models_dir() / f"{name}.py"
    if named.is_file():
        return named
    available = sorted(p.stem for p in models_dir().glob("*.py"))
    raise FileNotFoundError(
        f"detector config {str(config_path_or_name)!r} not found: give a path to a .py config or one of {available}"
    )


def _set_dotted(config: dict, dotted: str, value: Any) -> None:
    node = config
    keys = dotted.split(".")
    for key in keys[:-1]:
        if key not in node or not isinstance(node[key], dict):
            raise KeyError(f"config override {dotted!r}: {key!r} is not a section of the detector config")
        node = node[key]
    node[keys[-1]] = value


def load_config(config_path_or_name: str | Path | dict, **overrides: Any) -> dict:
    """The detector config as a plain dict, with ``overrides`` applied.

    Override keys are dotted paths, e.g. ``build_detector("bevfusion_tiny",
    **{"model.bbox_head.dropout": 0.3})``.
    """
    if isinstance(config_path_or_name, dict):
        config = copy.deepcopy(config_path_or_name)
    else:
        from mmengine.config import Config

        path = config_path(config_path_or_name)
        loaded = Config.fromfile(str(path)).to_dict()
        config = {key: loaded[key] for key in ("name", "model", "data", "train") if key in loaded}
        config.setdefault("name", path.stem)
    for key in ("model", "data", "train"):
        if key not in config:
            raise KeyError(f"detector config {config.get('name', '?')!r} lacks its {key!r} section")
    for dotted, value in overrides.items():
        _set_dotted(config, dotted, value)
    return config


def build_detector(config_path_or_name: str | Path | dict = DEFAULT_CONFIG, *, seed: int = 0,
                   **overrides: Any) -> nn.Module:
    """Build an initialised detector (on CPU, in eval mode).

    Args:
        config_path_or_name: a name in ``models/`` (``bevfusion_lite``,
            ``pointpillars_lite``, ``bevfusion_tiny``), a path, or a config dict
            (e.g. from a checkpoint).
        seed: seeds weight initialisation, so an untrained detector is reproducible.
        overrides: dotted config keys to replace, e.g. ``**{"model.bbox_head.dropout": 0.3}``.

    Returns:
        a :class:`~ceal_pipeline.detector.bevfusion.CealBEVFusion` with the
        resolved config attached as ``model.ceal_config``.
    """
    register_modules()
    from mmdet3d.registry import MODELS

    from mmengine.logging import MMLogger

    config = load_config(config_path_or_name, **overrides)
    # mmengine logs one INFO record per initialised parameter: hundreds of lines.
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = MODELS.build(copy.deepcopy(config["model"]))
            model.init_weights()
    finally:
        logger.setLevel(level)
    model.ceal_config = config
    return model.eval()
