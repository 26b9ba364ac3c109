"""What every frame source returns: the frames it could read and the ones it could not."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ceal_pipeline.frames.records import FrameRecord, QuarantinedFrame


@dataclass
class FrameSourceResult:
    """Frames read from one source.

    ``frames`` are the readable frames in source order; ``quarantined`` the frames
    skipped with their reason (reading goes on past a bad file);
    ``dropped_objects`` counts annotated objects whose type maps to no detector
    class (see :mod:`ceal_pipeline.frames.classes`) or that the source marks as
    ignored (mmdet3d label ``-1``), by source type name; ``unnamed_labels``
    counts, by raw label value, objects whose label has no class name at all (an
    info file without ``categories`` for an unknown dataset): a reader
    configuration problem to report loudly, not a class choice.
    """

    frames: list[FrameRecord] = field(default_factory=list)
    quarantined: list[QuarantinedFrame] = field(default_factory=list)
    dropped_objects: Counter = field(default_factory=Counter)
    unnamed_labels: Counter = field(default_factory=Counter)

    def extend(self, other: "FrameSourceResult") -> None:
        """Append another result (e.g. another sequence or info file) to this one."""
        self.frames.extend(other.frames)
        self.quarantined.extend(other.quarantined)
        self.dropped_objects.update(other.dropped_objects)
        self.unnamed_labels.update(other.unnamed_labels)

    def quarantine(self, frame_id: str, reason: str, path: str = "", source: str = "") -> None:
        """Record a frame that could not be read, with the reason and the offending file."""
        self.quarantined.append(QuarantinedFrame(frame_id=printable(frame_id), reason=printable(reason),
                                                 path=printable(str(path)), source=source))


def printable(text: str) -> str:
    """``text`` as valid UTF-8: a file name holding bytes that are not UTF-8 (read by
    Python as lone surrogates) shows them as ``\\xNN`` instead of failing every later
    write (Parquet, JSON, the terminal)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:  # undecodable file-name bytes, as os.fsdecode left them
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # other lone surrogates
        return ascii(text)[1:-1]
