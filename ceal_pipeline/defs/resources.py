"""Dagster resources: the acquisition history, the model store, the frame source, the exporter.

Each is a ``ConfigurableResource`` whose fields all default to the project
configuration (``ceal.yaml``, :mod:`ceal_pipeline.configuration`), so the UI's
launchpad works unchanged and every run of a deployment, whoever launches it,
uses the same source, storage and detector. Heavy imports (torch,
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

from ceal_pipeline.configuration import ProjectConfig, project_config
from ceal_pipeline.configuration.schema import LabelMode, SourceKind
from ceal_pipeline.atomic_files import atomic_write_bytes
from ceal_pipeline.defs.acquisition.shard_exchange import ShardExchange
from ceal_pipeline.export import (
    ExportedFrame,
    VendorExport,
    export_folder,
    read_vendor_export,
    write_vendor_export,
)
from ceal_pipeline.export.sensor_uris import SensorUriRule

_PROJECT = project_config()


class AcquisitionHistoryResource(dg.ConfigurableResource):
    """The DuckDB acquisition history (the single store of round state) and the shard
    exchange its single writer publishes pools to and ingests score shards from."""

    path: str = Field(default=_PROJECT.storage.history, description="DuckDB file of the acquisition history")
    shard_dir: str = Field(
        default=_PROJECT.storage.shards,
        description="shard exchange: published candidate pools and Parquet score shards (shared storage for "
        "GPU workers)",
    )

    def open(self):
        """A :class:`ceal_pipeline.core.history.AcquisitionHistory` on ``path`` (schema migrated)."""
        from ceal_pipeline.core.history import AcquisitionHistory

        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        return AcquisitionHistory(self.path)

    def exchange(self) -> ShardExchange:
        return ShardExchange(self.shard_dir)


@dataclass(frozen=True)
class PublishedModel:
    """The detector checkpoint currently used for scoring."""

    round_index: int
    path: str
    version: str
    training_s: float
    metrics: dict

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class ModelStoreResource(dg.ConfigurableResource):
    """Detector checkpoints per round plus a pointer to the one in use (``current.json``)."""

    model_dir: str = Field(default=_PROJECT.storage.models, description="folder of detector checkpoints")
    detector_config: str = Field(
        default=_PROJECT.detector.config,
        description="mmengine config of the detector, by name or path (bevfusion_tiny for quick runs); "
        "default from CEAL_DETECTOR_CONFIG",
    )
    device: str = Field(
        default=_PROJECT.detector.device, description="'auto' (cuda when available), 'cpu' or 'cuda[:n]'; ceal.yaml detector.device"
    )
    detector_checkpoint: Optional[str] = Field(
        default=_PROJECT.detector.checkpoint,
        description="mmdet3d detector config: the team's trained weights; ceal.yaml detector.checkpoint",
    )
    detector_train: str = Field(
        default=_PROJECT.detector.train,
        description="mmdet3d detector config: fine_tune or frozen; ceal.yaml detector.train",
    )
    loader_workers: Optional[int] = Field(
        default=_PROJECT.detector.loader_workers,
        description="processes reading and decoding frames ahead of the model in training and scoring; "
        "unset = min(4, cores - 1), 0 = read in the step's own process",
    )

    def round_checkpoint_dir(self, round_index: int) -> Path:
        return Path(self.model_dir) / f"round-{round_index:04d}"

    def _pointer(self) -> Path:
        return Path(self.model_dir) / "current.json"

    def current(self) -> PublishedModel | None:
        """The model in use, or None before the first training."""
        pointer = self._pointer()
        return PublishedModel(**json.loads(pointer.read_text())) if pointer.is_file() else None

    def require_current(self) -> PublishedModel:
        model = self.current()
        if model is None:
            raise FileNotFoundError(
                f"{self._pointer()}: no trained detector yet; materialize the detector asset (job nightly_acquisition)"
            )
        return model

    def published_for_round(self, round_index: int) -> PublishedModel | None:
        path = self.round_checkpoint_dir(round_index) / "published.json"
        return PublishedModel(**json.loads(path.read_text())) if path.is_file() else None

    def publish(self, model: PublishedModel) -> None:
        """Make ``model`` the one in use (written atomically: scoring never sees half a pointer)."""
        payload = (json.dumps(model.to_dict(), indent=2) + "\n").encode()
        for target in (self.round_checkpoint_dir(model.round_index) / "published.json", self._pointer()):
            atomic_write_bytes(target, payload)

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

    kind: SourceKind = Field(
        default=_PROJECT.source.kind,
        description="'synthetic' (built-in generator), 'mmdet3d' (info files) or 'aimotive'; ceal.yaml source.kind",
    )
    root: str = Field(default=_PROJECT.source.root, description="dataset root (synthetic: where it is generated)")
    info: str = Field(
        default=",".join(_PROJECT.source.info),
        description="mmdet3d info .pkl files relative to root, comma-separated; empty = every *.pkl; ceal.yaml source.info",
    )
    extra_roots: str = Field(
        default="",
        description="mmdet3d: folders outside root that the info files may name files in, comma-separated "
        "(any other path outside root quarantines its frame)",
    )
    catalog_dir: str = Field(default=_PROJECT.storage.catalog, description="folder of the columnar frame catalog")
    synthetic_frames: int = Field(
        default=_PROJECT.source.synthetic_frames, description="frames the synthetic generator writes; ceal.yaml source.synthetic_frames"
    )
    synthetic_seed: int = Field(default=_PROJECT.source.synthetic_seed, description="seed of the synthetic generator")
    label_mode: LabelMode = Field(
        default=_PROJECT.source.label_mode,
        description="'source': every annotated frame is labeled; 'simulated_vendor': only the seed set and "
        "frames the vendor delivered (inbox) are, although the source holds ground truth for all; ceal.yaml source.label_mode",
    )
    seed_labeled: int = Field(
        default=_PROJECT.source.seed_labeled,
        description="simulated_vendor: size of the initial labeled seed set; ceal.yaml source.seed_labeled",
    )

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

    outbox: str = Field(default=_PROJECT.storage.outbox, description="folder of per-round export drops")
    inbox: str = Field(default=_PROJECT.storage.inbox, description="folder of label deliveries from the vendor "
                       "(round-NNNN/ per answered export)")
    uri_base: str = Field(
        default=_PROJECT.source.uri_base,
        description="base URI the vendor reads sensor files from (e.g. s3://bucket/prefix): a file's URI is "
        "this + '/' + its path relative to dataset_root; empty = file:// URIs (ceal.yaml source.uri_base, "
        "CEAL_VENDOR_URI_BASE)",
    )
    dataset_root: str = Field(
        default="", description="local folder the URIs are relative to; empty = the frame source's root"
    )
    pre_labels: bool = Field(
        default=True, description="add the round's detector's boxes to each task as pre-labels"
    )
    folder_mode: int = Field(default=_PROJECT.storage.export_folder_mode, description="mode of the drop's "
                             "folders, whatever the umask (ceal.yaml storage.export_folder_mode)")
    file_mode: int = Field(default=_PROJECT.storage.export_file_mode, description="mode of the drop's files, "
                           "whatever the umask (ceal.yaml storage.export_file_mode)")

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


def resources_for(project: ProjectConfig) -> dict:
    """The four resources of a deployment configured by ``project`` (the code location uses
    :func:`~ceal_pipeline.configuration.project_config`; ``ceal demo`` its own file)."""
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
        "exporter": VendorExporterResource(outbox=storage.outbox, inbox=storage.inbox,
                                           folder_mode=storage.export_folder_mode,
                                           file_mode=storage.export_file_mode),
    }
