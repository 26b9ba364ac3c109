"""A round's 3D review as a Rerun recording (``.rrd``), written headless, and read back.

One recording per round (application id ``ceal-review``, recording id
``round-NNNN``), on the sequence timeline ``rank``: at rank ``r`` the ``r``-th
bought frame. Entities (each logged at every rank, empty where the frame has
none, so nothing of the previous frame lingers):

- ``world/ego``: the ego pose (ego -> world, the source's ``ego2global``;
  identity where the source has none); the LiDAR frame is drawn at the ego
  frame (the catalog keeps no LiDAR-to-ego extrinsic);
- ``world/ego/lidar/points``: the LiDAR points, coloured by height;
- ``world/ego/lidar/pre_labels``: the detector's boxes the vendor received, labelled
  with class and score;
- ``world/ego/lidar/uncertain/mean`` and ``.../uncertain/spread``: the most
  uncertain objects' MC-mean boxes, and their spread: an ellipsoid of the
  centre's MC standard deviations and the boxes at the mean sizes +- one
  standard deviation;
- ``world/ego/lidar/<camera>`` (pinhole and OpenCV lenses): the camera's pose in
  the LiDAR frame and its pinhole intrinsics; ``.../image`` the JPEG/PNG as
  recorded, ``.../image/pre_labels`` and ``.../image/uncertain`` the boxes' edges
  projected into it (distortion ignored); a fisheye (``mei``) camera's image is
  ``frame/cameras/<camera>/image``, without projected boxes;
- ``frame/summary`` (markdown: rank, frame id, score, explanation) and
  ``frame/score`` (the score in nats, a time series over the ranks);
- to compare, at rank ``r`` the ``r``-th best-scoring candidate that was *not*
  bought: ``candidates/ego/lidar/points`` and ``.../uncertain/...`` (no
  cameras, no pre-labels: the vendor never got it) and ``candidate/summary``,
  ``candidate/score``.

:func:`write_review` returns counts and timings; :func:`recording_counts`
reads a recording back with Rerun's own reader (``rerun.dataframe``) and counts
the same things, so a test (or ``ceal review --json``) can check them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ceal_pipeline.frames.box_conventions import to_centre_origin, yaw_to_quaternion_xyzw
from ceal_pipeline.frames.points import load_points
from ceal_pipeline.review.scene import (
    ReviewFrame,
    height_colours,
    projected_box_edges,
    summary_markdown,
    uncertain_boxes,
)

APPLICATION_ID = "ceal-review"
TIMELINE = "rank"
LIDAR = "world/ego/lidar"
CANDIDATE_LIDAR = "candidates/ego/lidar"
_CLASS_IDS = {"car": 0, "truck": 1, "pedestrian": 2, "cyclist": 3}
#: Lens models the pinhole projection (``cam2img`` alone, distortion ignored) draws boxes into.
_PINHOLE_MODELS = ("pinhole", "opencv_pinhole")
_MEDIA_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}


@dataclass(frozen=True)
class ReviewSummary:
    """What a review recording holds and what writing it cost."""

    round: int
    path: str
    frames: int
    points: int
    pre_label_boxes: int
    uncertain_boxes: int
    camera_images: int
    candidates: int
    seconds: float
    bytes: int

    @property
    def seconds_per_frame(self) -> float:
        """Seconds per frame written (bought frames and candidates alike)."""
        return self.seconds / max(self.frames + self.candidates, 1)

    @property
    def bytes_per_frame(self) -> float:
        """Bytes of the recording per frame written (bought frames and candidates alike)."""
        return self.bytes / max(self.frames + self.candidates, 1)

    def to_record(self) -> dict:
        return {**asdict(self), "seconds_per_frame": self.seconds_per_frame, "bytes_per_frame": self.bytes_per_frame}


def review_path(reviews: str | Path, round_index: int) -> Path:
    """Where round ``round_index``'s review recording lives under the reviews folder."""
    return Path(reviews) / f"round-{round_index:04d}.rrd"


def _boxes3d(rr, boxes: np.ndarray, labels: Sequence[str], class_ids: Sequence[int], colour=None):
    centre = to_centre_origin(boxes)
    quaternions = [rr.Quaternion(xyzw=q) for q in yaw_to_quaternion_xyzw(centre[:, 6])]
    return rr.Boxes3D(centers=centre[:, :3], half_sizes=centre[:, 3:6] / 2, quaternions=quaternions,
                      labels=list(labels), class_ids=list(class_ids), colors=colour)


def _log_frame(rr, rec, frame: ReviewFrame, round_index: int) -> dict:
    """Log one frame at the current rank: a bought one under ``world``/``frame``, an unbought
    candidate under ``candidates``/``candidate`` (points and uncertain objects only)."""
    lidar, text = (LIDAR, "frame") if frame.bought else (CANDIDATE_LIDAR, "candidate")
    record = frame.record
    pose = record.ego_pose if record.ego_pose is not None and np.isfinite(record.ego_pose).all() \
        else np.eye(4)
    pose = np.asarray(pose, np.float64)
    rec.log(lidar.rsplit("/", 1)[0], rr.Transform3D(translation=pose[:3, 3], mat3x3=pose[:3, :3]))
    points = load_points(record)
    rec.log(f"{lidar}/points", rr.Points3D(points[:, :3], colors=height_colours(points[:, 2]), radii=0.03))
    names = frame.pre_label_names
    if frame.bought:
        rec.log(f"{lidar}/pre_labels", _boxes3d(
            rr, frame.pre_label_boxes, [f"{n} {s:.2f}" for n, s in zip(names, frame.pre_label_scores)],
            [_CLASS_IDS.get(n, 4) for n in names]))
    mean, std, labels = uncertain_boxes(frame)
    rec.log(f"{lidar}/uncertain/mean", _boxes3d(rr, mean, labels, [5] * len(mean), colour=[255, 0, 255]))
    low, high = mean.copy(), mean.copy()
    low[:, 3:6] = np.maximum(mean[:, 3:6] - std[:, 3:6], 0.01)
    high[:, 3:6] = mean[:, 3:6] + std[:, 3:6]
    spread = np.vstack([low, high])
    rec.log(f"{lidar}/uncertain/spread", _boxes3d(rr, spread, [], [6] * len(spread), colour=[255, 160, 255]))
    centre = to_centre_origin(mean)
    rec.log(f"{lidar}/uncertain/centre_std", rr.Ellipsoids3D(
        centers=centre[:, :3], half_sizes=np.maximum(std[:, :3], 1e-3), colors=[255, 0, 255]))
    images = 0
    for camera in record.cameras if frame.bought else ():
        pinhole = camera.model in _PINHOLE_MODELS
        entity = f"{LIDAR}/{camera.name}" if pinhole else f"frame/cameras/{camera.name}"
        if pinhole:
            cam2lidar = np.linalg.inv(np.asarray(camera.lidar2cam, np.float64))
            rec.log(entity, rr.Transform3D(translation=cam2lidar[:3, 3], mat3x3=cam2lidar[:3, :3]))
            rec.log(entity, rr.Pinhole(image_from_camera=np.asarray(camera.cam2img, np.float64).reshape(3, 3),
                                       resolution=[camera.width or 1, camera.height or 1],
                                       camera_xyz=rr.ViewCoordinates.RDF))
        path = Path(camera.path)
        if path.is_file():
            rec.log(f"{entity}/image", rr.EncodedImage(
                contents=path.read_bytes(), media_type=_MEDIA_TYPES.get(path.suffix.lower(), "image/jpeg")))
            images += 1
        if not pinhole:  # a fisheye (mei) image is shown as it is: the pinhole projection would misplace boxes
            continue
        for name, boxes, colour in (("pre_labels", frame.pre_label_boxes, [80, 220, 80]),
                                    ("uncertain", mean, [255, 0, 255])):
            segments, _ = projected_box_edges(boxes, camera)
            rec.log(f"{entity}/image/{name}", rr.LineStrips2D(segments, colors=colour))
    rec.log(f"{text}/summary", rr.TextDocument(summary_markdown(frame, round_index),
                                               media_type=rr.MediaType.MARKDOWN))
    if np.isfinite(frame.score):
        rec.log(f"{text}/score", rr.Scalar(frame.score))
    return {"points": len(points), "pre_label_boxes": len(frame.pre_label_boxes), "uncertain_boxes": len(mean),
            "camera_images": images}


def write_review(frames: Sequence[ReviewFrame], round_index: int, path: str | Path,
                 candidates: Sequence[ReviewFrame] = ()) -> ReviewSummary:
    """Write the review recording of the bought ``frames`` (rank order) and the unbought
    ``candidates`` to compare (score order) to ``path`` (atomically: a temporary file renamed into
    place); return what it holds (the counts are of the bought frames) and how long it took."""
    import rerun as rr

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    started = time.perf_counter()
    rec = rr.new_recording(APPLICATION_ID, recording_id=f"round-{round_index:04d}")
    rec.save(str(partial))
    totals = {"points": 0, "pre_label_boxes": 0, "uncertain_boxes": 0, "camera_images": 0}
    for frame in frames:
        rec.set_time_sequence(TIMELINE, frame.rank)
        for key, value in _log_frame(rr, rec, frame, round_index).items():
            totals[key] += value
    for candidate in candidates:
        rec.set_time_sequence(TIMELINE, candidate.rank)
        _log_frame(rr, rec, candidate, round_index)
    rec.flush(blocking=True)
    rr.disconnect(recording=rec)
    partial.replace(path)
    return ReviewSummary(round=round_index, path=str(path), frames=len(frames), candidates=len(candidates),
                         seconds=time.perf_counter() - started, bytes=path.stat().st_size, **totals)


def recording_counts(path: str | Path) -> dict:
    """Read a review recording back with Rerun's own reader: the ranks it holds and, summed
    over them, the points, pre-label boxes, uncertain (MC-mean) boxes and camera images."""
    import rerun as rr

    recording = rr.dataframe.load_recording(str(path))
    table = recording.view(index=TIMELINE, contents="/**").select().read_all()
    columns = set(table.column_names)

    def total(column: str) -> int:
        if column not in columns:
            return 0
        return sum(len(v) for v in table.column(column).to_pylist() if v is not None)

    image_columns = [c for c in columns if c.endswith("/image:Blob")]
    ranks = table.column(TIMELINE).to_pylist()

    def ranks_with(column: str) -> list[int]:
        values = table.column(column).to_pylist() if column in columns else [None] * len(ranks)
        return sorted(int(r) for r, v in zip(ranks, values) if v is not None)

    return {
        "application_id": recording.application_id(),
        "recording_id": recording.recording_id(),
        "ranks": ranks_with("/frame/summary:Text"),
        "candidate_ranks": ranks_with("/candidate/summary:Text"),
        "points": total(f"/{LIDAR}/points:Position3D"),
        "pre_label_boxes": total(f"/{LIDAR}/pre_labels:HalfSize3D"),
        "uncertain_boxes": total(f"/{LIDAR}/uncertain/mean:HalfSize3D"),
        "camera_images": sum(total(c) for c in image_columns),
        "entities": sorted({c.split(":")[0] for c in columns if c.startswith("/")}),
    }
