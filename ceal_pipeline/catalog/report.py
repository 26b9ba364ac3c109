"""What an ingest tells its caller: counts, example ids, and the problems to fix."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

#: Example frame ids kept per kind of change (the changes log has all of them).
EXAMPLES = 5


@dataclass
class IngestReport:
    """The outcome of :meth:`FrameCatalog.ingest`.

    Units are source files or folders (see :mod:`ceal_pipeline.catalog.units`).
    ``frames_added``/``frames_changed``/``frames_removed`` compare the live
    catalog before and after (a frame that moved to another file with the same
    content is unchanged); ``examples`` holds a few ids of each kind, the
    changes log (:meth:`FrameCatalog.changes`) all of them. ``duplicates`` are
    frame ids found in two places: the copy already live (else the first file by
    path) is kept, the others are quarantined. ``unnamed_labels`` maps an info
    file to the label values that have no class name (objects dropped), and
    every problem a person must act on is also a sentence in ``warnings``.
    """

    kind: str
    source_root: str
    generation: int = 0
    units_seen: int = 0
    units_parsed: int = 0
    units_skipped: int = 0
    units_removed: int = 0
    parsed_files: list[str] = field(default_factory=list)
    frames: int = 0
    frames_added: int = 0
    frames_changed: int = 0
    frames_removed: int = 0
    boxes: int = 0
    quarantined: int = 0
    duplicates: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)
    dropped_objects: dict[str, int] = field(default_factory=dict)
    unnamed_labels: dict[str, dict[int, int]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: parser-process seconds summed over the parsed units, and the part of them spent
    #: loading (unpickling) info files: the floor no parser can go below
    unit_s: float = 0.0
    load_s: float = 0.0

    def add_examples(self, kind: str, frame_ids) -> None:
        kept = self.examples.setdefault(kind, [])
        for frame_id in frame_ids:
            if len(kept) >= EXAMPLES:
                break
            kept.append(str(frame_id))

    def add_dropped(self, dropped: Counter) -> None:
        for name, count in dropped.items():
            self.dropped_objects[name] = self.dropped_objects.get(name, 0) + int(count)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["unnamed_labels"] = {f: {str(k): v for k, v in labels.items()}
                                  for f, labels in self.unnamed_labels.items()}
        return data
