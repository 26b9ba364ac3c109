"""Batch diversity: each candidate's distance to what the batch already covers.

Consecutive frames of a 10 Hz drive look alike, so the top-K of a value ranking
buys near-duplicates. A greedy batch instead trades each frame's value against
its distance, on a per-frame embedding (pooled BEV features of the scoring
pass), to the nearest frame already in the batch: k-center greedy (Sener &
Savarese, ICLR 2018) when only the distance counts. Only candidates are
embedded (CEAL's compute property), so the labeled set cannot be a center;
the candidates' centroid stands in for "what is typical, hence already covered",
which also gives the first pick a meaningful distance when every value ties
(a detector that still finds nothing).
"""

from __future__ import annotations

import numpy as np


class DiversityState:
    """Distances of every candidate to the nearest center (the centroid, then each pick).

    ``embeddings`` ``(n, d)`` finite; the distance is Euclidean. O(n d) per pick.
    """

    def __init__(self, embeddings: np.ndarray) -> None:
        vectors = np.asarray(embeddings, dtype=np.float64)
        if vectors.ndim != 2 or not np.isfinite(vectors).all():
            raise ValueError(f"embeddings must be (n, d) finite numbers, got shape {vectors.shape}"
                             + ("" if vectors.ndim != 2 else " with non-finite entries"))
        self._vectors = vectors
        centroid = vectors.mean(axis=0) if vectors.shape[0] else np.zeros(vectors.shape[1])
        self.distances = np.linalg.norm(vectors - centroid, axis=1)

    def add(self, index: int) -> None:
        """Make candidate ``index`` a center of the batch."""
        np.minimum(self.distances, np.linalg.norm(self._vectors - self._vectors[index], axis=1), out=self.distances)

    def normalised_distances(self, eligible: np.ndarray) -> np.ndarray:
        """``(n,)`` distances divided by the largest eligible one (so the farthest eligible frame is 1)."""
        top = self.distances[eligible].max(initial=0.0)
        return self.distances / top if top > 0 else np.zeros_like(self.distances)
