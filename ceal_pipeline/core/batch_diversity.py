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
    """Distances of candidates to their nearest center (the centroid, then each pick).

    ``embeddings`` ``(n, d)`` finite; the distance is Euclidean. With ``every_pick``
    (diversity weighs in every pick) all distances are kept up to date, O(n d) per
    pick; without (distance only breaks ties) they are computed for the tied frames
    when asked, O(ties x picks x d).
    """

    def __init__(self, embeddings: np.ndarray, *, every_pick: bool = True) -> None:
        vectors = np.asarray(embeddings, dtype=np.float64)
        if vectors.ndim != 2 or not np.isfinite(vectors).all():
            raise ValueError(f"embeddings must be (n, d) finite numbers, got shape {vectors.shape}"
                             + ("" if vectors.ndim != 2 else " with non-finite entries"))
        self._vectors = vectors
        self._squared_norms = np.einsum("ij,ij->i", vectors, vectors)
        self._centroid = vectors.mean(axis=0) if vectors.shape[0] else np.zeros(vectors.shape[1])
        self._centers: list[int] = []
        self.distances = np.linalg.norm(vectors - self._centroid, axis=1) if every_pick else None

    def _distances_to(self, rows: np.ndarray | slice, center: int) -> np.ndarray:
        # |x - c|^2 = |x|^2 + |c|^2 - 2 x.c: one matrix-vector product instead of an (n, d) difference.
        squared = self._squared_norms[rows] + self._squared_norms[center] - 2.0 * (
            self._vectors[rows] @ self._vectors[center])
        return np.sqrt(np.maximum(squared, 0.0))

    def add(self, index: int) -> None:
        """Make candidate ``index`` a center of the batch."""
        self._centers.append(index)
        if self.distances is not None:
            np.minimum(self.distances, self._distances_to(slice(None), index), out=self.distances)
            self.distances[index] = 0.0  # exactly, whatever the rounding of the expansion

    def distances_of(self, indices: np.ndarray) -> np.ndarray:
        """Distances of candidates ``indices`` to their nearest center."""
        if self.distances is not None:
            return self.distances[indices]
        nearest = np.linalg.norm(self._vectors[indices] - self._centroid, axis=1)
        for center in self._centers:
            np.minimum(nearest, self._distances_to(indices, center), out=nearest)
        return nearest

    def normalised_distances(self, eligible: np.ndarray) -> np.ndarray:
        """``(n,)`` distances divided by the largest eligible one (so the farthest eligible frame is 1);
        needs ``every_pick``."""
        top = self.distances[eligible].max(initial=0.0)
        return self.distances / top if top > 0 else np.zeros_like(self.distances)
