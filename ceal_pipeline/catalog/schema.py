"""The catalog's three tables as Arrow schemas, and conversions from and to
:class:`~ceal_pipeline.frames.batch.FrameBatch`.

``frames``: one row per frame. Cameras are one ``list<struct>`` column (their
calibration as row-major ``cam2img`` 3x3 and ``lidar2cam`` 4x4); ``ego_pose`` is
the row-major 4x4 ego-to-global transform or null; ``box_row``/``box_count``
locate the frame's boxes in the sibling ``boxes`` part of the same name
(``labeled`` is false for a frame without annotations, which has no boxes, and
true for an annotated frame even when it has 0 boxes). ``fingerprint`` is
:func:`ceal_pipeline.catalog.fingerprint.frame_fingerprints`.

``boxes``: one row per box in the records' convention (LiDAR frame,
bottom-centre ``x y z l w h yaw``, float32), ``label`` indexing
``DETECTION_CLASSES`` and its ``class_name``.

``quarantine``: frames a source could not read, with the reason and the file.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ceal_pipeline.frames.batch import FrameBatch, offsets_of
from ceal_pipeline.frames.records import DETECTION_CLASSES, QuarantinedFrame

CAMERA_TYPE = pa.struct([
    ("name", pa.string()),
    ("path", pa.string()),
    ("cam2img", pa.list_(pa.float64(), 9)),
    ("lidar2cam", pa.list_(pa.float64(), 16)),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("model", pa.string()),
    ("distortion", pa.list_(pa.float64())),
])

FRAMES_SCHEMA = pa.schema([
    ("frame_id", pa.string()),
    ("sequence_id", pa.string()),
    ("timestamp_s", pa.float64()),
    ("split", pa.string()),
    ("source_kind", pa.string()),
    ("source", pa.string()),
    ("source_file", pa.string()),
    ("lidar_path", pa.string()),
    ("lidar_format", pa.string()),
    ("lidar_num_features", pa.int32()),
    ("lidar_use_dims", pa.list_(pa.int32())),
    ("cameras", pa.list_(CAMERA_TYPE)),
    ("ego_pose", pa.list_(pa.float64())),  # 16 values or null (a nullable fixed-size list does not round-trip)
    ("labeled", pa.bool_()),
    ("annotation", pa.string()),
    ("box_row", pa.int64()),
    ("box_count", pa.int32()),
    ("fingerprint", pa.binary(32)),
])

BOX_COLUMNS = ("x", "y", "z", "l", "w", "h", "yaw")
BOXES_SCHEMA = pa.schema(
    [("frame_id", pa.string())] + [(c, pa.float32()) for c in BOX_COLUMNS]
    + [("label", pa.int8()), ("class_name", pa.string())]
)

QUARANTINE_SCHEMA = pa.schema([
    ("frame_id", pa.string()),
    ("reason", pa.string()),
    ("path", pa.string()),
    ("source", pa.string()),
    ("source_file", pa.string()),
])

#: Columns :meth:`FrameCatalog.records` needs to rebuild a FrameRecord.
RECORD_COLUMNS = ("frame_id", "sequence_id", "timestamp_s", "split", "source", "lidar_path", "lidar_format",
                  "lidar_num_features", "lidar_use_dims", "cameras", "ego_pose", "labeled", "box_row", "box_count")


def sort_by_frame_id(batch: FrameBatch, fingerprints: np.ndarray) -> tuple[FrameBatch, np.ndarray]:
    """The batch (and its fingerprints) ordered by frame id, as every part is stored."""
    order = pc.sort_indices(pa.array(batch.frame_id, pa.string())).to_numpy()
    if np.array_equal(order, np.arange(len(order))):
        return batch, fingerprints
    return batch.take(order), fingerprints[order]


def frames_table(batch: FrameBatch, fingerprints: np.ndarray, *, source_kind: str, source_file: str) -> pa.Table:
    """The ``frames`` rows of ``batch`` (boxes at ``box_row`` of the matching boxes table)."""
    n, m = len(batch), len(batch.camera_name)
    cameras = pa.StructArray.from_arrays([
        pa.array(batch.camera_name, pa.string()),
        pa.array(batch.camera_path, pa.string()),
        pa.FixedSizeListArray.from_arrays(pa.array(batch.cam2img.reshape(-1), pa.float64()), 9),
        pa.FixedSizeListArray.from_arrays(pa.array(batch.lidar2cam.reshape(-1), pa.float64()), 16),
        pa.array(batch.camera_width, pa.int32()),
        pa.array(batch.camera_height, pa.int32()),
        pa.array(batch.camera_model, pa.string()),
        pa.array([list(d) for d in batch.camera_distortion], pa.list_(pa.float64())) if m else
        pa.array([], pa.list_(pa.float64())),
    ], fields=list(CAMERA_TYPE))
    has_pose = ~np.isnan(batch.ego_pose.reshape(n, 16)).any(axis=1) if n else np.zeros(0, bool)
    pose_offsets = pa.array(offsets_of(np.where(has_pose, 16, 0)), pa.int32(), mask=np.append(~has_pose, False))
    poses = pa.ListArray.from_arrays(pose_offsets, pa.array(batch.ego_pose.reshape(n, 16)[has_pose].reshape(-1),
                                                            pa.float64()))
    use_dims = pa.array([list(d) for d in batch.lidar_use_dims], pa.list_(pa.int32()))
    columns = {
        "frame_id": pa.array(batch.frame_id, pa.string()),
        "sequence_id": pa.array(batch.sequence_id, pa.string()),
        "timestamp_s": pa.array(batch.timestamp, pa.float64()),
        "split": pa.array(batch.split, pa.string()),
        "source_kind": pa.array([source_kind] * n, pa.string()),
        "source": pa.array(batch.source, pa.string()),
        "source_file": pa.array([source_file] * n, pa.string()),
        "lidar_path": pa.array(batch.lidar_path, pa.string()),
        "lidar_format": pa.array(batch.lidar_kind, pa.string()),
        "lidar_num_features": pa.array(batch.lidar_num_features, pa.int32()),
        "lidar_use_dims": use_dims,
        "cameras": pa.ListArray.from_arrays(pa.array(batch.camera_offsets, pa.int32()), cameras),
        "ego_pose": poses,
        "labeled": pa.array(batch.labeled, pa.bool_()),
        "annotation": pa.array(batch.annotation, pa.string()),
        "box_row": pa.array(batch.box_offsets[:-1], pa.int64()),
        "box_count": pa.array(batch.box_counts, pa.int32()),
        "fingerprint": pa.array(list(fingerprints), pa.binary(32)),
    }
    return pa.table(columns, schema=FRAMES_SCHEMA)


def boxes_table(batch: FrameBatch) -> pa.Table:
    """The ``boxes`` rows of ``batch``, frame by frame in batch order."""
    frame_of = np.repeat(np.arange(len(batch)), batch.box_counts)
    ids = pa.array(batch.frame_id, pa.string()).take(pa.array(frame_of, pa.int64()))
    columns = {"frame_id": ids}
    for k, name in enumerate(BOX_COLUMNS):
        columns[name] = pa.array(np.ascontiguousarray(batch.boxes[:, k]), pa.float32())
    columns["label"] = pa.array(batch.labels.astype(np.int8), pa.int8())
    columns["class_name"] = pa.array(DETECTION_CLASSES, pa.string()).take(pa.array(batch.labels, pa.int64()))
    return pa.table(columns, schema=BOXES_SCHEMA)


def quarantine_table(quarantined: list[QuarantinedFrame], source_file: str) -> pa.Table:
    return pa.table({
        "frame_id": [q.frame_id for q in quarantined], "reason": [q.reason for q in quarantined],
        "path": [q.path for q in quarantined], "source": [q.source for q in quarantined],
        "source_file": [source_file] * len(quarantined),
    }, schema=QUARANTINE_SCHEMA)


def batch_from_tables(frames: pa.Table, boxes: pa.Table) -> FrameBatch:
    """A :class:`FrameBatch` of the ``frames`` rows (at least :data:`RECORD_COLUMNS`; ``annotation`` when present)
    whose boxes are the ``boxes`` rows, frame after frame, ``box_count`` each."""
    n = frames.num_rows
    cameras = frames.column("cameras").combine_chunks()
    camera_counts = pc.list_value_length(cameras).fill_null(0).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(cameras)
    if isinstance(flat, pa.ChunkedArray):
        flat = flat.combine_chunks()
    m = len(flat)

    def field(name: str):
        return flat.field(name) if m else pa.array([], CAMERA_TYPE.field(name).type)

    def matrices(name: str, size: int) -> np.ndarray:
        values = pc.list_flatten(field(name)).to_numpy(zero_copy_only=False)
        return values.astype(np.float64).reshape(m, size, size)

    poses = frames.column("ego_pose").combine_chunks()
    ego = np.full((n, 16), np.nan)
    present = poses.is_valid().to_numpy(zero_copy_only=False)
    if present.any():
        ego[present] = pc.list_flatten(poses.filter(pa.array(present))).to_numpy(zero_copy_only=False).reshape(-1, 16)
    box_values = {c: boxes.column(c).to_numpy() for c in BOX_COLUMNS}
    return FrameBatch(
        frame_id=frames.column("frame_id").to_pylist(),
        sequence_id=frames.column("sequence_id").to_pylist(),
        timestamp=frames.column("timestamp_s").to_numpy().astype(np.float64),
        split=frames.column("split").to_pylist(),
        source=frames.column("source").to_pylist(),
        lidar_path=frames.column("lidar_path").to_pylist(),
        lidar_kind=frames.column("lidar_format").to_pylist(),
        lidar_num_features=frames.column("lidar_num_features").to_numpy().astype(np.int64),
        lidar_use_dims=[tuple(d) for d in frames.column("lidar_use_dims").to_pylist()],
        ego_pose=ego.reshape(n, 4, 4),
        labeled=frames.column("labeled").to_numpy(zero_copy_only=False).astype(bool),
        annotation=frames.column("annotation").to_pylist() if "annotation" in frames.column_names else [""] * n,
        camera_offsets=offsets_of(camera_counts),
        camera_name=field("name").to_pylist(),
        camera_path=field("path").to_pylist(),
        camera_model=field("model").to_pylist(),
        cam2img=matrices("cam2img", 3),
        lidar2cam=matrices("lidar2cam", 4),
        camera_width=field("width").to_numpy(zero_copy_only=False).astype(np.int64),
        camera_height=field("height").to_numpy(zero_copy_only=False).astype(np.int64),
        camera_distortion=[tuple(d) for d in field("distortion").to_pylist()],
        box_offsets=offsets_of(frames.column("box_count").to_numpy().astype(np.int64)),
        boxes=np.column_stack([box_values[c] for c in BOX_COLUMNS]).astype(np.float32).reshape(-1, 7),
        labels=boxes.column("label").to_numpy().astype(np.int64),
    )
