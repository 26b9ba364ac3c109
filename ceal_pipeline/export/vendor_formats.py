"""The files of a round's export a vendor labels from, rendered from its tasks.

- ``project.json``: the project manifest (format ``ceal-vendor-project/1``): round,
  model version, the class ontology, the label specification, the URI rule, the
  formats in the drop and how to deliver;
- ``tasks.jsonl``: one task per line in the project's own format (:func:`.vendor_tasks.task_json`);
- ``openlabel/<safe name>.json``: one ASAM OpenLABEL 1.0 scene per frame (:mod:`.openlabel`; the
  name: :mod:`.file_names`, the frame id is the scene's ``external_id``);
- ``mmdet3d_infos.pkl``: the mmdet3d info file of all tasks (:mod:`.mmdet3d_format`);
- the labeling tools' layouts, each when ``export.formats`` names it: ``cvat_kitti_raw/``
  (:mod:`.cvat`), ``segments/`` (:mod:`.segments`), ``kognic/`` (:mod:`.kognic`), with the
  point clouds converted to the PCD each tool reads.

:func:`export_files` returns them as bytes for :func:`.file_drop.write_vendor_export`,
which writes them atomically with the CSV, once per round.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from ceal_pipeline.export.file_names import RULE as FILE_NAME_RULE
from ceal_pipeline.export.file_names import safe_file_stem
from ceal_pipeline.export.label_spec import LABEL_SPEC_VERSION, class_ontology, label_specification
from ceal_pipeline.export.mmdet3d_format import dump_infos, mmdet3d_infos
from ceal_pipeline.export.openlabel import openlabel_scene
from ceal_pipeline.export.sensor_uris import SensorUriRule
from ceal_pipeline.export.vendor_tasks import FrameTask, task_json

PROJECT_FORMAT = "ceal-vendor-project/1"
PROJECT_NAME = "project.json"
TASKS_NAME = "tasks.jsonl"
OPENLABEL_FOLDER = "openlabel"
MMDET3D_NAME = "mmdet3d_infos.pkl"
#: Every format an export can hold (``export.formats`` in ceal.yaml), and the ones it holds by default.
FORMATS = ("openlabel", "mmdet3d", "cvat_kitti_raw", "segments", "kognic")
DEFAULT_FORMATS = ("openlabel", "mmdet3d")
#: Where each labeling tool's files lie in the drop, and how its labels come back.
_TOOL_LAYOUTS = {
    "cvat_kitti_raw": ("cvat_kitti_raw/", "*.zip: CVAT's export of the task in 'Kitti Raw Format 1.0'"),
    "segments": ("segments/samples.json", "*.json: a Segments.ai release of the dataset (labelset ground-truth)"),
    "kognic": ("kognic/<external id>.json", "*.kognic.json: Kognic's OpenLABEL export (their cuboid convention)"),
}


def tool_files(fmt: str, tasks: Sequence[FrameTask], round_index: int) -> dict[str, bytes]:
    """The files of labeling tool format ``fmt`` (one of :data:`FORMATS` past the first two)."""
    if fmt == "cvat_kitti_raw":
        from ceal_pipeline.export.cvat import cvat_files

        return cvat_files(tasks)
    if fmt == "segments":
        from ceal_pipeline.export.segments import segments_files

        return segments_files(tasks, round_index)
    if fmt == "kognic":
        from ceal_pipeline.export.kognic import kognic_files

        return kognic_files(tasks, round_index)
    raise ValueError(f"unknown export format {fmt!r}: use one of {FORMATS}")


def openlabel_name(frame_id: str) -> str:
    """``openlabel/<safe name>.json`` (:mod:`.file_names`: no ``:`` or ``@``; the id is inside)."""
    return f"{OPENLABEL_FOLDER}/{safe_file_stem(frame_id)}.json"


def project_manifest(round_index: int, model_version: str, tasks: Sequence[FrameTask], uris: SensorUriRule,
                     formats: Sequence[str] = DEFAULT_FORMATS) -> dict:
    """The versioned project manifest of a round's export."""
    manifest = {
        "format": PROJECT_FORMAT,
        "round": round_index,
        "model_version": model_version,
        "tasks": len(tasks),
        "external_id": "the frame id: every task, scene and delivery names its frame by it",
        "ontology": {"version": LABEL_SPEC_VERSION, "classes": class_ontology()},
        "label_specification": label_specification(),
        "sensor_uris": uris.describe(),
        "pre_labels": "the round's detector's boxes (deterministic pass), where given; a starting point only",
        "files": {"tasks": TASKS_NAME, "openlabel": f"{OPENLABEL_FOLDER}/<safe name of the external id>.json",
                  "openlabel_names": FILE_NAME_RULE,
                  "mmdet3d": MMDET3D_NAME},
        "delivery": {
            "inbox": f"round-{round_index:04d}/ in the label inbox",
            "formats": {"openlabel": "*.json: OpenLABEL 1.0, frames keyed by frame_properties.external_id",
                        "mmdet3d": "*.pkl or *.json: {'metainfo': {'categories'}, 'data_list': [{'token', "
                                   "'instances'}]}, bbox_3d with the gravity centre as origin"},
        },
    }
    for fmt in formats:
        if fmt in _TOOL_LAYOUTS:
            manifest["files"][fmt], manifest["delivery"]["formats"][fmt] = _TOOL_LAYOUTS[fmt]
    manifest["export_formats"] = list(formats)
    return manifest


def export_files(round_index: int, model_version: str, tasks: Sequence[FrameTask], uris: SensorUriRule,
                 formats: Sequence[str] = DEFAULT_FORMATS) -> dict:
    """Relative file name -> bytes of every vendor-facing file of the export in ``formats``."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown export formats {unknown}: use some of {list(FORMATS)}")
    def dumps(payload: dict) -> bytes:
        return (json.dumps(payload, indent=1, allow_nan=False) + "\n").encode("utf-8")

    files = {
        PROJECT_NAME: dumps(project_manifest(round_index, model_version, tasks, uris, formats)),
        TASKS_NAME: "".join(json.dumps(task_json(t), allow_nan=False) + "\n" for t in tasks).encode("utf-8"),
    }
    if "mmdet3d" in formats:
        files[MMDET3D_NAME] = dump_infos(mmdet3d_infos(tasks, round_index))
    if "openlabel" in formats:
        for task in tasks:
            files[openlabel_name(task.external_id)] = dumps(openlabel_scene(task, round_index))
    for fmt in formats:
        if fmt in _TOOL_LAYOUTS:
            files.update(tool_files(fmt, tasks, round_index))
    return files
