"""Blocking asset checks of a round: what must hold before anything reaches the vendor.

The checks are declared on their assets (``check_specs``) because they need the
asset's own configuration (K); each is computed by re-reading the history, not
from the values the asset just computed, so a bug in selection cannot vouch for
itself. ``blocking=True``: a failed check stops the downstream assets of the run
(a bad selection is never exported).
"""

from __future__ import annotations

from collections import Counter

import dagster as dg

SELECTION_CHECK = dg.AssetCheckSpec(
    name="selection_is_k_fresh_unlabeled_unpruned_unique",
    asset="selected_batch",
    blocking=True,
    description="exactly K frames, none labeled, pruned, duplicated or already exported and awaiting labels, all "
    "freshly scored this round by the round's detector",
)
HISTORY_CHECK = dg.AssetCheckSpec(
    name="no_score_for_unknown_frame",
    asset="merged_scores",
    blocking=True,
    description="every score event in the acquisition history names a frame of the catalog",
)
EXPORT_CHECK = dg.AssetCheckSpec(
    name="export_matches_selection",
    asset="vendor_export",
    blocking=True,
    description="the outbox drop verifies against its manifest and lists exactly the round's selection, "
    "in order, for the round's model version",
)


def _result(spec: dg.AssetCheckSpec, problems: list[str], **metadata) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=spec.name,
        asset_key=spec.asset_key,
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"problems": dg.MetadataValue.json(problems[:50]), **metadata},
    )


def selection_problems(
    selected: list[str], k: int, round_index: int, fresh: set[str], labeled: dict[str, int], pruned: set[str],
    awaiting: set[str] = frozenset(),
) -> list[str]:
    """Everything wrong with a round's selection; empty when it may be exported."""
    problems = []
    if len(selected) != k:
        problems.append(f"{len(selected)} frames selected, K = {k}")
    duplicated = sorted(f for f, n in Counter(selected).items() if n > 1)
    if duplicated:
        problems.append(f"duplicated: {duplicated[:10]}")
    already = sorted(f for f in selected if f in labeled and labeled[f] <= round_index)
    if already:
        problems.append(f"already labeled: {already[:10]}")
    gone = sorted(f for f in selected if f in pruned)
    if gone:
        problems.append(f"pruned: {gone[:10]}")
    bought = sorted(f for f in selected if f in awaiting)
    if bought:
        problems.append(f"exported in an earlier round, labels not yet delivered: {bought[:10]}")
    stale = sorted(f for f in selected if f not in fresh)
    if stale:
        problems.append(f"not freshly scored in round {round_index} by its detector: {stale[:10]}")
    return problems


def check_selection(history, round_index: int, model_version: str, k: int) -> dg.AssetCheckResult:
    """Re-read the round's saved selection and verify it (``history``: the resource)."""
    store = history.open()
    selected = [str(f) for f in store.selection(round_index).frame_ids]
    fresh_ids = [str(f) for f in store.round_scores(round_index, model_version=model_version).frame_ids]
    problems = selection_problems(
        selected,
        k,
        round_index,
        fresh=set(fresh_ids),
        labeled=store.label_rounds(),
        pruned={str(f) for f in store.pruned_frames().frame_ids},
        awaiting=store.awaiting_labels(round_index),
    )
    return _result(SELECTION_CHECK, problems, round=round_index, selected=len(selected))


def check_history(store) -> dg.AssetCheckResult:
    unknown = int(store.unknown_frame_scores())
    problems = [f"{unknown} score events name frames missing from the catalog"] if unknown else []
    return _result(HISTORY_CHECK, problems, unknown_frame_scores=unknown)


def check_export(export, selected: list[str], round_index: int, model_version: str) -> dg.AssetCheckResult:
    """``export`` as re-read (and checksum-verified) from the outbox."""
    problems = []
    if list(export.frame_ids) != list(selected):
        missing = sorted(set(selected) - set(export.frame_ids))
        extra = sorted(set(export.frame_ids) - set(selected))
        problems.append(
            f"export lists {export.count} frames, selection {len(selected)}; missing {missing[:10]}, "
            f"extra {extra[:10]}" + ("" if missing or extra else ", same frames in another order")
        )
    if export.round_index != round_index:
        problems.append(f"manifest round {export.round_index} != {round_index}")
    if export.model_version != model_version:
        problems.append(f"manifest model {export.model_version} != round's detector {model_version}")
    return _result(EXPORT_CHECK, problems, round=round_index, frames=export.count)
