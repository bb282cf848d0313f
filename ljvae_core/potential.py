"""Lennard-Jones + gravity energies in reduced units (σ = ε = 1), and the LJ13 cluster's.

    U(x) = sum_{i<j} u(r_ij) + 4 gamma sum_i z_i,    u(r) = 4 (r^-12 - r^-6)

The free LJ13 cluster of the generative-model benchmarks (:func:`cluster_energies`) has its
minimum at r = 1 instead (σ = 2^(-1/6)) and a harmonic tether to the centre of mass instead
of gravity and walls:

    U(x) = sum_{i<j} [r_ij^-12 - 2 r_ij^-6] + 1/2 sum_i |x_i - x̄|^2

Boundaries are given per axis as a float mask (1.0 = periodic, minimum image; 0.0 = reflecting
wall, plain distance). The pair term may be truncated (not shifted) at a cut-off; the standard
long-range correction for a homogeneous periodic fluid is computed separately by
:func:`tail_correction`. All kernels are Numba-compiled and take float64 arrays.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

NO_CUTOFF = math.inf


@njit(inline="always", cache=True)
def lj_pair(r2, rc2):
    """LJ energy of one pair from its squared distance, zero at or beyond the squared cut-off."""
    if r2 >= rc2:
        return 0.0
    inv6 = 1.0 / (r2 * r2 * r2)
    return 4.0 * inv6 * (inv6 - 1.0)


@njit(inline="always", cache=True)
def squared_distance(a, b, box, periodic_mask):
    """Squared distance between points a and b, minimum image on the periodic axes."""
    r2 = 0.0
    for c in range(a.shape[0]):
        dx = a[c] - b[c]
        if periodic_mask[c] != 0.0:
            dx -= box * np.rint(dx / box)
        r2 += dx * dx
    return r2


@njit(cache=True, nogil=True, error_model="numpy")
def pair_energy_matrix(pos, box, periodic_mask, rc2):
    """Symmetric (N, N) matrix of pair energies u(r_ij), zero on the diagonal."""
    n = pos.shape[0]
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            u = lj_pair(squared_distance(pos[i], pos[j], box, periodic_mask), rc2)
            out[i, j] = u
            out[j, i] = u
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def pair_energy(pos, box, periodic_mask, rc2):
    """Total pair energy sum_{i<j} u(r_ij) of one configuration (O(N^2), exact)."""
    n = pos.shape[0]
    total = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            total += lj_pair(squared_distance(pos[i], pos[j], box, periodic_mask), rc2)
    return total


@njit(cache=True, nogil=True, error_model="numpy")
def pair_energies_per_particle(pos, box, periodic_mask, rc2):
    """Per-particle pair energies e_i = sum_{j != i} u(r_ij); they sum to twice the pair energy."""
    n = pos.shape[0]
    out = np.zeros(n)
    for i in range(n):
        for j in range(i + 1, n):
            u = lj_pair(squared_distance(pos[i], pos[j], box, periodic_mask), rc2)
            out[i] += u
            out[j] += u
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def pair_energy_from_distances(distances, rc2):
    """Pair energy of a configuration given its (N, N) distance matrix (upper triangle used)."""
    n = distances.shape[0]
    total = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            r = distances[i, j]
            total += lj_pair(r * r, rc2)
    return total


@njit(cache=True, nogil=True, error_model="numpy")
def batch_pair_energies(coords, box, periodic_mask, rc2):
    """Pair energy of each configuration of a batch (M, N, d)."""
    out = np.empty(coords.shape[0])
    for m in range(coords.shape[0]):
        out[m] = pair_energy(coords[m], box, periodic_mask, rc2)
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def batch_total_energies(coords, box, periodic_mask, rc2, gamma4):
    """Total energies (pair + gamma4[m] * sum z) of configurations (M, N, d), gamma4 holding
    4 gamma per configuration, every sum taken in order: the same coordinates give the same
    bits in any thread or process."""
    out = np.empty(coords.shape[0])
    up = coords.shape[2] - 1
    for m in range(coords.shape[0]):
        height = 0.0
        for i in range(coords.shape[1]):
            height += coords[m, i, up]
        out[m] = pair_energy(coords[m], box, periodic_mask, rc2) + gamma4[m] * height
    return out


def configuration_energies(
    coords, box: float, gamma: float = 0.0, periodic_axes: str = "", cutoff: float | None = None
) -> np.ndarray:
    """Total energy (pair + gravity, no tail) of each configuration of a batch (M, N, d);
    gamma is one value or one per configuration."""
    coords = np.ascontiguousarray(coords, dtype=np.float64)
    if coords.ndim == 2:
        coords = coords[None]
    mask = periodic_mask(periodic_axes, coords.shape[-1])
    gamma4 = np.ascontiguousarray(np.broadcast_to(4.0 * np.asarray(gamma, dtype=np.float64),
                                                  coords.shape[:1]))
    return batch_total_energies(coords, float(box), mask, cutoff_squared(cutoff), gamma4)


# u(r) = r^-12 - 2 r^-6 is the standard u at r / LJ13_SIGMA: the same kernels serve both.
LJ13_SIGMA = 2.0 ** (-1.0 / 6.0)


def tether_energies(coords) -> np.ndarray:
    """1/2 sum_i |x_i - x̄|^2 of each configuration (M, N, d): the LJ13 cluster's tether."""
    coords = np.asarray(coords, dtype=np.float64)
    centred = coords - coords.mean(axis=-2, keepdims=True)
    return 0.5 * np.einsum("...nd,...nd->...", centred, centred)


def cluster_energies(coords, ordered_pairs: bool = False) -> np.ndarray:
    """Energy of each free LJ13-convention cluster (M, N, d): LJ with its minimum at r = 1
    plus the tether. Each pair counts once; ``ordered_pairs`` counts it twice, as the
    published LJ13 tables do (LJ over ordered pairs plus the tether)."""
    coords = np.ascontiguousarray(coords, dtype=np.float64)
    if coords.ndim == 2:
        coords = coords[None]
    free = np.zeros(coords.shape[-1])  # no periodic axis: the box length is never read
    pair = batch_pair_energies(np.ascontiguousarray(coords / LJ13_SIGMA), 1.0, free, NO_CUTOFF)
    return (2.0 if ordered_pairs else 1.0) * pair + tether_energies(coords)


def cluster_energy_terms(pos: np.ndarray) -> dict:
    """All energy terms of one LJ13-convention cluster (N, d) as a dict: ``total`` and
    ``pair`` count each pair once, ``total_ordered_pairs`` twice (the published tables'
    convention); ``tether`` is the harmonic term; ``gravity`` and ``tail`` are zero."""
    pos = np.asarray(pos, dtype=np.float64)
    total, tether = float(cluster_energies(pos)[0]), float(tether_energies(pos))
    return {"total": total, "pair": total - tether, "tether": tether, "gravity": 0.0,
            "tail": 0.0, "total_ordered_pairs": 2.0 * total - tether,
            "particles": int(pos.shape[0])}


def gravity_energy(pos: np.ndarray, gamma: float) -> float:
    """Gravity term 4 gamma sum_i z_i, z being the last ("up") axis."""
    return float(4.0 * gamma * np.sum(pos[..., -1], axis=-1))


def tail_correction(n_particles: int, volume: float, dim: int, cutoff: float) -> float:
    """Long-range correction of the truncated pair energy for a homogeneous periodic fluid.

    3D: (8/3) pi N rho [ rc^-9 / 3 - rc^-3 ];  2D: pi N rho [ (2/5) rc^-10 - rc^-4 ].
    """
    rho = n_particles / volume
    if dim == 3:
        return (8.0 / 3.0) * math.pi * n_particles * rho * (cutoff**-9 / 3.0 - cutoff**-3)
    if dim == 2:
        return math.pi * n_particles * rho * (0.4 * cutoff**-10 - cutoff**-4)
    raise ValueError(f"dimension must be 2 or 3, got {dim}")


def periodic_mask(periodic_axes: str, dim: int) -> np.ndarray:
    """Float mask (1.0 periodic, 0.0 reflecting) from an axis string such as 'xy'."""
    letters = "xyz"[:dim]
    axes = (periodic_axes or "").lower()
    unknown = sorted(set(axes) - set(letters))
    if unknown:
        raise ValueError(
            f"periodic axes must be letters among '{letters}' for {dim}D, got {periodic_axes!r}"
        )
    return np.array([1.0 if a in axes else 0.0 for a in letters])


def cutoff_squared(cutoff: float | None) -> float:
    """Squared cut-off for the kernels; no cut-off means infinity."""
    return NO_CUTOFF if cutoff is None else float(cutoff) ** 2


def total_energy(
    pos: np.ndarray,
    box: float,
    gamma: float = 0.0,
    periodic_axes: str = "",
    cutoff: float | None = None,
    tail: bool = False,
) -> dict:
    """All energy terms of one configuration as a dict: pair, gravity, tail and total."""
    pos = np.ascontiguousarray(pos, dtype=np.float64)
    n, dim = pos.shape
    mask = periodic_mask(periodic_axes, dim)
    pair = float(pair_energy(pos, float(box), mask, cutoff_squared(cutoff)))
    gravity = gravity_energy(pos, gamma)
    tail_term = 0.0
    if tail:
        if cutoff is None:
            raise ValueError("a tail correction needs a cut-off")
        if not mask.all():
            raise ValueError("a tail correction needs periodic boundaries on every axis")
        tail_term = tail_correction(n, float(box) ** dim, dim, float(cutoff))
    return {
        "total": pair + gravity + tail_term,
        "pair": pair,
        "gravity": gravity,
        "tail": tail_term,
        "particles": n,
    }
