"""Content fingerprints of frames: sha256 over everything a consumer reads.

A frame's fingerprint covers its id, sequence, timestamp, split, source name,
LiDAR path and format, every camera (name, path, model, distortion, ``cam2img``,
``lidar2cam``, size), its ego pose, whether it is annotated, and its boxes and
labels, in a fixed binary layout. It leaves out bookkeeping that moves without
the frame changing: the source file, the annotation reference (an entry index)
and the row the boxes sit at. Two ingests of the same content give the same
bytes, so a changed fingerprint means a consumer would now read something else.

The numeric parts are laid out as whole arrays first and each frame hashes
slices of them, so the per-frame Python work is a few ``update`` calls.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ceal_pipeline.frames.batch import FrameBatch

_SEPARATOR = "\x1f"


def _canonical(values: np.ndarray) -> np.ndarray:
    """float64 values with every NaN the same bit pattern (``np.nan``)."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    return np.where(np.isnan(values), np.nan, values)


def frame_fingerprints(batch: FrameBatch) -> np.ndarray:
    """``(n,)`` object array of 32-byte sha256 digests, one per frame of ``batch``."""
    n = len(batch)
    frame_numbers = np.column_stack([
        _canonical(batch.timestamp), batch.lidar_num_features.astype(np.float64),
        batch.labeled.astype(np.float64), _canonical(batch.ego_pose.reshape(n, 16)),
    ]).tobytes() if n else b""
    frame_width = 8 * 19
    m = len(batch.camera_name)
    camera_numbers = np.column_stack([
        _canonical(batch.cam2img.reshape(m, 9)), _canonical(batch.lidar2cam.reshape(m, 16)),
        batch.camera_width.astype(np.float64), batch.camera_height.astype(np.float64),
    ]).tobytes() if m else b""
    camera_width = 8 * 27
    camera_text = [_SEPARATOR.join((name, path, model, repr(tuple(distortion)))).encode()
                   for name, path, model, distortion in zip(batch.camera_name, batch.camera_path,
                                                            batch.camera_model, batch.camera_distortion)]
    box_bytes = np.ascontiguousarray(batch.boxes, dtype=np.float32).tobytes()
    label_bytes = np.ascontiguousarray(batch.labels, dtype=np.int64).tobytes()
    co, bo = batch.camera_offsets.tolist(), batch.box_offsets.tolist()
    out = np.empty(n, dtype=object)
    sha256 = hashlib.sha256
    for i in range(n):
        text = _SEPARATOR.join((batch.frame_id[i], batch.sequence_id[i], batch.split[i], batch.source[i],
                                batch.lidar_path[i], batch.lidar_kind[i], repr(tuple(batch.lidar_use_dims[i]))))
        h = sha256(text.encode())
        h.update(frame_numbers[i * frame_width:(i + 1) * frame_width])
        h.update(camera_numbers[co[i] * camera_width:co[i + 1] * camera_width])
        h.update(b"".join(camera_text[co[i]:co[i + 1]]))
        h.update(box_bytes[bo[i] * 28:bo[i + 1] * 28])
        h.update(label_bytes[bo[i] * 8:bo[i + 1] * 8])
        out[i] = h.digest()
    return out
