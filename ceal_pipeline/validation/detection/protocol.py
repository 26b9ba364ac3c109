"""The detection benchmark's protocol: settings, key, and the round loop of one run seed.

One *run seed* fixes the seed set (:func:`ceal_pipeline.core.round.seed_set`),
every training seed, every MC-Dropout seed and every random draw, each derived
with :func:`~ceal_pipeline.core.seeding.derive_seed` and recorded. The data is
fixed by the protocol (:mod:`.data`).

Round 0 is shared by every strategy of a run seed: the detector trained from
scratch on the seed set (``epochs``), its held-out mAP, its MC-Dropout values of
every acquisition function over the unlabeled pool (one set of passes: the
first acquisition of every scoring strategy, full pool or CEAL backfill, scores
exactly these frames with this model and seed) and the score-error correlation
on the held-out frames (:mod:`.score_error`). Each strategy is charged what the
shared work would have cost it alone, as in the MNIST protocol.

Acquisition ``r = 1 .. rounds``: the previous round's detector scores (or not),
:func:`ceal_pipeline.validation.strategies.acquire` buys ``acquire_per_round``
frames by the pipeline's rules (candidate pool, pruning, eligibility, top-k),
and the detector is trained again on the grown labeled set, warm-started from
the previous round's weights for ``fine_tune_epochs`` as the pipeline's
``detector`` asset does (``warm_start``), then evaluated on the held-out frames.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ceal_pipeline.core.detection_acquisition import DETECTION_ACQUISITION_FUNCTIONS
from ceal_pipeline.core.ledger import ComputeLedger, ledger_totals
from ceal_pipeline.core.pruning import persistently_low
from ceal_pipeline.core.round import seed_set
from ceal_pipeline.core.sampling import pool_size
from ceal_pipeline.core.seeding import derive_seed
from ceal_pipeline.validation.detection.data import DetectionData, subpopulation_counts
from ceal_pipeline.validation.detection.score_error import score_error_correlations
from ceal_pipeline.validation.detection.strategies import parse_detection_strategy
from ceal_pipeline.validation.strategies import Strategy, acquire

DATASET = "detection"


@dataclass(frozen=True)
class DetectionProtocolConfig:
    """Every setting that changes the detection benchmark's numbers (:meth:`key` hashes them).

    Counts are frames; epochs are passes over the labeled set; ``temperature``
    applies to rank-normalised scores in [0, 1]; distances are metres.
    """

    dataset: str = DATASET
    frames: int = 300  #: synthetic frames generated; ~80 % (train split) is the pool, ~20 % (val) held out
    frames_per_sequence: int = 4  #: consecutive, near-identical frames per driving sequence
    generator_seed: int = 0  #: the synthetic dataset's seed (the data is the same for every run seed)
    held_out_frames: int = 60  #: val-split frames for mAP and the score-error correlation
    initial_labeled: int = 24  #: seed set drawn from the pool (core.round.seed_set)
    acquire_per_round: int = 5  #: labeling budget per round
    rounds: int = 2  #: acquisition rounds
    detector: str = "bevfusion_tiny"  #: detector config name
    epochs: int = 6  #: round 0: epochs from scratch
    fine_tune_epochs: int = 2  #: later rounds: epochs warm-started from the previous round (warm_start)
    warm_start: bool = True  #: later rounds start from the previous round's weights, as the pipeline's default
    mc_samples: int = 10  #: MC-Dropout passes T per scored frame
    aggregate: str = "mean"  #: per-frame aggregation of object values
    temperature: float = 0.1
    normalisation: str = "rank"
    prior: str = "optimistic"
    backfill_first_round: bool = True  #: the first acquisition scores the whole pool (the paper's round 0)
    per_sequence_cap: int | None = None  #: at most this many frames bought per sequence and round
    prune_last_m: int = 2  #: pruning: the last m scores ...
    prune_quantile: float = 0.2  #: ... each in the bottom q of its round
    error_threshold_m: float = 2.0  #: detection error: match radius
    error_min_confidence: float = 0.3  #: detection error: predictions counted from this confidence

    def __post_init__(self) -> None:
        checks = {
            "frames must be >= 10": self.frames >= 10,
            "initial_labeled must be >= 1": self.initial_labeled >= 1,
            "acquire_per_round must be >= 1": self.acquire_per_round >= 1,
            "rounds must be >= 1": self.rounds >= 1,
            "epochs and fine_tune_epochs must be >= 1": self.epochs >= 1 and self.fine_tune_epochs >= 1,
            "mc_samples must be >= 2": self.mc_samples >= 2,
            "temperature must be > 0": self.temperature > 0,
            "prune_last_m must be >= 1": self.prune_last_m >= 1,
            "prune_quantile must be in (0, 1)": 0 < self.prune_quantile < 1,
        }
        failed = [message for message, ok in checks.items() if not ok]
        if failed:
            raise ValueError(f"invalid detection benchmark protocol: {'; '.join(failed)}")

    def key(self) -> str:
        """12 hex digits identifying the protocol; runs are only averaged within one key."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]

    def check_budget(self, strategies: list[Strategy], pool_frames: int) -> None:
        """Fail before any training when a round could not buy ``acquire_per_round`` frames.

        The unlabeled pool shrinks by the budget each round; a CEAL candidate pool is
        its fraction of it, less what pruning may remove (at most the bottom
        ``prune_quantile`` of the round's scores, plus one).
        """
        unlabeled = pool_frames - self.initial_labeled
        if unlabeled - self.rounds * self.acquire_per_round < 0:
            raise ValueError(f"{self.rounds} rounds of {self.acquire_per_round} plus {self.initial_labeled} seed "
                             f"frames exceed the pool of {pool_frames}; lower rounds or acquire_per_round")
        last = unlabeled - (self.rounds - 1) * self.acquire_per_round
        for strategy in strategies:
            if strategy.kind != "ceal":
                continue
            m = pool_size(last, fraction=strategy.candidate_pool_fraction)
            selectable = m - (int(np.ceil(self.prune_quantile * m)) + 1 if strategy.pruning else 0)
            if selectable < self.acquire_per_round:
                raise ValueError(
                    f"{strategy.name}: the last round's candidate pool holds {m} of {last} unlabeled frames"
                    f"{', of which pruning may take some' if strategy.pruning else ''}, fewer than "
                    f"acquire_per_round={self.acquire_per_round}; generate more frames or lower the budget"
                )


@dataclass
class DetectionStrategyRun:
    """One strategy under one run seed: one JSON line in ``detection.jsonl``.

    ``map_per_round[r]`` is the held-out mAP (fraction) of the detector trained
    after round ``r`` (round 0 = the seed set), ``per_class_ap_per_round`` its
    per-class AP (NaN stored as None); ``bought_per_round`` the sub-population
    counts of the frames bought in each acquisition and ``pool_subpopulations``
    those of the unlabeled pool before the first; ``score_error_spearman`` and
    ``score_missed_spearman`` are the run seed's round-0 correlations (the same
    for every strategy of the seed); seconds are wall-clock.
    """

    dataset: str
    protocol_key: str
    protocol: dict[str, Any]
    strategy: str
    run_seed: int
    map_per_round: list[float] = field(default_factory=list)
    per_class_ap_per_round: list[dict[str, float | None]] = field(default_factory=list)
    labeled_per_round: list[int] = field(default_factory=list)
    bought_per_round: list[dict[str, int]] = field(default_factory=list)
    pruned_per_round: list[int] = field(default_factory=list)
    pool_subpopulations: dict[str, int] = field(default_factory=dict)
    score_error_spearman: dict[str, float | None] = field(default_factory=dict)
    score_missed_spearman: dict[str, float | None] = field(default_factory=dict)
    seeds: dict[str, Any] = field(default_factory=dict)
    ledger: list[dict[str, Any]] = field(default_factory=list)
    evaluation_s: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record.update(
            **ledger_totals(self.ledger),
            frames_pruned=sum(self.pruned_per_round),
            finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        return record


@dataclass(frozen=True)
class RunOptions:
    """How a run executes; none of it changes the numbers (so none is in the protocol key).

    ``device``: torch device (``cpu``, ``cuda``, ``auto``); ``num_workers``: frame-loader
    processes (None = the loader's default, 0 = in-process); ``batch_size``: frames per
    forward pass (None = the config's); ``work_dir``: checkpoints of the run, removed
    when each run seed finishes.
    """

    work_dir: Path
    device: str = "cpu"
    num_workers: int | None = None
    batch_size: int | None = None


@dataclass(frozen=True)
class _Trained:
    checkpoint: Any
    model: Any
    seconds: float


def _per_class(result: dict) -> dict[str, float | None]:
    return {name: (None if ap != ap else float(ap)) for name, ap in result["per_class"].items()}


def run_seed_protocol(
    data: DetectionData,
    config: DetectionProtocolConfig,
    strategies: list[str],
    run_seed: int,
    options: RunOptions,
    *,
    log: Callable[[str], None] | None = None,
    on_run: Callable[[DetectionStrategyRun], None] | None = None,
) -> list[DetectionStrategyRun]:
    """Run every strategy under one run seed; ``on_run`` sees each finished run at once
    (to persist it, so an interrupted benchmark keeps what it finished)."""
    from ceal_pipeline.detector.checkpoints import load_detector
    from ceal_pipeline.detector.evaluation import (
        bev_range_of,
        detection_errors,
        evaluate_predictions,
        predict_frames,
    )
    from ceal_pipeline.detector.scoring import score_frames
    from ceal_pipeline.detector.training import train_detector

    parsed = [parse_detection_strategy(name) for name in strategies]
    config.check_budget(parsed, len(data.pool))
    log = log or (lambda message: None)
    work = Path(options.work_dir) / f"{config.key()}-seed{run_seed}"
    frame_ids = np.asarray([f.frame_id for f in data.pool], dtype=object)
    position = {str(f): i for i, f in enumerate(frame_ids)}
    sequences = data.sequence_ids
    loader = dict(device=options.device, num_workers=options.num_workers, batch_size=options.batch_size)

    def train(labeled: np.ndarray, round_index: int, folder: Path, init: Any | None) -> _Trained:
        start = time.perf_counter()
        warm = init is not None and config.warm_start
        checkpoint = train_detector(
            [data.pool[i] for i in labeled], config.detector, folder,
            epochs=config.fine_tune_epochs if warm else config.epochs,
            seed=derive_seed(run_seed, round_index, "detector_training"),
            init_checkpoint=init.path if warm else None, **loader,
        )
        model, _ = load_detector(checkpoint.path, device=options.device)
        return _Trained(checkpoint, model, time.perf_counter() - start)

    def evaluate(model) -> tuple[dict, list, float]:
        start = time.perf_counter()
        detections = predict_frames(model, data.held_out, **loader)
        result = evaluate_predictions(detections, data.held_out, model.class_names, bev_range=bev_range_of(model))
        return result, detections, time.perf_counter() - start

    def mc_scores(model, frames: list, round_index: int, names: list[str], purpose: str = "mc_dropout"):
        return score_frames(model, frames, T=config.mc_samples, seed=derive_seed(run_seed, round_index, purpose),
                            aggregate=config.aggregate, acquisition_fn=names[0], extra_acquisition_fns=names[1:],
                            **loader)

    initial = np.sort([position[f] for f in seed_set(frame_ids, config.initial_labeled, run_seed)]).astype(np.int64)
    log(f"detection seed {run_seed}: round 0 on {len(initial)} seed frames ({config.epochs} epochs)")
    round0 = train(initial, 0, work / "round0", None)
    round0_eval, round0_detections, round0_eval_s = evaluate(round0.model)
    unlabeled0 = np.setdiff1d(np.arange(len(data.pool)), initial)

    # The score-error correlation of every acquisition function on the held-out frames.
    held_out = mc_scores(round0.model, data.held_out, 0, list(DETECTION_ACQUISITION_FUNCTIONS),
                         purpose="mc_dropout_held_out")
    errors = detection_errors(round0_detections, data.held_out, round0.model.class_names,
                              threshold_m=config.error_threshold_m, min_confidence=config.error_min_confidence,
                              bev_range=bev_range_of(round0.model))
    error_rho = score_error_correlations(held_out.scores_by_fn, errors.errors)
    missed_rho = score_error_correlations(held_out.scores_by_fn, errors.missed)
    log(f"detection seed {run_seed}: round-0 mAP {round0_eval['mAP']:.4f}; score-error Spearman "
        + ", ".join(f"{k} {v if v is None else round(v, 3)}" for k, v in error_rho.items()))

    shared: dict[str, Any] = {}
    scoring_fns = list(dict.fromkeys(s.acquisition_fn for s in parsed if s.acquisition_fn))

    def round0_scores(fn: str, indices: np.ndarray) -> tuple[np.ndarray, float]:
        # One set of passes for every function: the same frames, model and MC seed for all strategies.
        if not shared:
            scored = mc_scores(round0.model, [data.pool[i] for i in unlabeled0], 0, scoring_fns)
            shared.update(scores=scored.scores_by_fn, seconds=scored.wall_s)
        positions = np.searchsorted(unlabeled0, indices)
        return shared["scores"][fn][positions], shared["seconds"] * len(indices) / max(len(unlabeled0), 1)

    runs = []
    for strategy in parsed:
        run = DetectionStrategyRun(DATASET, config.key(), asdict(config), strategy.name, run_seed)
        run.score_error_spearman, run.score_missed_spearman = error_rho, missed_rho
        run.pool_subpopulations = subpopulation_counts(frame_ids[unlabeled0], data.conditions)
        run.seeds = {"run_seed": run_seed, "seed_set": derive_seed(run_seed, 0, "seed_set"),
                     "training": [derive_seed(run_seed, 0, "detector_training")],
                     "mc_dropout": [], "acquisition": [],
                     "mc_dropout_held_out": derive_seed(run_seed, 0, "mc_dropout_held_out")}
        run.map_per_round.append(float(round0_eval["mAP"]))
        run.per_class_ap_per_round.append(_per_class(round0_eval))
        run.labeled_per_round.append(len(initial))
        run.evaluation_s.append(round0_eval_s)
        run.ledger.append(ComputeLedger(round_index=0, pool_frames=len(data.pool), frames_scored=0, forward_passes=0,
                                        training_s=round0.seconds, scoring_s=0.0, selection_s=0.0).to_dict())
        labeled, pruned = initial, np.zeros(0, dtype=np.int64)
        latest = np.full(len(data.pool), np.nan)
        events: list[tuple[np.ndarray, int, np.ndarray]] = []
        trained = round0
        for round_index in range(1, config.rounds + 1):
            acquisition_round = round_index - 1
            unlabeled = np.setdiff1d(np.setdiff1d(np.arange(len(data.pool)), labeled), pruned)
            charged: dict[str, float] = {}

            def score(indices: np.ndarray, model=trained.model, first=acquisition_round == 0) -> np.ndarray:
                if first:
                    values, charged["scoring_s"] = round0_scores(strategy.acquisition_fn, indices)
                else:
                    frames = [data.pool[i] for i in indices]
                    values = mc_scores(model, frames, acquisition_round, [strategy.acquisition_fn]).scores
                events.append((indices.copy(), acquisition_round, values))
                return values

            def prune(candidates: np.ndarray, scores: np.ndarray, still: np.ndarray = unlabeled) -> np.ndarray:
                # core.pruning over the score events of frames still in the unlabeled pool, as pruned_frames does.
                ids = np.concatenate([e[0] for e in events])
                rounds = np.concatenate([np.full(len(e[0]), e[1]) for e in events])
                values = np.concatenate([e[2] for e in events])
                mask = np.isin(ids, still)
                return persistently_low(ids[mask], rounds[mask], values[mask], last_m=config.prune_last_m,
                                        quantile=config.prune_quantile)

            acquisition = acquire(
                strategy, unlabeled=unlabeled, latest_scores=latest, k=config.acquire_per_round, score=score,
                run_seed=run_seed, round_index=acquisition_round, temperature=config.temperature,
                normalisation=config.normalisation, prior=config.prior,
                backfill_first_round=config.backfill_first_round, prune=prune if strategy.pruning else None,
                sequence_ids=sequences, per_sequence_cap=config.per_sequence_cap,
            )
            latest[acquisition.scored] = acquisition.scores
            pruned = np.union1d(pruned, acquisition.pruned)
            labeled = np.union1d(labeled, acquisition.selected)
            trained = train(labeled, round_index, work / strategy.name / f"round{round_index}", trained.checkpoint)
            result, _, eval_s = evaluate(trained.model)
            run.map_per_round.append(float(result["mAP"]))
            run.per_class_ap_per_round.append(_per_class(result))
            run.labeled_per_round.append(len(labeled))
            run.bought_per_round.append(subpopulation_counts(frame_ids[acquisition.selected], data.conditions))
            run.pruned_per_round.append(int(len(acquisition.pruned)))
            run.evaluation_s.append(eval_s)
            run.seeds["training"].append(derive_seed(run_seed, round_index, "detector_training"))
            run.seeds["mc_dropout"].append(derive_seed(run_seed, acquisition_round, "mc_dropout")
                                           if len(acquisition.scored) else None)
            run.seeds["acquisition"].append(acquisition.candidate_seed)
            run.ledger.append(ComputeLedger(
                round_index=round_index, pool_frames=len(unlabeled), frames_scored=len(acquisition.scored),
                forward_passes=len(acquisition.scored) * config.mc_samples, training_s=trained.seconds,
                scoring_s=charged.get("scoring_s", acquisition.scoring_s), selection_s=acquisition.selection_s,
            ).to_dict())
        shutil.rmtree(work / strategy.name, ignore_errors=True)
        log(f"detection seed {run_seed} {strategy.name}: mAP " + " ".join(f"{m:.4f}" for m in run.map_per_round))
        runs.append(run)
        if on_run is not None:
            on_run(run)
    shutil.rmtree(work, ignore_errors=True)
    return runs
