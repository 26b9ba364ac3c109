"""The files of a round's export a vendor labels from, rendered from its tasks.

- ``project.json``: the project manifest (format ``ceal-vendor-project/1``): round,
  model version, the class ontology, the label specification, the URI rule, the
  formats in the drop and how to deliver;
- ``tasks.jsonl``: one task per line in the project's own format (:func:`.vendor_tasks.task_json`);
- ``openlabel/<safe name>.json``: one ASAM OpenLABEL 1.0 scene per frame (:mod:`.openlabel`; the
  name: :mod:`.file_names`, the frame id is the scene's ``external_id``);
- ``mmdet3d_infos.pkl``: the mmdet3d info file of all tasks (:mod:`.mmdet3d_format`).

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


def openlabel_name(frame_id: str) -> str:
    """``openlabel/<safe name>.json`` (:mod:`.file_names`: no ``:`` or ``@``; the id is inside)."""
    return f"{OPENLABEL_FOLDER}/{safe_file_stem(frame_id)}.json"


def project_manifest(round_index: int, model_version: str, tasks: Sequence[FrameTask], uris: SensorUriRule) -> dict:
    """The versioned project manifest of a round's export."""
    return {
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


def export_files(round_index: int, model_version: str, tasks: Sequence[FrameTask], uris: SensorUriRule) -> dict:
    """Relative file name -> bytes of every vendor-facing file of the export."""
    def dumps(payload: dict) -> bytes:
        return (json.dumps(payload, indent=1, allow_nan=False) + "\n").encode("utf-8")

    files = {
        PROJECT_NAME: dumps(project_manifest(round_index, model_version, tasks, uris)),
        TASKS_NAME: "".join(json.dumps(task_json(t), allow_nan=False) + "\n" for t in tasks).encode("utf-8"),
        MMDET3D_NAME: dump_infos(mmdet3d_infos(tasks, round_index)),
    }
    for task in tasks:
        files[openlabel_name(task.external_id)] = dumps(openlabel_scene(task, round_index))
    return files
