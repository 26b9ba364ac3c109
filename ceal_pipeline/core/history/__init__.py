"""The acquisition history: a versioned DuckDB store of frames, labels, score
events, candidate pools, selections, pruned frames and exports.

``AcquisitionHistory`` is the entry point (see ``store.py`` for the design);
``write_score_shard`` writes the Parquet file a scoring worker hands to the
merge step. Imports duckdb and numpy only.
"""

from ceal_pipeline.core.history.frame_registry import RegistrationResult
from ceal_pipeline.core.history.connection import HistoryLocked
from ceal_pipeline.core.history.deliveries import DeliveryRejected, DeliveryResult
from ceal_pipeline.core.history.errors import (
    DuplicateFrames,
    EmptyCandidatePool,
    FrameConflict,
    HistoryError,
    InvalidScores,
    RoundConflict,
    SchemaTooNew,
    ShardConflict,
    ShardFileError,
    UnavailableFrames,
    UnknownFrames,
)
from ceal_pipeline.core.history.pools import StoredCandidatePool, StoredSelection
from ceal_pipeline.core.history.pruned import PrunedFrames
from ceal_pipeline.core.history.rounds import RoundRecord, export_digest
from ceal_pipeline.core.history.schema import LATEST_VERSION, MIGRATIONS, apply_migrations, schema_version
from ceal_pipeline.core.history.ingest import IngestResult
from ceal_pipeline.core.history.scores import PoolScores, ScoreHistory
from ceal_pipeline.core.history.shards import SHARD_COLUMNS, read_shard_explanations, write_score_shard
from ceal_pipeline.core.history.store import AcquisitionHistory

__all__ = [
    "LATEST_VERSION",
    "MIGRATIONS",
    "SHARD_COLUMNS",
    "AcquisitionHistory",
    "DeliveryRejected",
    "DeliveryResult",
    "DuplicateFrames",
    "EmptyCandidatePool",
    "FrameConflict",
    "HistoryError",
    "HistoryLocked",
    "IngestResult",
    "InvalidScores",
    "PoolScores",
    "PrunedFrames",
    "RegistrationResult",
    "RoundConflict",
    "RoundRecord",
    "SchemaTooNew",
    "ScoreHistory",
    "ShardConflict",
    "ShardFileError",
    "StoredCandidatePool",
    "StoredSelection",
    "UnavailableFrames",
    "UnknownFrames",
    "apply_migrations",
    "export_digest",
    "read_shard_explanations",
    "schema_version",
    "write_score_shard",
]
