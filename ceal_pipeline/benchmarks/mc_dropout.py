"""`ceal bench mc`: MC-Dropout head-only vs full-network scoring time per frame.

Builds the default detector (weights do not change the cost; only the number
of detections does, which affects the cheap entropy step), generates synthetic
frames, and scores them in both modes with the same seed. Besides the timings
it reports how far the two modes' scores differ (they should agree to float
precision), so a speed-up can never come from computing something else.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from ceal_pipeline.benchmarks.figures import ratio, seconds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="bevfusion_lite", help="detector config name or path (default: bevfusion_lite)")
    parser.add_argument("--frames", type=int, default=4, help="synthetic frames to score per mode (default: 4)")
    parser.add_argument("--passes", "-T", type=int, default=10, dest="passes", help="MC-Dropout passes T (default: 10)")
    parser.add_argument("--batch-size", type=int, default=1, help="frames per forward pass (default: 1)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and the dropout masks")
    parser.add_argument("--data-dir", default=None, help="where to write synthetic frames (default: a temp dir)")


def _synthetic_frames(root: Path, n_frames: int, seed: int):
    from ceal_pipeline.frames.synthetic import read_frames

    result = read_frames(root, n_frames=n_frames, seed=seed)
    if len(result.frames) < n_frames:
        raise RuntimeError(
            f"synthetic dataset in {root} gave {len(result.frames)} readable frames, wanted {n_frames} "
            f"(quarantined: {[q.reason for q in result.quarantined[:3]]})"
        )
    return result.frames[:n_frames]


def _progress(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict:
    """Measure and return one dict (printed as a JSON line by `ceal bench`)."""
    import numpy as np
    import torch

    from ceal_pipeline.detector.builder import build_detector, resolve_device
    from ceal_pipeline.detector.scoring import score_frames

    if args.frames < 1 or args.passes < 2:
        raise SystemExit("ceal bench mc: need --frames >= 1 and --passes >= 2")
    quiet = bool(getattr(args, "json", False))
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory(prefix="ceal-bench-mc-") as tmp:
        root = Path(args.data_dir) if args.data_dir else Path(tmp)
        _progress(quiet, f"generating {args.frames} synthetic frames in {root}")
        frames = _synthetic_frames(root, args.frames, args.seed)
        model = build_detector(args.config, seed=args.seed).to(device)
        common = dict(T=args.passes, seed=args.seed, device=device, batch_size=args.batch_size)
        # Warm-up: first calls pay for allocator growth and kernel selection.
        score_frames(model, frames[:1], mode="head", **common)
        timings, results = {}, {}
        for mode in ("head", "full"):
            _progress(quiet, f"scoring {len(frames)} frames, mode={mode}, T={args.passes} on {device}")
            started = time.perf_counter()
            results[mode] = score_frames(model, frames, mode=mode, **common)
            timings[mode] = (time.perf_counter() - started) / len(frames)
    head, full = results["head"], results["full"]
    return {
        "benchmark": "mc_dropout",
        "config": model.ceal_config["name"],
        "T": args.passes,
        "frames": len(frames),
        "batch_size": args.batch_size,
        "head_only_s_per_frame": seconds(timings["head"]),
        "full_s_per_frame": seconds(timings["full"]),
        "speedup": ratio(timings["full"], timings["head"]),
        "backbone_passes_head": head.backbone_passes,
        "backbone_passes_full": full.backbone_passes,
        "objects_scored": int(sum(len(o.labels) for o in head.objects)),
        "max_abs_score_diff": float(np.max(np.abs(head.scores - full.scores))),
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "torch_threads": torch.get_num_threads(),
    }
