"""The detection benchmark's data: synthetic driving frames, a pool, a held-out split, sub-populations.

The built-in generator (:mod:`ceal_pipeline.frames.synthetic`) draws each
sequence's conditions (night, rain, far objects, rare classes) at random and
records them per frame; its ``train`` split is the benchmark's unlabeled pool
(the seed set is drawn from it). The held-out frames for mAP are a second
generated set of ``held_out_frames`` sequences of **one frame each** (generator
seed derived from the protocol's, so never a pool sequence): two frames of one
10 Hz sequence are nearly the same sample, so the old held-out set (120 frames
of 62 sequences) measured about half the diversity its size suggested. The
datasets are fixed by the protocol (frames, sequence length, generator seed)
and generated once into cache folders keyed by those; run seeds vary
everything else.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from ceal_pipeline.core.seeding import derive_seed
from ceal_pipeline.frames.records import FrameRecord
from ceal_pipeline.frames.synthetic import CONDITIONS, frame_conditions, read_frames

#: Share keys: each hard condition, and ``normal`` for frames of none of them.
#: Conditions overlap (a night sequence may also be rainy), so only
#: ``normal`` + "any condition" add up to 1.
SUBPOPULATIONS: tuple[str, ...] = (*CONDITIONS, "normal")


@dataclass(frozen=True)
class DetectionData:
    """``pool`` (train split) and ``held_out`` (val split) frames, both sorted by frame id;
    ``conditions`` maps every frame id to its sequence's hard conditions; ``root`` is the dataset folder."""

    root: Path
    pool: list[FrameRecord]
    held_out: list[FrameRecord]
    conditions: Mapping[str, tuple[str, ...]]

    @property
    def sequence_ids(self) -> np.ndarray:
        """``(len(pool),)`` the sequence of each pool frame (for the per-sequence cap)."""
        return np.asarray([f.sequence_id for f in self.pool], dtype=object)


def dataset_key(frames: int, frames_per_sequence: int, generator_seed: int, **options) -> str:
    """12 hex digits naming a generated dataset's cache folder."""
    params = {"frames": frames, "frames_per_sequence": frames_per_sequence, "seed": generator_seed, **options}
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


def held_out_generator_seed(generator_seed: int) -> int:
    """The held-out set's generator seed: derived, so its sequences are new ones."""
    return derive_seed(generator_seed, 0, "held_out_sequences")


def _generate(root: Path, frames: int, seed: int, **options) -> list[FrameRecord]:
    result = read_frames(root, n_frames=frames, seed=seed, **options)
    if result.quarantined:
        first = result.quarantined[0]
        raise ValueError(f"{len(result.quarantined)} generated frames are unreadable (first: {first.frame_id}: "
                         f"{first.reason}); delete {root} to regenerate it")
    return sorted(result.frames, key=lambda f: f.frame_id)


def load_detection_data(
    cache_root: str | Path, *, frames: int, frames_per_sequence: int, generator_seed: int, held_out_frames: int
) -> DetectionData:
    """Generate (once) and read the pool and the held-out set under ``cache_root``.

    The pool is the train split of ``frames`` frames in sequences of
    ``frames_per_sequence``; the held-out set is ``held_out_frames`` frames, each
    the only frame of its own sequence, generated with
    :func:`held_out_generator_seed` (its split is all ``val``).
    """
    if held_out_frames < 1:
        raise ValueError(f"held_out_frames={held_out_frames}: the held-out set needs at least one frame")
    root = Path(cache_root) / f"synthetic-{dataset_key(frames, frames_per_sequence, generator_seed)}"
    pool = [f for f in _generate(root, frames, generator_seed, frames_per_sequence=frames_per_sequence)
            if f.split == "train"]
    if not pool:
        raise ValueError(f"{frames} synthetic frames in sequences of {frames_per_sequence} give no pool frames: "
                         "generate more frames")
    seed = held_out_generator_seed(generator_seed)
    held_root = Path(cache_root) / f"held-out-{dataset_key(held_out_frames, 1, seed, val_fraction=1.0)}"
    held_out = _generate(held_root, held_out_frames, seed, frames_per_sequence=1, val_fraction=1.0)
    return DetectionData(root=root, pool=pool, held_out=held_out, conditions=frame_conditions(root))


def subpopulation_counts(frame_ids: Iterable[str], conditions: Mapping[str, tuple[str, ...]]) -> dict[str, int]:
    """Frames of each sub-population (:data:`SUBPOPULATIONS`) among ``frame_ids``, and ``frames`` in all."""
    counts = dict.fromkeys(SUBPOPULATIONS, 0)
    counts["frames"] = 0
    for frame_id in frame_ids:
        found = conditions[frame_id]
        counts["frames"] += 1
        for condition in found:
            counts[condition] += 1
        if not found:
            counts["normal"] += 1
    return counts


def subpopulation_shares(counts: Mapping[str, int]) -> dict[str, float]:
    """Each sub-population's share of ``counts["frames"]`` (fractions; 0 for no frames)."""
    total = counts["frames"]
    return {name: (counts[name] / total if total else 0.0) for name in SUBPOPULATIONS}


def add_counts(per_round: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Sum sub-population counts over rounds."""
    total = dict.fromkeys((*SUBPOPULATIONS, "frames"), 0)
    for counts in per_round:
        for name in total:
            total[name] += int(counts[name])
    return total
