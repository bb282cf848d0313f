"""Structural and statistical analysis of configurations: density profiles and the barometric
law, the radial distribution function g(r), structure statistics, and the distribution distances
that judge generated configurations against Monte Carlo ones.

The barometric law for non-interacting particles in [0, L] under gravity is the truncated
exponential rho(z) ~ exp(-lambda z) with lambda = 4 gamma / T.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from numba import njit
from scipy.optimize import brentq
from scipy.stats import wasserstein_distance

from .potential import pair_energies_per_particle, periodic_mask, squared_distance
from .system import System


def barometric_rate(gamma: float, temperature: float) -> float:
    """Decay rate lambda = 4 gamma / T of the dilute-limit density profile."""
    return 4.0 * gamma / temperature


def truncated_exponential_mean(rate: float, box: float) -> float:
    """Mean height of a density ~ exp(-rate z) on [0, box]."""
    x = rate * box
    if abs(x) < 1e-6:
        return box / 2.0 - rate * box**2 / 12.0
    return 1.0 / rate - box / math.expm1(x)


def barometric_density(z, rate: float, box: float, n_particles: float, area: float = 1.0):
    """Number density at heights z for n_particles spread as exp(-rate z) on [0, box]."""
    z = np.asarray(z, dtype=np.float64)
    if abs(rate * box) < 1e-9:
        return np.full_like(z, n_particles / (box * area))
    norm = rate / -math.expm1(-rate * box)
    return n_particles * norm * np.exp(-rate * z) / area


def barometric_fit(heights, box: float) -> dict:
    """Maximum-likelihood decay rate of a truncated exponential fitted to heights in [0, box].

    Returns {"rate", "rate_err", "samples"}; rate_err is the asymptotic standard error
    (samples are assumed independent: pass decorrelated ones).
    """
    z = np.asarray(heights, dtype=np.float64).ravel()
    if z.size < 2:
        raise ValueError("a barometric fit needs at least two heights")
    mean = float(z.mean())
    if not 0.0 < mean < box:
        raise ValueError("heights must lie inside [0, box]")
    # The model mean falls monotonically from box (rate -> -inf) to 0 (rate -> +inf).
    bound = 1.0 / max(1e-12, min(mean, box - mean))
    lo, hi = -2.0 * bound - 10.0 / box, 2.0 * bound + 10.0 / box
    rate = brentq(lambda r: truncated_exponential_mean(r, box) - mean, lo, hi, xtol=1e-12)
    # Fisher information of the truncated exponential: n * Var(z) under the model.
    return {"rate": rate, "rate_err": 1.0 / math.sqrt(z.size * z.var()), "samples": int(z.size)}


@dataclass
class DensityProfile:
    """Number density along the up axis: rho(z) in particles per unit volume (area in 2D)."""

    z: np.ndarray
    density: np.ndarray
    edges: np.ndarray
    box: float
    n_particles: int
    dim: int

    @property
    def cross_section(self) -> float:
        return self.box ** (self.dim - 1)

    def barometric(self, gamma: float, temperature: float) -> np.ndarray:
        """The dilute-limit prediction at the bin centres, same normalization."""
        rate = barometric_rate(gamma, temperature)
        return barometric_density(self.z, rate, self.box, self.n_particles, self.cross_section)


def density_profile(coords, box: float, bins: int = 40) -> DensityProfile:
    """Average density profile along the last axis of configurations (M, N, d)."""
    coords = np.asarray(coords)
    if coords.ndim == 2:
        coords = coords[None]
    m, n, dim = coords.shape
    counts, edges = np.histogram(coords[..., -1].ravel(), bins=bins, range=(0.0, box))
    width = np.diff(edges)
    density = counts / (m * width * box ** (dim - 1))
    return DensityProfile(0.5 * (edges[1:] + edges[:-1]), density, edges, box, n, dim)


# --------------------------------------------------------------------------- g(r)
@dataclass
class RadialDistribution:
    """g(r) at bin centres r, with the mean number of pairs per configuration in each bin."""

    r: np.ndarray
    g: np.ndarray
    edges: np.ndarray
    pair_counts: np.ndarray
    configurations: int

    def l1_distance(self, other: RadialDistribution) -> float:
        """Integral of |g1 - g2| dr over the common bins (the same edges are required)."""
        if self.edges.shape != other.edges.shape or not np.allclose(self.edges, other.edges):
            raise ValueError("g(r) curves must share their bins to be compared")
        return float(np.sum(np.abs(self.g - other.g) * np.diff(self.edges)))


def _axis_difference_density(t, box, periodic):
    """Density of the difference of two uniform coordinates on one axis, at |t|."""
    t = np.abs(t)
    if periodic:  # minimum image: uniform on [-L/2, L/2]
        return np.where(t <= 0.5 * box, 1.0 / box, 0.0)
    return np.clip(box - t, 0.0, None) / box**2


def _sphere_rule(dim, order=48):
    """Directions u and weights covering the positive orthant of the unit sphere (the
    integrands here are even in every coordinate), weights summing to its full area."""
    x, w = np.polynomial.legendre.leggauss(order)
    if dim == 2:
        angle = 0.25 * np.pi * (x + 1.0)
        dirs = np.stack([np.cos(angle), np.sin(angle)], axis=-1)
        return dirs, 4.0 * 0.25 * np.pi * w
    mu = 0.5 * (x + 1.0)  # cos(theta) in [0, 1]
    phi = 0.25 * np.pi * (x + 1.0)  # [0, pi/2]
    s = np.sqrt(1.0 - mu**2)
    dirs = np.stack(
        [np.outer(s, np.cos(phi)), np.outer(s, np.sin(phi)), np.outer(mu, np.ones_like(phi))],
        axis=-1,
    ).reshape(-1, 3)
    weights = np.outer(0.5 * w, 0.25 * np.pi * w).ravel()
    return dirs, 8.0 * weights


def uniform_pair_distance_probability(edges, box: float, dim: int, periodic_axes: str = ""):
    """Probability that two independent uniform points of the box lie at a distance within
    each bin of `edges` (minimum image on periodic axes).

    Fully periodic boxes have the exact shell volumes over the box volume (for r <= L/2);
    otherwise the density of the distance is integrated numerically: r^(d-1) times the
    spherical average of the product of the per-axis difference densities.
    """
    edges = np.asarray(edges, dtype=np.float64)
    mask = periodic_mask(periodic_axes, dim)
    if mask.all() and edges[-1] <= 0.5 * box + 1e-12:
        unit_ball = np.pi if dim == 2 else 4.0 * np.pi / 3.0
        return unit_ball * np.diff(edges**dim) / box**dim
    dirs, dir_weights = _sphere_rule(dim)
    x, w = np.polynomial.legendre.leggauss(12)
    lo, hi = edges[:-1, None], edges[1:, None]
    r = 0.5 * (hi - lo) * (x + 1.0) + lo  # (bins, 12) radial nodes per bin
    dens = np.ones(r.shape + (len(dirs),))
    for c in range(dim):
        dens *= _axis_difference_density(r[..., None] * dirs[:, c], box, mask[c] != 0.0)
    shell = (dens @ dir_weights) * r ** (dim - 1)
    return (shell * w).sum(axis=-1) * 0.5 * (edges[1:] - edges[:-1])


@njit(inline="always", cache=True)
def _bin_index(r, edges, scale):
    """Bin of r among equal-width edges (scale = bins / their span), rounding at the edges
    exactly as np.histogram does (the last bin includes its right edge); -1 outside
    [edges[0], edges[-1]] or for NaN."""
    bins = edges.shape[0] - 1
    if not edges[0] <= r <= edges[bins]:
        return -1
    k = min(int((r - edges[0]) * scale), bins - 1)
    if r < edges[k]:
        k -= 1
    if k != bins - 1 and r >= edges[k + 1]:
        k += 1
    return k


@njit(cache=True, nogil=True, error_model="numpy")
def _pair_distance_histogram(coords, edges, box, mask):
    """Total count of pairs (i < j) per bin over all configurations (M, N, d), one pass over
    the pairs without storing their distances."""
    bins = edges.shape[0] - 1
    counts = np.zeros(bins)
    scale = bins / (edges[bins] - edges[0])
    # Pairs this far apart lie beyond the last edge whatever the rounding of the root: the
    # square root, the slow part, is taken only for the others.
    far2 = edges[bins] * edges[bins] * (1.0 + 1e-12)
    for m in range(coords.shape[0]):
        pos = coords[m]
        for i in range(pos.shape[0]):
            for j in range(i + 1, pos.shape[0]):
                r2 = squared_distance(pos[i], pos[j], box, mask)
                if r2 > far2:
                    continue
                k = _bin_index(math.sqrt(r2), edges, scale)
                if k >= 0:
                    counts[k] += 1.0
    return counts


@njit(cache=True, nogil=True, error_model="numpy")
def _nearest_squared_distances(coords, box, mask):
    """Squared distance from every particle to its nearest neighbour, (M, N); NaN coordinates
    give NaN, as a minimum over NaN does in numpy, so such configurations count as invalid."""
    m_count, n = coords.shape[0], coords.shape[1]
    out = np.full((m_count, n), np.inf)
    for m in range(m_count):
        pos, near = coords[m], out[m]
        for i in range(n):
            for j in range(i + 1, n):
                r2 = squared_distance(pos[i], pos[j], box, mask)
                if r2 < near[i] or r2 != r2:
                    near[i] = r2
                if r2 < near[j] or r2 != r2:
                    near[j] = r2
    return out


@functools.lru_cache(maxsize=32)
def _uniform_pair_probability(r_max, bins, box, dim, periodic_axes):
    """:func:`uniform_pair_distance_probability` on equal bins of [0, r_max], kept: the
    conditions of a dataset share one box, and the quadrature of a closed box costs more than
    the pair counts of a small system."""
    probability = uniform_pair_distance_probability(
        np.linspace(0.0, r_max, bins + 1), box, dim, periodic_axes)
    probability.flags.writeable = False
    return probability


def radial_distribution(coords, system: System, r_max: float | None = None,
                        bins: int = 60) -> RadialDistribution:
    """g(r) of configurations (M, N, d) in the system's box [0, L]^d.

    Pair counts are normalized by those of uniform random points in the same box
    (:func:`uniform_pair_distance_probability`), so that an ideal gas gives g = 1 at every r
    even in a closed box, where the walls deplete large distances; in a fully periodic box
    this is the usual shell-volume normalization. A free cluster has no box to normalize by:
    its ``g`` is the density of its pair distances (per σ, integrating to 1 over [0, r_max];
    r_max 4σ by default).
    """
    coords = _batch(coords)
    m, n, dim = coords.shape
    if n < 2:
        raise ValueError("g(r) needs at least two particles")
    if r_max is None:
        r_max = 4.0 * system.sigma if system.free else 0.5 * system.box
    edges = np.linspace(0.0, float(r_max), bins + 1)
    counts = _pair_distance_histogram(coords, edges, system.kernel_box, system.mask)
    if system.free:
        expected = np.full(bins, m * 0.5 * n * (n - 1) * (edges[1] - edges[0]))
    else:
        expected = m * 0.5 * n * (n - 1) * _uniform_pair_probability(
            float(r_max), bins, float(system.box), dim, system.periodic)
    with np.errstate(invalid="ignore", divide="ignore"):
        g = np.where(expected > 0, counts / expected, 0.0)
    return RadialDistribution(0.5 * (edges[1:] + edges[:-1]), g, edges, counts / m, m)


# --------------------------------------------------------------------------- distances
# Overlapping particles have astronomically large energies; clipping the energy per particle
# here keeps one broken configuration from making a Wasserstein distance infinite.
ENERGY_PER_PARTICLE_CAP = 1e3
# Pairs closer than this (in sigma) make a configuration unphysical ("invalid").
MIN_VALID_DISTANCE = 0.8


def nearest_neighbour_distances(coords, system: System) -> np.ndarray:
    """Distance from every particle to its nearest neighbour, (M, N)."""
    coords = _batch(coords)
    return np.sqrt(_nearest_squared_distances(coords, system.kernel_box, system.mask))


def valid_fraction(coords, system: System, min_distance: float = MIN_VALID_DISTANCE) -> float:
    """Fraction of configurations with no pair closer than ``min_distance`` σ (the system's
    σ: 2^(-1/6) for LJ13)."""
    nearest = nearest_neighbour_distances(coords, system)
    return float(np.mean(nearest.min(axis=-1) >= min_distance * system.sigma))


def energies_per_particle(coords, system: System, gamma: float = 0.0) -> np.ndarray:
    """Energy per particle of each configuration in the system's potential, capped for
    overlaps."""
    coords = _batch(coords)
    energy = system.energies(coords, gamma) / coords.shape[1]
    return np.minimum(np.nan_to_num(energy, nan=np.inf), ENERGY_PER_PARTICLE_CAP)


def particle_energies(coords, system: System) -> np.ndarray:
    """Pair energy of each particle with all the others, e_i = sum_j u(r_ij), for (M, N, d)
    configurations (e_i sum to twice the pair energy); what a view colours particles by."""
    # LJ13's u(r) is the standard one at r / sigma (ljvae_core.potential.LJ13_SIGMA).
    coords = _batch(coords) / system.sigma
    return np.stack([pair_energies_per_particle(c, system.kernel_box, system.mask,
                                                system.cutoff_squared) for c in coords])


def _batch(coords) -> np.ndarray:
    """Configurations as a contiguous float64 batch (M, N, d)."""
    coords = np.ascontiguousarray(coords, dtype=np.float64)
    return coords[None] if coords.ndim == 2 else coords


def wasserstein(a, b, p: float = 2.0) -> float:
    """The p-Wasserstein distance between two 1D empirical distributions (any sizes): the
    L^p distance of their quantile functions, integrated exactly over the steps of both."""
    a, b = np.sort(np.ravel(a)), np.sort(np.ravel(b))
    steps = np.union1d(np.arange(1, len(a)) / len(a), np.arange(1, len(b)) / len(b))
    edges = np.concatenate([[0.0], steps, [1.0]])
    middle = 0.5 * (edges[:-1] + edges[1:])
    qa = a[np.minimum((middle * len(a)).astype(np.int64), len(a) - 1)]
    qb = b[np.minimum((middle * len(b)).astype(np.int64), len(b) - 1)]
    return float(np.sum(np.diff(edges) * np.abs(qa - qb) ** p) ** (1.0 / p))


def compare_distributions(sample, reference, system: System, gamma: float = 0.0,
                          rdf_bins: int = 60) -> dict:
    """How far a sample of configurations is from a reference one (e.g. Monte Carlo).

    1D Wasserstein distances of the energy per particle, of nearest-neighbour distances and of
    heights (distances from the centre of mass in a free cluster); the L1 distance between
    their g(r) (pair-distance densities in a free cluster); and the fraction of valid
    configurations of each. Both sets must have the same N and d and share the system and γ.
    """
    sample, reference = _batch(sample), _batch(reference)
    if sample.shape[1:] != reference.shape[1:]:
        raise ValueError(
            f"configurations differ in shape: {sample.shape[1:]} vs {reference.shape[1:]}"
        )
    rdf = [radial_distribution(x, system, bins=rdf_bins) for x in (sample, reference)]
    return {
        "w1_energy_per_particle": float(wasserstein_distance(
            energies_per_particle(sample, system, gamma),
            energies_per_particle(reference, system, gamma))),
        "w1_nearest_neighbour": float(wasserstein_distance(
            nearest_neighbour_distances(sample, system).ravel(),
            nearest_neighbour_distances(reference, system).ravel())),
        "w1_height": float(wasserstein_distance(heights(sample, system).ravel(),
                                                heights(reference, system).ravel())),
        "rdf_l1": rdf[0].l1_distance(rdf[1]),
        "valid_fraction": valid_fraction(sample, system),
        "reference_valid_fraction": valid_fraction(reference, system),
    }


def heights(coords, system: System) -> np.ndarray:
    """Each particle's height (M, N): its up coordinate in a box, its distance from the
    centre of mass in a free cluster (which has no up)."""
    coords = _batch(coords)
    if system.free:
        return np.linalg.norm(coords - coords.mean(axis=1, keepdims=True), axis=-1)
    return coords[..., -1]


@dataclass(frozen=True)
class HeightResponse:
    """The mean height per particle of an equilibrium ensemble and how it responds to the
    field and the temperature, from the ensemble's own fluctuations: with the energy
    E = U + 4 gamma N h (h: a configuration's mean height), d<h>/d gamma = -(4 N / T) Var(h)
    and d<h>/dT = Cov(h, E) / T^2 (exact for Boltzmann samples)."""

    mean: float
    d_gamma: float
    d_temperature: float


def height_response(coords, energy, temperature: float) -> HeightResponse:
    """:class:`HeightResponse` of Monte Carlo configurations (M, N, d) of one state point in
    a box, with their total energies (M,) (pair and gravity)."""
    coords = _batch(coords)
    h = coords[..., -1].mean(axis=1)
    energy = np.asarray(energy, dtype=np.float64)
    n = coords.shape[1]
    t = float(temperature)
    return HeightResponse(float(h.mean()), float(-4.0 * n * h.var() / t),
                          float(np.mean((h - h.mean()) * (energy - energy.mean())) / t**2))


# g(r) and the structure statistics come out smooth from a few million pair distances; beyond
# that, more configurations of a large system only cost time (30 particles have 435 pairs a
# configuration, 300 have 44,850).
STRUCTURE_PAIRS = 5_000_000
# ...but the spread of U/N and the valid fraction are statistics over configurations: never
# fewer than this many (when there are).
STRUCTURE_MIN_CONFIGURATIONS = 100


def structure_subset(n_configurations: int, n_particles: int,
                     max_configurations: int | None = None,
                     max_pairs: int = STRUCTURE_PAIRS) -> np.ndarray:
    """Indices of the configurations worth analysing out of n_configurations: all of them
    while they hold at most max_pairs pairs (and number at most max_configurations), else that
    many evenly spread over the whole set, so that every chain contributes."""
    pairs = max(1, n_particles * (n_particles - 1) // 2)
    keep = max(STRUCTURE_MIN_CONFIGURATIONS, max_pairs // pairs)
    if max_configurations is not None:
        keep = min(keep, max_configurations)
    keep = min(keep, n_configurations)
    return np.arange(keep) * n_configurations // keep


def structure_by_condition(dataset, max_configurations: int | None = None) -> list[dict]:
    """Per (T, gamma) condition of a dataset: its ``temperature`` and ``gamma``, its g(r)
    (``rdf``) and :func:`structure_statistics` (``statistics``), over the configurations
    :func:`structure_subset` picks."""
    system, out = dataset.system, []
    for k, cond in enumerate(dataset.conditions):
        members = np.flatnonzero(dataset.condition == k)
        coords = dataset.coords[members[structure_subset(members.size, dataset.n_particles,
                                                         max_configurations)]]
        out.append({"temperature": cond["temperature"], "gamma": cond["gamma"],
                    "rdf": radial_distribution(coords, system),
                    "statistics": structure_statistics(coords, system, cond["gamma"],
                                                       cond["temperature"])})
    return out


def structure_statistics(coords, system: System, gamma: float, temperature: float) -> dict:
    """Summary of one condition's configurations: energy per particle, nearest-neighbour
    distance, height, validity, and, where there is a floor, the barometric decay rate
    fitted vs predicted (None for free clusters and periodic up axes)."""
    coords = _batch(coords)
    e = energies_per_particle(coords, system, gamma)
    nearest = nearest_neighbour_distances(coords, system)
    floor = not system.free and system.walls_up
    return {
        "configurations": int(len(coords)),
        "energy_per_particle": float(e.mean()),
        "energy_per_particle_std": float(e.std()),
        "nearest_neighbour": float(nearest.mean()),
        "height": float(heights(coords, system).mean()),
        "valid_fraction": float(np.mean(nearest.min(axis=-1) >= MIN_VALID_DISTANCE
                                        * system.sigma)),
        "barometric_rate_fit": barometric_fit(coords[..., -1], system.box)["rate"]
        if floor else None,
        "barometric_rate_dilute": barometric_rate(gamma, temperature) if floor else None,
    }
