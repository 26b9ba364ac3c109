"""`ceal bench sampling`: the candidate-pool step at N frames vs numpy.random.choice.

What is measured (all wall-clock seconds, ``time.perf_counter``):

- ``candidate_pool_s``: the whole step as the ``candidate_pool`` asset runs it
  on a history of N frames with random latest scores: open the DuckDB history,
  read the unlabeled pool's latest scores, draw a ``--fraction`` pool with
  ``core.sampling.sample_candidate_pool`` (rank normalisation, Gumbel-top-k),
  and save it with its shards. Median of ``--repeats`` runs, each saving the
  pool of a new round (``candidate_pool_runs_s`` lists them); ``read_s``,
  ``sample_in_step_s`` and ``write_s`` split the median run.
- ``sample_s``: ``sample_candidate_pool`` alone on the arrays already in memory
  (best of ``--repeats``).
- ``reference_choice_s``: the research code's draw,
  ``numpy.random.choice(N, m, replace=False, p=softmax(scores / T))``
  including the softmax (best of ``--repeats``).
- ``peak_rss_mb``: ``ru_maxrss`` of this process after the steps above. The
  history is built in a child process (``build_s``, ``build_peak_rss_mb``), so
  the figure is what the asset's process needs, not what building 10^7 frames
  through the registration API costs.
- ``merge_pool_shards_s``: the merge step of the last timed round: its pool's
  16 shards written as Parquet (random scores) and ingested with
  ``ingest_score_shards`` in one transaction. With ``--rank-terms`` the shards
  are a rank combination's (two random terms a frame, as
  ``localization_and_heatmap_ranks`` writes them), so the merge also ranks the
  terms over all 16 shards (``merge_ranked`` says which was timed).
- ``ingest_shard_s`` / ``reingest_shard_s`` (``--shard-rows``, 0 skips): ingest
  of one Parquet score shard, and the no-op second ingest of the same shard.
- ``events`` (``--events``, 0 skips): the history is first grown to this many
  score events; ``ingest_shard_s`` then shows the incremental latest-score
  refresh at that size and ``rebuild_latest_scores_s`` the full recomputation
  from the events.

Scores are float32 values stored as float64, as the detector produces them.
Targets on a 2-core machine at N = 10^7: candidate_pool_s <= 2.0,
peak_rss_mb <= 2000, sample_s <= reference_choice_s / 5.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from ceal_pipeline.validation.compute.figures import ratio, seconds
from ceal_pipeline.validation.compute.progress import Progress as _Progress

#: Frames registered (and scored) per call while building the history.
_CHUNK = 1_000_000
#: Shards the candidate pool is split into, as a nightly run on 16 GPUs would.
_N_SHARDS = 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=10_000_000, help="frames in the history (N)")
    parser.add_argument("--fraction", type=float, default=0.05, help="candidate pool share alpha of the pool")
    parser.add_argument("--temperature", type=float, default=1.0, help="softmax temperature T (both methods)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic scores and of the draws")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each measurement")
    parser.add_argument("--shard-rows", type=int, default=1_000_000, help="rows of the ingest-timing shard (0 skips)")
    parser.add_argument("--events", type=int, default=0, help="grow the history to this many score events first")
    parser.add_argument("--workdir", default=None, help="folder for the DuckDB file (default: a temp folder)")
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: all cores)")
    parser.add_argument("--rank-terms", action="store_true",
                        help="time the merge of a rank combination's shards (terms ranked over the round)")


def _frame_ids(start: int, stop: int):
    import numpy as np

    return np.array([f"bench-{i:010d}" for i in range(start, stop)], dtype=object)


def _random_scores(rng, n: int):
    import numpy as np

    return rng.random(n, dtype=np.float32).astype(np.float64)


def _build_history(path: str, n_frames: int, n_events: int, seed: int, threads: int | None, quiet: bool) -> None:
    """Child process: register ``n_frames`` frames and score them all (round 0),
    then add rounds of full rescoring until ``n_events`` events exist."""
    import numpy as np

    from ceal_pipeline.core.history import AcquisitionHistory

    history = AcquisitionHistory(path, threads=threads)
    rng = np.random.default_rng(seed)
    chunks = list(range(0, n_frames, _CHUNK))
    rounds = _build_rounds(n_frames, n_events)
    progress = _Progress(len(chunks) * (1 + rounds), quiet)
    for start in chunks:
        stop = min(start + _CHUNK, n_frames)
        ids = _frame_ids(start, stop)
        sequences = np.array([f"seq-{i // 200:08d}" for i in range(start, stop)], dtype=object)
        history.register_frame_arrays(ids, sequences)
        progress.step(f"registering frames {stop:,}/{n_frames:,}")
    for round_index in range(rounds):
        for shard, start in enumerate(chunks):
            stop = min(start + _CHUNK, n_frames)
            history.record_scores(
                _frame_ids(start, stop), _random_scores(rng, stop - start), round=round_index,
                shard=shard, model_version="bench", acquisition_fn="random", run_id="bench-build",
            )
            progress.step(f"scoring round {round_index + 1}/{rounds}, frames {stop:,}")
    progress.close()


def _build_rounds(n_frames: int, n_events: int) -> int:
    """Rounds of full-pool scoring needed for ``n_events`` events (at least 1)."""
    return max(1, -(-n_events // n_frames))


def _softmax(values, temperature: float):
    import numpy as np

    z = values / temperature
    z -= z.max()
    p = np.exp(z)
    return p / p.sum()


def _reference_choice(scores, m: int, temperature: float, seed: int) -> float:
    import numpy as np

    np.random.seed(seed % 2**32)
    started = time.perf_counter()
    np.random.choice(scores.size, m, replace=False, p=_softmax(scores, temperature))
    return time.perf_counter() - started


def _mb(kilobytes: int) -> float:
    # ru_maxrss is in kilobytes on Linux (bytes on macOS).
    return round(kilobytes / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def run(args: argparse.Namespace) -> dict:
    import multiprocessing

    from ceal_pipeline.core.history import AcquisitionHistory
    from ceal_pipeline.core.sampling import sample_candidate_pool
    from ceal_pipeline.core.seeding import derive_seed

    if args.frames < _N_SHARDS:
        raise SystemExit(f"ceal bench sampling: --frames must be at least {_N_SHARDS}, got {args.frames}")
    quiet = bool(getattr(args, "json", False))
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="ceal-bench-sampling-"))
    path = workdir / "history.duckdb"
    if path.exists():
        raise SystemExit(f"ceal bench sampling: {path} exists; give an empty --workdir")
    started = time.perf_counter()
    child = multiprocessing.get_context("spawn").Process(
        target=_build_history, args=(str(path), args.frames, args.events, args.seed, args.threads, quiet)
    )
    child.start()
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"ceal bench sampling: building the history failed (exit code {child.exitcode})")
    build_s = time.perf_counter() - started
    build_rss = _mb(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)

    progress = _Progress(3 * args.repeats + 3, quiet)
    first_round = _build_rounds(args.frames, args.events)
    runs = []
    for repeat in range(args.repeats):
        round_index = first_round + repeat
        seed = derive_seed(args.seed, round_index)
        t0 = time.perf_counter()
        history = AcquisitionHistory(path, threads=args.threads)
        pool = history.unlabeled_pool()
        t1 = time.perf_counter()
        drawn = sample_candidate_pool(
            pool.frame_keys, pool.scores, temperature=args.temperature, fraction=args.fraction, seed=seed
        )
        t2 = time.perf_counter()
        history.save_candidate_pool(round_index, frame_keys=drawn.frame_ids, n_shards=_N_SHARDS, seed=seed)
        t3 = time.perf_counter()
        runs.append({"total": t3 - t0, "read": t1 - t0, "sample": t2 - t1, "write": t3 - t2})
        progress.step(f"candidate-pool step {repeat + 1}/{args.repeats}")
    median_run = sorted(runs, key=lambda r: r["total"])[len(runs) // 2]

    sample_times, reference_times = [], []
    for repeat in range(args.repeats):
        seed = derive_seed(args.seed, repeat + 1)
        t0 = time.perf_counter()
        sample_candidate_pool(pool.frame_keys, pool.scores, temperature=args.temperature, fraction=args.fraction,
                              seed=seed)
        sample_times.append(time.perf_counter() - t0)
        progress.step(f"sampling alone {repeat + 1}/{args.repeats}")
        reference_times.append(_reference_choice(pool.scores, len(drawn), args.temperature, seed))
        progress.step(f"numpy.random.choice {repeat + 1}/{args.repeats}")
    peak_rss = _mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)

    result = {
        "frames": args.frames,
        "pool_size": len(drawn),
        "temperature": args.temperature,
        "candidate_pool_s": seconds(median_run["total"]),
        "read_s": seconds(median_run["read"]),
        "sample_in_step_s": seconds(median_run["sample"]),
        "write_s": seconds(median_run["write"]),
        "candidate_pool_runs_s": [seconds(r["total"]) for r in runs],
        "sample_s": seconds(min(sample_times)),
        "reference_choice_s": seconds(min(reference_times)),
        "speedup_vs_reference": ratio(min(reference_times), min(sample_times)),
        "peak_rss_mb": peak_rss,
        "build_s": seconds(build_s),
        "build_peak_rss_mb": build_rss,
        "score_events": history.score_event_count(),
        "threads": args.threads or os.cpu_count(),
        # Timings on a shared machine mean little without the load they ran under.
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    result["merge_pool_shards_s"] = _time_pool_merge(history, workdir, first_round + args.repeats - 1, args.seed,
                                                     rank_terms=args.rank_terms)
    result["merge_ranked"] = bool(args.rank_terms)
    progress.step("merging the pool's shards")
    if args.shard_rows:
        result.update(_time_shard_ingest(history, workdir, args, pool, first_round + args.repeats))
        progress.step("shard ingest")
    if args.events:
        t0 = time.perf_counter()
        history.rebuild_latest_scores()
        result["rebuild_latest_scores_s"] = seconds(time.perf_counter() - t0)
    progress.step("done", 1)
    progress.close()
    result["db_size_mb"] = round(sum(f.stat().st_size for f in workdir.glob("history.duckdb*")) / 2**20, 1)
    if args.workdir is None:
        for leftover in workdir.iterdir():
            leftover.unlink()
        workdir.rmdir()
    return result


def _time_pool_merge(history, workdir: Path, round_index: int, seed: int, *, rank_terms: bool = False) -> float:
    """Score the saved pool of ``round_index`` shard by shard (random scores, and random
    terms with ``rank_terms``; one Parquet file each), then time merging all shards in one
    transaction."""
    import numpy as np

    from ceal_pipeline.core.history import write_score_shard

    rng = np.random.default_rng(seed + 2)
    pool = history.candidate_pool(round_index)
    paths = {}
    for shard in range(pool.n_shards):
        ids = pool.shard(shard)
        terms = ({"localization": 20.0 * _random_scores(rng, len(ids)), "heatmap": _random_scores(rng, len(ids))}
                 if rank_terms else None)
        paths[shard] = write_score_shard(workdir / f"pool-r{round_index}-s{shard}.parquet", ids,
                                         _random_scores(rng, len(ids)), round=round_index, shard=shard,
                                         model_version="bench", acquisition_fn="random", run_id="bench-merge",
                                         terms=terms, term_weights={"localization": 1.0, "heatmap": 1.0}
                                         if rank_terms else None)
    started = time.perf_counter()
    history.ingest_score_shards(paths, round=round_index)
    return seconds(time.perf_counter() - started)


def _time_shard_ingest(history, workdir: Path, args: argparse.Namespace, pool, round_index: int) -> dict:
    """Ingest one ``--shard-rows`` shard (a round without a saved pool) twice, timing both."""
    import numpy as np

    from ceal_pipeline.core.history import write_score_shard

    rng = np.random.default_rng(args.seed + 1)
    rows = min(args.shard_rows, len(pool))
    keys = np.sort(rng.choice(pool.frame_keys, rows, replace=False))
    ids = history.frame_ids_for_keys(keys)
    shard_path = workdir / "shard-timing.parquet"
    write_score_shard(shard_path, ids, _random_scores(rng, rows), round=round_index, shard=0,
                      model_version="bench", acquisition_fn="random", run_id="bench-ingest")
    t0 = time.perf_counter()
    history.ingest_score_shard(shard_path, round=round_index, shard=0)
    t1 = time.perf_counter()
    second = history.ingest_score_shard(shard_path, round=round_index, shard=0)
    t2 = time.perf_counter()
    if second.ingested:
        raise RuntimeError(f"the second ingest of {shard_path} wrote scores again; shard ingest must be idempotent")
    return {
        "shard_rows": rows,
        "ingest_shard_s": seconds(t1 - t0),
        "reingest_shard_s": seconds(t2 - t1),
        "score_events_after_ingest": history.score_event_count(),
    }
