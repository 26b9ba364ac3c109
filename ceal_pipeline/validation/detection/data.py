"""The detection benchmark's data: synthetic driving frames, a pool, a held-out split, sub-populations.

The built-in generator (:mod:`ceal_pipeline.frames.synthetic`) draws each
sequence's conditions (night, rain, far objects, rare classes) at random and
records them per frame; its ``train`` split is the benchmark's unlabeled pool
(the seed set is drawn from it) and its ``val`` split, whole sequences never
trained on, the held-out frames for mAP. The dataset is fixed by the protocol
(frames, sequence length, generator seed) and generated once into a cache
folder keyed by those; run seeds vary everything else.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

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


def dataset_key(frames: int, frames_per_sequence: int, generator_seed: int) -> str:
    """12 hex digits naming a generated dataset's cache folder."""
    params = {"frames": frames, "frames_per_sequence": frames_per_sequence, "seed": generator_seed}
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


def load_detection_data(
    cache_root: str | Path, *, frames: int, frames_per_sequence: int, generator_seed: int, held_out_frames: int
) -> DetectionData:
    """Generate (once) and read the synthetic dataset under ``cache_root``.

    ``held_out_frames`` of the val split are kept, evenly spread over its
    sequences (all of it when it has fewer); the whole train split is the pool.
    """
    root = Path(cache_root) / f"synthetic-{dataset_key(frames, frames_per_sequence, generator_seed)}"
    result = read_frames(root, n_frames=frames, seed=generator_seed, frames_per_sequence=frames_per_sequence)
    if result.quarantined:
        first = result.quarantined[0]
        raise ValueError(f"{len(result.quarantined)} generated frames are unreadable (first: {first.frame_id}: "
                         f"{first.reason}); delete {root} to regenerate it")
    ordered = sorted(result.frames, key=lambda f: f.frame_id)
    pool = [f for f in ordered if f.split == "train"]
    val = [f for f in ordered if f.split == "val"]
    if held_out_frames < 1 or not val or not pool:
        raise ValueError(f"{frames} synthetic frames give {len(pool)} pool and {len(val)} held-out frames, and "
                         f"held_out_frames={held_out_frames}: generate more frames or keep held_out_frames >= 1")
    keep = np.unique(np.linspace(0, len(val) - 1, min(held_out_frames, len(val))).round().astype(int))
    return DetectionData(root=root, pool=pool, held_out=[val[i] for i in keep], conditions=frame_conditions(root))


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
