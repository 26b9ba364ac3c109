"""Bring your own mmdet3d detector: any mmdet3d config file, the team's weights, MC-Dropout in its box head.

``detector.config`` may name an mmdet3d config file (e.g. one shipped in
``mmdet3d/.mim/configs/``, or the team's own) instead of one of the pipeline's
``models/``; :func:`is_mmdet3d_config` tells them apart (an mmdet3d config has a
``model`` but none of the pipeline's ``data``/``train`` sections).
:func:`build_mmdet3d_detector` builds it (seeded weights), loads
``detector.checkpoint`` (an mmengine/mmdet3d ``.pth``, or one this module
saved) and wraps it as :class:`Mmdet3dDetector`, which scoring
(:mod:`.mmdet3d_scoring`) and fine-tuning (:mod:`.mmdet3d_training`) use.

Class names are mapped explicitly (:class:`ClassMapping`): each model class goes
to an ontology class through :data:`ceal_pipeline.frames.classes.CLASS_MAPPING`
(or the caller's ``class_map``); a model class with none (nuScenes'
``barrier``, ``traffic_cone``) is *reported* (``unmapped``, a warning when the
detector is built) and its detections keep their model class in the scores'
explanations. For fine-tuning, each ontology class trains the first model
class mapped to it.

Points are given the model's ``in_channels`` columns: x, y, z, intensity, then
zeros (nuScenes configs read a 5th column, the sweep time lag: 0 for a single sweep).

On the CPU, mmcv 2.1 has no kernel for sparse convolution, ``DynamicScatter``,
``furthest_point_sample`` or ``points_in_boxes_part/_all``; pillar configs with
hard voxelisation (``PointPillars``, ``CenterPoint`` pillar02: ``PillarFeatureNet``
+ ``PointPillarsScatter``) run as they are, nothing swapped.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ceal_pipeline.frames.classes import detection_label, normalise_class_name
from ceal_pipeline.frames.records import DETECTION_CLASSES

LOG = logging.getLogger(__name__)
#: The format tag of a checkpoint this module saves (an mmengine checkpoint with our ``meta``).
CHECKPOINT_FORMAT = "ceal-mmdet3d"
DEFAULT_DROPOUT = 0.2
TRAIN_MODES = ("fine_tune", "frozen")


def is_mmdet3d_config(config) -> bool:
    """Whether ``config`` (a path) is an mmdet3d config file rather than one of the pipeline's ``models/``."""
    path = Path(str(config))
    if path.suffix != ".py" or not path.is_file():
        return False
    from mmengine.config import Config

    loaded = Config.fromfile(str(path))
    return "model" in loaded and not ("data" in loaded and "train" in loaded and "name" in loaded)


@dataclass(frozen=True)
class ClassMapping:
    """Model class index -> ontology class index (``-1``: not in the ontology, reported)."""

    model_classes: tuple[str, ...]
    to_ontology: tuple[int, ...]
    ontology: tuple[str, ...] = DETECTION_CLASSES

    @classmethod
    def build(cls, model_classes: Sequence[str], class_map: dict[str, str | None] | None = None) -> "ClassMapping":
        """Map each model class through ``class_map`` (model class -> ontology class or ``None``),
        else through the ontology's one table (:mod:`ceal_pipeline.frames.classes`)."""
        class_map = {normalise_class_name(k): v for k, v in (class_map or {}).items()}
        labels = []
        for name in model_classes:
            key = normalise_class_name(name)
            if key in class_map:
                target = class_map[key]
                if target is not None and target not in DETECTION_CLASSES:
                    raise ValueError(f"class_map maps {name!r} to {target!r}, which is not an ontology class "
                                     f"{DETECTION_CLASSES}")
                labels.append(-1 if target is None else DETECTION_CLASSES.index(target))
            else:
                label = detection_label(name)
                labels.append(-1 if label is None else label)
        return cls(tuple(str(c) for c in model_classes), tuple(labels))

    @property
    def unmapped(self) -> tuple[str, ...]:
        """Model classes with no ontology class: their detections are scored and reported, not relabelled."""
        return tuple(name for name, label in zip(self.model_classes, self.to_ontology) if label < 0)

    def model_label_of(self, ontology_label: int) -> int:
        """The model class trained on an ontology class (the first mapped to it), ``-1`` if none."""
        try:
            return self.to_ontology.index(int(ontology_label))
        except ValueError:
            return -1


def model_class_names(config: dict) -> tuple[str, ...]:
    """The class names of an mmdet3d config in label order: ``class_names``, else
    ``metainfo.classes``, else a ``CenterHead``'s tasks."""
    if config.get("class_names"):
        return tuple(config["class_names"])
    if (config.get("metainfo") or {}).get("classes"):
        return tuple(config["metainfo"]["classes"])
    model = config.get("model", {})
    head = model.get("pts_bbox_head") or model.get("bbox_head") or {}
    if head.get("tasks"):
        return tuple(name for task in head["tasks"] for name in task["class_names"])
    raise ValueError("the mmdet3d config names no classes (no class_names, metainfo.classes or CenterHead "
                     "tasks): add class_names = [...] in label order")


class Mmdet3dDetector(nn.Module):
    """An mmdet3d detector with its MC-Dropout head view and class mapping.

    ``model`` is the mmdet3d model; ``head`` its MC-Dropout view
    (:mod:`.mmdet3d_mc_heads`); ``class_names`` the model's classes (what its
    labels index); ``class_mapping`` their ontology classes; ``dropout`` the
    MC-Dropout probability; ``ceal_config`` what rebuilds it (the config as a
    dict, the mapping, the dropout), saved in every checkpoint.
    """

    def __init__(self, model: nn.Module, ceal_config: dict, class_mapping: ClassMapping, dropout: float,
                 score_threshold: float = 0.1, max_detections: int = 100):
        super().__init__()
        from ceal_pipeline.detector.mmdet3d_mc_heads import mc_head_for

        if not 0.0 < dropout < 1.0:
            raise ValueError(f"MC-Dropout probability must be in (0, 1), got {dropout}")
        self.model = model
        self.ceal_config = ceal_config
        self.class_mapping = class_mapping
        self.class_names = class_mapping.model_classes
        self.dropout = float(dropout)
        self.head = mc_head_for(self.box_head, score_threshold, max_detections)

    @property
    def box_head(self):
        return getattr(self.model, "pts_bbox_head", None) or self.model.bbox_head

    @property
    def point_channels(self) -> int:
        """Columns per point the config's voxel encoder reads (its ``in_channels``; 4 without one)."""
        model = self.ceal_config["mmdet3d_config"]["model"]
        encoder = model.get("pts_voxel_encoder") or model.get("voxel_encoder") or {}
        return int(encoder.get("in_channels", 4))

    def prepare_points(self, points: np.ndarray) -> torch.Tensor:
        """``(P, in_channels)`` float32: x, y, z, intensity, then zero columns (or cut)."""
        points = np.asarray(points, dtype=np.float32)
        channels = self.point_channels
        out = np.zeros((len(points), channels), dtype=np.float32)
        width = min(channels, points.shape[1])
        out[:, :width] = points[:, :width]
        return torch.from_numpy(out)

    @torch.no_grad()
    def features(self, points: list[torch.Tensor]) -> list[torch.Tensor]:
        """The neck's feature maps of a batch of clouds (voxelisation, encoder, backbone, neck)."""
        data = self.model.data_preprocessor({"inputs": {"points": points}, "data_samples": None}, False)
        if hasattr(self.model, "pts_bbox_head") and self.model.pts_bbox_head is not None:
            _, features = self.model.extract_feat(data["inputs"], [{} for _ in points])
        else:
            features = self.model.extract_feat(data["inputs"])
        return list(features)


def _mmdet3d_config_dict(config) -> tuple[dict, str]:
    """``(config as a plain dict, name)`` of a path or an already-loaded dict."""
    if isinstance(config, dict):
        return copy.deepcopy(config), str(config.get("ceal_name", "mmdet3d"))
    from mmengine.config import Config

    path = Path(str(config))
    if not path.is_file():
        raise FileNotFoundError(f"mmdet3d config {path} does not exist: give the path to a .py config file "
                                "(mmdet3d ships its own in mmdet3d/.mim/configs/)")
    return Config.fromfile(str(path)).to_dict(), path.stem


def build_mmdet3d_detector(config, *, checkpoint: str | Path | None = None, seed: int = 0,
                           dropout: float = DEFAULT_DROPOUT, class_map: dict[str, str | None] | None = None,
                           score_threshold: float = 0.1, max_detections: int = 100) -> Mmdet3dDetector:
    """Build the detector of an mmdet3d config (path or dict), weights seeded by ``seed``,
    then overwritten by ``checkpoint`` when given; on the CPU, in eval mode."""
    from mmdet3d.registry import MODELS
    from mmengine.config import ConfigDict
    from mmengine.logging import MMLogger

    from ceal_pipeline.detector.builder import register_modules

    register_modules()
    cfg, name = _mmdet3d_config_dict(config)
    mapping = ClassMapping.build(model_class_names(cfg), class_map)
    if mapping.unmapped:
        LOG.warning("mmdet3d detector %s: model classes %s have no ontology class %s; their detections are "
                    "scored under their model class (map them with class_map)", name, list(mapping.unmapped),
                    DETECTION_CLASSES)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # one INFO record per initialised parameter otherwise
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            # mmdet3d's heads read their train_cfg by attribute: a ConfigDict, not a plain dict
            model = MODELS.build(ConfigDict(copy.deepcopy(cfg["model"])))
            model.init_weights()
    finally:
        logger.setLevel(level)
    ceal_config = {"name": name, "kind": "mmdet3d", "mmdet3d_config": cfg, "dropout": float(dropout),
                   "class_map": dict(class_map or {}), "score_threshold": score_threshold,
                   "max_detections": max_detections, "data": {"batch_size": 1}}
    detector = Mmdet3dDetector(model, ceal_config, mapping, dropout, score_threshold, max_detections)
    if checkpoint is not None:
        load_weights(detector, checkpoint)
    return detector.eval()


def load_weights(detector: Mmdet3dDetector, checkpoint: str | Path) -> None:
    """Load an mmengine/mmdet3d checkpoint (``{'state_dict': ...}``, or a bare state dict) into ``detector``.

    Raises ``ValueError`` naming the missing and unexpected keys when the weights
    are not this config's (a checkpoint of another model must not load half-way)."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"detector checkpoint {path} does not exist: give detector.checkpoint the .pth "
                                "file the team trained with this config")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # mmengine's .pth keep pickled objects in their meta: the team's own file, trusted as mmdet3d does
        payload = torch.load(path, map_location="cpu", weights_only=False)
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else payload
    state = {k[len("model."):] if k.startswith("model.") and k[6:] in detector.model.state_dict() else k: v
             for k, v in state.items()}
    missing, unexpected = detector.model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"checkpoint {path} does not fit config {detector.ceal_config['name']}: "
                         f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(unexpected)} unexpected "
                         f"(e.g. {unexpected[:3]}); pass the config the weights were trained with")


def save_checkpoint(detector: Mmdet3dDetector, path: str | Path) -> str:
    """Write an mmengine-style checkpoint (``state_dict`` + ``meta``; mmdet3d's tools load it too)
    atomically; returns the weights' version id ``<name>-<sha256[:12]>``."""
    from ceal_pipeline.detector.checkpoints import weights_version

    state = {k: v.detach().cpu() for k, v in detector.model.state_dict().items()}
    version = weights_version(detector.ceal_config["name"], state)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    torch.save({"state_dict": state, "meta": {"format": CHECKPOINT_FORMAT, "version": version,
                                              "ceal_config": detector.ceal_config}}, temporary)
    temporary.replace(path)
    return version


def adapter_checkpoint_meta(path: str | Path) -> dict | None:
    """The ``meta`` of a checkpoint :func:`save_checkpoint` wrote, ``None`` for any other file
    (read with ``weights_only=True``: our files hold tensors and plain containers only)."""
    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception:
        return None
    meta = payload.get("meta") if isinstance(payload, dict) else None
    return meta if isinstance(meta, dict) and meta.get("format") == CHECKPOINT_FORMAT else None


def load_mmdet3d_checkpoint(path: str | Path) -> tuple[Mmdet3dDetector, str]:
    """Rebuild the detector a :func:`save_checkpoint` file holds, with its weights: ``(detector, version)``."""
    meta = adapter_checkpoint_meta(path) or {}
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a checkpoint saved by ceal's mmdet3d adapter (no meta.format "
                         f"{CHECKPOINT_FORMAT!r}); build the detector from its config with checkpoint={path}")
    config = dict(meta["ceal_config"])
    cfg = dict(config["mmdet3d_config"], ceal_name=config["name"])
    detector = build_mmdet3d_detector(cfg, checkpoint=path, dropout=config["dropout"],
                                      class_map=config.get("class_map") or None,
                                      score_threshold=config["score_threshold"],
                                      max_detections=config["max_detections"])
    return detector, meta["version"]

