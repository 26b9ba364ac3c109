"""A round killed (SIGKILL) at every stage and re-run: no score event lost or duplicated,
one export per round in the outbox and in the history, the same selection as a round
that was never interrupted."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from ceal_pipeline.export import list_exports, read_vendor_export
from ceal_pipeline_tests.pipeline.kill_points import (
    KILL_POINTS,
    cpu_seconds,
    kill_points_reached,
    run_killed,
    run_rounds,
)

ROUNDS = 2


def _run_driver(home: Path, synthetic_root: str, kill_point: str | None = None) -> int:
    """One run in a child process (SIGKILLed at ``kill_point``); its exit code."""
    return run_killed(home, synthetic_root, ROUNDS, kill_point)


def _state(home: Path) -> dict:
    """What must not differ from an uninterrupted run: events, selections, exports in both places."""
    con = duckdb.connect(str(home / "ceal" / "history.duckdb"), read_only=True)
    try:
        events = con.execute("SELECT frame_id, round, model_version, score FROM score_event_log "
                             "ORDER BY round, frame_id").fetchall()
        selections = con.execute("SELECT round, frame_key FROM selections ORDER BY round, frame_key").fetchall()
        exports = con.execute("SELECT round, n_frames, digest FROM exports ORDER BY round").fetchall()
        labels = con.execute("SELECT count(*) FROM labels").fetchone()[0]
    finally:
        con.close()
    outbox = [read_vendor_export(folder) for folder in list_exports(home / "ceal" / "outbox")]
    return {"events": events, "selections": selections, "history_exports": exports, "labels": labels,
            "outbox": [(e.round_index, tuple(e.frame_ids)) for e in outbox]}


@pytest.mark.slow  # 16 runs of the pipeline's round (stand-in detector): about 1.5 min of CPU
def test_a_round_sigkilled_at_every_stage_resumes_to_the_uninterrupted_result(tmp_path, synthetic_root):
    run_rounds(tmp_path / "uninterrupted", synthetic_root, ROUNDS)
    expected = _state(tmp_path / "uninterrupted")

    home = tmp_path / "killed"
    for point in KILL_POINTS:  # each run resumes what the previous kill left and dies at the next stage
        code = _run_driver(home, synthetic_root, point)
        assert code == -9, f"the run was not killed at {point!r} (exit status {code}): that stage was not reached"
    # Each run died at its own kill point, not of another SIGKILL (the OOM killer, a timeout) elsewhere.
    assert kill_points_reached(home) == list(KILL_POINTS)
    assert _run_driver(home, synthetic_root) == 0

    state = _state(home)
    events = [(frame, round_index) for frame, round_index, _, _ in state["events"]]
    assert len(events) == len(set(events)), "a frame was scored twice in one round"
    assert state["events"] == expected["events"]  # none lost, none added, same scores from the same model
    assert state["selections"] == expected["selections"]
    assert [r for r, _ in state["outbox"]] == list(range(ROUNDS))  # one export per round
    assert [(r, len(ids)) for r, ids in state["outbox"]] == [(r, n) for r, n, _ in state["history_exports"]]
    assert state == expected
    assert len(KILL_POINTS) == 15
    print(f"{len(KILL_POINTS)} kill points survived; the killed runs and the completing run used "
          f"{cpu_seconds(home):.1f} CPU seconds")
