"""Build the detector from an mmengine config file in ``models/``.

A config file defines ``name``, ``model`` (the registered modules), ``data``
(``image_size`` or ``None`` for LiDAR-only, batch sizes) and ``train``
(optimiser settings). The whole config travels with the model as
``model.ceal_config`` (a plain dict) and into every checkpoint, so a checkpoint
rebuilds its detector without the file.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: Config files shipped with the project, by name.
MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
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


def config_path(config_path_or_name: str | Path) -> Path:
    """Resolve a config name (``"bevfusion_tiny"``) or a path to an existing ``.py`` file."""
    candidate = Path(config_path_or_name)
    if candidate.suffix == ".py" and candidate.is_file():
        return candidate
    named = MODELS_DIR / f"{config_path_or_name}.py"
    if named.is_file():
        return named
    available = sorted(p.stem for p in MODELS_DIR.glob("*.py"))
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
