"""Camera rows of mmdet3d info entries, one camera name at a time across a chunk.

For each camera name the calibration of every entry that has the image is
converted at once (``cam2img``; ``lidar2cam``, or ``inverse(cam2ego) @
lidar2ego``; KITTI's stereo offset folded into the extrinsic), then each image
path is checked once (:class:`~ceal_pipeline.frames.file_checks.FileChecks`).
A group that fails to convert is split into single entries, each of which then
gets the reader's own message.
"""

from __future__ import annotations

import os

import numpy as np

from ceal_pipeline.frames import mmdet3d_info as info_format
from ceal_pipeline.frames.batch import offsets_of
from ceal_pipeline.frames.entry_checks import singular_matrices
from ceal_pipeline.frames.entry_groups import in_groups, stack_floats
from ceal_pipeline.frames.mmdet3d_dialects import CALIBRATION_KEYS

_EYE = np.eye(4)


def _matrices(values: list, rows: int, cols: int) -> np.ndarray:
    """``(g, r, c)`` float64 of ``g`` nested lists; raises ``ValueError`` when they are not all ``rows x cols``+."""
    array = stack_floats(values, (rows, cols))
    if array.ndim != 3 or array.shape[1] < rows or array.shape[2] < cols:
        raise ValueError("bad matrix")
    return array


def _camera_group(ctx, name: str, images: list[dict], lidar2ego: list):
    """Calibration of one camera in ``len(images)`` frames: ``(intrinsics (g, 3, 3),
    lidar2cam (g, 4, 4))``. Raises ``ValueError`` with the reader's message for a
    single frame; callers split a failing group into single frames."""
    try:
        projection = _matrices([image.get("cam2img") for image in images], 3, 3)
    except (ValueError, TypeError):
        raise ValueError(f"camera {name} has no valid cam2img") from None
    with_lidar2cam = np.array(["lidar2cam" in image for image in images], dtype=bool)
    lidar2cam = np.empty((len(images), 4, 4))
    if with_lidar2cam.any():
        given = stack_floats([image["lidar2cam"] for image, ok in zip(images, with_lidar2cam) if ok], (4, 4))
        if given.shape[1:] != (4, 4):
            raise ValueError(f"camera {name} has no valid lidar2cam (a 4x4 matrix)")
        lidar2cam[with_lidar2cam] = given
    if not with_lidar2cam.all():
        rest = [i for i, ok in enumerate(with_lidar2cam) if not ok]
        if any("cam2ego" not in images[i] for i in rest):
            raise ValueError(f"camera {name} has neither lidar2cam nor cam2ego")
        cam2ego = stack_floats([images[i]["cam2ego"] for i in rest], (4, 4))
        ego = stack_floats([_EYE if lidar2ego[i] is None else lidar2ego[i] for i in rest], (4, 4))
        lidar2cam[rest] = np.linalg.inv(cam2ego) @ ego
    intrinsics = projection[:, :3, :3].copy()
    if not (np.isfinite(intrinsics).all() and np.isfinite(lidar2cam).all()):
        raise ValueError(f"camera {name} has a non-finite cam2img or lidar2cam (NaN or infinite calibration)")
    if (singular_matrices(intrinsics) | singular_matrices(lidar2cam)).any():
        raise ValueError(f"camera {name} has a singular cam2img or lidar2cam (e.g. all zeros): a calibration "
                         "must be an invertible transform; fix it in the info file")
    if projection.shape[2] == 4:
        # KITTI's P2 = K [I | t]: fold the stereo offset into the extrinsic so
        # that cam2img @ lidar2cam still equals the projection the info gives.
        shifted = np.flatnonzero(np.any(projection[:, :3, 3] != 0, axis=1))
        if len(shifted):
            offset = np.tile(np.eye(4), (len(shifted), 1, 1))
            offset[:, :3, 3] = np.linalg.solve(intrinsics[shifted], projection[shifted, :3, 3:4])[..., 0]
            lidar2cam[shifted] = offset @ lidar2cam[shifted]
    return intrinsics, lidar2cam


def _sizes(images: list[dict]) -> list[tuple]:
    """``(width, height)`` the info gives per image (0 when absent); a value that is
    not a whole number is kept as it is, for :func:`_image_problem` to report."""
    def size(value):
        if value is None or value == 0:
            return 0
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return int(value)
        return value
    return [(size(image.get("width")), size(image.get("height"))) for image in images]


def _image_problem(ctx, path: str, image: dict, size: tuple) -> tuple[str, str] | None:
    if not path:
        return f"img_path {image.get('img_path')!r} is not a file path", str(ctx.info_path)
    outside = ctx.confinement.problem(path)
    if outside:
        return outside, path
    if not all(isinstance(v, int) and v >= 0 for v in size):
        return f"image {path} has width/height {size!r}: give whole numbers of pixels, or none", path
    return None


def _cameras_only(images):
    """``images`` without its calibration matrices (KITTI keeps ``R0_rect`` there, a 4x4
    list beside the cameras; ``lidar2cam`` of ``CAM2`` already includes it)."""
    if isinstance(images, dict) and not CALIBRATION_KEYS.isdisjoint(images):
        return {name: image for name, image in images.items() if name not in CALIBRATION_KEYS}
    return images


def parse_cameras(ctx, entries: list[dict], lidar_infos: list[dict], reasons: list) -> dict:
    """Camera rows of every frame, each frame's cameras sorted by name; sets
    ``reasons`` of frames with a broken calibration or image."""
    n = len(entries)
    images_of = [_cameras_only(entry.get("images") or {}) for entry in entries]
    for i, images in enumerate(images_of):
        if not isinstance(images, dict):
            if reasons[i] is None:
                reasons[i] = (f"images is a {type(images).__name__}, not a dict of camera name -> image", None)
            images_of[i] = {}
        elif not all(image is None or isinstance(image, dict) for image in images.values()) and reasons[i] is None:
            reasons[i] = ("an entry of images is not a dict (img_path, cam2img, lidar2cam...)", None)
    names = sorted({name for images in images_of for name in images}, key=str)
    frame_parts, rank_parts, path_parts, name_parts = [], [], [], []
    k_parts, l_parts, w_parts, h_parts = [], [], [], []
    for rank, name in enumerate(names):
        members = [i for i in range(n) if reasons[i] is None and isinstance(image := images_of[i].get(name), dict)
                   and image.get("img_path")]  # KITTI lists CAM0/1/3 calibrations without images
        ok, calibration = in_groups(
            lambda idx: _camera_group(ctx, name, [images_of[i][name] for i in idx],
                                      [lidar_infos[i].get("lidar2ego") for i in idx]),
            members, reasons)
        if not ok:
            continue
        intrinsics, lidar2cam = calibration
        prefix = (ctx.camera_prefix.get(name, ctx.camera_prefix.get("*")) if isinstance(ctx.camera_prefix, dict)
                  else ctx.camera_prefix)
        images = [images_of[i][name] for i in ok]
        paths = info_format.resolve_paths(
            ctx.root, prefix, [p if isinstance(p := image["img_path"], (str, os.PathLike)) else "" for image in images])
        given = _sizes(images)
        problems = [_image_problem(ctx, path, image, size) for path, image, size in zip(paths, images, given)]
        checked = [problem or ctx.checks.image(path, not (size[0] and size[1]))
                   for path, size, problem in zip(paths, given, problems)]
        rows, widths, heights = [], [], []
        read_sizes = ctx.checks.check != "exists"
        for k, (i, (width, height), check) in enumerate(zip(ok, given, checked)):
            if isinstance(check[0], str):
                reasons[i] = check
                continue
            if read_sizes and not (width and height):
                width, height = check
            rows.append(k)
            widths.append(width)
            heights.append(height)
        frame_parts.append(np.asarray(ok, dtype=np.int64)[rows])
        rank_parts.append(np.full(len(rows), rank))
        path_parts.extend(paths[k] for k in rows)
        name_parts.extend([name] * len(rows))
        k_parts.append(intrinsics[rows])
        l_parts.append(lidar2cam[rows])
        w_parts.append(np.asarray(widths, dtype=np.int64))
        h_parts.append(np.asarray(heights, dtype=np.int64))
    if not frame_parts:
        return {"frame": np.zeros(0, np.int64), "offsets": np.zeros(n + 1, np.int64), "name": [], "path": [],
                "cam2img": np.zeros((0, 3, 3)), "lidar2cam": np.zeros((0, 4, 4)),
                "width": np.zeros(0, np.int64), "height": np.zeros(0, np.int64)}
    frame, rank = np.concatenate(frame_parts), np.concatenate(rank_parts)
    order = np.lexsort((rank, frame))  # frame by frame, cameras by name
    frame = frame[order]
    return {
        "frame": frame,
        "offsets": offsets_of(np.bincount(frame, minlength=n)),
        "name": [name_parts[j] for j in order],
        "path": [path_parts[j] for j in order],
        "cam2img": np.concatenate(k_parts)[order],
        "lidar2cam": np.concatenate(l_parts)[order],
        "width": np.concatenate(w_parts)[order],
        "height": np.concatenate(h_parts)[order],
    }
