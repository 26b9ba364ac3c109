"""The catalog manifest: which parts are live and which source files made them.

``manifest.json`` under the catalog root is the commit point: an ingest writes
every part first, then replaces the manifest atomically; a reader that loaded a
manifest reads exactly the parts it lists. Each source unit (an mmdet3d info
file, an aiMotive sequence folder, a synthetic dataset's info file) records its
signature (size and ``mtime_ns``, and a hash where one is cheap), the options it
was parsed with, the parts holding its frames and its counts, so the next ingest
parses only units whose signature or options changed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ceal_pipeline.atomic_files import atomic_write_bytes

MANIFEST_FILE = "manifest.json"
FORMAT = "ceal-frame-catalog"
#: 2: frames, boxes and index parts are Arrow IPC files (version 1: Parquet); an
#: ingest rebuilds a version-1 catalog (:func:`read_manifest` with ``upgrade``).
VERSION = 2
UPGRADABLE_VERSIONS = (1,)


class CatalogFormatError(RuntimeError):
    """A catalog folder whose manifest this version cannot read."""


@dataclass
class SourceUnit:
    """One ingested source file or folder and the parts it produced."""

    key: str
    kind: str
    path: str
    scope: str
    size: int
    mtime_ns: int
    hash: str | None
    options: str
    parts: list[str] = field(default_factory=list)
    frames: int = 0
    boxes: int = 0
    quarantined: int = 0
    generation: int = 0

    def same_source(self, other: "SourceUnit") -> bool:
        """Whether ``other`` (a fresh signature of the same unit) needs no re-parse."""
        return (self.size, self.mtime_ns, self.hash, self.options) == (
            other.size, other.mtime_ns, other.hash, other.options)


@dataclass
class Manifest:
    """The committed state of a catalog (see the module docstring)."""

    generation: int = 0
    committed_at: str = ""
    units: dict[str, SourceUnit] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)
    #: the frame-id index of exactly these parts (``index/<name>.arrow``), "" while empty
    index: str = ""
    #: the version of the manifest this one replaces when an ingest is rebuilding an older catalog
    upgraded_from: int | None = None

    @property
    def parts(self) -> list[str]:
        return sorted(p for unit in self.units.values() for p in unit.parts)

    def frame_count(self) -> int:
        return sum(unit.frames for unit in self.units.values())

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "version": VERSION, "generation": self.generation,
                           "committed_at": self.committed_at, "changes": self.changes, "index": self.index,
                           "units": [asdict(u) for u in sorted(self.units.values(), key=lambda u: u.key)]},
                          indent=1) + "\n"


def read_manifest(root: str | Path, upgrade: bool = False) -> Manifest:
    """The manifest of the catalog at ``root`` (an empty one when none is committed yet).

    A manifest of an older, upgradable version is an error for readers; with
    ``upgrade`` (the ingest) it reads as an empty catalog of the same generation
    and change log, so that the ingest re-parses every unit into current parts
    and collects the old files."""
    path = Path(root) / MANIFEST_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return Manifest()
    except ValueError as exc:
        raise CatalogFormatError(f"catalog manifest {path} is not valid JSON ({exc}); restore it from a "
                                 "backup or re-ingest into an empty folder") from exc
    if upgrade and data.get("format") == FORMAT and data.get("version") in UPGRADABLE_VERSIONS:
        return Manifest(generation=int(data["generation"]), committed_at=data.get("committed_at", ""),
                        changes=list(data.get("changes", [])), upgraded_from=int(data["version"]))
    if data.get("format") == FORMAT and data.get("version") in UPGRADABLE_VERSIONS:
        raise CatalogFormatError(f"the frame catalog at {Path(root)} was written by an older ceal-pipeline "
                                 f"(version {data['version']}; this one reads version {VERSION}): ingest again "
                                 "(materialize the frame_catalog asset, or FrameCatalog.ingest) to rebuild it")
    if data.get("format") != FORMAT or data.get("version") != VERSION:
        raise CatalogFormatError(f"{path} is not a version-{VERSION} {FORMAT} manifest "
                                 f"(format {data.get('format')!r}, version {data.get('version')!r}): "
                                 "re-ingest into an empty folder")
    units = {u["key"]: SourceUnit(**u) for u in data.get("units", [])}
    return Manifest(generation=int(data["generation"]), committed_at=data.get("committed_at", ""), units=units,
                    changes=list(data.get("changes", [])), index=data.get("index", ""))


def write_manifest(root: str | Path, manifest: Manifest) -> None:
    """Commit ``manifest`` (atomically; the last write of an ingest)."""
    atomic_write_bytes(Path(root) / MANIFEST_FILE, manifest.to_json().encode())
