"""Vectors with the structure of real embeddings, for tests and benchmarks of the index.

Uniform random unit vectors are a degenerate case for nearest-neighbour search (every point is about as far
from a query as every other, so "top 10" is noise and graph indexes look bad for no real reason). Real
embeddings sit in clusters of unequal size and spread, and vary inside a cluster along few directions. So:
cluster centres uniform on the sphere, cluster sizes from a power law, and each point is its centre plus a
displacement in a low-dimensional subspace of its own cluster plus a little isotropic noise, normalised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["ClusteredVectors", "clustered_unit_vectors"]


@dataclass(frozen=True)
class ClusteredVectors:
    """A seeded mixture of clusters on the unit sphere, able to draw more points from the same mixture."""

    dim: int
    centres: NDArray[np.float32]
    """(clusters, dim) unit vectors."""
    bases: NDArray[np.float32]
    """(clusters, dim, intrinsic) per-cluster directions of variation."""
    spreads: NDArray[np.float32]
    """Per-cluster size of the displacement from the centre (relative to the centre's unit length)."""
    weights: NDArray[np.float64]
    """Per-cluster probability of a point."""
    noise: float
    """Isotropic noise relative to the in-cluster displacement."""

    def sample(self, n: int, seed: int) -> NDArray[np.float32]:
        """``n`` unit vectors (float32) from the mixture; a different seed gives fresh points (queries)."""
        rng = np.random.default_rng(seed)
        labels = rng.choice(len(self.weights), size=n, p=self.weights)
        out = np.empty((n, self.dim), dtype=np.float32)
        intrinsic = self.bases.shape[2]
        for cluster in np.unique(labels):
            rows = np.flatnonzero(labels == cluster)
            local = rng.standard_normal((len(rows), intrinsic), dtype=np.float32) / np.sqrt(intrinsic)
            iso = rng.standard_normal((len(rows), self.dim), dtype=np.float32) / np.sqrt(self.dim)
            shift = local @ self.bases[cluster].T + self.noise * iso
            out[rows] = self.centres[cluster] + self.spreads[cluster] * shift
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out


def clustered_unit_vectors(
    dim: int,
    clusters: int,
    *,
    seed: int = 0,
    intrinsic: int = 16,
    spread: tuple[float, float] = (0.5, 1.1),
    noise: float = 0.3,
    zipf: float = 0.8,
) -> ClusteredVectors:
    """A mixture of ``clusters`` clusters in ``dim`` dimensions (draw points with ``.sample(n, seed)``).

    A spread of 0.5–1.1 puts a point at cosine ~0.67–0.9 from its centre, like near-duplicate-free
    sentence or image embeddings of one topic; ``zipf`` makes a few clusters large and most small.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    # Columns of length ~1, so a unit displacement in the subspace moves a point by ~1.
    bases = rng.standard_normal((clusters, dim, intrinsic), dtype=np.float32) / np.float32(np.sqrt(dim))
    spreads = rng.uniform(*spread, size=clusters).astype(np.float32)
    weights = 1.0 / np.arange(1, clusters + 1, dtype=np.float64) ** zipf
    rng.shuffle(weights)
    return ClusteredVectors(dim, centres, bases, spreads, weights / weights.sum(), noise)
