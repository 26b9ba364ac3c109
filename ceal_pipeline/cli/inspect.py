"""`ceal inspect`: summarise a frame source before wiring it in.

Reads every frame of the source, loads its point cloud and counts the LiDAR
points inside each labeled box: a dataset whose calibration or box convention
is wrong shows up as boxes with no points, a broken camera extrinsic as a camera
that sees no points. Prints one JSON summary line with ``--json`` (with
``--frames``, preceded by one JSON line per frame and one per quarantined frame
``{"id", "quarantined": reason, "path"}``), or a human-readable table with a
progress bar on stderr.

Examples::

    ceal inspect --source mmdet3d --root data/nuscenes --info nuscenes_infos_val.pkl --json
    ceal inspect --source aimotive --root data/aimotive --frames --json
    ceal inspect --source synthetic --root .ceal/synthetic --frames-count 200 --seed 0
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, choices=("aimotive", "mmdet3d", "synthetic"),
                        help="which reader to use")
    parser.add_argument("--root", required=True, help="dataset folder (synthetic: where to generate or read)")
    parser.add_argument("--info", help="mmdet3d info file, relative to --root or absolute (default: every *.pkl)")
    parser.add_argument("--lidar-prefix", help="folder under --root holding the LiDAR files named in the info file")
    parser.add_argument("--camera-prefix", action="append", metavar="[CAM=]PATH",
                        help="folder under --root holding camera images; CAM=PATH for one camera (repeatable)")
    parser.add_argument("--box-frame", choices=("lidar", "camera"), help="override the info file's box frame")
    parser.add_argument("--extra-root", action="append", metavar="PATH",
                        help="mmdet3d: a folder outside --root that the info file may name files in (repeatable; "
                             "any other path outside --root quarantines its frame)")
    parser.add_argument("--classes", help="mmdet3d: comma-separated class names in label order, for info files "
                                          "whose metainfo names none (e.g. Pedestrian,Cyclist,Car)")
    parser.add_argument("--frames-count", type=int, help="synthetic: number of frames to generate (default 2000)")
    parser.add_argument("--seed", type=int, help="synthetic: generator seed (default 0)")
    parser.add_argument("--overwrite", action="store_true",
                        help="synthetic: regenerate when --root holds a dataset with other parameters")
    parser.add_argument("--check", choices=("exists", "header", "points"), default="header",
                        help="how thoroughly files are checked while cataloguing (default: header)")
    parser.add_argument("--limit", type=int, help="load points for only the first N frames")
    parser.add_argument("--max-range", type=float, default=50.0,
                        help="boxes farther than this (metres, BEV) are left out of boxes_with_points (default 50)")
    parser.add_argument("--frames", action="store_true", help="also print one JSON line per frame")
    parser.add_argument("--json", action="store_true", help="machine-readable output, no progress bar")


def _camera_prefix(values: list[str] | None):
    if not values:
        return None
    if len(values) == 1 and "=" not in values[0]:
        return values[0]
    mapping = {}
    for value in values:
        name, sep, path = value.partition("=")
        if sep:
            mapping[name] = path
        else:
            mapping["*"] = value
    return mapping


class _Progress:
    """A one-line progress bar on stderr (nothing when disabled)."""

    def __init__(self, label: str, enabled: bool):
        self.label, self.enabled, self.start = label, enabled, time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        width = 30
        filled = int(width * done / total)
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {rate:.0f}/s")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def source_options(args: argparse.Namespace, progress=None) -> dict:
    """``read_source`` options from the command line (shared with `ceal init`)."""
    options = {"check": args.check}
    if args.source == "mmdet3d":
        options.update(info=args.info, lidar_prefix=args.lidar_prefix, camera_prefix=_camera_prefix(args.camera_prefix),
                       box_frame=args.box_frame, extra_roots=getattr(args, "extra_root", None),
                       classes=[c.strip() for c in args.classes.split(",")] if args.classes else None)
    elif args.source == "synthetic":
        options.update(n_frames=args.frames_count, seed=args.seed, overwrite=args.overwrite or None, progress=progress)
    return options


def inspect_source(kind: str, root: str, options: dict, *, limit: int | None = None, max_range: float = 50.0,
                   on_frame=None, show_progress: bool = False):
    """Read a source, load points of its first ``limit`` frames and count the points in each box.

    Returns ``(summary dict, quarantined frames)``; ``on_frame(line)`` receives one dict per
    frame. Raises what ``read_source`` raises for a source that cannot be read.
    """
    import numpy as np

    from ceal_pipeline.frames.entry_checks import REPEATED_ID, first_copies
    from ceal_pipeline.frames.points import LidarReadError, load_points
    from ceal_pipeline.frames.points_in_boxes import count_points_in_boxes
    from ceal_pipeline.frames.records import QuarantinedFrame
    from ceal_pipeline.frames.sources import read_source

    started = time.perf_counter()
    result = read_source(kind, root, **options)
    frames, repeats = first_copies(result.frames)  # the mmdet3d reader quarantines repeated ids itself
    quarantined: list[QuarantinedFrame] = list(result.quarantined) + repeats
    duplicates = [q for q in quarantined if q.reason.startswith(REPEATED_ID)]
    to_load = frames if limit is None else frames[:limit]
    progress = _Progress("reading points", show_progress)
    n_points, boxes_in_range, boxes_with_points = [], 0, 0
    class_counts: dict[str, int] = {}
    in_view: dict[str, list[float]] = {}
    for i, record in enumerate(to_load, 1):
        try:
            points = load_points(record)
        except LidarReadError as exc:
            quarantined.append(QuarantinedFrame(record.frame_id, str(exc), record.lidar_path, record.source))
            progress(i, len(to_load))
            continue
        n_points.append(len(points))
        for camera in record.cameras:
            in_view.setdefault(camera.name, []).append(_share_in_view(points, camera))
        line_boxes = []
        if record.is_labeled:
            counts = count_points_in_boxes(points, record.boxes)
            near = np.hypot(record.boxes[:, 0], record.boxes[:, 1]) <= max_range
            boxes_in_range += int(near.sum())
            boxes_with_points += int((near & (counts > 0)).sum())
            for box, label, count in zip(record.boxes, record.labels, counts):
                name = record.class_names[int(label)]
                class_counts[name] = class_counts.get(name, 0) + 1
                line_boxes.append({"label": name, "box": [round(float(v), 3) for v in box],
                                   "points_inside": int(count)})
        if on_frame is not None:
            on_frame({"id": record.frame_id, "sequence": record.sequence_id, "split": record.split,
                      "n_points": len(points), "cameras": [c.name for c in record.cameras], "boxes": line_boxes})
        progress(i, len(to_load))

    loaded_ok = {r.frame_id for r in to_load} - {q.frame_id for q in quarantined}
    summary = {
        "source": kind,
        "root": str(root),
        "frames": len(frames) - (len(quarantined) - len(result.quarantined) - len(repeats)),
        "sequences": len({r.sequence_id for r in frames}),
        "labeled_frames": sum(r.is_labeled for r in frames),
        "boxes": int(sum(len(r.boxes) for r in frames if r.is_labeled)),
        "points_mean": round(float(np.mean(n_points)), 1) if n_points else 0.0,
        "cameras": len({c.name for r in frames for c in r.cameras}),
        "quarantined": len(quarantined),
        "duplicate_ids": len(duplicates),
        "frames_with_points_loaded": len(loaded_ok),
        "boxes_within_range": boxes_in_range,
        "boxes_with_points_within_range": boxes_with_points,
        "classes": dict(sorted(class_counts.items())),
        "camera_points_in_view": {name: round(float(np.mean(v)), 4) for name, v in sorted(in_view.items())},
        "splits": dict(sorted({s: sum(r.split == s for r in frames) for s in {r.split for r in frames}}.items())),
        "labeled_by_split": dict(sorted({s: sum(r.split == s and r.is_labeled for r in frames)
                                         for s in {r.split for r in frames}}.items())),
        "dropped_objects": dict(sorted(result.dropped_objects.items())),
        "unnamed_labels": {str(k): v for k, v in sorted(result.unnamed_labels.items())},
        "quarantine_reasons": quarantine_reasons(quarantined),
        "seconds": round(time.perf_counter() - started, 2),
    }
    if result.unnamed_labels:
        from ceal_pipeline.frames.mmdet3d_info import unnamed_labels_message

        # Loud on stderr in every mode: a dataset read as "0 boxes" trains a detector on nothing.
        print(f"ceal inspect: WARNING: {unnamed_labels_message(result.unnamed_labels, root)}", file=sys.stderr)
    if duplicates:
        print(f"ceal inspect: WARNING: {len(duplicates)} frames repeat an id already read (e.g. "
              f"{', '.join(sorted({q.frame_id for q in duplicates})[:5])}); the catalog keeps the first copy and "
              "quarantines the others: give each dataset its own ids (frame_id_prefix)", file=sys.stderr)
    return summary, quarantined


def run(args: argparse.Namespace) -> int:
    show_progress = not args.json
    options = source_options(args, _Progress("generating", show_progress))
    on_frame = (lambda line: print(json.dumps(line))) if args.frames else None
    try:
        summary, quarantined = inspect_source(args.source, args.root, options, limit=args.limit,
                                              max_range=args.max_range, on_frame=on_frame, show_progress=show_progress)
    except (FileNotFoundError, ValueError, TypeError, RuntimeError) as exc:
        print(f"ceal inspect: {exc}", file=sys.stderr)
        return 2
    if args.frames:
        for q in quarantined:
            print(json.dumps({"id": q.frame_id, "quarantined": q.reason, "path": q.path}))
    if args.json:
        print(json.dumps(summary))
    else:
        _print_table(summary, quarantined)
    if summary["frames"] == 0:
        # Nothing usable is a failure, whatever the output mode: say why on stderr too.
        print(f"ceal inspect: no usable frame in {args.root}; {describe_quarantine(summary['quarantine_reasons'])}",
              file=sys.stderr)
        return 1
    return 0


_ENTRY_PREFIX = re.compile(r"^\S+ entry \d+: ")


def quarantine_reasons(quarantined, limit: int = 10) -> dict[str, int]:
    """The ``limit`` most common reasons frames were quarantined, with their counts; the
    ``<info file> entry N:`` prefix is dropped so that one cause is counted once."""
    counts: dict[str, int] = {}
    for q in quarantined:
        reason = _ENTRY_PREFIX.sub("", q.reason)
        counts[reason] = counts.get(reason, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit])


def describe_quarantine(reasons: dict[str, int]) -> str:
    """One sentence naming why frames were quarantined (for `inspect` and `init` errors)."""
    if not reasons:
        return "the source lists no frames: check --root and --info"
    return "frames were quarantined because: " + "; ".join(f"{reason} (x{count})" for reason, count in reasons.items())


def _share_in_view(points, camera) -> float:
    """Share of LiDAR points that project into the camera image (pinhole model).

    A calibration check: a camera with a wrong extrinsic sees ~0 of the points
    its field of view should hold. Distortion is ignored, so fisheye cameras
    read low but not zero.
    """
    import numpy as np

    if not (camera.width and camera.height) or len(points) == 0:
        return float("nan")
    cam = points[:, :3].astype(np.float64) @ camera.lidar2cam[:3, :3].T + camera.lidar2cam[:3, 3]
    ahead = cam[:, 2] > 0.5
    uvw = cam[ahead] @ camera.cam2img.T
    u, v = uvw[:, 0] / uvw[:, 2], uvw[:, 1] / uvw[:, 2]
    inside = (u >= 0) & (u < camera.width) & (v >= 0) & (v < camera.height)
    return float(inside.sum()) / len(points)


def _print_table(summary: dict, quarantined) -> None:
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
        print(f"{key:<{width}}  {value}")
    if summary["boxes_within_range"]:
        share = summary["boxes_with_points_within_range"] / summary["boxes_within_range"]
        print(f"{'boxes with points':<{width}}  {share:.0%} of boxes within range"
              + ("  <- low: check calibration / box convention" if share < 0.7 else ""))
    for q in quarantined[:20]:
        print(f"quarantined {q.frame_id}: {q.reason}")
    if len(quarantined) > 20:
        print(f"... and {len(quarantined) - 20} more quarantined frames (use --frames --json for all)")
