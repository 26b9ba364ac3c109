"""What the selection stage reads for a round: its policy and its candidates' signals.

The policy is the round's (recorded when it opened: method, weights, cap, the
vendor's price list and budget). The signals come from where they were already
computed, so nothing is scored or embedded twice (CEAL's compute property):
per-frame embeddings and detections per class from the round's score shards
(written by the same forward pass as the MC scoring), the estimated cuboids of a
frame from its detection count (what its pre-labels will hold), labeled boxes
per class from the labeled set, and per-class AP from the round's detector
evaluation. The decision itself is one call to
:func:`ceal_pipeline.core.selection.select_batch`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ceal_pipeline.core.selection import LabelingBudget, SelectionCandidates, SelectionPolicy
from ceal_pipeline.frames.records import DETECTION_CLASSES


def round_labeling_budget(parameters) -> LabelingBudget:
    """The vendor's price list and the round's money budget (``parameters``: the round's ``RoundSection``)."""
    budget = parameters.budget
    return LabelingBudget(amount=budget.amount, price_per_frame=budget.price_per_frame,
                          price_per_cuboid=budget.price_per_cuboid)


def round_selection_policy(parameters, per_sequence_cap: int) -> SelectionPolicy:
    """The round's :class:`SelectionPolicy` (``per_sequence_cap`` 0 = no cap). The price list is
    always given, so the batch's cost is always estimated; its amount (if any) limits the batch."""
    return SelectionPolicy(
        method=parameters.selection.method, diversity_weight=parameters.selection.diversity_weight,
        class_balance_strength=parameters.selection.class_balance_strength, per_sequence_cap=per_sequence_cap or None,
        budget=round_labeling_budget(parameters),
    )


@dataclass(frozen=True)
class SelectionSignals:
    """``select_batch``'s inputs besides the policy: the candidates and the labeled set's needs."""

    candidates: SelectionCandidates
    labeled_class_counts: np.ndarray | None
    class_ap: np.ndarray | None
    frames_without_embedding: int


def labeled_class_counts(records) -> np.ndarray:
    """``(C,)`` labeled boxes per class of :data:`DETECTION_CLASSES` in ``records`` (their labels,
    the vendor's boxes where delivered)."""
    index = {name: i for i, name in enumerate(DETECTION_CLASSES)}
    counts = np.zeros(len(DETECTION_CLASSES))
    for record in records:
        for label in ([] if record.labels is None else record.labels.tolist()):
            name = record.class_names[int(label)]
            if name in index:
                counts[index[name]] += 1
    return counts


def selection_signals(
    frame_ids: list[str], scores: np.ndarray, sequences: list[str], *, explanations: dict, embeddings: dict,
    labeled_records, per_class_ap: dict, policy: SelectionPolicy,
) -> SelectionSignals:
    """Assemble the candidates (in ``frame_ids`` order) and the class needs for ``policy``.

    ``explanations`` / ``embeddings``: frame id -> FrameExplanation / vector, from the round's
    shards; ``labeled_records``: the labeled set's FrameRecords (only read when class balance is
    used); ``per_class_ap``: class name -> AP of the round's detector (empty: not evaluated).
    A frame without an explanation has no class or cuboid estimate (zeros) and the stage
    treats it as neutral; a frame without an embedding makes diversity impossible, which
    ``select_batch`` reports by name.
    """
    class_counts = cuboids = None
    if policy.uses_class_balance or (policy.budget is not None and policy.budget.price_per_cuboid > 0):
        class_counts = np.zeros((len(frame_ids), len(DETECTION_CLASSES)))
        for row, frame_id in enumerate(frame_ids):
            explanation = explanations.get(frame_id)
            if explanation is not None:
                for c, name in enumerate(DETECTION_CLASSES):
                    class_counts[row, c] = explanation.class_counts.get(name, 0)
        cuboids = np.asarray([explanations[f].n_detections if f in explanations else 0 for f in frame_ids], float)
    vectors = None
    missing = sum(1 for f in frame_ids if f not in embeddings)
    if frame_ids and missing == 0:
        vectors = np.stack([np.asarray(embeddings[f], dtype=np.float32) for f in frame_ids])
    counts = ap = None
    if policy.uses_class_balance:
        counts = labeled_class_counts(labeled_records)
        if per_class_ap:
            ap = np.asarray([float(per_class_ap.get(name, np.nan)) for name in DETECTION_CLASSES])
            ap = np.where(np.isfinite(ap), np.clip(ap, 0.0, 1.0), np.nan)
    return SelectionSignals(
        candidates=SelectionCandidates(
            frame_ids=np.asarray(frame_ids, dtype=object), acquisition_values=np.asarray(scores, dtype=np.float64),
            sequence_ids=np.asarray(sequences, dtype=object), class_counts=class_counts, embeddings=vectors,
            cuboids=cuboids,
        ),
        labeled_class_counts=counts, class_ap=ap, frames_without_embedding=missing,
    )
