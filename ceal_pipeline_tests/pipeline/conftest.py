"""Fixtures for the Dagster pipeline tests.

The pipeline tests are about orchestration: rounds, shards, resumption,
idempotent export, sensors. They run the real assets, history, sampling,
selection and synthetic frame source, with the detector replaced by
:class:`DeterministicModelStore`, a stand-in whose "training" and "scoring" take
milliseconds (it explains each score with 0-3 random objects), so a whole round
fits in seconds on two CPU cores. The real detector runs in ``ceal demo`` and
``ceal bench round``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from ceal_pipeline.core.detection_acquisition import get_detection_acquisition_function
from ceal_pipeline.core.ranks import rank_normalised_combination
from ceal_pipeline.validation.compute.pipeline_round import StandInCheckpoint, stand_in_explanations
from ceal_pipeline.configuration import load_project_config
from ceal_pipeline.defs import build_defs
from ceal_pipeline.defs.resources import (
    AcquisitionHistoryResource,
    FrameSourceResource,
    ModelStoreResource,
    VendorExporterResource,
    run_defaults_for,
)

#: Small synthetic dataset: 5 sequences of 20 frames, one of them in the val split.
N_FRAMES = 100
SEED_LABELED = 16


@dataclass
class _Scores:
    frame_ids: list
    scores: np.ndarray
    forward_passes: int
    explained: list
    embeddings: np.ndarray | None = None
    terms_by_fn: dict = field(default_factory=dict)
    term_weights_by_fn: dict = field(default_factory=dict)

    def explanations(self) -> list:
        return self.explained


class DeterministicModelStore(ModelStoreResource):
    """A model store whose detector is a hash: scores depend only on (frame id, model version).

    ``fail_on_shard_call`` makes the n-th scoring call (1-based) raise, like a GPU
    worker killed in the middle of a round; ``scoring_log`` (a file) records every
    scored frame so tests can tell which shards were really scored; ``call_log`` (a
    file) the arguments each scoring call was given (MC passes, mode, aggregate,
    acquisition function).
    """

    fail_on_shard_call: int = 0
    scoring_log: str = ""
    training_log: str = ""
    call_log: str = ""

    def train(self, frames, round_index, *, epochs, seed, init_checkpoint=None, log=None):
        ids = sorted(f.frame_id for f in frames)
        assert all(f.is_labeled for f in frames), "trained on a frame without labels"
        if self.training_log:  # one line per training: frame id -> its boxes, as the detector got them
            with open(self.training_log, "a") as handle:
                handle.write(json.dumps({f.frame_id: np.asarray(f.boxes).tolist() for f in frames}) + "\n")
        version = "stub-" + hashlib.sha256(("|".join(ids) + f"|{seed}").encode()).hexdigest()[:12]
        folder = self.round_checkpoint_dir(round_index)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "weights.json"
        path.write_text(json.dumps({"version": version, "frames": len(ids)}))
        # A loss that falls with the epochs, as a real training's does.
        curve = tuple({"epoch": float(e), "loss": 2.0 / e, "loss_heatmap": 1.5 / e, "loss_bbox": 0.5 / e}
                      for e in range(1, epochs + 1))
        return StandInCheckpoint(path, version, dict(curve[-1]), curve)

    def load(self, path):
        version = json.loads(Path(path).read_text())["version"]
        return version, version  # the "model" is its version: all a hash needs

    def score(
        self, model, frames, *, mc_passes, mode, seed, aggregate, batch_size, acquisition_fn="localization_entropy"
    ):
        log = Path(self.scoring_log) if self.scoring_log else None
        calls = 1 + (len(log.read_text().splitlines()) if log and log.exists() else 0)
        if log:
            with open(log, "a") as handle:
                handle.write(json.dumps([f.frame_id for f in frames]) + "\n")
        if self.call_log:
            with open(self.call_log, "a") as handle:
                handle.write(json.dumps({"frames": len(frames), "mc_passes": mc_passes, "mode": mode,
                                         "aggregate": aggregate, "acquisition_fn": acquisition_fn}) + "\n")
        if self.fail_on_shard_call and calls == self.fail_on_shard_call:
            raise RuntimeError(f"injected fault: scoring call {calls} killed")
        scores = np.array(
            [int(hashlib.sha256(f"{f.frame_id}|{model}".encode()).hexdigest()[:8], 16) / 2**32 for f in frames]
        )
        ids = [f.frame_id for f in frames]
        explained = stand_in_explanations(ids, str(model), acquisition_fn=acquisition_fn, aggregate=aggregate)
        # An embedding per frame as the real scorer's pass gives one: frames of a sequence lie close together.
        embeddings = np.array([[int(hashlib.sha256(f"{f.sequence_id}|{d}".encode()).hexdigest()[:6], 16) / 2**24
                                + 0.01 * (float(f.timestamp) % 10.0) for d in range(4)] for f in frames], np.float16)
        terms, weights = {}, {}
        if get_detection_acquisition_function(acquisition_fn).combines_ranks:
            # Two hashed terms of very different scales, ranked among this call's frames as the real scorer does.
            terms = {acquisition_fn: {"localization": 20.0 * scores, "heatmap": 0.4 * np.array(
                [int(hashlib.sha256(f"{f.frame_id}|{model}|h".encode()).hexdigest()[:8], 16) / 2**32 for f in frames])}}
            weights = {acquisition_fn: {"localization": 1.0, "heatmap": 1.0}}
            scores = rank_normalised_combination(terms[acquisition_fn], weights[acquisition_fn])
        return _Scores(ids, scores, len(frames) * mc_passes, explained, embeddings, terms, weights)

    def predict(self, model, frames):
        # "Detections": each frame's first source box, as the pre-label a vendor would see.
        return [(np.asarray(f.boxes[:1], np.float64), tuple(f.class_names[int(i)] for i in f.labels[:1]),
                 np.full(min(1, len(f.boxes)), 0.5)) for f in frames]

    def evaluate(self, model, frames):
        return {"mAP": 0.5, "per_class": {"car": 0.5}}


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> str:
    """One small synthetic dataset shared by every pipeline test (read-only for them)."""
    from ceal_pipeline.frames.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("synthetic")
    generate_dataset(root, n_frames=N_FRAMES, seed=3)
    return str(root)


def pipeline_resources(home: Path, synthetic_root: str, scoring_log: Path) -> dict:
    """The resources of a pipeline whose state lives under ``home`` (also used by the kill-point driver)."""
    return {
        "history": AcquisitionHistoryResource(path=str(home / "history.duckdb"), shard_dir=str(home / "shards")),
        "model_store": DeterministicModelStore(model_dir=str(home / "models"), scoring_log=str(scoring_log),
                                              training_log=str(Path(scoring_log).with_name("trained.jsonl")),
                                              call_log=str(Path(scoring_log).with_name("score_calls.jsonl"))),
        "frame_source": FrameSourceResource(
            root=synthetic_root, catalog_dir=str(home / "catalog"), synthetic_frames=N_FRAMES, synthetic_seed=3,
            seed_labeled=SEED_LABELED,
        ),
        "exporter": VendorExporterResource(outbox=str(home / "outbox"), inbox=str(home / "inbox"),
                                           reviews=str(home / "reviews")),
        "run_defaults": run_defaults_for(load_project_config()),  # the hermetic built-in preset
    }


@pytest.fixture
def resources(tmp_path, synthetic_root) -> dict:
    return pipeline_resources(tmp_path / "ceal", synthetic_root, tmp_path / "scored.jsonl")


@pytest.fixture
def defs(resources) -> dg.Definitions:
    return build_defs(resources, with_validation=False)


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


def open_round(defs: dg.Definitions, instance: dg.DagsterInstance, run_config=None, round_index: int = 0,
               raise_on_error: bool = True):
    """Add the round's partition key (as the schedule does) and run nightly_acquisition for it."""
    from ceal_pipeline.defs.acquisition.partitions import acquisition_rounds, round_partition_key

    key = round_partition_key(round_index)
    instance.add_dynamic_partitions(acquisition_rounds.name, [key])
    return defs.resolve_job_def("nightly_acquisition").execute_in_process(
        instance=instance, partition_key=key, run_config=run_config or {}, raise_on_error=raise_on_error
    )
