"""A warning check on ``selected_batch``: were the bought frames told apart by their scores?

Not blocking: a selection decided by ties is still a valid purchase (K fresh,
unlabeled, unpruned frames), but the person reading the round must see that the
score did not choose them, and which tie-break did
(:mod:`ceal_pipeline.core.selection_ties`). It re-reads the saved selection from
the history and compares it with the round's selectable candidates.
"""

from __future__ import annotations

import dagster as dg

from ceal_pipeline.core.selection_ties import TIE_TOLERANCE, selection_ties

TIES_CHECK = dg.AssetCheckSpec(
    name="selection_not_decided_by_ties",
    asset="selected_batch",
    blocking=False,
    description="warns when bought frames have the same score as candidates left out (or all bought frames share "
    "one score): the tie-break, not the acquisition value, chose them; says which tie-break decided",
)

#: What orders equal scores in top-K (core.selection.select_top_k) when the selection records no other rule.
DEFAULT_TIE_BREAK = "frame id, ascending (select_top_k's order for equal scores)"


def tie_break_of(selection) -> str:
    """The tie-break a :class:`~ceal_pipeline.core.selection.Selection` used, with its per-pick ``decided_by``."""
    rule = "frame id, ascending" if selection.policy.tie_break == "frame_id" else selection.policy.tie_break
    counts = {signal: n for signal, n in selection.decided_by_counts().items() if n}
    return f"{rule} (the selection's decided_by per pick: {counts})"


def check_selection_ties(store, round_index: int, candidate_ids, candidate_scores,
                         decided_by: str | None = None) -> dg.AssetCheckResult:
    """``store``: the history; ``candidate_ids``/``candidate_scores``: the round's selectable candidates;
    ``decided_by``: the tie-break the selection reports, if it reports one."""
    saved = store.selection(round_index)
    bought = {str(f) for f in saved.frame_ids}
    left_out = [float(s) for f, s in zip(candidate_ids, candidate_scores) if str(f) not in bought]
    ties = selection_ties(saved.scores, left_out)
    tie_break = decided_by or DEFAULT_TIE_BREAK
    if ties.decided_by_ties:
        summary = (f"{ties.tied_with_left_out} of the {ties.selected} bought frames have the same score as "
                   f"{ties.left_out_tied} candidates left out" if ties.tied_with_left_out else
                   f"all {ties.selected} bought frames have one score")
        summary += (f" ({ties.boundary_score:.6g} nats): the tie-break decided, by {tie_break}. A detector that "
                    "finds nothing yet scores every frame alike; a heatmap acquisition function (acquisition_fn: "
                    "heatmap_entropy, localization_and_heatmap_entropy or localization_and_heatmap_ranks) "
                    "still ranks such frames")
    else:
        summary = "every bought frame scored above every candidate left out; the scores decided"
    return dg.AssetCheckResult(
        check_name=TIES_CHECK.name,
        asset_key=TIES_CHECK.asset_key,
        passed=not ties.decided_by_ties,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "summary": summary,
            "decided_by": "ties: " + tie_break if ties.decided_by_ties else "scores",
            "bought_tied_with_left_out": ties.tied_with_left_out,
            "left_out_tied_with_bought": ties.left_out_tied,
            "distinct_bought_scores": ties.distinct_selected_scores,
            "lowest_bought_score": ties.boundary_score,
            "best_left_out_score": ties.best_left_out_score,
            "tolerance_nats": TIE_TOLERANCE,
        },
    )
