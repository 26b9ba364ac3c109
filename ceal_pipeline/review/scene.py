"""What a round's 3D review shows, gathered from the round's export: no viewer, no Dagster.

A :class:`ReviewFrame` is one bought frame in rank order: its catalog record
(points, cameras, ego pose), its score (nats) and explanation
(``explanations.jsonl``: the most uncertain objects with their MC-mean box and
MC standard deviations), and the pre-labels the vendor received
(``tasks.jsonl``: the detector's boxes with class and score). Everything comes
from the files of the drop, so the review shows what was bought and sent, not a
recomputation.

The geometry helpers are plain numpy: :func:`height_colours` (points coloured by
height), :func:`projected_box_edges` (box edges in a pinhole camera's pixels).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ceal_pipeline.core.frame_explanation import FrameExplanation
from ceal_pipeline.frames.box_conventions import box_corners, to_bottom_origin
from ceal_pipeline.frames.records import CameraRecord, FrameRecord

#: Edges of the 8 corners of :func:`~ceal_pipeline.frames.box_conventions.box_corners`.
BOX_EDGES = np.array([(0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4),
                      (0, 4), (1, 5), (2, 6), (3, 7)])
#: Height colour ramp (blue, cyan, green, yellow, red) from the lowest to the highest point.
_RAMP = np.array([[30, 60, 200], [0, 190, 220], [40, 200, 60], [240, 220, 30], [220, 40, 30]], dtype=np.float64)
#: A corner closer than this to the camera plane (metres) is not projected.
_NEAR_M = 0.1


@dataclass(frozen=True)
class ReviewFrame:
    """One bought frame: ``rank`` (1 = bought first), ``score`` (nats, NaN if unscored),
    the catalog ``record``, the ``explanation`` (or None), and the pre-labels as pipeline boxes
    ``(n, 7)`` (bottom centre), class names and scores (empty when the export had none)."""

    rank: int
    score: float
    record: FrameRecord
    explanation: FrameExplanation | None
    pre_label_boxes: np.ndarray
    pre_label_names: tuple[str, ...]
    pre_label_scores: np.ndarray
    #: False for an unbought candidate shown to compare (``rank``: its place by score among those)
    bought: bool = True

    @property
    def frame_id(self) -> str:
        return self.record.frame_id


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def review_frames(export_folder: str | Path, records_of) -> list[ReviewFrame]:
    """The bought frames of the export in ``export_folder``, in rank order; ``records_of(frame ids)``
    returns their catalog records in that order (e.g. ``FrameCatalog.records``)."""
    folder = Path(export_folder)
    rows = _jsonl(folder / "selected_frames.jsonl")
    if not rows:
        raise FileNotFoundError(f"{folder}: no selected_frames.jsonl; is it a round's export folder?")
    explanations = {row["frame_id"]: row["explanation"] for row in _jsonl(folder / "explanations.jsonl")}
    pre_labels = {task["external_id"]: task.get("pre_labels") or [] for task in _jsonl(folder / "tasks.jsonl")}
    records = records_of([row["frame_id"] for row in rows])
    frames = []
    for row, record in zip(rows, records):
        pre = pre_labels.get(row["frame_id"], [])
        boxes = to_bottom_origin(np.asarray([p["bbox_3d"] for p in pre], np.float64).reshape(-1, 7))
        explanation = explanations.get(row["frame_id"])
        frames.append(ReviewFrame(
            rank=int(row["rank"]), score=float("nan") if row["score"] is None else float(row["score"]),
            record=record, explanation=None if explanation is None else FrameExplanation.from_record(explanation),
            pre_label_boxes=boxes, pre_label_names=tuple(p["class"] for p in pre),
            pre_label_scores=np.asarray([p["score"] for p in pre], np.float64),
        ))
    return frames


def top_unbought(frame_ids: Sequence[str], scores: np.ndarray, bought: Sequence[str], n: int) -> list[tuple[str, float]]:
    """The ``n`` highest-scoring frames of ``frame_ids`` (a round's scored candidates) that were not
    bought, best first, as ``(frame id, score)``; NaN scores never count. CEAL samples its batch, so
    a candidate can outscore a bought frame: these are the ones to compare against."""
    taken = set(bought)
    scores = np.asarray(scores, np.float64)
    order = np.argsort(-np.where(np.isfinite(scores), scores, -np.inf), kind="stable")
    picked = [(str(frame_ids[i]), float(scores[i])) for i in order
              if str(frame_ids[i]) not in taken and np.isfinite(scores[i])]
    return picked[:max(n, 0)]


def candidate_frames(candidates: Sequence[tuple[str, float]], records_of, explanations) -> list[ReviewFrame]:
    """Unbought candidates ``(frame id, score)`` as review frames (rank = place by score; no
    pre-labels: the vendor never got them); ``explanations`` maps frame id -> FrameExplanation."""
    records = records_of([f for f, _ in candidates]) if candidates else []
    return [ReviewFrame(rank=i, score=score, record=record, explanation=explanations.get(frame_id),
                        pre_label_boxes=np.zeros((0, 7)), pre_label_names=(), pre_label_scores=np.zeros(0),
                        bought=False)
            for i, ((frame_id, score), record) in enumerate(zip(candidates, records), start=1)]


def height_colours(z: np.ndarray) -> np.ndarray:
    """``(P, 3)`` uint8 colours of heights ``z`` (metres) on a blue-to-red ramp spanning the
    2nd to 98th percentile of the frame (outliers clip to the ends)."""
    z = np.asarray(z, dtype=np.float64)
    if len(z) == 0:
        return np.zeros((0, 3), np.uint8)
    low, high = np.percentile(z, [2, 98])
    t = np.clip((z - low) / max(high - low, 1e-6), 0.0, 1.0) * (len(_RAMP) - 1)
    i = np.minimum(t.astype(np.int64), len(_RAMP) - 2)
    f = (t - i)[:, None]
    return np.rint(_RAMP[i] * (1 - f) + _RAMP[i + 1] * f).astype(np.uint8)


def projected_box_edges(boxes: np.ndarray, camera: CameraRecord) -> tuple[np.ndarray, np.ndarray]:
    """``(segments (m, 2, 2) pixels, box index (m,))`` of the edges of bottom-centre LiDAR
    ``boxes`` that lie in front of a pinhole ``camera`` (lens distortion ignored), each
    edge clipped at the near plane; edges outside the image are kept (the viewer crops)."""
    corners = box_corners(boxes)  # (n, 8, 3)
    if len(corners) == 0:
        return np.zeros((0, 2, 2)), np.zeros(0, np.int64)
    lidar2cam = np.asarray(camera.lidar2cam, np.float64)
    in_camera = corners @ lidar2cam[:3, :3].T + lidar2cam[:3, 3]  # (n, 8, 3)
    a, b = in_camera[:, BOX_EDGES[:, 0]], in_camera[:, BOX_EDGES[:, 1]]  # (n, 12, 3)
    keep = (a[..., 2] > _NEAR_M) | (b[..., 2] > _NEAR_M)
    # Clip the end behind the near plane onto it, so an edge crossing the camera plane stays finite.
    for p, q in ((a, b), (b, a)):
        behind = keep & (p[..., 2] <= _NEAR_M)
        t = (_NEAR_M - p[..., 2]) / np.where(behind, q[..., 2] - p[..., 2], 1.0)
        p[behind] = p[behind] + t[behind][:, None] * (q[behind] - p[behind])
    cam2img = np.asarray(camera.cam2img, np.float64).reshape(3, 3)
    ends = np.stack([a[keep], b[keep]], axis=1) @ cam2img.T  # (m, 2, 3)
    index = np.nonzero(keep)[0]
    return ends[..., :2] / ends[..., 2:3], index


def summary_markdown(frame: ReviewFrame, round_index: int) -> str:
    """The frame's rank, score and explanation as the review's text panel."""
    lines = [f"# Round {round_index}, rank {frame.rank}: `{frame.frame_id}`" if frame.bought else
             f"# Round {round_index}, not bought: candidate {frame.rank} by score, `{frame.frame_id}`",
             f"- sequence `{frame.record.sequence_id}`, score **{frame.score:.4f} nats**",
             f"- pre-labels sent to the vendor: {len(frame.pre_label_boxes)}" if frame.bought else
             "- not sent to the vendor (CEAL samples its batch: a higher score is likelier, not certain, to be bought)"]
    e = frame.explanation
    if e is None:
        lines.append("- not explained (the score shard held no explanation)")
        return "\n".join(lines) + "\n"
    counts = ", ".join(f"{n} {c}" for c, n in sorted(e.class_counts.items())) or "none"
    lines.append(f"- {e.n_detections} detections ({counts}); {e.acquisition_fn}, {e.aggregate} over objects")
    if e.at_empty_floor:
        lines.append("- no detection: scored at the no-detection floor")
    for i, o in enumerate(e.most_uncertain, start=1):
        lines.append(f"- uncertain {i}: {o.class_name} at ({o.box[0]:.1f}, {o.box[1]:.1f}) m, "
                     f"{o.localization_entropy:.2f} nats, conf {o.confidence:.2f}; MC std centre "
                     f"{o.centre_std_m:.2f} m, size {o.size_std_m:.2f} m, yaw {o.yaw_std_rad:.3f} rad")
    return "\n".join(lines) + "\n"


def uncertain_boxes(frame: ReviewFrame) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """``(MC-mean boxes (k, 7), MC std (k, 7), labels)`` of the frame's most uncertain objects."""
    objects: Sequence = frame.explanation.most_uncertain if frame.explanation is not None else ()
    boxes = np.asarray([o.box for o in objects], np.float64).reshape(-1, 7)
    stds = np.asarray([o.box_std for o in objects], np.float64).reshape(-1, 7)
    labels = tuple(f"{o.class_name} {o.localization_entropy:.2f} nats" for o in objects)
    return boxes, stds, labels
