"""K against what the drawn pool can buy when a round opens (:mod:`ceal_pipeline.core.round_feasibility`;
the selection stage checks its selectable candidates with the same sentence in :func:`ceal_pipeline.core.round.select`)."""

from __future__ import annotations

import numpy as np

from ceal_pipeline.core.round_feasibility import k_shortfall


def pool_k_shortfall(store, frame_source, round_index: int, frame_keys: np.ndarray, k: int,
                     per_sequence_cap: int) -> str | None:
    """Why the drawn pool (``frame_keys`` in the history) cannot give K frames, or None. The
    sequences are looked up only when a cap could bind (a cap of at least K never does)."""
    if per_sequence_cap == 0 or k <= per_sequence_cap or len(frame_keys) < k:
        # Only the count can fall short: K frames of any sequences respect a cap of at least K.
        sequences, per_sequence_cap = [""] * len(frame_keys), 0
    else:
        frame_ids = [str(f) for f in store.frame_ids_for_keys(np.asarray(frame_keys, dtype=np.int64))]
        sequences = [str(q) for q in frame_source.catalog().sequence_ids(frame_ids)]
    return k_shortfall(round_index, k, sequences, per_sequence_cap, candidates="frames of its candidate pool")

