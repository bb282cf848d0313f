"""Metropolis Monte Carlo for a free cluster in the LJ13 convention (Numba), and its driver.

The target is exp(-U / T) with U the published tables' energy: LJ with its minimum at r = 1
over *ordered* pairs (each pair twice: the split's temperature is 1 in that convention) plus
the tether 1/2 sum |x_i - x_mean|^2 (:func:`ljvae_core.potential.cluster_energies`). The chain
holds the particles in a trap about the origin instead, 1/2 sum |x_i|^2, which is the tether
plus N/2 |x_mean|^2: the centre of mass then moves as an independent Gaussian and the
configuration about it follows the target exactly, while a move needs no running centre.
Positions come back centred. A move displaces one particle, picked uniformly, uniformly in
[-delta, delta]^3 (there is no box) and is accepted with probability min(1, exp(-dU / T)).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .mc import (
    FASTMATH,
    MoveCounters,
    _lj_masked,
    _xoshiro,
    metropolis_threshold,
    rng_state_from_seed,
)
from .potential import LJ13_SIGMA, cluster_energies

# The pair term counts each pair twice (the published convention).
PAIR_COUNT = 2.0
INV_SIGMA2 = 1.0 / LJ13_SIGMA**2


@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def cluster_sweeps(xt, beta, delta, n_sweeps, state, energy, trace):
    """``n_sweeps`` sweeps of the trapped cluster xt (d, N), in place; returns the moves
    accepted. ``trace`` (n_sweeps or 0 values) receives the energy in the published
    convention after each sweep, counted on from ``energy``, the trapped energy at the start
    (read only for the trace). One loop nest with the move written out, as in
    :mod:`ljvae_core.mc`: helpers taking arrays would bring reference counting into it."""
    d, n = xt.shape
    trial = np.zeros(d)
    centre = np.zeros(d)  # sum of the positions, for the tether in the trace
    for c in range(d):
        for j in range(n):
            centre[c] += xt[c, j]
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    accepted = 0
    for sweep in range(n_sweeps):
        for _ in range(n):
            u, s0, s1, s2, s3 = _xoshiro(s0, s1, s2, s3)
            i = int(u * n)
            trap = 0.0
            for c in range(d):
                u, s0, s1, s2, s3 = _xoshiro(s0, s1, s2, s3)
                trial[c] = xt[c, i] + delta * (2.0 * u - 1.0)
                trap += trial[c] * trial[c] - xt[c, i] * xt[c, i]
            threshold, s0, s1, s2, s3 = metropolis_threshold(s0, s1, s2, s3)
            pair = 0.0
            for j in range(n):
                if j != i:
                    r2_new, r2_old = 0.0, 0.0
                    for c in range(d):
                        a, b = xt[c, j] - trial[c], xt[c, j] - xt[c, i]
                        r2_new += a * a
                        r2_old += b * b
                    pair += (_lj_masked(r2_new * INV_SIGMA2, math.inf)
                             - _lj_masked(r2_old * INV_SIGMA2, math.inf))
            du = PAIR_COUNT * pair + 0.5 * trap
            if beta * du <= threshold:
                for c in range(d):
                    centre[c] += trial[c] - xt[c, i]
                    xt[c, i] = trial[c]
                energy += du
                accepted += 1
        if trace.shape[0] > 0:
            squared = 0.0
            for c in range(d):
                squared += centre[c] * centre[c]
            trace[sweep] = energy - 0.5 * squared / n
    state[0], state[1], state[2], state[3] = s0, s1, s2, s3
    return accepted


class ClusterSampler(MoveCounters):
    """One Markov chain of a free LJ13-convention cluster, with the interface of
    :class:`ljvae_core.mc.MetropolisSampler` that step tuning and relaxation use.

    Parameters
    ----------
    positions : (N, d) cluster, anywhere (its centre of mass is moved to the origin).
    temperature : T (1 for the published split).
    step_size : maximal displacement delta per coordinate.
    seed : int or SeedSequence for the chain's own random numbers.
    """

    # No box: the step tuner's cap of half the box never binds.
    box = math.inf

    def __init__(self, positions, temperature=1.0, step_size=0.2, seed=0):
        positions = np.asarray(positions, dtype=np.float64)
        if positions.ndim != 2 or not np.isfinite(positions).all():
            raise ValueError("a cluster is one finite (N, d) array of positions")
        centred = positions - positions.mean(axis=0)
        self._xt = np.ascontiguousarray(centred.T)
        self.n, self.dim = positions.shape
        self.temperature = float(temperature)
        self.step_size = float(step_size)
        self.state = rng_state_from_seed(seed)
        self.reset_counters()

    @property
    def positions(self) -> np.ndarray:
        """The current cluster, centred, as a fresh (N, d) array."""
        pos = self._xt.T
        return np.ascontiguousarray(pos - pos.mean(axis=0))

    @property
    def energy(self) -> float:
        """Energy of the current cluster in the published convention (ordered pairs)."""
        return float(cluster_energies(self.positions, ordered_pairs=True)[0])

    def run(self, n_sweeps: int, record_every: int = 0, trace: bool = True):
        """Advance n_sweeps sweeps; returns (energy after each sweep in the published
        convention, no snapshots: an empty (0, N, d) array)."""
        if record_every:
            raise ValueError("a cluster chain keeps no snapshots; read its positions")
        n_sweeps = int(n_sweeps)
        energies = np.empty(n_sweeps if trace else 0)
        # The trap's energy is the tether's plus N/2 |x_mean|^2; no trace, no energy needed.
        start = (self.energy + 0.5 * np.sum(self._xt.mean(axis=1) ** 2) * self.n
                 if trace else 0.0)
        self.accepted += cluster_sweeps(self._xt, 1.0 / self.temperature, self.step_size,
                                        n_sweeps, self.state, start, energies)
        self.moves += n_sweeps * self.n
        return energies, np.empty((0, self.n, self.dim))
