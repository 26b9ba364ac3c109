"""What the UI shows about why frames were bought: a table of the top frames and bird's-eye views.

The explanations themselves (:class:`~ceal_pipeline.core.frame_explanation.FrameExplanation`)
come from the score shards; this module only lays them out:

* :func:`top_frames_table`: Dagster table metadata with a schema (typed,
  sortable columns in the UI), one row per frame: score, detections per class,
  the no-detection floor flag and the most uncertain object's MC spread.
* :func:`bird_eye_view_markdown`: one PNG (matplotlib, headless Agg) with, per
  top frame, a bird's-eye view of the scene (LiDAR points, the MC-mean
  footprints of its most uncertain objects) and a close-up of each of those
  objects with the spread of its MC box samples, plus one camera thumbnail of
  the top frame with the boxes projected; embedded in markdown as a base64
  ``data:`` image (the form the UI renders inline).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dagster as dg
import numpy as np

from ceal_pipeline.core.frame_explanation import FrameExplanation, UncertainObject
from ceal_pipeline.defs.acquisition.metadata import figure_markdown, pyplot
from ceal_pipeline.frames.records import FrameRecord

#: The columns of the top-frames table, with what they mean (shown in the UI).
TOP_FRAMES_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("rank", "int", description="1 = highest score"),
        dg.TableColumn("frame_id", "string"),
        dg.TableColumn("sequence_id", "string"),
        dg.TableColumn("score_nats", "float", description="acquisition value, nats; higher = more worth labeling"),
        dg.TableColumn("detections", "int", description="objects the detector found in the frame"),
        dg.TableColumn("per_class", "string", description="detections per class"),
        dg.TableColumn("no_detection_floor", "bool",
                       description="no detection: scored at the constant no-detection value (ranks last)"),
        dg.TableColumn("aggregate", "string", description="how object entropies became the frame's score"),
        dg.TableColumn("most_uncertain", "string", description="class and BEV centre (x, y; m) of the most "
                       "uncertain object"),
        dg.TableColumn("entropy_nats", "float", description="its localization entropy, nats"),
        dg.TableColumn("centre_std_m", "float", description="MC std of its centre (root-sum-square of x, y, z), m"),
        dg.TableColumn("size_std_m", "float", description="MC std of its size (root-sum-square of l, w, h), m"),
        dg.TableColumn("yaw_std_rad", "float", description="circular MC std of its heading, rad"),
        dg.TableColumn("next_uncertain", "string", description="the 2nd and 3rd most uncertain objects: "
                       "class, centre and entropy"),
    ]
)

#: Colours of the 1st, 2nd and 3rd most uncertain object in the bird's-eye views.
_OBJECT_COLOURS = ("#d1495b", "#edae49", "#00798c")
#: Points drawn per bird's-eye view (an even subsample): enough to see the scene, small PNG.
_MAX_POINTS = 20_000
#: Box footprints drawn per object to show its MC spread.
_SPREAD_SAMPLES = 24


def _where(obj: UncertainObject) -> str:
    return f"{obj.class_name} ({obj.box[0]:.1f}, {obj.box[1]:.1f})"


def _round(value: float, digits: int = 4) -> float:
    return float(round(value, digits))


def top_frames_table(
    frame_ids: Sequence[str],
    scores: Sequence[float],
    sequence_ids: Sequence[str],
    explanations: Mapping[str, FrameExplanation],
    *,
    limit: int = 20,
    in_given_order: bool = False,
) -> dg.TableMetadataValue:
    """The ``limit`` highest-scoring frames (score desc, frame id asc), or with ``in_given_order``
    the first ``limit`` as given (a purchase in the order it was bought, so ``rank`` is the export's),
    with why each scored so, as Dagster table metadata with :data:`TOP_FRAMES_SCHEMA`. Frames without
    an explanation (a shard from a scorer that cannot explain) have empty explanation cells."""
    scores = np.asarray(scores, dtype=np.float64)
    order = (list(range(len(frame_ids))) if in_given_order else
             sorted(range(len(frame_ids)), key=lambda i: (-scores[i], frame_ids[i])))[:limit]
    records = []
    for rank, i in enumerate(order, start=1):
        explanation = explanations.get(frame_ids[i])
        row: dict = {"rank": rank, "frame_id": str(frame_ids[i]), "sequence_id": str(sequence_ids[i]),
                     "score_nats": _round(scores[i])}
        row.update(dict.fromkeys(["detections", "per_class", "no_detection_floor", "aggregate", "most_uncertain",
                                  "entropy_nats", "centre_std_m", "size_std_m", "yaw_std_rad", "next_uncertain"]))
        if explanation is not None:
            row.update(
                detections=explanation.n_detections,
                per_class=", ".join(f"{n} {c}" for c, n in explanation.class_counts.items()) or "none",
                no_detection_floor=explanation.at_empty_floor,
                aggregate=explanation.aggregate,
                next_uncertain="; ".join(
                    f"{_where(o)} {o.localization_entropy:.2f} nats" for o in explanation.most_uncertain[1:]
                ) or None,
            )
            if explanation.most_uncertain:
                top = explanation.most_uncertain[0]
                row.update(most_uncertain=_where(top), entropy_nats=_round(top.localization_entropy),
                           centre_std_m=_round(top.centre_std_m), size_std_m=_round(top.size_std_m),
                           yaw_std_rad=_round(top.yaw_std_rad))
        records.append(dg.TableRecord(row))
    return dg.MetadataValue.table(records, schema=TOP_FRAMES_SCHEMA)


def _footprint(box: Sequence[float]) -> np.ndarray:
    """``(5, 2)`` closed BEV outline of a bottom-centre box ``x y z l w h yaw``."""
    from ceal_pipeline.frames.box_conventions import box_corners

    corners = box_corners(np.asarray(box, dtype=np.float64))[0, :4, :2]
    return np.vstack([corners, corners[:1]])


def _spread_boxes(obj: UncertainObject) -> np.ndarray:
    """``(_SPREAD_SAMPLES, 7)`` boxes drawn from N(MC mean, MC std^2) per value: the object's
    spread as the passes saw it (their covariance is not kept, only each value's std)."""
    rng = np.random.default_rng(0)  # the same picture for the same explanation
    boxes = np.asarray(obj.box) + rng.standard_normal((_SPREAD_SAMPLES, 7)) * np.asarray(obj.box_std)
    boxes[:, 3:6] = np.maximum(boxes[:, 3:6], 0.05)
    return boxes


def _view_limits(points: np.ndarray, objects: Sequence[UncertainObject]) -> tuple[float, float, float, float]:
    """A square BEV window holding 98 % of the points and every drawn object, metres."""
    xs = [o.box[0] for o in objects]
    ys = [o.box[1] for o in objects]
    if len(points):
        lo, hi = np.percentile(points[:, :2], [1, 99], axis=0)
        xs += [lo[0], hi[0]]
        ys += [lo[1], hi[1]]
    if not xs:
        return -40.0, 40.0, -40.0, 40.0
    half = max(10.0, (max(xs) - min(xs)) / 2 + 5.0, (max(ys) - min(ys)) / 2 + 5.0)
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    return cx - half, cx + half, cy - half, cy + half


def _shown_points(points: np.ndarray, x0: float, x1: float, y0: float, y1: float, cap: int) -> np.ndarray:
    inside = (points[:, 0] >= x0) & (points[:, 0] <= x1) & (points[:, 1] >= y0) & (points[:, 1] <= y1)
    return points[inside][:: max(1, int(inside.sum()) // cap)]


def _draw_object(ax, obj: UncertainObject, colour: str, *, spread: bool) -> None:
    """The MC-mean footprint (thick) and, with ``spread``, the fan of drawn boxes and the
    2-sigma ellipse of the centre."""
    from matplotlib.patches import Ellipse

    if spread:
        for box in _spread_boxes(obj):
            outline = _footprint(box)
            ax.plot(outline[:, 0], outline[:, 1], color=colour, linewidth=0.6, alpha=0.3)
        ax.add_patch(Ellipse((obj.box[0], obj.box[1]), 4 * obj.box_std[0], 4 * obj.box_std[1], facecolor=colour,
                             alpha=0.35, edgecolor="none"))
    outline = _footprint(obj.box)
    ax.plot(outline[:, 0], outline[:, 1], color=colour, linewidth=1.8)


def _draw_scene(ax, frame: FrameRecord, points: np.ndarray | None, rank: int, score: float,
                explanation: FrameExplanation | None) -> None:
    """The whole scene from above: points, the most uncertain objects' footprints, the ego."""
    objects = explanation.most_uncertain if explanation is not None else ()
    if points is None:
        points = np.zeros((0, 4), dtype=np.float32)
        ax.text(0.5, 0.5, "LiDAR unreadable (see the run log)", ha="center", va="center", fontsize=7,
                transform=ax.transAxes)
    x0, x1, y0, y1 = _view_limits(points, objects)
    shown = _shown_points(points, x0, x1, y0, y1, _MAX_POINTS)
    ax.scatter(shown[:, 0], shown[:, 1], s=0.3, c=shown[:, 2], cmap="Greys_r", alpha=0.6, linewidths=0)
    for index, obj in enumerate(objects):
        colour = _OBJECT_COLOURS[index % len(_OBJECT_COLOURS)]
        _draw_object(ax, obj, colour, spread=False)
        ax.annotate(f"{index + 1}", (obj.box[0], obj.box[1]), xytext=(4, 4), textcoords="offset points",
                    fontsize=8, fontweight="bold", color=colour)
    ax.plot([0.0], [0.0], marker=">", color="#1f3a5f", markersize=7)  # the ego vehicle, facing +x
    if explanation is None:
        status = "no explanation in its score shard"
    elif explanation.at_empty_floor:
        status = "no detection: scored at the floor"
    elif explanation.n_detections == 0:
        status = f"no detection: scored by {explanation.acquisition_fn}"
    else:
        counts = ", ".join(f"{n} {c}" for c, n in explanation.class_counts.items()) or "no detection"
        status = f"{counts}; {explanation.aggregate} of object entropies"
    ax.set_title(f"#{rank} {frame.frame_id}: {score:.2f} nats\n{status}", fontsize=8)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)
    ax.set_xlabel("x (m, forward)", fontsize=7)
    ax.set_ylabel("y (m, left)", fontsize=7)


def _draw_object_close_up(ax, points: np.ndarray | None, index: int, obj: UncertainObject) -> None:
    """One uncertain object up close: its points, MC-mean footprint and the spread of its box."""
    half = max(4.0, 0.75 * max(obj.box[3], obj.box[4]) + 3.0 * max(obj.box_std[0], obj.box_std[1]))
    x0, x1, y0, y1 = obj.box[0] - half, obj.box[0] + half, obj.box[1] - half, obj.box[1] + half
    if points is not None:
        shown = _shown_points(points, x0, x1, y0, y1, _MAX_POINTS)
        ax.scatter(shown[:, 0], shown[:, 1], s=2.0, c="#5f6b7a", alpha=0.7, linewidths=0)
    colour = _OBJECT_COLOURS[index % len(_OBJECT_COLOURS)]
    _draw_object(ax, obj, colour, spread=True)
    ax.set_title(
        f"{index + 1}: {obj.class_name}, {obj.localization_entropy:.1f} nats, conf {obj.confidence:.2f}\n"
        f"MC std: centre {obj.centre_std_m:.2f} m, size {obj.size_std_m:.2f} m, yaw {obj.yaw_std_rad:.2f} rad",
        fontsize=7, color=colour,
    )
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=6)


def _project(corners: np.ndarray, camera) -> np.ndarray | None:
    """``(8, 2)`` pixels of LiDAR-frame box corners in a pinhole camera, or None when the box is
    not entirely in front of it."""
    homogeneous = np.column_stack([corners, np.ones(len(corners))])
    in_camera = (np.asarray(camera.lidar2cam, dtype=np.float64) @ homogeneous.T)[:3]
    if (in_camera[2] <= 0.1).any():
        return None
    pixels = np.asarray(camera.cam2img, dtype=np.float64).reshape(3, 3) @ in_camera
    return (pixels[:2] / pixels[2]).T


#: Edges of the 8 corners of :func:`ceal_pipeline.frames.box_conventions.box_corners`.
_BOX_EDGES = ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7))


def _camera_seeing(frame: FrameRecord, objects: Sequence[UncertainObject]) -> tuple:
    """``(camera, sees)``: the frame's first pinhole camera whose image holds the most uncertain
    object's centre (``sees`` True), else its front camera, else its first."""
    if objects:
        centre = np.asarray([objects[0].box[:3]], dtype=np.float64)
        for camera in frame.cameras:
            pixel = _project(centre, camera) if camera.model == "pinhole" else None
            if pixel is not None and 0 <= pixel[0, 0] < (camera.width or np.inf) and \
                    0 <= pixel[0, 1] < (camera.height or np.inf):
                return camera, True
    front = [camera for camera in frame.cameras if "front" in camera.name.lower()]
    return (front or list(frame.cameras))[0], False


def _draw_camera_thumbnail(ax, frame: FrameRecord, explanation: FrameExplanation | None) -> None:
    from PIL import Image

    from ceal_pipeline.frames.box_conventions import box_corners

    ax.set_axis_off()
    if not frame.cameras:
        ax.text(0.5, 0.5, f"{frame.frame_id}: no camera", ha="center", va="center", transform=ax.transAxes)
        return
    objects = explanation.most_uncertain if explanation is not None else ()
    camera, sees = _camera_seeing(frame, objects)
    try:
        with Image.open(camera.path) as image:
            rgb = image.convert("RGB")
            width = rgb.size[0]
            rgb.thumbnail((480, 270))
            thumbnail = np.asarray(rgb)
    except OSError as exc:
        ax.text(0.5, 0.5, f"camera {camera.name} unreadable:\n{str(exc)[:80]}", ha="center", va="center",
                fontsize=7, transform=ax.transAxes)
        return
    ax.imshow(thumbnail)
    note = ""
    if objects and camera.model == "pinhole":
        scale = thumbnail.shape[1] / width
        for index, obj in enumerate(objects):
            pixels = _project(box_corners(np.asarray(obj.box))[0], camera)
            if pixels is None:
                continue
            pixels = pixels * scale
            for a, b in _BOX_EDGES:
                ax.plot(pixels[[a, b], 0], pixels[[a, b], 1], color=_OBJECT_COLOURS[index % 3], linewidth=1.0)
        ax.set_xlim(0, thumbnail.shape[1])
        ax.set_ylim(thumbnail.shape[0], 0)
    elif objects:
        note = f" ({camera.model} lens: boxes not projected)"
    if objects and not sees:
        note += " (no pinhole camera sees object 1)"
    ax.set_title(f"camera {camera.name} of #1 {frame.frame_id}{note}", fontsize=8)


def bird_eye_view_markdown(
    frames: Sequence[FrameRecord],
    scores: Sequence[float],
    explanations: Mapping[str, FrameExplanation],
    *,
    title: str,
) -> dg.MetadataValue:
    """Bird's-eye views of ``frames`` (best first; 3 make a readable panel) plus one camera
    thumbnail of the first, as an inline PNG with a caption saying how to read it."""
    if not frames:
        return dg.MetadataValue.md("(no frames selected)")
    from ceal_pipeline.frames.points import LidarReadError, load_points

    plt = pyplot()
    fig = plt.figure(figsize=(11.0, 3.3 * len(frames) + 3.0), dpi=75)
    grid = fig.add_gridspec(len(frames) + 1, 4, width_ratios=[1.6, 1, 1, 1])
    try:
        for row, (frame, score) in enumerate(zip(frames, scores)):
            explanation = explanations.get(frame.frame_id)
            try:
                points = load_points(frame)
            except LidarReadError:
                points = None
            _draw_scene(fig.add_subplot(grid[row, 0]), frame, points, row + 1, float(score), explanation)
            objects = explanation.most_uncertain if explanation is not None else ()
            for index in range(3):
                ax = fig.add_subplot(grid[row, index + 1])
                if index < len(objects):
                    _draw_object_close_up(ax, points, index, objects[index])
                else:
                    ax.set_axis_off()
        _draw_camera_thumbnail(fig.add_subplot(grid[len(frames), :2]), frames[0],
                               explanations.get(frames[0].frame_id))
        fig.suptitle(title, fontsize=10)
        fig.subplots_adjust(left=0.06, right=0.98, top=1.0 - 0.95 / fig.get_figheight(), bottom=0.02,
                            hspace=0.45, wspace=0.35)
        caption = (
            "One row per top frame. Left: the scene from above, LiDAR points (darker = lower), the ego vehicle "
            "(triangle, facing +x) and the MC-mean footprints of the 1st (red), 2nd (amber) and 3rd (teal) most "
            "uncertain objects. Right: each of those objects up close: thick outline = MC-mean box, thin "
            "outlines = boxes drawn from the MC mean and standard deviation of each box value, shaded ellipse = "
            "2 standard deviations of the centre; the wider the fan, the more the MC-Dropout passes disagreed "
            "and the higher the object's localization entropy. Bottom: the camera that sees the top frame's "
            "most uncertain object, with the objects' MC-mean boxes projected."
        )
        return figure_markdown(fig, title, caption, tight=False)
    finally:
        plt.close(fig)
