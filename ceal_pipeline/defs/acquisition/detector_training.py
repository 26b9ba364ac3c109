"""The detector step's service: train a round's detector, measure it on the held-out frames, publish it.

The ``detector`` asset decides with :func:`ceal_pipeline.core.round.plan_training`
whether to train and how, then makes this one call.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ceal_pipeline.core.round import TrainingPlan
from ceal_pipeline.defs.resources import ModelStoreResource, PublishedModel
from ceal_pipeline.export.vendor_boxes import with_delivered_labels


def train_round_detector(
    model_store: ModelStoreResource,
    catalog,
    store,
    round_index: int,
    labeled: list[str],
    plan: TrainingPlan,
    *,
    warm_from: PublishedModel | None,
    seed: int,
    fingerprint: str,
    max_eval_frames: int,
    log: Callable[[str], None],
) -> PublishedModel:
    """Train round ``round_index``'s detector on the ``labeled`` frames (the catalog's rows, the
    vendor's boxes where it delivered them) for ``plan.epochs``, from ``warm_from``'s weights when
    given; evaluate it on up to ``max_eval_frames`` annotated val frames (-1: all, 0: none);
    publish it. Returns what was published."""
    # The training set is a query by id, boxes included; delivered frames carry the vendor's boxes.
    frames = with_delivered_labels(catalog.records(labeled), store.delivered_labels(labeled))
    started = time.perf_counter()
    checkpoint = model_store.train(
        frames,
        round_index,
        epochs=plan.epochs,
        seed=seed,
        init_checkpoint=warm_from.path if warm_from is not None else None,
        log=lambda epoch: log(
            f"round {round_index} training epoch {epoch.get('epoch')}: loss {epoch.get('loss', float('nan')):.3f} "
            f"({epoch.get('seconds', 0.0):.0f} s)"
        ),
    )
    training_s = time.perf_counter() - started
    model, version = model_store.load(checkpoint.path)
    held_out_ids = catalog.frame_ids(split="val", annotated=True)  # sorted
    if max_eval_frames >= 0:
        held_out_ids = held_out_ids[:max_eval_frames]
    held_out = catalog.records(held_out_ids) if len(held_out_ids) else []
    evaluation = model_store.evaluate(model, held_out) if held_out else {}
    metrics = {
        "mAP": float(evaluation.get("mAP", float("nan"))),
        "per_class_ap": {k: float(v) for k, v in dict(evaluation.get("per_class", {})).items()},
        "eval_frames": len(held_out),
        "labeled_fingerprint": fingerprint,
        "warm_start": warm_from.version if warm_from is not None else None,
        "train_metrics": {k: float(v) for k, v in dict(checkpoint.metrics).items() if isinstance(v, (int, float))},
        "loss_curve": [dict(epoch) for epoch in checkpoint.loss_curve],
    }
    published = PublishedModel(round_index, str(checkpoint.path), str(version), training_s, metrics)
    model_store.publish(published)
    return published
