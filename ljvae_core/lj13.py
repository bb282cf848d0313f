"""The LJ13 benchmark of generative models for particle systems: generated clusters judged
against Monte Carlo ones with the published tables' figures, the Monte-Carlo-vs-Monte-Carlo
floor beside each.

The reference is the 13-particle Lennard-Jones cluster's public validation split (10 000
Monte Carlo samples, centre of mass removed, at T = 1; :data:`REFERENCE`). Energies follow
the published tables: LJ with its minimum at r = 1 over *ordered* pairs (each pair twice)
plus the harmonic tether (:func:`ljvae_core.potential.cluster_energies`); the mean energy is
also given with each pair counted once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import wasserstein_distance

from .analysis import valid_fraction, wasserstein
from .geometry import pairwise_distances
from .potential import cluster_energies
from .system import System

REFERENCE = Path(__file__).parent / "data" / "lj13" / "lj13_val_10000.npy"
N_PARTICLES, DIM = 13, 3
CLUSTER = System(box=None, dim=DIM, potential="lj13")


def reference_clusters() -> np.ndarray:
    """The 10 000 reference clusters, (10 000, 13, 3)."""
    return np.load(REFERENCE, allow_pickle=False).reshape(-1, N_PARTICLES, DIM).astype(np.float64)


def interatomic_distances(coords) -> np.ndarray:
    """The N(N-1)/2 pair distances of each cluster (M, N, d), (M, pairs)."""
    coords = np.asarray(coords, dtype=np.float64)
    i, j = np.triu_indices(coords.shape[1], k=1)
    return pairwise_distances(coords)[:, i, j]


def figures(sample, reference) -> dict:
    """The benchmark's figures of ``sample`` against ``reference`` (clusters (M, 13, 3))."""
    energy = cluster_energies(sample, ordered_pairs=True)
    reference_energy = cluster_energies(reference, ordered_pairs=True)
    finite = np.isfinite(energy)
    w2 = wasserstein(energy[finite], reference_energy, p=2) if finite.any() else float("inf")
    distances = interatomic_distances(sample)
    return {
        "samples": len(sample),
        "energy_w2": w2,
        "energy_w2_squared": w2**2,
        "distance_w1": float(wasserstein_distance(distances.ravel(),
                                                  interatomic_distances(reference).ravel())),
        "mean_energy": float(np.mean(energy[finite])) if finite.any() else float("nan"),
        "mean_energy_pairs_once": float(np.mean(cluster_energies(sample)[finite]))
        if finite.any() else float("nan"),
        # No pair under 0.8 of the cluster's sigma, as for the gravity system.
        "valid_fraction": valid_fraction(sample, CLUSTER),
    }


# Clusters of a set whose nearest other cluster is looked up (a KD-tree in 78 dimensions
# answers by brute force).
NOVELTY_SAMPLES = 1000


def nearest_distance(sample, clusters, seed: int = 0) -> float:
    """Median distance from (at most :data:`NOVELTY_SAMPLES` of) the ``sample`` clusters to the
    nearest of ``clusters``, in the Euclidean norm of their sorted pair distances (blind to
    place, turn and numbering). A generator replaying its training clusters scores near 0;
    Monte Carlo clusters it never saw score what fresh configurations do."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    sample = np.asarray(sample)[rng.permutation(len(sample))[:NOVELTY_SAMPLES]]
    tree = cKDTree(np.sort(interatomic_distances(clusters), axis=1))
    return float(np.median(tree.query(np.sort(interatomic_distances(sample), axis=1))[0]))


def benchmark(generated, held_out, other, seed: int = 0) -> dict:
    """``generated`` against the ``held_out`` Monte Carlo clusters, and the floor: as many
    ``other`` Monte Carlo clusters (disjoint from the held-out ones) against them. With a
    model, ``other`` are the clusters it trained on, and ``nearest_other_cluster`` says how
    far generated and held-out clusters lie from them (:func:`nearest_distance`)."""
    generated = _checked(generated)
    rng = np.random.default_rng(seed)
    floor = other[rng.choice(len(other), min(len(generated), len(other)), replace=False)]
    return {
        "system": "LJ13, T = 1",
        "energy_convention": "LJ r^-12 - 2 r^-6 over ordered pairs (each pair twice) plus "
                             "1/2 sum |x - x_mean|^2; mean_energy_pairs_once counts each "
                             "pair once",
        "held_out_samples": len(held_out),
        "generated": figures(generated, held_out),
        "floor": figures(floor, held_out),
        "reference_mean_energy": float(np.mean(cluster_energies(held_out, ordered_pairs=True))),
        "nearest_other_cluster": {"generated": nearest_distance(generated, other, seed),
                                  "held_out": nearest_distance(held_out, other, seed)},
    }


def _checked(coords) -> np.ndarray:
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim == 2 and coords.shape[1] == N_PARTICLES * DIM:
        coords = coords.reshape(-1, N_PARTICLES, DIM)
    if coords.ndim != 3 or coords.shape[1:] != (N_PARTICLES, DIM):
        raise ValueError(f"LJ13 samples have shape (M, 13, 3) or (M, 39), not {coords.shape}")
    if len(coords) == 0:
        raise ValueError("the file holds no sample")
    return coords - coords.mean(axis=1, keepdims=True)


def split(held_out_indices: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(held-out, other) indices of the reference: a model's validation frames and the rest,
    or, without a model, two halves at random (seeded) so that the floor is Monte Carlo
    against Monte Carlo it has not seen."""
    if held_out_indices is not None:
        held = np.asarray(held_out_indices)
        return held, np.setdiff1d(np.arange(n), held)
    order = np.random.default_rng(0).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2:])
