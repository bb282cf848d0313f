"""How much disorder a conditional model's generation puts back at a state point, chosen by
judging its samples against an ensemble of that state point.

A walk up the noise widths (:func:`noise_walk`) picks, for each width, the spread of the
latent prior whose samples decode the ensemble's energies, and stops when the samples'
nearest-neighbour distances move away from the ensemble's. Training calibrates it this way at
every trained state point against its training configurations
(:func:`ljvae_core.calibration.attach_conditional_prior`); generation repeats it between
trained state points against their training configurations Boltzmann reweighted to the state
point asked for (:func:`disorder_between`), where nothing else pins the energy: there the
kernels of the two ends are carried along the transport path, and a width interpolated
between theirs left the unseen state points' energies 0.05-0.1 per particle off.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .analysis import energies_per_particle, nearest_neighbour_distances

# The widths (sigma) of the noise on decoded coordinates tried per state point.
NOISE_WIDTHS = tuple(float(w) for w in np.round(np.arange(0.0, 0.0601, 0.005), 3))
# The factors by which generation between trained state points may scale the spread of the
# two ends' latent priors (1: as trained).
SPREAD_FACTORS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2)
# Samples judged per walk between trained state points, on a random stream of their own.
WALK_SAMPLES = 2000
# How far (W1, epsilon per particle) the samples' energies may stay from the reweighted ones
# there before the walk counts the energy as stopping the noise: the reweighted energies are
# themselves about 0.02 from fresh Monte Carlo's (0.023 at gamma = 1.5 on the study system,
# where two Monte Carlo runs differ by 0.018), and the evaluation asks 0.08 there.
REWEIGHTED_TOLERANCE = 0.04


@dataclass
class SampleJudge:
    """Decoded samples against an ensemble of the state point ``gamma``: the energy and
    nearest-neighbour W1 of ``n`` samples of ``prior`` (a trained state point's kernel
    density, or a conditional prior at a state point between them) at a spread, decoded at
    the state point ``state``, with noise of a width and contacts pushed out to a distance,
    heights mapped onto ``quantiles`` (None: not), all drawn from the seed ``draws``; the
    ensemble's values weigh ``energy_weights`` and ``neighbour_weights`` (None: equally).
    Each figure is computed once, and each spread's latents decoded once for every width."""

    trained: object  # a TrainedModel
    prior: object
    state: tuple
    gamma: float
    quantiles: np.ndarray | None
    energies: np.ndarray
    neighbours: np.ndarray
    draws: int
    n: int
    energy_weights: np.ndarray | None = None
    neighbour_weights: np.ndarray | None = None
    decoded: dict = field(default_factory=dict)
    gaps: dict = field(default_factory=dict)

    def gap(self, spread, width, contact) -> tuple[float, float]:
        """(energy W1, nearest-neighbour W1) of the samples."""
        from scipy.stats import wasserstein_distance

        key, system = (spread, width, contact), self.trained.system
        if key not in self.gaps:
            coords = self._sample(spread, width, contact)
            self.gaps[key] = (
                wasserstein_distance(energies_per_particle(coords, system, self.gamma),
                                     self.energies, None, self.energy_weights),
                wasserstein_distance(nearest_neighbour_distances(coords, system).ravel(),
                                     self.neighbours, None, self.neighbour_weights))
        return self.gaps[key]

    def _sample(self, spread, width, contact) -> np.ndarray:
        from .disorder import grouped_quantiles, map_grouped

        rng = np.random.default_rng(self.draws)
        drawn = self.prior.scaled(spread)
        # Between trained state points each end's samples get a map of their own, as
        # generation gives them (TrainedModel.mapped_heights).
        latent, ends = (drawn.sample_labelled(self.n, rng) if isinstance(drawn, _StatePrior)
                        else (drawn.sample(self.n, rng), np.zeros(self.n, dtype=np.int64)))
        if (spread, contact) not in self.decoded:
            self.decoded[spread, contact] = self.trained.decode_pushed(latent, *self.state,
                                                                       contact)
        coords = self.trained.noised(self.decoded[spread, contact], rng, width)
        if self.quantiles is None:
            return coords
        box = self.trained.system.box
        return map_grouped(coords, ends, grouped_quantiles(coords, ends, box), self.quantiles,
                           box)

    def walk(self, contact, tolerance: float, spreads):
        """:func:`noise_walk` over the ``spreads`` with contacts pushed out to ``contact``."""
        return noise_walk(lambda b, w: self.gap(b, w, contact)[0],
                          lambda b, w: self.gap(b, w, contact)[1], tolerance, spreads)


def noise_walk(energy_gap, neighbour_gap, tolerance: float, spreads):
    """(nearest-neighbour gap, spread, noise width, whether the energy stopped it) where a
    walk up :data:`NOISE_WIDTHS` stops: for each width in turn, the spread of ``spreads``
    (or midway) whose samples decode the reference energies, until the samples'
    nearest-neighbour distances move away from the reference's, or even the least spread
    leaves the energies further than ``tolerance`` (W1) from theirs; the last pair before
    is kept. The noise sets how disordered each sample is, which the nearest-neighbour
    distances show; the spread how far samples stray from the training shapes, which moves
    their energy the other way."""
    grid, best, stuck = sorted(spreads), None, False
    for width in NOISE_WIDTHS:
        def cost(b, w=width):
            return energy_gap(b, w)
        # More noise raises the energy, which a narrower spread lowers again: each width's
        # search starts from the last width's spread.
        spread = (finest_minimum(grid, cost) if best is None else
                  finest_minimum(grid, cost, start=_grid_index(grid, best[1])))
        gap = neighbour_gap(spread, width)
        # Where even the least spread decodes energies too high, no narrower one can pay
        # for more noise.
        stuck = spread == grid[0] and cost(spread) > tolerance
        if best is not None and (gap >= best[0] or stuck):
            break
        best = (gap, spread, width)
    return (*best, stuck)


def finest_minimum(grid, cost, start: int | None = None) -> float:
    """The value of an increasing ``grid`` where ``cost`` is least, then the better of it and
    the midpoints to its neighbours: the energy of decoded samples moves by about 0.1 per
    particle between neighbouring kernel bandwidths, where the optimum often lies between
    two of them. With ``start`` (an index), the cost is taken to have one minimum on the
    grid, found by stepping from there to the better neighbour while one is better."""
    if start is None:
        costs = {value: cost(value) for value in grid}
        k = grid.index(min(grid, key=costs.__getitem__))
    else:
        costs, k = {grid[start]: cost(grid[start])}, start
        while True:
            around = [j for j in (k - 1, k + 1) if 0 <= j < len(grid)]
            if not around:
                break
            for j in around:
                if grid[j] not in costs:
                    costs[grid[j]] = cost(grid[j])
            j = min(around, key=lambda i: costs[grid[i]])
            if costs[grid[j]] >= costs[grid[k]]:
                break
            k = j
    for neighbour in grid[max(k - 1, 0):k] + grid[k + 1:k + 2]:
        middle = 0.5 * (grid[k] + neighbour)
        costs[middle] = cost(middle)
    return float(min(costs, key=costs.__getitem__))


def _grid_index(grid, value) -> int:
    """The index of the largest value of an increasing ``grid`` not above ``value``."""
    return max(int(np.searchsorted(grid, value, side="right")) - 1, 0)


@dataclass(frozen=True)
class _StatePrior:
    """A conditional prior's latents at one state point, as :class:`SampleJudge` draws them."""

    by_state: object  # a ConditionalPrior
    state: tuple

    def scaled(self, factor: float) -> _StatePrior:
        return _StatePrior(self.by_state.scaled(factor), self.state)

    def sample_labelled(self, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
        return self.by_state.sample_labelled(n, *self.state, rng)


def disorder_between(trained, gamma: float,
                     temperature: float) -> tuple[float, float] | None:
    """(spread factor, noise width) for a conditional model's samples at (gamma, T) between
    trained state points, drawn and decoded there: the walk of :func:`noise_walk` over
    :data:`SPREAD_FACTORS`, judged against the two trained state points' training ensembles
    Boltzmann reweighted to (gamma, T), contacts pushed as the path interpolates, on a
    random stream of the model's own (its training seed), so that a model generates alike
    whatever seed its samples are drawn with. None where there is nothing to judge against:
    not between trained state points, ensembles without energies or nearest-neighbour
    distances (models saved before they were kept), or too few effective configurations."""
    by_state = trained.conditional_prior
    there = None if by_state is None else by_state.reweighted(gamma, temperature)
    if there is None or there.neighbours is None or by_state.extrapolates(gamma, temperature):
        return None
    here, per_particle = (float(gamma), float(temperature)), there.heights.shape[1]
    draws = np.random.default_rng([int(trained.settings.seed), 3]).integers(2**31)
    judge = SampleJudge(
        trained, _StatePrior(by_state, here), here, here[0], there.height_quantiles(),
        there.energies_per_particle(here[0]), there.neighbours.ravel().astype(np.float64),
        int(draws), WALK_SAMPLES, there.weights, np.repeat(there.weights, per_particle))
    contact = by_state.contact_distance(gamma, temperature)
    _, spread, width, _ = judge.walk(contact, REWEIGHTED_TOLERANCE, SPREAD_FACTORS)
    return round(spread, 6), width  # a midpoint such as 0.65 without its float tail
