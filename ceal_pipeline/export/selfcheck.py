"""The vendor round-trip self-check: export every annotated frame of a source, answer it
with the source's own ground truth as a vendor delivery, ingest it, compare.

It runs the product's code end to end in a scratch folder: the catalog ingest,
the history (frames registered, a round's selection and export recorded), the
export with its vendor files (:mod:`.vendor_formats`), the vendor side reading
the external ids back from the exported files of the chosen format, the
delivery writer and :func:`.label_ingest.ingest_inbox`. A box that comes back
more than 1 mm or 1e-4 rad away from the source, or not at all, fails it.
"""

from __future__ import annotations

import importlib
import json
import pickle
from pathlib import Path

import numpy as np

from ceal_pipeline.catalog import FrameCatalog
from ceal_pipeline.core.boxes import Boxes
from ceal_pipeline.core.history import AcquisitionHistory
from ceal_pipeline.export.file_drop import ExportedFrame, write_vendor_export
from ceal_pipeline.export.label_ingest import ingest_inbox
from ceal_pipeline.export.sensor_uris import SensorUriRule
from ceal_pipeline.export.vendor_formats import MMDET3D_NAME, OPENLABEL_FOLDER, export_files
from ceal_pipeline.export.vendor_inbox import ground_truth_labels, write_label_delivery
from ceal_pipeline.export.vendor_tasks import frame_tasks
from ceal_pipeline.frames.box_conventions import wrap_angle

CENTER_TOLERANCE_M = 1e-3
SIZE_TOLERANCE_M = 1e-3
YAW_TOLERANCE_RAD = 1e-4
#: The module that reads the frame ids back from each labeling tool's files in a drop.
_TOOL_MODULES = {"cvat_kitti_raw": "ceal_pipeline.export.cvat", "segments": "ceal_pipeline.export.segments",
                 "kognic": "ceal_pipeline.export.kognic"}


def exported_external_ids(folder: Path, fmt: str) -> list[str]:
    """The external ids a vendor reads from an export in ``fmt``."""
    if fmt == "openlabel":
        return sorted(json.loads(p.read_text())["openlabel"]["metadata"]["external_id"]
                      for p in (folder / OPENLABEL_FOLDER).glob("*.json"))
    if fmt in _TOOL_MODULES:
        return sorted(importlib.import_module(_TOOL_MODULES[fmt]).exported_frame_ids(folder))
    infos = pickle.loads((folder / MMDET3D_NAME).read_bytes())  # our own export: trusted
    return sorted(entry["token"] for entry in infos["data_list"])


def run_selfcheck(source: str, root: str | Path, fmt: str, workdir: str | Path, info: str | None = None,
                  base_uri: str = "s3://vendor-bucket/dataset") -> dict:
    """Run the round trip in ``workdir`` and return the summary (see the module docstring)."""
    workdir = Path(workdir)
    catalog = FrameCatalog(workdir / "catalog")
    catalog.ingest(source, root, **({"info": [info]} if info else {}))
    ids = [str(f) for f in catalog.frame_ids(annotated=True)]
    if not ids:
        raise ValueError(f"{source} source at {root}: no annotated frame to check; point --root at labeled data")
    records = catalog.records(ids)
    history = AcquisitionHistory(workdir / "history.duckdb")
    history.register_frame_arrays(ids, [r.sequence_id for r in records])
    history.start_round(0, seed=0, parameters={"selfcheck": fmt})
    history.save_selection(0, ids, np.zeros(len(ids)))
    uris = SensorUriRule(str(root), base_uri)
    tasks = frame_tasks(records, uris)
    export = write_vendor_export(workdir / "outbox", 0, "selfcheck",
                                 [ExportedFrame(r.frame_id, r.sequence_id, 0.0) for r in records],
                                 files=export_files(0, "selfcheck", tasks, uris, formats=(fmt,)))
    history.record_export(0, export.folder, ids)

    truth = ground_truth_labels(records)
    vendor_ids = exported_external_ids(export.folder, fmt)
    write_label_delivery(workdir / "inbox", 0, {f: truth[f] for f in vendor_ids if f in truth}, fmt=fmt,
                         vendor="selfcheck")
    ingested, rejected = ingest_inbox(history, workdir / "inbox")
    delivered = history.delivered_labels(ids)

    boxes = returned = 0
    center = size = yaw = 0.0
    lost: list[str] = []
    for frame_id, (true_boxes, true_names) in truth.items():
        boxes += len(true_boxes)
        got, got_names = delivered.get(frame_id, (Boxes(np.zeros((0, 7))), ()))
        got_boxes = got.values
        if len(got_boxes) != len(true_boxes) or tuple(got_names) != tuple(true_names):
            lost.append(frame_id)
            continue
        returned += len(got_boxes)
        if len(true_boxes):
            center = max(center, float(np.linalg.norm(got_boxes[:, :3] - true_boxes[:, :3], axis=1).max()))
            size = max(size, float(np.abs(got_boxes[:, 3:6] - true_boxes[:, 3:6]).max()))
            yaw = max(yaw, float(np.abs(wrap_angle(got_boxes[:, 6] - true_boxes[:, 6])).max()))
    passed = (not lost and not rejected and returned == boxes and center <= CENTER_TOLERANCE_M
              and size <= SIZE_TOLERANCE_M and yaw <= YAW_TOLERANCE_RAD)
    return {
        "source": source, "format": fmt, "frames": len(ids), "frames_exported": len(vendor_ids),
        "frames_delivered": len(delivered), "boxes": boxes, "boxes_returned": returned,
        "max_center_error_m": center, "max_size_error_m": size, "max_yaw_error_rad": yaw,
        "frames_lost": lost[:10], "rejected": [r.reason for r in rejected],
        "deliveries_ingested": sum(1 for d in ingested if d.result.frames_added), "passed": passed,
    }
