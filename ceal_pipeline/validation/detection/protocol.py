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
:func:`ceal_pipeline.validation.strategies.acquire` draws the candidate pool and
prunes by the pipeline's rules (``core.round``, ``core.pruning``), and the
pipeline's selection stage (:func:`ceal_pipeline.core.selection.select_batch`)
buys: top-k, class balance, diversity, both, or value per cost under a money
budget, as the strategy's name says (:mod:`.strategies`). The detector is then
trained again on the grown labeled set, warm-started from the previous round's
weights (``warm_start``) for ``fine_tune_steps`` optimiser steps (or
``fine_tune_epochs`` epochs when it is None), and evaluated on the held-out
frames. Each round records labeled frames, labeled boxes and the labeling cost
at the protocol's vendor prices (``price_per_frame`` + ``price_per_box`` per
ground-truth box: what the vendor would bill), so strategies are compared per
frame, per box and per unit of money (:mod:`.paired`).

With ``new_frame_repeats`` r > 1, each epoch of a warm-started round visits the
frames bought in the acquisition just before it (those not in the previous
round's labeled set) r times and every other labeled frame once
(:func:`~ceal_pipeline.detector.training.train_detector`'s ``repeats``), and
``fine_tune_steps`` is rounded up to whole epochs of that expanded pass
(:func:`fine_tune_epochs`), so a round trains about as many steps as without
oversampling, with more of them on the new frames. Round 0 and rounds trained
from scratch (``warm_start=False``) never oversample.

With ``exact_steps``, a warm-started round trains exactly ``fine_tune_steps``
optimiser steps (:func:`~ceal_pipeline.detector.training.train_detector`'s ``max_steps``: the last epoch stops
part-way) instead of rounding them up to whole epochs, so every round and every
variant (e.g. with and without ``new_frame_repeats``) gets the same compute.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from ceal_pipeline.core.detection_acquisition import DETECTION_ACQUISITION_FUNCTIONS
from ceal_pipeline.core.ledger import ComputeLedger, ledger_totals
from ceal_pipeline.core.pruning import persistently_low
from ceal_pipeline.core.ranks import rank_normalised_combination
from ceal_pipeline.core.round import seed_set
from ceal_pipeline.core.sampling import pool_size
from ceal_pipeline.core.seeding import derive_seed
from ceal_pipeline.core.selection import LabelingBudget, SelectionCandidates, SelectionPolicy
from ceal_pipeline.validation.detection.data import DetectionData, subpopulation_counts
from ceal_pipeline.validation.detection.score_error import score_error_correlations
from ceal_pipeline.validation.detection.strategies import SelectionChoice, parse_detection_strategy, selection_choice
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
    #: later rounds: optimiser steps warm-started from the previous round (rounded up to whole
    #: epochs of the grown labeled set unless ``exact_steps``); None = ``fine_tune_epochs``
    fine_tune_steps: int | None = None
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
    price_per_frame: float = 1.0  #: vendor price of labeling one frame (money units)
    price_per_box: float = 0.1  #: vendor price of one 3D box (cuboid) in a labeled frame
    #: money per round of the ``_budget`` strategies; None = acquire_per_round x the pool's mean frame cost
    budget_per_round: float | None = None
    class_balance_strength: float = 1.0  #: selection: exponent on each class's need (class balance)
    diversity_weight: float = 0.5  #: selection: share of the greedy objective given to batch distance
    prelabel_min_confidence: float = 0.3  #: detections from this confidence count as expected boxes
    #: warm-started rounds: passes over each newly bought frame per epoch (1 = once, like every other frame)
    new_frame_repeats: int = 1
    #: warm-started rounds train exactly ``fine_tune_steps`` optimiser steps (the last epoch
    #: partial) instead of rounding them up to whole epochs; needs ``fine_tune_steps``
    exact_steps: bool = False

    #: Fields added after protocol keys were published, with the value every earlier key had:
    #: :meth:`key` hashes them only when set to another value, so existing keys (and stored runs) stay.
    _HASHED_UNLESS: ClassVar[dict[str, Any]] = {"new_frame_repeats": 1, "exact_steps": False}

    def __post_init__(self) -> None:
        checks = {
            "frames must be >= 10": self.frames >= 10,
            "initial_labeled must be >= 1": self.initial_labeled >= 1,
            "acquire_per_round must be >= 1": self.acquire_per_round >= 1,
            "rounds must be >= 1": self.rounds >= 1,
            "epochs and fine_tune_epochs must be >= 1": self.epochs >= 1 and self.fine_tune_epochs >= 1,
            "fine_tune_steps must be >= 1 or None": self.fine_tune_steps is None or self.fine_tune_steps >= 1,
            "prices must be >= 0 and price_per_frame > 0": self.price_per_frame > 0 and self.price_per_box >= 0,
            "budget_per_round must be > 0 or None": self.budget_per_round is None or self.budget_per_round > 0,
            "mc_samples must be >= 2": self.mc_samples >= 2,
            "temperature must be > 0": self.temperature > 0,
            "prune_last_m must be >= 1": self.prune_last_m >= 1,
            "prune_quantile must be in (0, 1)": 0 < self.prune_quantile < 1,
            "new_frame_repeats must be an integer >= 1 (1 = no oversampling)":
                isinstance(self.new_frame_repeats, int) and self.new_frame_repeats >= 1,
            "exact_steps must be True or False and needs fine_tune_steps (the steps it trains exactly)":
                isinstance(self.exact_steps, bool) and (not self.exact_steps or self.fine_tune_steps is not None),
        }
        failed = [message for message, ok in checks.items() if not ok]
        if failed:
            raise ValueError(f"invalid detection benchmark protocol: {'; '.join(failed)}")

    def key(self) -> str:
        """12 hex digits identifying the protocol; runs are only averaged within one key.

        Every field is hashed, except a field of ``_HASHED_UNLESS`` at its listed value
        (one added later, at the value that reproduces what came before).
        """
        settings = {name: value for name, value in asdict(self).items()
                    if not (name in self._HASHED_UNLESS and value == self._HASHED_UNLESS[name])}
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]

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
    for every strategy of the seed); seconds are wall-clock. ``boxes_per_round``
    and ``cost_per_round`` are the labeled set's ground-truth boxes and its
    labeling cost at the protocol's prices after each round;
    ``map_unclipped_per_round``, ``car_ap_per_round`` and
    ``non_car_map_per_round`` the metric's other views
    (:mod:`ceal_pipeline.core.detection_metrics`); ``selection_per_round`` the
    selection stage's record of each acquisition (policy, deciding signals,
    estimated cost).
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
    boxes_per_round: list[int] = field(default_factory=list)
    cost_per_round: list[float] = field(default_factory=list)
    map_unclipped_per_round: list[float] = field(default_factory=list)
    car_ap_per_round: list[float | None] = field(default_factory=list)
    non_car_map_per_round: list[float | None] = field(default_factory=list)
    selection_per_round: list[dict[str, Any]] = field(default_factory=list)

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


def _none_if_nan(value: Any) -> float | None:
    return None if value is None or value != value else float(value)


def _record_evaluation(run: "DetectionStrategyRun", result: dict) -> None:
    run.map_per_round.append(float(result["mAP"]))
    run.per_class_ap_per_round.append(_per_class(result))
    run.map_unclipped_per_round.append(float(result["mAP_unclipped"]))
    run.car_ap_per_round.append(_none_if_nan(result.get("car_AP")))
    run.non_car_map_per_round.append(_none_if_nan(result.get("non_car_mAP")))


def selection_policy(choice: SelectionChoice, config: DetectionProtocolConfig, budget_amount: float | None
                     ) -> SelectionPolicy:
    """The pipeline's :class:`SelectionPolicy` for a strategy's selection choice under ``config``."""
    method = {(False, False): "topk", (True, False): "class_balance", (False, True): "diversity",
              (True, True): "class_balance_diversity"}[(choice.class_balance, choice.diversity)]
    return SelectionPolicy(
        method=method, diversity_weight=config.diversity_weight,
        class_balance_strength=config.class_balance_strength, per_sequence_cap=config.per_sequence_cap,
        budget=LabelingBudget(amount=budget_amount if choice.money_budget else None,
                              price_per_frame=config.price_per_frame, price_per_cuboid=config.price_per_box),
    )


def fine_tune_budget(config: DetectionProtocolConfig, labeled_frames: int, batch_size: int,
                     new_frames: int = 0) -> dict[str, int]:
    """A warm-started round's length as :func:`train_detector` takes it: ``{"max_steps": fine_tune_steps}``
    with ``exact_steps``, else ``{"epochs": fine_tune_epochs(...)}``."""
    if config.exact_steps:
        return {"max_steps": int(config.fine_tune_steps)}
    return {"epochs": fine_tune_epochs(config, labeled_frames, batch_size, new_frames)}


def fine_tune_epochs(config: DetectionProtocolConfig, labeled_frames: int, batch_size: int,
                     new_frames: int = 0) -> int:
    """Epochs of a warm-started round: ``fine_tune_steps`` rounded up to whole epochs, or ``fine_tune_epochs``.

    An epoch is one pass over the labeled set as ``new_frame_repeats`` expands it:
    ``labeled_frames + (new_frame_repeats - 1) * new_frames`` frames at ``batch_size``.
    So oversampling the ``new_frames`` bought in the round keeps the round at about
    ``fine_tune_steps`` steps (the same compute, with more of it on the new frames)
    rather than multiplying them. ``fine_tune_epochs`` counts such expanded epochs too.
    """
    if not 0 <= new_frames <= labeled_frames:
        raise ValueError(f"new_frames must be in [0, labeled_frames={labeled_frames}], got {new_frames}")
    if config.fine_tune_steps is None:
        return config.fine_tune_epochs
    epoch_frames = labeled_frames + (config.new_frame_repeats - 1) * new_frames
    steps_per_epoch = -(-epoch_frames // batch_size)
    return max(1, -(-config.fine_tune_steps // steps_per_epoch))


def new_frame_repeats(config: DetectionProtocolConfig, labeled: np.ndarray, previous: np.ndarray
                      ) -> list[int] | None:
    """Passes per epoch over each frame of ``labeled`` (pool indices) in a warm-started round:
    ``config.new_frame_repeats`` for the frames not in ``previous`` (the previous round's
    labeled set), 1 for the others; None when nothing is oversampled (``new_frame_repeats`` 1)."""
    if config.new_frame_repeats == 1:
        return None
    return np.where(np.isin(labeled, previous), 1, config.new_frame_repeats).astype(int).tolist()


@dataclass
class _Scored:
    """MC-Dropout outputs of scored pool frames, by pool index: acquisition values per
    function, expected boxes per class (``class_counts``), estimated cuboids and, when
    the scorer gives them, per-frame embeddings."""

    scores_by_fn: dict[str, dict[int, float]] = field(default_factory=dict)
    #: a rank combination's per-frame terms and weights, to rank any subset of the frames together
    terms_by_fn: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)
    term_weights_by_fn: dict[str, dict[str, float]] = field(default_factory=dict)
    class_counts: dict[int, np.ndarray] = field(default_factory=dict)
    cuboids: dict[int, float] = field(default_factory=dict)
    embeddings: dict[int, np.ndarray] = field(default_factory=dict)

    def add(self, indices: np.ndarray, scored: Any, n_classes: int, min_confidence: float) -> None:
        for name, values in scored.scores_by_fn.items():
            self.scores_by_fn.setdefault(name, {}).update(zip(indices.tolist(), np.asarray(values, float).tolist()))
        for name, terms in getattr(scored, "terms_by_fn", {}).items():
            self.term_weights_by_fn[name] = scored.term_weights_by_fn[name]
            for term, values in terms.items():
                self.terms_by_fn.setdefault(name, {}).setdefault(term, {}).update(
                    zip(indices.tolist(), np.asarray(values, float).tolist()))
        counts = _expected_class_counts(scored, n_classes, min_confidence)
        embeddings = getattr(scored, "embeddings", None)
        for row, index in enumerate(indices.tolist()):
            self.class_counts[index] = counts[row]
            self.cuboids[index] = float(counts[row].sum())
            if embeddings is not None:
                self.embeddings[index] = np.asarray(embeddings[row], dtype=np.float32)

    def values(self, name: str, indices: np.ndarray) -> np.ndarray:
        """``name``'s values of the frames ``indices``; a rank combination ranked among exactly these."""
        if name not in self.terms_by_fn:
            return np.array([self.scores_by_fn[name][i] for i in indices.tolist()])
        terms = {term: np.array([by_index[i] for i in indices.tolist()])
                 for term, by_index in self.terms_by_fn[name].items()}
        return rank_normalised_combination(terms, self.term_weights_by_fn[name])


def _expected_class_counts(scored: Any, n_classes: int, min_confidence: float) -> np.ndarray:
    """``(n, C)`` expected boxes per class of each scored frame: the scorer's own class counts
    when it gives them, else its detections of confidence ``>= min_confidence`` per class."""
    given = getattr(scored, "class_counts", None)
    if given is not None:
        return np.asarray(given, dtype=np.float64)
    counts = np.zeros((len(scored.objects), n_classes))
    for row, objects in enumerate(scored.objects):
        confident = np.asarray(objects.confidences) >= min_confidence
        counts[row] = np.bincount(np.asarray(objects.labels, dtype=np.int64)[confident], minlength=n_classes)
    return counts


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
    from ceal_pipeline.detector.builder import load_config
    from ceal_pipeline.detector.checkpoints import load_detector
    from ceal_pipeline.detector.evaluation import (
        bev_range_of,
        detection_errors,
        evaluate_predictions,
        predict_frames,
    )
    from ceal_pipeline.detector.inputs import ground_truth
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
    detector_config = load_config(config.detector)
    class_names = tuple(detector_config["model"]["class_names"])
    batch_size = int(options.batch_size or detector_config["data"].get("batch_size", 4))
    # What the vendor bills for each pool frame: per frame plus per ground-truth box.
    box_counts = np.stack([np.bincount(ground_truth(f, class_names)[1], minlength=len(class_names))
                           for f in data.pool]).astype(np.int64)
    frame_cost = config.price_per_frame + config.price_per_box * box_counts.sum(axis=1)
    budget_amount = (config.budget_per_round if config.budget_per_round is not None
                     else float(config.acquire_per_round * frame_cost.mean()))

    def train(labeled: np.ndarray, round_index: int, folder: Path, init: Any | None,
              previous: np.ndarray | None = None) -> _Trained:
        # previous: the round before's labeled set; the frames of labeled outside it were just bought.
        start = time.perf_counter()
        warm = init is not None and config.warm_start
        new = 0 if previous is None else len(labeled) - len(previous)  # labeled is previous plus the purchase
        checkpoint = train_detector(
            [data.pool[i] for i in labeled], detector_config, folder,
            **(fine_tune_budget(config, len(labeled), batch_size, new) if warm else {"epochs": config.epochs}),
            seed=derive_seed(run_seed, round_index, "detector_training"),
            init_checkpoint=init.path if warm else None,
            repeats=new_frame_repeats(config, labeled, previous) if warm and previous is not None else None,
            **loader,
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
    log(f"detection seed {run_seed}: round-0 mAP {round0_eval['mAP']:.4f} (unclipped "
        f"{round0_eval['mAP_unclipped']:.4f}); score-error Spearman "
        + ", ".join(f"{k} {v if v is None else round(v, 3)}" for k, v in error_rho.items()))

    shared = _Scored()
    shared_seconds: dict[str, float] = {}
    scoring_fns = list(dict.fromkeys(s.acquisition_fn for s in parsed if s.acquisition_fn))

    def round0_scores(fn: str, indices: np.ndarray) -> tuple[np.ndarray, float]:
        # One set of passes for every function: the same frames, model and MC seed for all strategies.
        if not shared_seconds:
            scored = mc_scores(round0.model, [data.pool[i] for i in unlabeled0], 0, scoring_fns)
            shared.add(unlabeled0, scored, len(class_names), config.prelabel_min_confidence)
            shared_seconds["all"] = scored.wall_s
        values = shared.values(fn, indices)
        return values, shared_seconds["all"] * len(indices) / max(len(unlabeled0), 1)

    runs = []
    for strategy in parsed:
        choice = selection_choice(strategy.name)
        policy = selection_policy(choice, config, budget_amount)
        run = DetectionStrategyRun(DATASET, config.key(), asdict(config), strategy.name, run_seed)
        run.score_error_spearman, run.score_missed_spearman = error_rho, missed_rho
        run.pool_subpopulations = subpopulation_counts(frame_ids[unlabeled0], data.conditions)
        run.seeds = {"run_seed": run_seed, "seed_set": derive_seed(run_seed, 0, "seed_set"),
                     "training": [derive_seed(run_seed, 0, "detector_training")],
                     "mc_dropout": [], "acquisition": [],
                     "mc_dropout_held_out": derive_seed(run_seed, 0, "mc_dropout_held_out")}
        _record_evaluation(run, round0_eval)
        run.labeled_per_round.append(len(initial))
        run.boxes_per_round.append(int(box_counts[initial].sum()))
        run.cost_per_round.append(float(frame_cost[initial].sum()))
        run.evaluation_s.append(round0_eval_s)
        run.ledger.append(ComputeLedger(round_index=0, pool_frames=len(data.pool), frames_scored=0, forward_passes=0,
                                        training_s=round0.seconds, scoring_s=0.0, selection_s=0.0).to_dict())
        labeled, pruned = initial, np.zeros(0, dtype=np.int64)
        latest = np.full(len(data.pool), np.nan)
        events: list[tuple[np.ndarray, int, np.ndarray]] = []
        trained, last_eval = round0, round0_eval
        for round_index in range(1, config.rounds + 1):
            acquisition_round = round_index - 1
            unlabeled = np.setdiff1d(np.setdiff1d(np.arange(len(data.pool)), labeled), pruned)
            charged: dict[str, float] = {}
            fresh = _Scored()

            def score(indices: np.ndarray, model=trained.model, first=acquisition_round == 0) -> np.ndarray:
                if first:
                    values, charged["scoring_s"] = round0_scores(strategy.acquisition_fn, indices)
                    for i in indices.tolist():
                        fresh.class_counts[i], fresh.cuboids[i] = shared.class_counts[i], shared.cuboids[i]
                        if i in shared.embeddings:
                            fresh.embeddings[i] = shared.embeddings[i]
                else:
                    scored = mc_scores(model, [data.pool[i] for i in indices], acquisition_round,
                                       [strategy.acquisition_fn])
                    fresh.add(indices, scored, len(class_names), config.prelabel_min_confidence)
                    values = np.asarray(scored.scores)
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

            def stage_inputs(candidates: np.ndarray, scores: np.ndarray, candidate_sequences, labeled=labeled,
                             last=last_eval):
                # The selection stage's signals for the round's eligible candidates (core.round.select
                # runs the pipeline's core.selection.select_batch on them).
                embeddings = ([fresh.embeddings[i] for i in candidates.tolist()]
                              if all(i in fresh.embeddings for i in candidates.tolist()) else None)
                if policy.uses_diversity and embeddings is None:
                    raise ValueError(f"strategy {strategy.name!r} selects for diversity but the scorer gave no "
                                     "per-frame embeddings (detector.scoring.FrameScores.embeddings)")
                return (
                    SelectionCandidates(
                        frame_ids=candidates, acquisition_values=scores, sequence_ids=candidate_sequences,
                        class_counts=np.stack([fresh.class_counts[i] for i in candidates.tolist()]),
                        embeddings=None if embeddings is None else np.stack(embeddings),
                        cuboids=np.array([fresh.cuboids[i] for i in candidates.tolist()]),
                    ),
                    box_counts[labeled].sum(axis=0),
                    np.array([np.nan if last["per_class"][c] != last["per_class"][c] else last["per_class"][c]
                              for c in class_names]),
                )

            acquisition = acquire(
                strategy, unlabeled=unlabeled, latest_scores=latest, k=config.acquire_per_round, score=score,
                run_seed=run_seed, round_index=acquisition_round, temperature=config.temperature,
                normalisation=config.normalisation, prior=config.prior,
                backfill_first_round=config.backfill_first_round, prune=prune if strategy.pruning else None,
                sequence_ids=sequences, per_sequence_cap=config.per_sequence_cap,
                policy=None if strategy.kind == "random" else policy,
                stage_inputs=None if strategy.kind == "random" else stage_inputs,
            )
            latest[acquisition.scored] = acquisition.scores
            pruned = np.union1d(pruned, acquisition.pruned)
            previous, labeled = labeled, np.union1d(labeled, acquisition.selected)
            trained = train(labeled, round_index, work / strategy.name / f"round{round_index}", trained.checkpoint,
                            previous)
            last_eval, _, eval_s = evaluate(trained.model)
            _record_evaluation(run, last_eval)
            run.labeled_per_round.append(len(labeled))
            run.boxes_per_round.append(int(box_counts[labeled].sum()))
            run.cost_per_round.append(float(frame_cost[labeled].sum()))
            run.selection_per_round.append(acquisition.selection.summary() if acquisition.selection is not None
                                           else {"policy": "random"})
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
        log(f"detection seed {run_seed} {strategy.name}: mAP " + " ".join(f"{m:.4f}" for m in run.map_per_round)
            + "; unclipped " + " ".join(f"{m:.4f}" for m in run.map_unclipped_per_round))
        runs.append(run)
        if on_run is not None:
            on_run(run)
    shutil.rmtree(work, ignore_errors=True)
    return runs
