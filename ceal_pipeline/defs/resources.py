"""Dagster resources: the acquisition history, the model store, the frame source, the exporter.

Each is a ``ConfigurableResource`` that receives its configuration:
:func:`resources_for` builds them from a deployment's ``ceal.yaml``
(:mod:`ceal_pipeline.configuration`), so every run of a deployment, whoever
launches it, uses the same source, storage and detector; nothing here reads the
project configuration. The fields that ``ceal.yaml`` also has take their type,
bounds and description from its schema (:mod:`ceal_pipeline.defs.config_fields`)
and, where a test builds a resource by hand, their default from the default
preset; the storage locations have no default. Heavy imports (torch,
mmdet3d, duckdb) happen inside methods: loading the code location must stay fast
and must never touch CUDA.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import dagster as dg
from pydantic import Field

from ceal_pipeline.atomic_files import atomic_write_bytes
from ceal_pipeline.configuration import DEFAULT_PRESET, PRESETS, ProjectConfig
from ceal_pipeline.configuration.schema import (
    DetectorSection,
    LabelMode,
    SourceKind,
    SourceSection,
    StorageSection,
)
from ceal_pipeline.configuration.schema import RoundSection
from ceal_pipeline.defs.acquisition.config import TRAINING_FIELDS, as_recorded
from ceal_pipeline.defs.config_fields import config_fields, dagster_class, schema_field
from ceal_pipeline.core.history.shards import ShardExchange
from ceal_pipeline.export import (
    ExportedFrame,
    VendorExport,
    export_folder,
    read_vendor_export,
    write_vendor_export,
)
from ceal_pipeline.export.sensor_uris import SensorUriRule

_PRESET = PRESETS[DEFAULT_PRESET]


def _field(section: type, preset: str | None, name: str, note: str = "", **default):
    """A resource field described (and bounded) by ``ceal.yaml``'s schema: ``section``'s ``name``,
    defaulting to the default preset's value (``preset`` section) unless ``default`` is given."""
    if "default" not in default:
        default["default"] = _PRESET[preset].get(name) if preset else ...
    return schema_field(section, name, note=note, **default)[1]


class AcquisitionHistoryResource(dg.ConfigurableResource):
    """The DuckDB acquisition history (the single store of round state) and the shard
    exchange its single writer publishes pools to and ingests score shards from."""

    path: str = _field(StorageSection, None, "history")
    shard_dir: str = _field(StorageSection, None, "shards", " (shared storage for GPU workers)")

    def open(self):
        """A :class:`ceal_pipeline.core.history.AcquisitionHistory` on ``path`` (schema migrated)."""
        from ceal_pipeline.core.history import AcquisitionHistory

        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        return AcquisitionHistory(self.path)

    def exchange(self) -> ShardExchange:
        return ShardExchange(self.shard_dir)


@dataclass(frozen=True)
class PublishedModel:
    """A round's trained detector: its checkpoint, version, training time and metrics."""

    round_index: int
    path: str
    version: str
    training_s: float
    metrics: dict

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class ModelStoreResource(dg.ConfigurableResource):
    """Detector checkpoints per round, each round's with its ``published.json`` (path, version,
    training seconds, metrics)."""

    model_dir: str = _field(StorageSection, None, "models")
    detector_config: str = _field(DetectorSection, "detector", "config")
    device: str = _field(DetectorSection, "detector", "device")
    detector_checkpoint: Optional[str] = _field(DetectorSection, "detector", "checkpoint")
    detector_train: str = _field(DetectorSection, "detector", "train")
    loader_workers: Optional[int] = _field(
        DetectorSection, "detector", "loader_workers", "; 0: read in the step's own process"
    )

    def round_checkpoint_dir(self, round_index: int) -> Path:
        return Path(self.model_dir) / f"round-{round_index:04d}"

    def published_for_round(self, round_index: int) -> PublishedModel | None:
        """The detector trained for ``round_index``, or None before its training finished."""
        path = self.round_checkpoint_dir(round_index) / "published.json"
        return PublishedModel(**json.loads(path.read_text())) if path.is_file() else None

    def publish(self, model: PublishedModel) -> None:
        """Make ``model`` its round's detector (written atomically: scoring never sees half a file)."""
        payload = (json.dumps(model.to_dict(), indent=2) + "\n").encode()
        atomic_write_bytes(self.round_checkpoint_dir(model.round_index) / "published.json", payload)

    def train(self, frames: list, round_index: int, *, epochs: int, seed: int, init_checkpoint=None, log=None):
        """Train (resuming a killed training of the same round) -> ``Checkpoint(path, version, metrics)``.

        ``init_checkpoint`` warm-starts from earlier weights; ``log`` receives each epoch's losses."""
        from ceal_pipeline.detector.mmdet3d_adapter import is_mmdet3d_config

        if is_mmdet3d_config(self.detector_config):  # the team's own mmdet3d detector
            from ceal_pipeline.detector.mmdet3d_rounds import train_round

            return train_round(frames, self.detector_config, self.round_checkpoint_dir(round_index), epochs=epochs,
                               seed=seed, train_mode=self.detector_train, team_checkpoint=self.detector_checkpoint,
                               init_checkpoint=init_checkpoint, log=log)
        from ceal_pipeline.detector.training import train_detector

        return train_detector(
            frames,
            self.detector_config,
            str(self.round_checkpoint_dir(round_index)),
            epochs=epochs,
            seed=seed,
            resume=True,
            device=self.device,
            init_checkpoint=init_checkpoint,
            log=log,
            num_workers=self.loader_workers,
        )

    def load(self, path: str):
        """``(model, version)`` from a checkpoint file."""
        from ceal_pipeline.detector.checkpoints import load_detector

        return load_detector(path, device=self.device)

    def score(
        self, model, frames: list, *, mc_passes: int, mode: str, seed: int, aggregate: str, batch_size: int,
        acquisition_fn: str = "localization_entropy",
    ):
        """MC-Dropout acquisition value per frame (``acquisition_fn``) -> ``FrameScores``."""
        from ceal_pipeline.detector.scoring import score_frames

        return score_frames(
            model,
            frames,
            T=mc_passes,
            mode=mode,
            seed=seed,
            aggregate=aggregate,
            device=self.device,
            batch_size=batch_size,
            num_workers=self.loader_workers,
            acquisition_fn=acquisition_fn,
        )

    def predict(self, model, frames: list) -> list[tuple]:
        """The detector's boxes per frame (deterministic, dropout off): ``[(boxes (K, 7) bottom-centre
        float64, class names, confidences (K,))]``, in frame order."""
        from ceal_pipeline.detector.evaluation import predict_frames

        if getattr(model, "ceal_config", {}).get("kind") == "mmdet3d":  # labels already in the ontology
            from ceal_pipeline.detector.mmdet3d_rounds import predict_ontology
            from ceal_pipeline.frames.records import DETECTION_CLASSES

            detections, _ = predict_ontology(model, frames)
            return [(d.boxes.double().numpy(), tuple(DETECTION_CLASSES[int(i)] for i in d.labels.tolist()),
                     d.scores.double().numpy()) for d in detections]
        detections = predict_frames(model, frames, device=self.device, num_workers=self.loader_workers)
        return [
            (d.boxes.detach().cpu().double().numpy(), tuple(model.class_names[int(i)] for i in d.labels.tolist()),
             d.scores.detach().cpu().double().numpy())
            for d in detections
        ]

    def evaluate(self, model, frames: list) -> dict:
        """BEV centre-distance mAP and per-class AP on labeled ``frames``."""
        from ceal_pipeline.detector.evaluation import evaluate_detector

        return evaluate_detector(model, frames, device=self.device)


class FrameSourceResource(dg.ConfigurableResource):
    """Where frames come from, where their catalog lives, and which annotations count as labels.

    Only the ``frame_catalog`` asset reads the source (:meth:`ingest`, incremental:
    unchanged source files are not parsed again); every other step reads the rows
    it needs by frame id from the persisted catalog (:meth:`catalog`).
    """

    kind: SourceKind = _field(SourceSection, "source", "kind")
    root: str = Field(description="dataset root (synthetic: where it is generated)")
    info: str = _field(SourceSection, "source", "info", " (comma-separated)", default="")
    extra_roots: str = Field(
        default="",
        description="mmdet3d: folders outside root that the info files may name files in, comma-separated "
        "(any other path outside root quarantines its frame)",
    )
    catalog_dir: str = _field(StorageSection, None, "catalog")
    synthetic_frames: int = _field(SourceSection, "source", "synthetic_frames")
    synthetic_seed: int = _field(SourceSection, "source", "synthetic_seed")
    label_mode: LabelMode = _field(SourceSection, "source", "label_mode")
    seed_labeled: int = _field(SourceSection, "source", "seed_labeled")

    def catalog(self):
        """The :class:`~ceal_pipeline.catalog.FrameCatalog` every step reads frames from, by id."""
        from ceal_pipeline.catalog import FrameCatalog

        return FrameCatalog(self.catalog_dir)

    def ingest(self):
        """Bring the catalog up to date with the source -> ``IngestReport`` (the synthetic
        generator writes its dataset first when it is missing)."""
        if self.kind == "synthetic":
            options = {"n_frames": self.synthetic_frames, "seed": self.synthetic_seed}
        else:
            infos = [part.strip() for part in self.info.split(",") if part.strip()]
            options = {"info": infos} if infos and self.kind == "mmdet3d" else {}
            extra_roots = [part.strip() for part in self.extra_roots.split(",") if part.strip()]
            if extra_roots and self.kind == "mmdet3d":
                options["extra_roots"] = extra_roots
        return self.catalog().ingest(self.kind, self.root, **options)


class VendorExporterResource(dg.ConfigurableResource):
    """The file drop the labeling vendor polls, and the inbox it answers into."""

    outbox: str = _field(StorageSection, None, "outbox", " (one round-NNNN/ drop per export)")
    inbox: str = _field(StorageSection, None, "inbox", " (round-NNNN/ per answered export)")
    uri_base: str = _field(SourceSection, "source", "uri_base", " (relative to dataset_root when it is set)")
    dataset_root: str = Field(
        default="", description="local folder the URIs are relative to; empty = the frame source's root"
    )
    pre_labels: bool = Field(
        default=True, description="add the round's detector's boxes to each task as pre-labels"
    )
    folder_mode: int = _field(StorageSection, None, "export_folder_mode", " (ceal.yaml storage.export_folder_mode)",
                              default=0o755)
    file_mode: int = _field(StorageSection, None, "export_file_mode", " (ceal.yaml storage.export_file_mode)",
                            default=0o644)

    def uri_rule(self, source_root: str) -> SensorUriRule:
        return SensorUriRule(self.dataset_root or source_root, self.uri_base)

    def export(self, round_index: int, model_version: str, rows: Iterable[ExportedFrame], run_id: str,
               files: dict | None = None, manifest_facts: dict | None = None) -> VendorExport:
        """``manifest_facts`` (JSON-able, e.g. the estimated labeling cost) go into the drop's manifest."""
        return write_vendor_export(self.outbox, round_index, model_version, list(rows),
                                   extra={"run_id": run_id, **(manifest_facts or {})}, files=files,
                                   modes=(self.folder_mode, self.file_mode))

    def exported(self, round_index: int) -> VendorExport | None:
        folder = export_folder(self.outbox, round_index)
        return read_vendor_export(folder) if folder.exists() else None


RoundParameters = dagster_class(
    "RoundParameters", config_fields(RoundSection, optional=False), doc=RoundSection.__doc__, module=__name__
)
DetectorTraining = dagster_class(
    "DetectorTraining", config_fields(DetectorSection, {f: f for f in TRAINING_FIELDS}, optional=False),
    doc="How the round's detector is trained and run (ceal.yaml detector section).", module=__name__,
)


class RunDefaultsResource(dg.ConfigurableResource):
    """The deployment's round parameters and detector training (``ceal.yaml`` ``round`` and
    ``detector``): what a run takes where its run config leaves a field unset."""

    round: RoundParameters = Field(description="ceal.yaml round: the parameters a round opens with")
    training: DetectorTraining = Field(description="ceal.yaml detector: training and scoring batch")


def run_defaults_for(project: ProjectConfig) -> RunDefaultsResource:
    """The :class:`RunDefaultsResource` of a deployment configured by ``project``."""
    return RunDefaultsResource(
        round=RoundParameters(**as_recorded(project.round)),
        training=DetectorTraining(**{f: getattr(project.detector, f) for f in TRAINING_FIELDS}),
    )


def resources_for(project: ProjectConfig) -> dict:
    """The resources of a deployment configured by ``project`` (the code location passes the
    deployment's ``ceal.yaml``, ``ceal demo`` its own file)."""
    storage, source, detector = project.storage, project.source, project.detector
    return {
        "history": AcquisitionHistoryResource(path=storage.history, shard_dir=storage.shards),
        "model_store": ModelStoreResource(
            model_dir=storage.models, detector_config=detector.config, device=detector.device,
            loader_workers=detector.loader_workers, detector_checkpoint=detector.checkpoint,
            detector_train=detector.train,
        ),
        "frame_source": FrameSourceResource(
            kind=source.kind, root=source.root, info=",".join(source.info), catalog_dir=storage.catalog,
            synthetic_frames=source.synthetic_frames, synthetic_seed=source.synthetic_seed,
            label_mode=source.label_mode, seed_labeled=source.seed_labeled,
        ),
        "exporter": VendorExporterResource(outbox=storage.outbox, inbox=storage.inbox, uri_base=source.uri_base,
                                           folder_mode=storage.export_folder_mode,
                                           file_mode=storage.export_file_mode),
        "run_defaults": run_defaults_for(project),
    }
