"""The project configuration's schema: what ``ceal.yaml`` may say, typed and bounded.

Four sections: ``source`` (where frames come from and which annotations count
as labels), ``storage`` (where state lives), ``detector`` (model, device,
training) and ``round`` (the round parameters that ``candidate_pool`` records
when a round opens: pool size, temperature, K, MC passes, shard size,
acquisition function, pruning); ``export`` (the formats each round's export
holds, for the labeling tools). Every enumerated field is a ``Literal``, every
number has its bounds, and an unknown key is an error (a typo must not be
silently ignored). No Dagster import: the CLI reads this too.
"""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ceal_pipeline.core.detection_acquisition import DetectionAcquisitionName
from ceal_pipeline.core.selection import SelectionMethod
from ceal_pipeline.core.round import RoundZeroMode

SourceKind = Literal["synthetic", "mmdet3d", "aimotive"]
LabelMode = Literal["source", "simulated_vendor"]
Normalisation = Literal["rank", "zscore", "none"]
McMode = Literal["head", "full"]
Aggregate = Literal["mean", "max", "sum", "top_k_sum", "confidence_sum"]
PresetName = Literal["cpu-small", "gpu"]
#: The formats a round's export can hold (ceal_pipeline/export/vendor_formats.py; docs/VENDOR.md).
ExportFormat = Literal["openlabel", "mmdet3d", "cvat_kitti_raw", "segments", "kognic"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSection(_Section):
    kind: SourceKind = Field(description="synthetic (built-in generator), mmdet3d (info files) or aimotive (folders)")
    root: Optional[str] = Field(
        default=None, description="dataset root; unset: storage.home/data/synthetic (synthetic only)"
    )
    info: list[str] = Field(default_factory=list, description="mmdet3d info .pkl files relative to root; empty: every *.pkl")
    label_mode: LabelMode = Field(
        description="source: every frame annotated in the source is labeled (the first round's seed set); "
        "simulated_vendor: only seed_labeled of them plus vendor deliveries are"
    )
    seed_labeled: int = Field(ge=1, description="simulated_vendor: size of the first round's seed set")
    synthetic_frames: int = Field(ge=20, description="synthetic: frames the generator writes")
    synthetic_seed: int = Field(ge=0, description="synthetic: generator seed (also the seed set's draw)")
    uri_base: str = Field(
        default="", description="base URI the labeling vendor reads this dataset's files from (e.g. "
        "s3://bucket/prefix): a file's URI is this + '/' + its path relative to root; empty: file:// URIs"
    )


class StorageSection(_Section):
    home: Optional[str] = Field(default=None, description="folder of all state; unset: $CEAL_HOME or ./.ceal")
    history: Optional[str] = Field(default=None, description="DuckDB acquisition history; unset: home/history.duckdb")
    shards: Optional[str] = Field(default=None, description="pools and score shards; unset: home/shards")
    catalog: Optional[str] = Field(default=None, description="columnar frame catalog; unset: home/catalog")
    models: Optional[str] = Field(default=None, description="detector checkpoints; unset: home/models")
    outbox: Optional[str] = Field(default=None, description="vendor export drops; unset: home/outbox")
    inbox: Optional[str] = Field(default=None, description="vendor label deliveries; unset: home/inbox")
    export_folder_mode: int = Field(default=0o755, ge=0, le=0o777, description="mode of the export's folders, "
                                    "whatever the umask (octal in YAML: 0755)")
    export_file_mode: int = Field(default=0o644, ge=0, le=0o777, description="mode of the export's files, "
                                  "whatever the umask (octal in YAML: 0644)")


class ExportSection(_Section):
    formats: list[ExportFormat] = Field(
        default_factory=lambda: ["openlabel", "mmdet3d"], min_length=1,
        description="what each round's export holds: openlabel, mmdet3d, cvat_kitti_raw (CVAT 3D task), "
        "segments (Segments.ai samples), kognic (Kognic OpenLABEL); the last three add PCD point clouds",
    )


class DetectorSection(_Section):
    config: str = Field(description="mmengine detector config by name (models/) or path; or any mmdet3d config "
                        "file (e.g. mmdet3d/.mim/configs/...): the team's own detector")
    checkpoint: Optional[str] = Field(default=None, description="mmdet3d config: the team's trained weights "
                                      "(.pth); unset: random initialisation")
    train: Literal["fine_tune", "frozen"] = Field(default="fine_tune", description="mmdet3d config: fine_tune on "
                                                  "the labeled frames each round, or frozen (score with the weights as they are)")
    device: str = Field(description="auto (cuda when available), cpu or cuda[:n]")
    epochs: int = Field(ge=1, description="training epochs of a round trained from scratch")
    fine_tune_epochs: int = Field(ge=0, description="epochs when warm-starting from the previous round; 0: epochs")
    warm_start: bool = Field(description="start each round from the previous round's weights")
    max_eval_frames: int = Field(ge=-1, description="held-out frames for mAP; -1 all, 0 skip")
    scoring_batch_size: int = Field(ge=1, description="frames per forward batch while scoring")
    loader_workers: Optional[int] = Field(default=None, ge=0, description="frame reader processes; unset: min(4, cores - 1)")

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if value in ("auto", "cpu", "cuda") or (value.startswith("cuda:") and value[5:].isdigit()):
            return value
        raise ValueError(f"{value!r} is not a device: use auto, cpu, cuda or cuda:N")


class SelectionSection(_Section):
    """How a round turns scored candidates into a purchase (core.selection.SelectionPolicy)."""

    method: SelectionMethod = Field(
        default="topk", description="topk, class_balance (weight by labeled-set class need), diversity (no "
        "near-duplicates, on the scoring pass's BEV embedding) or class_balance_diversity"
    )
    diversity_weight: float = Field(
        default=0.5, ge=0.0, le=1.0, description="diversity methods: share of distance-to-batch in the objective; "
        "0 = topk, 1 = k-center greedy"
    )
    class_balance_strength: float = Field(
        default=1.0, ge=0.0, description="class balance methods: exponent on each class's need; 0 = topk"
    )


class BudgetSection(_Section):
    """The labeling vendor's price list and the money a round may spend (instead of K)."""

    amount: Optional[float] = Field(
        default=None, ge=0.0, description="money per round; unset: K decides and the prices only estimate the cost"
    )
    price_per_frame: float = Field(default=1.0, ge=0.0, description="vendor price per frame labeled")
    price_per_cuboid: float = Field(
        default=0.0, ge=0.0, description="vendor price per 3D box; a frame's boxes are estimated by the detector's"
    )


class RoundSection(_Section):
    """Round parameters: recorded when a round opens; every later run of the round uses them."""

    k: int = Field(ge=1, description="frames bought from the vendor per round")
    per_sequence_cap: int = Field(ge=0, description="at most this many frames bought per sequence; 0 = no cap")
    pool_fraction: float = Field(gt=0.0, le=1.0, description="candidate pool as a fraction alpha of the unlabeled pool")
    pool_count: int = Field(ge=0, description="fixed candidate pool size; overrides pool_fraction when > 0")
    temperature: float = Field(gt=0.0, description="softmax temperature T over normalised historical scores")
    normalisation: Normalisation = Field(description="score normalisation before the softmax")
    prior: Union[Literal["optimistic", "pessimistic", "mean"], float] = Field(
        description="score of never-scored frames: optimistic, pessimistic, mean or a number"
    )
    round_zero_mode: RoundZeroMode = Field(description="round 0: full_pool scores every frame once; prior samples")
    shard_size: int = Field(ge=1, description="frames per candidate_scores shard (one GPU step each)")
    mc_passes: int = Field(ge=2, description="MC-Dropout passes T per frame")
    mc_mode: McMode = Field(description="head: backbone once, dropout head T times; full: whole net T times")
    acquisition_fn: DetectionAcquisitionName = Field(description="acquisition function over the MC passes")
    aggregate: Aggregate = Field(description="per-frame aggregation of object entropies")
    prune: bool = Field(description="prune frames whose score stays persistently low")
    prune_last_m: int = Field(ge=1, description="pruned when each of its last m scores ...")
    prune_quantile: float = Field(gt=0.0, lt=1.0, description="... was in the bottom q quantile of its round")
    prune_floor: Optional[float] = Field(default=None, description="optional absolute score floor (nats) instead")
    run_seed: int = Field(ge=0, description="experiment seed; every draw derives from (seed, round)")
    selection: SelectionSection = Field(
        default_factory=SelectionSection, description="selection stage after scoring: method and its weights"
    )
    budget: BudgetSection = Field(
        default_factory=BudgetSection, description="vendor price list and optional money budget per round"
    )


class ProjectConfig(_Section):
    """One deployment's configuration: what every run uses, whoever launches it."""

    preset: PresetName = Field(description="the preset the other values start from")
    source: SourceSection
    storage: StorageSection = Field(default_factory=StorageSection)
    detector: DetectorSection
    round: RoundSection
    export: ExportSection = Field(default_factory=ExportSection)
