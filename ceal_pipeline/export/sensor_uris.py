"""Where a vendor finds a frame's sensor files: local paths mapped to URIs.

The rule (documented in ``docs/VENDOR.md``): a sensor file's path is resolved
and taken relative to the dataset root; the URI is the base URI, a ``/``, and
that relative path in POSIX form, unchanged (no percent-encoding: object-store
keys such as ``s3://bucket/prefix/samples/LIDAR_TOP/n015...+0800__LIDAR_TOP.pcd.bin``
keep their characters). With no base URI the URI is the file's absolute
``file://`` URI (for a vendor tool on the same network share), percent-encoded
as RFC 8089 requires of a file URI (``@`` -> ``%40``, ``:`` -> ``%3A``, ``+`` ->
``%2B``; a vendor's tool decodes it back to the path). A file outside
the dataset root cannot be mapped and is an error naming it, never a guess.

The same rule uploads the dataset: ``aws s3 sync <dataset root> <base URI>``
puts every file where its URI points.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


class UnmappablePath(ValueError):
    """A sensor file outside the dataset root the URIs are relative to."""


@dataclass(frozen=True)
class SensorUriRule:
    """``dataset_root`` (local folder) and ``base_uri`` (e.g. ``s3://bucket/prefix``; empty: ``file://``)."""

    dataset_root: str
    base_uri: str = ""

    def uri(self, path: str | os.PathLike) -> str:
        """The URI of a local sensor file (see the module docstring)."""
        resolved = Path(path).resolve()
        if not self.base_uri:
            return resolved.as_uri()
        root = Path(self.dataset_root).resolve()
        try:
            relative = resolved.relative_to(root)
        except ValueError:
            raise UnmappablePath(
                f"sensor file {resolved} is not under the dataset root {root}, so it has no URI under "
                f"{self.base_uri}: set the exporter's dataset_root to a folder holding every sensor file"
            ) from None
        return self.base_uri.rstrip("/") + "/" + relative.as_posix()

    def local_uri_warning(self) -> str | None:
        """A loud warning when there is no base URI: every vendor-facing file of the export
        (``tasks.jsonl``, ``openlabel/*.json``, ``mmdet3d_infos.pkl``, ``project.json``) then
        carries ``file://`` URIs of this machine's own paths, which a vendor elsewhere cannot
        open and which disclose the local folder layout. None when a base URI is set."""
        if self.base_uri:
            return None
        return (f"no source.uri_base is set: the export's sensor URIs are file:// URIs of this machine "
                f"({Path(self.dataset_root).resolve().as_uri()}/...), which a labeling vendor elsewhere cannot "
                "open and which disclose local paths; set source.uri_base in ceal.yaml (or CEAL_VENDOR_URI_BASE) "
                "to where the vendor reads the dataset, e.g. s3://bucket/prefix")

    def describe(self) -> dict:
        """The rule as the project manifest states it."""
        return {
            "base_uri": self.base_uri or "file://",
            "rule": "base_uri + '/' + path relative to the dataset root (POSIX, not percent-encoded); "
                    "without a base URI the absolute file:// URI, percent-encoded (RFC 8089)",
        }
