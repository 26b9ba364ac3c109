"""`ceal bench catalog`: ingest N nuScenes-style frames, add 1 %, look up a shard.

1. writes N frames as mmdet3d info files of ``--frames-per-file`` frames
   (:mod:`ceal_pipeline.validation.compute.fleet_infos`: one generated block, the other
   files byte copies with their own frame ids; fleet data arrives as many files,
   and one pickle of 10^6 frames with 40 boxes each is ~9 GB of Python objects
   once loaded), reused by later runs with the same parameters;
2. ingests them into an empty catalog (``ingest_s``);
3. adds one more info file with 1 % new frames and ingests again
   (``incremental_s``: discovery, the new file's parse, the duplicate check
   against every live frame, the changes log and the commit);
4. reads the records of 256 random frame ids from a fresh catalog handle, as a
   shard run does (``shard_lookup_s``: from opening the catalog to the
   FrameRecords, boxes included).

Each step runs in its own child process, so the info-file generation does not
inflate ``peak_rss_mb``: the largest resident memory of the ingest's process
tree (the ingest and its parser workers), sampled every 20 ms. With
``--old-path`` it also times ``read_source('mmdet3d', ...)`` over the first
info files holding ``--old-path-frames`` frames (the per-process re-read the
catalog replaces).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ceal_pipeline.validation.compute.figures import seconds
from ceal_pipeline.validation.compute.progress import Progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=100_000, help="frames in the first ingest (default 100000)")
    parser.add_argument("--frames-per-file", type=int, default=5_000,
                        help="frames per generated info file (default 5000)")
    parser.add_argument("--boxes", type=int, default=40, help="mean boxes per frame (default 40)")
    parser.add_argument("--workers", type=int, default=None, help="ingest parser processes (default: one per CPU)")
    parser.add_argument("--check", choices=("exists", "header", "points"), default="header",
                        help="file checks during ingest (default header)")
    parser.add_argument("--lookup", type=int, default=256, help="frame ids per shard lookup (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="dataset and lookup seed")
    parser.add_argument("--workdir", default=".ceal/bench-catalog",
                        help="folder for the info files (kept for reuse) and the catalog (rebuilt)")
    parser.add_argument("--old-path", action="store_true", help="also time read_source over the same info files")
    parser.add_argument("--old-path-frames", type=int, default=100_000,
                        help="frames read_source reads with --old-path (default 100000)")


class _PeakRss:
    """Largest summed resident memory of this process and its descendants (MB)."""

    def __init__(self, interval_s: float = 0.02):
        self.peak_kb, self._interval, self._stop = 0, interval_s, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _tree_rss_kb(pid: int) -> int:
        total, stack = 0, [pid]
        while stack:
            p = stack.pop()
            try:
                with open(f"/proc/{p}/status") as status:
                    total += next((int(line.split()[1]) for line in status if line.startswith("VmRSS:")), 0)
                for task in os.listdir(f"/proc/{p}/task"):
                    with open(f"/proc/{p}/task/{task}/children") as children:
                        stack.extend(int(c) for c in children.read().split())
            except (OSError, ValueError):
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, self._tree_rss_kb(os.getpid()))
            self._stop.wait(self._interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, self._tree_rss_kb(os.getpid()))

    @property
    def mb(self) -> float:
        return self.peak_kb / 1024


def _ingest_child(catalog_root: str, source_root: str, infos: list[str], check: str, workers) -> dict:
    from ceal_pipeline.catalog import FrameCatalog

    with _PeakRss() as rss:
        started = time.perf_counter()
        report = FrameCatalog(catalog_root).ingest("mmdet3d", source_root, info=infos, check=check,
                                                   workers=workers)
        wall = time.perf_counter() - started
    return {"seconds": wall, "peak_rss_mb": rss.mb, "report": report.to_dict(),
            "workers": min(len(infos), os.cpu_count() or 1) if workers is None else workers}


def _lookup_child(catalog_root: str, frame_ids: list[str]) -> dict:
    import numpy as np

    from ceal_pipeline.catalog import FrameCatalog

    started = time.perf_counter()
    records = FrameCatalog(catalog_root).records(frame_ids)
    wall = time.perf_counter() - started
    assert [r.frame_id for r in records] == frame_ids
    boxes = int(sum(len(r.boxes) for r in records if r.is_labeled))
    return {"seconds": wall, "boxes": boxes, "cameras": int(np.mean([len(r.cameras) for r in records]))}


def _old_path_child(source_root: str, infos: list[str]) -> dict:
    from ceal_pipeline.frames.sources import read_source

    with _PeakRss() as rss:
        started = time.perf_counter()
        frames = 0
        for info in infos:
            frames += len(read_source("mmdet3d", source_root, info=info).frames)
        wall = time.perf_counter() - started
    return {"seconds": wall, "frames": frames, "peak_rss_mb": rss.mb}


def _in_child(fn, *args):
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def _dataset(work: Path, args, progress: Progress) -> tuple[Path, list[Path], list[Path]]:
    """The info files of the first ingest and of the 1 % increment, generated once per parameter set."""
    from ceal_pipeline.validation.compute import fleet_infos

    data = work / f"infos-n{args.frames}-f{args.frames_per_file}-b{args.boxes}-s{args.seed}"
    extra = max(1, args.frames // 100)
    done = data / "complete.json"
    n_files = -(-args.frames // args.frames_per_file)
    if not done.is_file():
        shutil.rmtree(data, ignore_errors=True)
        fleet_infos.write_shared_files(data)
        fleet_infos.write_fleet_infos(data, args.frames, frames_per_file=args.frames_per_file, seed=args.seed,
                                      boxes_per_frame=args.boxes,
                                      progress=lambda d, t: progress.step(f"writing info files {d}/{t}"))
        fleet_infos.write_info_file(data / "nuscenes_infos_train-increment.pkl", args.seed, args.frames,
                                    args.frames + extra, args.boxes)
        done.write_text(json.dumps({"frames": args.frames, "increment": extra}))
    else:
        progress.step("reusing the info files", n_files)
    first = sorted(data.glob("nuscenes_infos_train-0*.pkl"))
    return data, first, [data / "nuscenes_infos_train-increment.pkl"]


def run(args: argparse.Namespace) -> dict:
    import numpy as np

    from ceal_pipeline.validation.compute.fleet_infos import fleet_token

    work = Path(args.workdir)
    n_files = -(-args.frames // args.frames_per_file)
    progress = Progress(n_files + 4 + int(args.old_path), quiet=args.json)
    data, first, increment = _dataset(work, args, progress)
    catalog_root = work / "catalog"
    shutil.rmtree(catalog_root, ignore_errors=True)
    info_bytes = sum(p.stat().st_size for p in first)

    progress.step(f"ingesting {args.frames:,} frames from {len(first)} info files")
    ingest = _in_child(_ingest_child, str(catalog_root), str(data), [str(p) for p in first], args.check,
                       args.workers)
    progress.step("ingesting the 1 % increment")
    incremental = _in_child(_ingest_child, str(catalog_root), str(data), [str(p) for p in first + increment],
                            args.check, args.workers)
    progress.step(f"looking up {args.lookup} random frames")
    rng = np.random.default_rng(args.seed)
    picks = np.sort(rng.choice(args.frames, size=min(args.lookup, args.frames), replace=False))
    lookup_ids = [fleet_token(args.seed, int(i), args.frames_per_file) for i in picks]
    rng.shuffle(lookup_ids)
    lookup = _in_child(_lookup_child, str(catalog_root), lookup_ids)
    result = {
        "frames": ingest["report"]["frames"],
        "info_files": len(first),
        "info_mb": round(info_bytes / 2**20, 1),
        "boxes": ingest["report"]["boxes"],
        "check": args.check,
        "ingest_s": seconds(ingest["seconds"]),
        "ingest_frames_per_s": round(ingest["report"]["frames"] / ingest["seconds"]),
        # parser-process seconds over all info files, and the part spent in pickle.load: divided by the
        # parser processes, the unpickling part is the floor of ingest_s on this machine
        "ingest_parser_s": seconds(ingest["report"]["unit_s"]),
        "ingest_unpickle_s": seconds(ingest["report"]["load_s"]),
        "ingest_workers": ingest["workers"],
        "peak_rss_mb": round(ingest["peak_rss_mb"]),
        "incremental_frames": incremental["report"]["frames_added"],
        "incremental_s": seconds(incremental["seconds"]),
        "incremental_peak_rss_mb": round(incremental["peak_rss_mb"]),
        "incremental_units_skipped": incremental["report"]["units_skipped"],
        "shard_lookup_frames": len(lookup_ids),
        "shard_lookup_s": seconds(lookup["seconds"]),
        "shard_lookup_boxes": lookup["boxes"],
        "catalog_mb": round(sum(f.stat().st_size for f in catalog_root.rglob("*") if f.is_file()) / 2**20, 1),
        "cpus": os.cpu_count(),
    }
    if args.old_path:
        progress.step("read_source over the same info files (old path)")
        per_file = args.frames_per_file
        old = _in_child(_old_path_child, str(data), [str(p) for p in first[:max(1, args.old_path_frames // per_file)]])
        result.update(old_path_frames=old["frames"], old_path_read_source_s=seconds(old["seconds"]),
                      old_path_peak_rss_mb=round(old["peak_rss_mb"]))
    progress.close()
    return result
