"""The paper's active-learning protocol: initial pool, rounds, seeds and ledger.

One *run seed* fixes everything random in a run: the validation split, the
unlabeled-pool subset, the class-balanced initial pool, every training seed,
every MC-Dropout seed and every candidate-pool draw, each derived with
:func:`ceal_pipeline.core.seeding.derive_seed` and recorded in the result.

For a run seed, every strategy starts from the same initial pool and the same
round-0 models, so differences between strategies come from acquisition alone.
That shared start is computed once and reused (an exact memo: the strategies
would compute identical values), and so are the round-0 MC-Dropout
probabilities over the unlabeled pool, which every scoring strategy needs. The
ledger still charges each strategy what the shared work would have cost it
alone, so ``acquisition_s`` means "what this strategy costs".

Round ``r >= 1``: the model trained after round ``r - 1`` scores (or not), the
strategy picks ``acquire_per_round`` images, they join the labeled set, and
``trainings_per_round`` models are trained from different seeds; their mean
test accuracy is the round's accuracy and the first one acquires next.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np

from ceal_pipeline.core.acquisition import get_acquisition_function
from ceal_pipeline.core.ledger import ComputeLedger, ledger_totals
from ceal_pipeline.core.round_driver import run_rounds
from ceal_pipeline.core.seeding import derive_seed
from ceal_pipeline.validation.datasets import ImageClassificationData
from ceal_pipeline.validation.strategies import Strategy, acquire
from ceal_pipeline.validation.training import (
    TrainingConfig,
    evaluate_accuracy,
    mc_dropout_probabilities,
    train_network,
)


@dataclass(frozen=True)
class ProtocolConfig:
    """Every setting that changes a benchmark's numbers (its :meth:`key` hashes them).

    Sizes are image counts; ``initial_fraction`` is a fraction of the unlabeled
    pool; ``temperature`` applies to rank-normalised scores in [0, 1].
    """

    dataset: str = "mnist"
    initial_fraction: float = 0.01
    rounds: int = 10
    acquire_per_round: int = 600
    trainings_per_round: int = 3
    mc_samples: int = 20
    temperature: float = 0.1
    normalisation: str = "rank"
    prior: str = "optimistic"
    backfill_first_round: bool = True
    pool_size: int | None = None
    test_size: int | None = None
    validation_size: int = 1000
    epochs: int = 20
    min_steps_per_epoch: int = 25
    batch_size: int = 32
    learning_rate: float = 1e-3
    patience: int = 3
    width: float = 1.0
    augment: bool = False

    def __post_init__(self) -> None:
        checks = {
            "initial_fraction must be in (0, 1)": 0 < self.initial_fraction < 1,
            "rounds must be >= 1": self.rounds >= 1,
            "acquire_per_round must be >= 1": self.acquire_per_round >= 1,
            "trainings_per_round must be >= 1": self.trainings_per_round >= 1,
            "mc_samples must be >= 1": self.mc_samples >= 1,
            "temperature must be > 0": self.temperature > 0,
            "validation_size must be >= 0": self.validation_size >= 0,
            "epochs must be >= 1": self.epochs >= 1,
        }
        failed = [message for message, ok in checks.items() if not ok]
        if failed:
            raise ValueError(f"invalid {self.dataset} benchmark protocol: {'; '.join(failed)}")

    def training(self) -> TrainingConfig:
        return TrainingConfig(
            epochs=self.epochs, min_steps_per_epoch=self.min_steps_per_epoch, batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            patience=self.patience if self.validation_size > 0 else 0, augment=self.augment, width=self.width,
        )

    def key(self) -> str:
        """12 hex digits identifying the protocol; runs are only averaged within one key."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class DataSplit:
    """Indices into the train split (``pool``, ``validation``) and the test split (``test``)."""

    pool: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def split_data(data: ImageClassificationData, config: ProtocolConfig, run_seed: int) -> DataSplit:
    """Hold out ``validation_size`` train images for early stopping, take up to
    ``pool_size`` of the rest as the unlabeled pool and up to ``test_size`` test images."""
    n_train, n_test = len(data.train_labels), len(data.test_labels)
    available = n_train - config.validation_size
    pool_size = available if config.pool_size is None else config.pool_size
    if available <= 0 or pool_size > available:
        raise ValueError(f"{data.name} has {n_train} train images: not enough for validation_size="
                         f"{config.validation_size} plus pool_size={pool_size}; lower one of them")
    order = np.random.default_rng(derive_seed(run_seed, 0, "data_split")).permutation(n_train)
    validation = np.sort(order[: config.validation_size])
    pool = np.sort(order[config.validation_size: config.validation_size + pool_size])
    test_size = n_test if config.test_size is None else min(config.test_size, n_test)
    test = np.sort(np.random.default_rng(derive_seed(run_seed, 0, "test_subset")).permutation(n_test)[:test_size])
    return DataSplit(pool=pool, validation=validation, test=test)


def class_balanced_initial_pool(labels: np.ndarray, size: int, num_classes: int, seed: int) -> np.ndarray:
    """Indices (ascending) of ``size`` images with ``size // num_classes`` from every
    class; the remainder goes one each to randomly chosen distinct classes."""
    labels = np.asarray(labels)
    if not num_classes <= size <= len(labels):
        raise ValueError(f"initial pool of {size} images must hold at least one per class ({num_classes}) "
                         f"and at most the {len(labels)} pool images; change initial_fraction or pool_size")
    rng = np.random.default_rng(seed)
    per_class = np.full(num_classes, size // num_classes)
    per_class[rng.choice(num_classes, size % num_classes, replace=False)] += 1
    chosen = []
    for cls in range(num_classes):
        members = np.flatnonzero(labels == cls)
        if len(members) < per_class[cls]:
            raise ValueError(f"class {cls} has {len(members)} pool images, fewer than the {per_class[cls]} "
                             "a class-balanced initial pool needs; lower initial_fraction")
        chosen.append(rng.choice(members, per_class[cls], replace=False))
    return np.sort(np.concatenate(chosen))


@dataclass
class StrategyRun:
    """The record of one strategy under one run seed (one JSON line in the store).

    ``accuracy_per_round[r]`` is the mean test accuracy (fraction) of the models
    trained after round ``r`` (round 0 = the initial pool); seconds are wall-clock.
    """

    dataset: str
    protocol_key: str
    protocol: dict[str, Any]
    strategy: str
    run_seed: int
    accuracy_per_round: list[float] = field(default_factory=list)
    accuracy_per_training: list[list[float]] = field(default_factory=list)
    labeled_per_round: list[int] = field(default_factory=list)
    seeds: dict[str, Any] = field(default_factory=dict)
    ledger: list[dict[str, Any]] = field(default_factory=list)
    epochs_run: list[list[int]] = field(default_factory=list)

    @property
    def forward_passes(self) -> int:
        return sum(int(entry["forward_passes"]) for entry in self.ledger)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record.update(
            **ledger_totals(self.ledger),
            finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        return record


@dataclass(frozen=True)
class _TrainedRound:
    network: Any
    accuracies: list[float]
    seeds: list[int]
    epochs_run: list[int]
    seconds: float


def run_seed_protocol(
    data: ImageClassificationData,
    config: ProtocolConfig,
    strategies: list[str],
    run_seed: int,
    *,
    log: Callable[[str], None] | None = None,
    on_run: Callable[[StrategyRun], None] | None = None,
    device: str = "cpu",
) -> list[StrategyRun]:
    """Run every strategy under one run seed; ``on_run`` sees each finished run
    (to persist it at once, so an interrupted benchmark keeps what it finished).
    ``device`` is where networks train and score (``"cpu"``, ``"cuda"``)."""
    if data.name != config.dataset:
        raise ValueError(f"protocol is for {config.dataset!r} but the data is {data.name!r}")
    parsed = [Strategy.parse(name) for name in strategies]
    log = log or (lambda message: None)
    split = split_data(data, config, run_seed)
    pool_images, pool_labels = data.train_images[split.pool], data.train_labels[split.pool]
    validation = (data.train_images[split.validation], data.train_labels[split.validation]) if len(split.validation) else None
    test_images, test_labels = data.test_images[split.test], data.test_labels[split.test]
    num_classes = len(data.class_names)
    initial_size = int(round(config.initial_fraction * len(split.pool)))
    initial_seed = derive_seed(run_seed, 0, "initial_pool")
    initial = class_balanced_initial_pool(pool_labels, initial_size, num_classes, initial_seed)
    if initial_size + config.rounds * config.acquire_per_round > len(split.pool):
        raise ValueError(f"{config.rounds} rounds of {config.acquire_per_round} plus {initial_size} initial images "
                         f"exceed the pool of {len(split.pool)}; lower rounds or acquire_per_round")
    training = config.training()

    def train_round(labeled: np.ndarray, round_index: int) -> _TrainedRound:
        start = time.perf_counter()
        network, accuracies, seeds, epochs = None, [], [], []
        for i in range(config.trainings_per_round):
            seed = derive_seed(run_seed, round_index, f"training_{i}")
            outcome = train_network(config.dataset, pool_images[labeled], pool_labels[labeled], training, seed,
                                    num_classes=num_classes, validation=validation, device=device)
            accuracies.append(evaluate_accuracy(outcome.network, config.dataset, test_images, test_labels))
            seeds.append(seed)
            epochs.append(outcome.epochs_run)
            if network is None:
                network = outcome.network
        return _TrainedRound(network, accuracies, seeds, epochs, time.perf_counter() - start)

    log(f"{config.dataset} seed {run_seed}: round 0 on {len(initial)} class-balanced images")
    round0 = train_round(initial, 0)
    round0_unlabeled = np.setdiff1d(np.arange(len(split.pool)), initial)
    round0_probs: dict[str, Any] = {}

    def round0_probabilities() -> tuple[np.ndarray, float]:
        # Shared by every scoring strategy: same model, same images, same MC seed.
        if not round0_probs:
            start = time.perf_counter()
            probs = mc_dropout_probabilities(round0.network, config.dataset, pool_images[round0_unlabeled],
                                             config.mc_samples, derive_seed(run_seed, 0, "mc_dropout"))
            round0_probs.update(probs=probs, seconds=time.perf_counter() - start)
        return round0_probs["probs"], round0_probs["seconds"]

    runs = []
    for strategy in parsed:
        run = StrategyRun(config.dataset, config.key(), asdict(config), strategy.name, run_seed)
        run.seeds = {"run_seed": run_seed, "initial_pool": initial_seed, "training": [round0.seeds],
                     "mc_dropout": [], "acquisition": []}
        run.accuracy_per_round.append(float(np.mean(round0.accuracies)))
        run.accuracy_per_training.append(round0.accuracies)
        run.epochs_run.append(round0.epochs_run)
        run.labeled_per_round.append(len(initial))
        run.ledger.append(ComputeLedger(round_index=0, pool_frames=len(split.pool), frames_scored=0, forward_passes=0,
                                        training_s=round0.seconds, scoring_s=0.0, selection_s=0.0).to_dict())
        latest_scores, state = np.full(len(split.pool), np.nan), {"trained": round0}

        def acquire_round(round_index: int, unlabeled: np.ndarray, strategy=strategy, latest_scores=latest_scores,
                          state=state):
            mc_seed = derive_seed(run_seed, round_index - 1, "mc_dropout")
            charged: dict[str, float] = {}

            def score(indices: np.ndarray, network=state["trained"].network, first=round_index == 1) -> np.ndarray:
                function = get_acquisition_function(strategy.acquisition_fn)
                if first:
                    probs, seconds = round0_probabilities()
                    positions = np.searchsorted(round0_unlabeled, indices)
                    # Charge the shared pass pro rata: what scoring these images alone costs.
                    charged["scoring_s"] = seconds * len(indices) / max(len(round0_unlabeled), 1)
                    return function(probs[:, positions])
                return function(mc_dropout_probabilities(network, config.dataset, pool_images[indices],
                                                         config.mc_samples, mc_seed))

            acquisition = acquire(strategy, unlabeled=unlabeled, latest_scores=latest_scores,
                                  k=config.acquire_per_round, score=score, run_seed=run_seed,
                                  round_index=round_index - 1, temperature=config.temperature,
                                  normalisation=config.normalisation, prior=config.prior,
                                  backfill_first_round=config.backfill_first_round)
            latest_scores[acquisition.scored] = acquisition.scores
            state.update(mc_seed=mc_seed, charged=charged)
            return acquisition

        def on_round(round_index: int, unlabeled: np.ndarray, labeled: np.ndarray, acquisition,
                     trained: _TrainedRound, run=run, state=state) -> None:
            state["trained"] = trained
            run.accuracy_per_round.append(float(np.mean(trained.accuracies)))
            run.accuracy_per_training.append(trained.accuracies)
            run.epochs_run.append(trained.epochs_run)
            run.labeled_per_round.append(len(labeled))
            run.seeds["training"].append(trained.seeds)
            run.seeds["mc_dropout"].append(state["mc_seed"] if len(acquisition.scored) else None)
            run.seeds["acquisition"].append(acquisition.candidate_seed)
            run.ledger.append(ComputeLedger(
                round_index=round_index, pool_frames=len(unlabeled), frames_scored=len(acquisition.scored),
                forward_passes=len(acquisition.scored) * config.mc_samples, training_s=trained.seconds,
                scoring_s=state["charged"].get("scoring_s", acquisition.scoring_s),
                selection_s=acquisition.selection_s,
            ).to_dict())

        run_rounds(range(1, config.rounds + 1), initial, len(split.pool), acquire_round=acquire_round,
                   train=train_round, on_round=on_round)
        log(f"{config.dataset} seed {run_seed} {strategy.name}: accuracy "
            + " ".join(f"{a:.4f}" for a in run.accuracy_per_round))
        runs.append(run)
        if on_run is not None:
            on_run(run)
    return runs
