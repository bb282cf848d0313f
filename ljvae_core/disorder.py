"""What a decoder of mean shapes leaves out of the configurations it generates, put back per
state point: the thermal disorder of every coordinate and the density profile along the field.

A decoder outputs the mean of the configurations its latent stands for. Means are too ordered
(their pair energies too low, their nearest-neighbour distances piled at the hard core's
contact) and squeeze the layers along the field (the floor layer too high, the next too low).
A conditional model's generation adds Gaussian noise of a width calibrated per state point to
every coordinate (:func:`jitter`), then maps its heights monotonically onto the training
heights' distribution at that state point (:func:`map_heights`, a one-dimensional optimal
transport). Both use what training saw; held-out data play no part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The probability levels at which height distributions are kept: 201 quantiles resolve the
# floor layer (the lowest percent of the heights lies within about 0.01 sigma of the floor).
HEIGHT_LEVELS = np.linspace(0.0, 1.0, 201)


def height_quantiles(heights) -> np.ndarray:
    """The :data:`HEIGHT_LEVELS` quantiles of all the ``heights`` (any shape)."""
    return np.quantile(np.asarray(heights, dtype=np.float64), HEIGHT_LEVELS)


def inside_quantiles(coords, box: float) -> np.ndarray:
    """The :data:`HEIGHT_LEVELS` quantiles of the heights of ``coords`` inside [0, box]: the
    ones :func:`map_heights` maps, and so the source of its map."""
    h = np.asarray(coords)[..., -1]
    return height_quantiles(h[(h >= 0.0) & (h <= box)])


def map_heights(coords, source, target, box: float) -> np.ndarray:
    """Configurations with each height h inside [0, box] replaced by the target distribution's
    quantile at the source distribution's level of h (the monotone map that carries the
    source quantiles ``source`` onto ``target``); heights outside stay there, to be counted
    invalid."""
    source = np.maximum.accumulate(np.asarray(source, dtype=np.float64))
    # Equal source quantiles (heights piled at the floor) would make the map ambiguous.
    source = source + 1e-12 * np.arange(len(source))
    out = np.array(coords, dtype=np.float64)
    h = out[..., -1]
    inside = (h >= 0.0) & (h <= box)
    out[..., -1] = np.where(inside, np.interp(h, source, target), h)
    return out


def grouped_quantiles(coords, groups, box: float) -> dict:
    """{group: :func:`inside_quantiles` of its configurations} for the configurations
    ``coords`` labelled ``groups`` (M,), and under None those of all of them."""
    coords, groups = np.asarray(coords), np.asarray(groups)
    own = {int(g): inside_quantiles(coords[groups == g], box) for g in np.unique(groups)}
    # One group (every trained state point's samples): all of them are that group.
    pooled = next(iter(own.values())) if len(own) == 1 else inside_quantiles(coords, box)
    return {None: pooled} | own


def map_grouped(coords, groups, sources: dict, target, box: float) -> np.ndarray:
    """:func:`map_heights` of each group of configurations (labelled ``groups``) from its
    own source quantiles ``sources[group]`` onto the same ``target``: generated between two
    trained state points, the samples drawn from each end's prior are shaped like that end's
    (γ = 1-like samples taller than γ = 2-like ones at γ = 1.5), and one map for both would
    leave each configuration's share of the layers as its end had it. A group without a
    source of its own takes the source of all of them (key None, as
    :func:`grouped_quantiles` gives)."""
    out = np.array(coords, dtype=np.float64)
    groups = np.asarray(groups)
    for g in np.unique(groups):
        rows = groups == g
        out[rows] = map_heights(out[rows], sources.get(int(g), sources[None]), target, box)
    return out


def jitter(coords, width: float, system, rng: np.random.Generator) -> np.ndarray:
    """Configurations with Gaussian noise of standard deviation ``width`` (in units of sigma)
    on every coordinate: wrapped on periodic axes, reflected at walls for coordinates that
    were inside them (one outside stays there, to be counted invalid)."""
    out = np.array(coords, dtype=np.float64)
    if width <= 0.0:
        return out
    noisy = out + width * system.sigma * rng.normal(size=out.shape)
    if system.free:
        return system.placed(noisy)
    box = system.box
    for axis, periodic in enumerate(system.mask):
        x, y = out[..., axis], noisy[..., axis]
        out[..., axis] = np.mod(y, box) if periodic else reflected(x, y, box)
    return out


def reflected(before, after, box: float) -> np.ndarray:
    """Coordinates ``after`` a displacement, reflected at the walls 0 and ``box`` where they
    lay inside ``before`` it; one that lay outside keeps its value before (to be counted
    invalid). Displacements shorter than the box."""
    inside = (before >= 0.0) & (before <= box)
    return np.where(inside, box - np.abs(box - np.abs(after)), before)


# Configurations per trained state point kept for height maps, and the fewest effective
# configurations a reweighted height distribution may rest on.
ENSEMBLE_SIZE = 4000
MIN_EFFECTIVE = 100


def ensemble(coords, energy, gamma: float, neighbours=None, n_max: int = ENSEMBLE_SIZE,
             seed: int = 0) -> dict:
    """What a trained state point keeps for judging generation there and between: the heights
    (M, N) of at most ``n_max`` of its configurations, their nearest-neighbour distances
    (M, N) where ``neighbours`` gives those of every configuration (else None) and, where
    their total ``energy`` (in the field ``gamma``) is known, the energy without the field,
    which reweighting needs (else None)."""
    coords = np.asarray(coords)
    rows = np.sort(np.random.default_rng(seed).permutation(len(coords))[:n_max])
    heights = coords[rows][..., -1]
    internal = None
    if energy is not None:
        internal = np.asarray(energy, dtype=np.float64)[rows] - gamma * _field(heights)
    return {"heights": heights.astype(np.float32), "internal_energy": internal,
            "neighbours": (None if neighbours is None
                           else np.asarray(neighbours)[rows].astype(np.float32))}


def _field(heights) -> np.ndarray:
    """The field's energy per unit gamma of configurations with these heights (M, N):
    4 sum_i h_i, :func:`ljvae_core.potential.gravity_energy` of a batch."""
    return 4.0 * np.asarray(heights, dtype=np.float64).sum(axis=1)


@dataclass(frozen=True)
class Reweighted:
    """The configurations of two trained state points' ensembles (:func:`ensemble`), each
    weighing what it would at another state point (:meth:`at`)."""

    heights: np.ndarray  # (M, N)
    internal_energy: np.ndarray  # (M,)
    neighbours: np.ndarray | None  # (M, N) nearest-neighbour distances, or None
    weights: np.ndarray  # (M,), summing to 1

    @classmethod
    def at(cls, ensembles, conditions, target) -> Reweighted | None:
        """The configurations of ``ensembles`` (of the state points ``conditions``, (gamma,
        T) each) Boltzmann reweighted to the state point ``target``: each weighs
        exp(-u_target) over the mixture of the ensembles' densities (Bennett's acceptance
        ratio fixes their free-energy difference), with the reduced energy
        u = (U + 4 gamma N h) / T. None where an energy is unknown or fewer than
        :data:`MIN_EFFECTIVE` configurations carry the weight."""
        if any(e["internal_energy"] is None for e in ensembles):
            return None
        heights = np.concatenate([e["heights"] for e in ensembles]).astype(np.float64)
        internal = np.concatenate([e["internal_energy"] for e in ensembles])
        sizes = np.array([len(e["heights"]) for e in ensembles], dtype=np.float64)
        weights = _bennett_weights(internal, _field(heights), sizes, conditions, target)
        if 1.0 / np.sum(weights**2) < MIN_EFFECTIVE:
            return None
        parts = [e.get("neighbours") for e in ensembles]
        neighbours = None if any(p is None for p in parts) else np.concatenate(parts)
        return cls(heights, internal, neighbours, weights)

    def height_quantiles(self) -> np.ndarray:
        """The :data:`HEIGHT_LEVELS` quantiles of the reweighted heights."""
        return weighted_quantiles(self.heights, self.weights)

    def energies_per_particle(self, gamma: float) -> np.ndarray:
        """Each configuration's total energy per particle in the field ``gamma``."""
        return (self.internal_energy + gamma * _field(self.heights)) / self.heights.shape[1]


def _bennett_weights(internal, field, sizes, conditions, target) -> np.ndarray:
    """The normalised weights at ``target`` of configurations drawn from two state points
    (``sizes`` of each, in order) with these internal and per-unit-gamma field energies."""
    from scipy.optimize import brentq
    from scipy.special import logsumexp

    def reduced(state):
        return (internal + state[0] * field) / state[1]

    u = np.stack([reduced(c) for c in conditions])
    gap = u[1] - u[0]

    def log_mixture(df):
        return logsumexp(np.log(sizes)[:, None] + np.array([0.0, df])[:, None] - u, axis=0)

    def mismatch(df):  # the self-consistent free-energy difference f_b - f_a
        mix = log_mixture(df)
        return logsumexp(-u[0] - mix) - logsumexp(-u[1] - mix) - df

    # It lies within the range of the energy differences.
    df = brentq(mismatch, gap.min() - 1.0, gap.max() + 1.0)
    log_w = -reduced(target) - log_mixture(df)
    w = np.exp(log_w - log_w.max())
    return w / w.sum()


def weighted_quantiles(heights, weights) -> np.ndarray:
    """The :data:`HEIGHT_LEVELS` quantiles of the heights (M, N), configuration m weighing
    ``weights[m]``."""
    flat = heights.ravel()
    order = np.argsort(flat)
    w = np.repeat(weights, heights.shape[1])[order]
    levels = (np.cumsum(w) - 0.5 * w) / w.sum()
    return np.interp(HEIGHT_LEVELS, levels, flat[order])
