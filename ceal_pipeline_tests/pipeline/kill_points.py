"""Driver of the kill-point test: run acquisition rounds in this process and SIGKILL it at one point.

:func:`run_killed` (in a process forked from a server that imported this module once), or
``python -m ceal_pipeline_tests.pipeline.kill_points HOME SYNTHETIC_ROOT ROUNDS [KILL_POINT]``, runs
(or resumes) rounds until ``ROUNDS`` are exported, with the pipeline's state and a
persistent Dagster instance under ``HOME``; a vendor answers each export before the
next round opens. With ``KILL_POINT`` (a name of :data:`KILL_POINTS`) the process
kills itself with SIGKILL the first time that point is reached: no ``finally``, no
rollback, no exit handler runs, as when a machine dies. Exit status: -9 when killed,
0 when the rounds completed without reaching the point.
"""

from __future__ import annotations

import functools
import importlib
import multiprocessing
import os
import signal
import sys
from pathlib import Path

# Imported here, not lazily: the fork server imports this module once, so that each killed run
# starts in a fraction of a second instead of paying Dagster's import again.
import dagster  # noqa: F401

import ceal_pipeline.defs  # noqa: F401
import ceal_pipeline_tests.pipeline.conftest  # noqa: F401

#: name -> (object path, "before" | "after"): the kill fires just before the call starts or
#: right after it returned (its effect durable, nothing after it done). In the order a round reaches them.
KILL_POINTS: dict[str, tuple[str, str]] = {
    "catalog ingest, before its commit": ("ceal_pipeline.catalog.ingest:write_manifest", "before"),
    "catalog ingest, after its commit": ("ceal_pipeline.catalog.ingest:write_manifest", "after"),
    "history, after registering the catalog": ("ceal_pipeline.core.history:AcquisitionHistory.register_frame_arrays",
                                               "after"),
    "labeled set, after the seed labels": ("ceal_pipeline.core.history:AcquisitionHistory.add_labels", "after"),
    "training, after the checkpoint is written": (
        "ceal_pipeline_tests.pipeline.conftest:DeterministicModelStore.train", "after"),
    "training, after the model is published": ("ceal_pipeline.defs.resources:ModelStoreResource.publish", "after"),
    "pool, after the history saved it": ("ceal_pipeline.core.history:AcquisitionHistory.save_candidate_pool", "after"),
    "pool, after it is published to the workers": (
        "ceal_pipeline.core.history.shards:ShardExchange.publish_pool", "after"),
    "shards, while scoring the first shard": (
        "ceal_pipeline_tests.pipeline.conftest:DeterministicModelStore.score", "before"),
    "shards, after a shard file is written": ("ceal_pipeline.core.history:write_score_shard", "after"),
    "merge, after the shards are ingested": (
        "ceal_pipeline.core.history:AcquisitionHistory.ingest_score_shards", "after"),
    "selection, after it is saved": ("ceal_pipeline.core.history:AcquisitionHistory.save_selection", "after"),
    "selection, after the compute ledger": ("ceal_pipeline.core.history:AcquisitionHistory.record_ledger", "after"),
    "export, after the outbox write": ("ceal_pipeline.defs.resources:VendorExporterResource.export", "after"),
    "export, after the history record": ("ceal_pipeline.core.history:AcquisitionHistory.record_export", "after"),
}


def round_configs() -> dict:
    """Small shards (several per round) and a pool large enough for K in every round."""
    from ceal_pipeline.defs.acquisition.config import CandidatePoolConfig, SelectionConfig

    return {"candidate_pool": CandidatePoolConfig(shard_size=16, pool_fraction=0.3, k=5, per_sequence_cap=3),
            "selected_batch": SelectionConfig(k=5, per_sequence_cap=3)}


#: File (under HOME) that each run appends its CPU seconds to, so that a test can report the total.
CPU_LOG = "cpu_seconds.txt"
#: File (under HOME) that a run appends its kill point's name to just before it kills itself.
KILL_LOG = "killed_at.txt"
_home: Path | None = None


def _record_cpu() -> None:
    if _home is not None:
        times = os.times()
        with open(_home / CPU_LOG, "a") as handle:
            handle.write(f"{times.user + times.system:.3f}\n")


def _die(point: str) -> None:
    _record_cpu()
    if _home is not None:
        with open(_home / KILL_LOG, "a") as handle:
            handle.write(point + "\n")
    os.kill(os.getpid(), signal.SIGKILL)


def kill_points_reached(home: Path) -> list[str]:
    """The kill points at which the runs under ``home`` killed themselves, in order."""
    path = Path(home) / KILL_LOG
    return path.read_text().splitlines() if path.is_file() else []


def cpu_seconds(home: Path) -> float:
    """CPU seconds the runs under ``home`` used (after the fork server's one-off imports)."""
    path = Path(home) / CPU_LOG
    return sum(float(line) for line in path.read_text().split()) if path.is_file() else 0.0


def install_kill(point: str) -> None:
    """Make this process SIGKILL itself at ``point`` (see :data:`KILL_POINTS`)."""
    target, when = KILL_POINTS[point]
    module_name, _, attribute = target.partition(":")
    owner = importlib.import_module(module_name)
    *path, name = attribute.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)

    @functools.wraps(original)
    def killed(*args, **kwargs):
        if when == "before":
            _die(point)
        result = original(*args, **kwargs)
        _die(point)
        return result

    if isinstance(owner, type) and path:
        # a pydantic (Dagster resource) class refuses setattr on the class through its metaclass
        type.__setattr__(owner, name, killed)
    else:
        setattr(owner, name, killed)


def run_rounds(home: Path, synthetic_root: str, rounds: int) -> None:
    """Run or resume rounds until ``rounds`` are exported, answering each export as a vendor would."""
    import dagster as dg

    from ceal_pipeline.defs import build_defs
    from ceal_pipeline.defs.acquisition.round_runner import run_acquisition_round
    from ceal_pipeline.defs.acquisition.round_status import next_round
    from ceal_pipeline.cli.demo_vendor import simulate_vendor
    from ceal_pipeline_tests.pipeline.conftest import pipeline_resources

    resources = pipeline_resources(home / "ceal", synthetic_root, home / "scored.jsonl")
    defs = build_defs(resources, with_validation=False)
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    instance = dg.DagsterInstance.local_temp(tempdir=str(home / "dagster"))
    while True:
        # the vendor answers every export before the next round opens (also one a killed run left unanswered)
        simulate_vendor(resources["exporter"].outbox, resources["exporter"].inbox,
                        lambda frame_ids: resources["frame_source"].catalog().records(frame_ids))
        round_index, _ = next_round(instance)
        if round_index >= rounds:
            return
        run_acquisition_round(defs, instance, round_configs(), log_level="WARNING")


def run_killed(home: Path, synthetic_root: str, rounds: int, kill_point: str | None = None) -> int:
    """Run :func:`main` in a child process forked from a preloaded server; its exit code
    (-9 when it was killed)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    args = [str(home), synthetic_root, str(rounds)] + ([kill_point] if kill_point else [])
    child = context.Process(target=main, args=(args,))
    child.start()
    child.join(timeout=300)
    return child.exitcode


def main(argv: list[str]) -> int:
    global _home
    home, synthetic_root, rounds = Path(argv[0]), argv[1], int(argv[2])
    _home = home
    home.mkdir(parents=True, exist_ok=True)
    if len(argv) > 3:
        install_kill(argv[3])
    run_rounds(home, synthetic_root, rounds)
    _record_cpu()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
