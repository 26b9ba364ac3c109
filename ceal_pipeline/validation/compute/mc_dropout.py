"""`ceal bench mc`: MC-Dropout head-only vs full-network scoring time per frame,
and whether reading frames or the model bounds a shard run.

Builds the default detector (weights do not change the cost; only the number
of detections does, which affects the cheap entropy step), generates synthetic
frames, and scores them in both modes with the same seed. Besides the timings
it reports how far the two modes' scores differ (they should agree to float
precision), so a speed-up can never come from computing something else.

Three throughputs (frames/s, head mode) separate I/O from compute:
``loading_frames_per_s`` iterates the frame loader alone (``num_workers``
processes reading and decoding LiDAR, cameras and calibration, worker start-up
included, as a shard run pays it); ``model_frames_per_s`` scores the same
batches already in memory; ``scoring_frames_per_s`` is the end-to-end
``score_frames`` with the loader running alongside the model. End-to-end close
to the model figure means the loader keeps the model fed; close to the loading
figure means the run is I/O-bound. ``loader_scores_identical`` checks that
preloaded and loader-fed scoring give the same scores to the bit.

``--config`` may also name an mmdet3d config file (e.g. one in
``mmdet3d/.mim/configs/``): the brought detector (:mod:`ceal_pipeline.detector.mmdet3d_adapter`,
randomly initialised unless ``--checkpoint``) is timed head-only against
full-network on the same synthetic frames (frames read in-process, so no loader
figures), with its score agreement and detections.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from contextlib import contextmanager
import time
from pathlib import Path

from ceal_pipeline.validation.compute.figures import ratio, seconds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="bevfusion_lite", help="detector config name or path (default: bevfusion_lite)")
    parser.add_argument("--frames", type=int, default=4, help="synthetic frames to score per mode (default: 4)")
    parser.add_argument("--passes", "-T", type=int, default=10, dest="passes", help="MC-Dropout passes T (default: 10)")
    parser.add_argument("--batch-size", type=int, default=1, help="frames per forward pass (default: 1)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and the dropout masks")
    parser.add_argument("--data-dir", default=None, help="where to write synthetic frames (default: a temp dir)")
    parser.add_argument("--checkpoint", default=None, help="mmdet3d config: weights to load (default: random init)")
    parser.add_argument("--num-workers", type=int, default=None,
                        help="frame-loading worker processes (default: min(4, CPU cores - 1); 0 = in-process)")


def _synthetic_frames(root: Path, n_frames: int, seed: int):
    from ceal_pipeline.frames.synthetic import read_frames

    result = read_frames(root, n_frames=n_frames, seed=seed)
    if len(result.frames) < n_frames:
        raise RuntimeError(
            f"synthetic dataset in {root} gave {len(result.frames)} readable frames, wanted {n_frames} "
            f"(quarantined: {[q.reason for q in result.quarantined[:3]]})"
        )
    return result.frames[:n_frames]


@contextmanager
def _bench_frames(args: argparse.Namespace, quiet: bool):
    """The run's synthetic frames, written to ``--data-dir`` or a folder removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="ceal-bench-mc-") as tmp:
        root = Path(args.data_dir) if args.data_dir else Path(tmp)
        _progress(quiet, f"generating {args.frames} synthetic frames in {root}")
        yield _synthetic_frames(root, args.frames, args.seed)


def _progress(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict:
    """Measure and return one dict (printed as a JSON line by `ceal bench`)."""
    import numpy as np
    import torch

    from ceal_pipeline.detector.builder import build_detector, resolve_device
    from ceal_pipeline.detector.loader import FrameDataset, default_num_workers, frame_loader
    from ceal_pipeline.detector.scoring import score_batches, score_frames

    if args.frames < 1 or args.passes < 2:
        raise SystemExit("ceal bench mc: need --frames >= 1 and --passes >= 2")
    from ceal_pipeline.detector.mmdet3d_adapter import is_mmdet3d_config

    if is_mmdet3d_config(args.config):
        return run_mmdet3d(args)
    num_workers = default_num_workers() if args.num_workers is None else args.num_workers
    if num_workers < 0:
        raise SystemExit("ceal bench mc: --num-workers must be >= 0")
    quiet = bool(getattr(args, "json", False))
    device = resolve_device(args.device)
    with _bench_frames(args, quiet) as frames:
        model = build_detector(args.config, seed=args.seed).to(device)
        common = dict(T=args.passes, seed=args.seed, device=device)
        # Warm-up: first calls pay for allocator growth and kernel selection.
        score_frames(model, frames[:1], mode="head", batch_size=args.batch_size, num_workers=0, **common)

        _progress(quiet, f"reading {len(frames)} frames with {num_workers} loader workers")
        loader = frame_loader(FrameDataset.for_model(frames, model), batch_size=args.batch_size,
                              num_workers=num_workers, device=device)
        started = time.perf_counter()
        preloaded = list(loader)
        loading_s = time.perf_counter() - started

        _progress(quiet, f"scoring {len(frames)} preloaded frames, mode=head, T={args.passes} on {device}")
        started = time.perf_counter()
        model_only = score_batches(model, preloaded, mode="head", **common)
        model_s = time.perf_counter() - started

        timings, results = {}, {}
        for mode in ("head", "full"):
            _progress(quiet, f"scoring {len(frames)} frames, mode={mode}, T={args.passes} on {device}, "
                             f"{num_workers} loader workers")
            started = time.perf_counter()
            results[mode] = score_frames(model, frames, mode=mode, batch_size=args.batch_size,
                                         num_workers=num_workers, **common)
            timings[mode] = time.perf_counter() - started
    head = results["head"]
    return {
        **_head_vs_full(model.ceal_config["name"], args, len(frames), timings, results, device),
        "num_workers": loader.num_workers,
        "loading_frames_per_s": ratio(len(frames), loading_s),
        "model_frames_per_s": ratio(len(frames), model_s),
        "scoring_frames_per_s": ratio(len(frames), timings["head"]),
        "loader_scores_identical": bool(np.array_equal(model_only.scores, head.scores)),
        "torch_threads": torch.get_num_threads(),
    }


def _head_vs_full(config: str, args: argparse.Namespace, n_frames: int, timings: dict, results: dict, device) -> dict:
    """The figures both detectors report: seconds per frame in each mode, the speed-up, passes, and
    how far the two modes' scores differ (they must agree)."""
    import numpy as np
    import torch

    head, full = results["head"], results["full"]
    return {
        "benchmark": "mc_dropout",
        "config": config,
        "T": args.passes,
        "frames": n_frames,
        "batch_size": args.batch_size,
        "head_only_s_per_frame": seconds(timings["head"] / n_frames),
        "full_s_per_frame": seconds(timings["full"] / n_frames),
        "speedup": ratio(timings["full"], timings["head"]),
        "backbone_passes_head": head.backbone_passes,
        "backbone_passes_full": full.backbone_passes,
        "objects_scored": int(sum(len(o.labels) for o in head.objects)),
        "max_abs_score_diff": float(np.max(np.abs(head.scores - full.scores))),
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
    }


def run_mmdet3d(args: argparse.Namespace) -> dict:
    """The head-only vs full-network figures of a brought mmdet3d detector (see the module docstring)."""
    import torch

    from ceal_pipeline.detector.builder import resolve_device
    from ceal_pipeline.detector.mmdet3d_adapter import build_mmdet3d_detector
    from ceal_pipeline.detector.mmdet3d_scoring import score_frames_mmdet3d

    quiet = bool(getattr(args, "json", False))
    device = resolve_device(args.device)
    with _bench_frames(args, quiet) as frames:
        detector = build_mmdet3d_detector(args.config, checkpoint=args.checkpoint, seed=args.seed).to(device)
        common = dict(T=args.passes, seed=args.seed, batch_size=args.batch_size)
        score_frames_mmdet3d(detector, frames[:1], mode="head", **common)  # warm-up
        timings, results = {}, {}
        for mode in ("head", "full"):
            _progress(quiet, f"scoring {len(frames)} frames, mode={mode}, T={args.passes} on {device}")
            started = time.perf_counter()
            results[mode] = score_frames_mmdet3d(detector, frames, mode=mode, **common)
            timings[mode] = time.perf_counter() - started
    return {
        **_head_vs_full(detector.ceal_config["name"], args, len(frames), timings, results, device),
        "detector": f"mmdet3d {type(detector.model).__name__} / {detector.head.kind}",
        "weights": "checkpoint" if args.checkpoint else "random init",
        "torch_threads": torch.get_num_threads(),
    }
