"""Metadata a person reads in the UI without knowing the code: counts that match what they saw
change, and a sentence where a number cannot be given.

- ``labeled_set``'s ``labels_added`` is how much the labeled set grew since the previous
  round's ``labeled_set``, whoever took the labels in (this run's inbox ingest, ``ceal labels
  ingest`` in between, the seed set); what this run ingested itself is ``ingested_by_this_run``.
- ``detector``'s ``mAP_val`` says why it was not measured instead of showing an empty cell.
- ``candidate_pool`` shows the round's recorded parameters and those that differ from
  ``ceal.yaml`` (a Launchpad edit is kept for the next launch: this is where it shows), and
  logs a warning naming them.
"""

from __future__ import annotations

import math

import dagster as dg

from ceal_pipeline.core.parameter_drift import differing_parameters
from ceal_pipeline.defs.acquisition.partitions import round_partition_key

LABELED_SET = dg.AssetKey("labeled_set")


def labeled_frames_last_round(instance: dg.DagsterInstance, round_index: int) -> int | None:
    """``labeled_frames`` of the previous round's latest ``labeled_set`` materialization: 0 for
    round 0, None when that round's labeled_set was never materialized."""
    if round_index == 0:
        return 0
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=LABELED_SET, asset_partitions=[round_partition_key(round_index - 1)]), limit=1
    ).records
    if not records:
        return None
    value = records[0].asset_materialization.metadata.get("labeled_frames")
    return int(value.value) if value is not None else None


def labeled_growth_metadata(labeled_now: int, labeled_before: int | None, ingested: dict[str, int]) -> dict:
    """``labeled_set`` metadata on how the labeled set changed since the previous round."""
    metadata = {
        "labeled_frames": labeled_now,
        "ingested_by_this_run": dg.MetadataValue.json({k: int(v) for k, v in ingested.items()}),
    }
    if labeled_before is None:
        metadata["labels_added"] = int(sum(ingested.values()))
        metadata["labels_added_note"] = ("the previous round's labeled_set was never materialized: counted what this "
                                         "run ingested")
    else:
        metadata["labeled_frames_last_round"] = labeled_before
        metadata["labels_added"] = labeled_now - labeled_before
    return metadata


def map_val_value(map_val: float, eval_frames: int, max_eval_frames: int | None = None) -> float | str:
    """``mAP_val`` as shown: the number, or why there is none."""
    if eval_frames > 0 and not math.isnan(map_val):
        return float(map_val)
    if max_eval_frames == 0:
        return "not measured: detector.max_eval_frames is 0 (evaluation skipped)"
    if eval_frames == 0:
        return ("not measured: the catalog has no annotated val-split frames (add a val split to the source to "
                "see the detector's held-out mAP)")
    return "not measured: the evaluation returned no mAP"


def number_or_nan(value) -> float:
    """A metadata value that may be a sentence (:func:`map_val_value`) as a float (NaN if it is one)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def parameters_against_ceal_yaml(context, round_index: int, recorded: dict, configured: dict) -> dict:
    """The recorded parameters of the round that differ from ``configured`` (``ceal.yaml``'s round
    section as the deployment read it, what an unset Launchpad field takes); logged as a warning."""
    differing = differing_parameters(recorded, configured)
    if differing:
        listed = ", ".join(f"{name}={values['recorded']!r} (ceal.yaml: {values['ceal.yaml']!r})"
                           for name, values in differing.items())
        context.log.warning(f"round {round_index} was opened with parameters that differ from ceal.yaml: {listed}. "
                            "The Launchpad keeps edited values for the next launch: clear them there (or launch "
                            "from the schedule / open_next_round) to open the next round with ceal.yaml's")
    return differing
