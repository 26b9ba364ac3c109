"""The frame catalog: every known frame as columnar tables (Arrow IPC and Parquet), ingested incrementally.

``FrameCatalog(root)`` is the one entry point (:mod:`.catalog`); the modules:

- :mod:`.schema`: the frames, boxes and quarantine tables and their conversion
  from/to :class:`~ceal_pipeline.frames.batch.FrameBatch`;
- :mod:`.fingerprint`: per-frame sha256 content fingerprints;
- :mod:`.units`: source units (info files, sequence folders), their signatures, parsing one unit;
- :mod:`.ingest`: the incremental ingest and its commit;
- :mod:`.manifest`: the committed state (live parts, ingested source files);
- :mod:`.parts`: part file layout, encodings, atomic writes and random access to record batches;
- :mod:`.reads`: lookups by frame id with row-group and column pushdown;
- :mod:`.report`: :class:`IngestReport`.

No dagster, no torch: numpy, pyarrow and duckdb only.
"""

from ceal_pipeline.catalog.catalog import FrameCatalog
from ceal_pipeline.catalog.ingest import CatalogBusy
from ceal_pipeline.catalog.manifest import CatalogFormatError
from ceal_pipeline.catalog.report import IngestReport

__all__ = ["CatalogBusy", "CatalogFormatError", "FrameCatalog", "IngestReport"]
