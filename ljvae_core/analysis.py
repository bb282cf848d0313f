"""Structural and statistical analysis of configurations: density profiles, the barometric law,
energy statistics.

The barometric law for non-interacting particles in [0, L] under gravity is the truncated
exponential rho(z) ~ exp(-lambda z) with lambda = 4 gamma / T.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq


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


def energy_statistics(energy, n_particles: int) -> dict:
    """Mean, standard deviation and range of the energy per particle."""
    e = np.asarray(energy, dtype=np.float64) / n_particles
    return {
        "mean_per_particle": float(e.mean()),
        "std_per_particle": float(e.std()),
        "min_per_particle": float(e.min()),
        "max_per_particle": float(e.max()),
    }
