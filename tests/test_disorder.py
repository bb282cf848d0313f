"""What generation puts back into decoded mean shapes (ljvae_core.disorder) and how a
conditional prior places it between state points."""

import numpy as np
import pytest

from ljvae_core.disorder import (
    HEIGHT_LEVELS,
    Reweighted,
    ensemble,
    height_quantiles,
    jitter,
    map_heights,
)
from ljvae_core.priors import ConditionalPrior, KernelPrior
from ljvae_core.system import System

BOX = 5.0


def _barometric(gamma, n, particles=4, seed=0, temperature=1.0):
    """Configurations (n, particles, 3) of an ideal gas in the field: every height an
    independent draw of the truncated exponential of rate 4 gamma / T on [0, BOX]."""
    rng = np.random.default_rng(seed)
    rate = 4.0 * gamma / temperature
    u = rng.random((n, particles))
    h = -np.log1p(-u * (1.0 - np.exp(-rate * BOX))) / rate
    x = rng.random((n, particles, 3)) * BOX
    x[..., 2] = h
    return x


def _barometric_quantiles(gamma, temperature=1.0):
    rate = 4.0 * gamma / temperature
    # The top level's exp(-rate BOX) can round to 0, which puts it at BOX.
    with np.errstate(divide="ignore"):
        return np.minimum(-np.log1p(-HEIGHT_LEVELS * (1.0 - np.exp(-rate * BOX))) / rate, BOX)


def _gas_ensemble(gamma, n=4000, seed=0):
    coords = _barometric(gamma, n, seed=seed)
    energy = 4.0 * gamma * coords[..., 2].sum(axis=1)  # an ideal gas: the field alone
    return ensemble(coords, energy, gamma, neighbours=coords[..., 0])


def reweighted_quantiles(ensembles, conditions, target):
    there = Reweighted.at(ensembles, conditions, target)
    return None if there is None else there.height_quantiles()


def test_mapped_heights_take_the_target_distribution_and_keep_their_order():
    source = _barometric(2.0, 3000, seed=1)
    mapped = map_heights(source, height_quantiles(source[..., 2]), _barometric_quantiles(1.0),
                         BOX)
    fresh = _barometric(1.0, 3000, seed=2)[..., 2]
    floor = np.abs(height_quantiles(fresh) - _barometric_quantiles(1.0)).mean()
    assert np.abs(height_quantiles(mapped[..., 2]) - _barometric_quantiles(1.0)).mean() \
        <= 2 * floor + 1e-3
    # Monotone: within every configuration the particles keep their order in height.
    assert (np.argsort(mapped[..., 2], axis=1) == np.argsort(source[..., 2], axis=1)).all()
    assert np.array_equal(mapped[..., :2], source[..., :2])


def test_a_height_outside_the_box_is_not_mapped_into_it():
    x = _barometric(1.0, 10)
    x[0, 0, 2] = -0.3
    mapped = map_heights(x, height_quantiles(x[..., 2]), _barometric_quantiles(2.0), BOX)
    assert mapped[0, 0, 2] == -0.3


def test_jitter_has_its_width_and_keeps_walls_and_periodic_axes():
    rng = np.random.default_rng(0)
    system = System(box=BOX, dim=3, periodic="x")
    x = rng.random((2000, 5, 3)) * BOX
    x[0, 0] = [4.99, 2.5, 0.001]  # at the periodic axis' end and on the floor
    x[1, 0, 1] = 5.5  # outside a wall: stays there, to be counted invalid
    out = jitter(x, 0.05, system, np.random.default_rng(1))
    assert np.array_equal(jitter(x, 0.0, system, rng), x)
    assert out[1, 0, 1] == 5.5
    inside = np.ones(x.shape[:2], bool)
    inside[1, 0] = False
    assert ((out[inside] >= 0) & (out[inside] <= BOX)).all()
    middle = (x[..., 1] > 0.5) & (x[..., 1] < BOX - 0.5)
    assert np.std(out[..., 1][middle] - x[..., 1][middle]) == pytest.approx(0.05, rel=0.05)
    assert 0.0 <= out[0, 0, 0] < BOX


def test_reweighting_two_ensembles_gives_the_height_distribution_between_them():
    ensembles = [_gas_ensemble(1.0, seed=3), _gas_ensemble(2.0, seed=4)]
    conditions = np.array([[1.0, 1.0], [2.0, 1.0]])
    quantiles = reweighted_quantiles(ensembles, conditions, (1.5, 1.0))
    exact = _barometric_quantiles(1.5)
    sampled = height_quantiles(_barometric(1.5, 4000, seed=5)[..., 2])
    floor = np.abs(sampled - exact).mean()
    assert np.abs(quantiles - exact).mean() <= 2 * floor + 1e-3
    # At a temperature instead: gamma 2 at T = 4/3 is the same gas as gamma 1.5 at T = 1.
    warmer = reweighted_quantiles(ensembles, conditions, (2.0, 4.0 / 3.0))
    assert np.abs(warmer - exact).mean() <= 2 * floor + 1e-3


def _harmonic(gamma, temperature, n, seed, stiffness=40.0, particles=4):
    """Configurations whose heights are independent draws of p(h) ~ exp(-(4 gamma h + k h^2)
    / T) on [0, BOX] (an internal energy k h^2 per particle that depends on the height), with
    their total energies; and the exact quantiles of p."""
    grid = np.linspace(0.0, BOX, 20001)
    density = np.exp(-(4.0 * gamma * grid + stiffness * grid**2) / temperature)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]))])
    cdf /= cdf[-1]
    rng = np.random.default_rng(seed)
    x = rng.random((n, particles, 3)) * BOX
    x[..., 2] = np.interp(rng.random((n, particles)), cdf, grid)
    h = x[..., 2]
    energy = (4.0 * gamma * h + stiffness * h**2).sum(axis=1)
    return x, energy, np.interp(HEIGHT_LEVELS, cdf, grid)


def test_reweighting_weighs_the_internal_energy_at_the_target_temperature():
    ensembles, conditions = [], np.array([[1.0, 1.0], [2.0, 1.0]])
    for k, (gamma, temperature) in enumerate(conditions):
        coords, energy, _ = _harmonic(gamma, temperature, 4000, seed=10 + k)
        ensembles.append(ensemble(coords, energy, gamma))
    inner = slice(2, -2)  # the extreme quantiles are the noisiest
    for target in ((1.5, 1.0), (2.0, 1.6)):
        exact = _harmonic(*target, 4000, seed=20)[2][inner]
        sampled = height_quantiles(_harmonic(*target, 4000, seed=21)[0][..., 2])[inner]
        floor = np.abs(sampled - exact).mean()
        quantiles = reweighted_quantiles(ensembles, conditions, target)[inner]
        # Leaving the internal energy out misses (2, 1.6) by ten times as much.
        assert np.abs(quantiles - exact).mean() <= 4 * floor + 1e-3


def test_reweighting_refuses_where_the_ensembles_do_not_reach_or_energies_are_unknown():
    ensembles = [_gas_ensemble(1.0, seed=3), _gas_ensemble(2.0, seed=4)]
    conditions = np.array([[1.0, 1.0], [2.0, 1.0]])
    assert reweighted_quantiles(ensembles, conditions, (40.0, 1.0)) is None
    unknown = [ensemble(_barometric(1.0, 100), None, 1.0), ensembles[1]]
    assert reweighted_quantiles(unknown, conditions, (1.5, 1.0)) is None


def test_reweighted_energies_and_neighbour_distances_are_those_of_the_target():
    from scipy.stats import wasserstein_distance

    ensembles = [_gas_ensemble(1.0, seed=3), _gas_ensemble(2.0, seed=4)]
    there = Reweighted.at(ensembles, np.array([[1.0, 1.0], [2.0, 1.0]]), (1.5, 1.0))
    fresh = [_barometric(1.5, 4000, seed=s) for s in (5, 6)]
    energies = [4.0 * 1.5 * x[..., 2].mean(axis=1) for x in fresh]  # per particle
    floor = wasserstein_distance(*energies)
    gap = wasserstein_distance(there.energies_per_particle(1.5), energies[0], there.weights)
    assert gap <= 3 * floor + 1e-3
    # An ideal gas's heights are its energy: at the wrong field strength the gap is large.
    assert wasserstein_distance(there.energies_per_particle(1.0), energies[0],
                                there.weights) > 10 * floor
    # What the ensembles keep per particle travels with its configuration's weight.
    assert there.neighbours.shape == there.heights.shape
    kept = np.concatenate([e["neighbours"] for e in ensembles])
    assert np.array_equal(there.neighbours, kept)
    assert ensemble(fresh[0], None, 1.5)["neighbours"] is None


def _prior(ensembles=None, noise=None):
    kernels = [KernelPrior.fit(np.random.default_rng(k).normal(size=(50, 2))) for k in range(2)]
    return ConditionalPrior([(1.0, 1.0), (2.0, 1.0)], kernels, noise=noise,
                            ensembles=ensembles)


def test_a_conditional_prior_maps_heights_onto_its_state_points_and_between_them(
        monkeypatch):
    ensembles = [_gas_ensemble(1.0, seed=3), _gas_ensemble(2.0, seed=4)]
    prior = ConditionalPrior.from_dict(_prior(ensembles).to_dict())
    anchor, trained = prior.height_target(2.0, 1.0)
    assert anchor == (2.0, 1.0)
    assert np.allclose(trained, height_quantiles(ensembles[1]["heights"]))
    anchor, between = prior.height_target(1.5, 1.0)
    assert anchor == (1.5, 1.0)
    conditions = np.array([[1.0, 1.0], [2.0, 1.0]])
    assert np.allclose(between, reweighted_quantiles(ensembles, conditions, (1.5, 1.0)))
    # Where the trained ensembles do not reach, the nearest trained state point's map.
    monkeypatch.setattr("ljvae_core.disorder.MIN_EFFECTIVE", 10**9)
    anchor, past = prior.height_target(2.9, 1.0)
    assert anchor == (2.0, 1.0) and np.array_equal(past, trained)
    anchor, near = prior.height_target(1.2, 1.0)
    assert anchor == (1.0, 1.0)
    assert np.allclose(near, height_quantiles(ensembles[0]["heights"]))
    assert _prior().height_target(1.5, 1.0) is None


def test_the_noise_width_runs_linearly_between_state_points_and_stays_past_them():
    prior = _prior(noise=np.array([0.01, 0.03]))
    assert prior.noise_width(1.0, 1.0) == pytest.approx(0.01)
    assert prior.noise_width(1.5, 1.0) == pytest.approx(0.02)
    assert prior.noise_width(2.5, 1.0) == pytest.approx(0.03)
    assert _prior().noise_width(1.5, 1.0) == 0.0
    pushed = ConditionalPrior.from_dict({**prior.to_dict(), "contacts": np.array([1.06, 1.1])})
    assert pushed.contact_distance(1.5, 1.0) == pytest.approx(1.08)
    assert pushed.contact_distance(2.5, 1.0) == pytest.approx(1.1)
    assert prior.contact_distance(1.5, 1.0) is None


def test_the_reconstruct_page_says_what_generation_put_back(monkeypatch):
    from ljvae_ui.judging import disorder_caption

    ensembles = [_gas_ensemble(1.0, seed=3), _gas_ensemble(2.0, seed=4)]
    prior = _prior(ensembles, noise=np.array([0.01, 0.03]))
    assert disorder_caption(prior, 2.0, 1.0) == (
        "Decoded, the samples got 0.03σ of noise on every coordinate and heights mapped onto "
        "this state point's training heights.")
    assert "γ = 1, T = 1 and γ = 2, T = 1, Boltzmann-reweighted" in disorder_caption(
        prior, 1.5, 1.0)
    # Between trained state points, the spread and the width the walk chose there.
    assert disorder_caption(prior, 1.5, 1.0, disorder=(0.65, 0.035)).startswith(
        "Decoded from latents drawn at 0.65 of the trained spread, the samples got 0.035σ of "
        "noise on every coordinate and heights mapped")
    monkeypatch.setattr("ljvae_core.disorder.MIN_EFFECTIVE", 10**9)
    assert disorder_caption(prior, 2.9, 1.0).endswith(
        "heights mapped onto the training heights of γ = 2, T = 1, the nearest.")
    assert disorder_caption(_prior(), 1.5, 1.0) == ""
    pushed = ConditionalPrior(prior.conditions, prior.priors, noise=prior.noise,
                              contacts=np.array([1.06, 1.09]))
    assert disorder_caption(pushed, 2.0, 1.0, hard_core=1.06) == (
        "Decoded, the samples got contacts pushed out to 1.09σ and 0.03σ of noise on every "
        "coordinate.")
    assert disorder_caption(None, 1.5, 1.0) == ""


def test_a_minimum_searched_from_a_start_is_the_grid_search_s():
    from ljvae_core.noise_walk import finest_minimum

    grid = [0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8]
    seen = []

    def cost(b):
        seen.append(b)
        return (b - 0.27) ** 2

    assert finest_minimum(grid, cost, start=7) == finest_minimum(grid, cost) == 0.25
    assert finest_minimum([0.3], cost, start=0) == 0.3
    seen.clear()
    finest_minimum(grid, cost, start=4)
    assert len(set(seen)) < len(grid)  # it does not try them all


def test_the_noise_walk_matches_the_energy_at_each_width_and_stops_where_neighbours_part():
    from ljvae_core.noise_walk import NOISE_WIDTHS, noise_walk

    # A toy response: the energy rises with the noise and with the spread; the samples'
    # nearest-neighbour distances are closest to the reference's at a width of 0.03.
    def energy_gap(spread, width):
        return abs(40.0 * width + spread - 1.8)

    def neighbour_gap(spread, width):
        return abs(width - 0.03) + 0.001 * spread

    spreads = (0.2, 0.4, 0.6, 0.8, 1.0, 1.2)
    gap, spread, width, stuck = noise_walk(energy_gap, neighbour_gap, 0.0, spreads)
    assert width == 0.03 and not stuck
    assert spread == pytest.approx(0.6)  # 40 * 0.03 + 0.6 = 1.8
    # Where even the least spread cannot pay for more noise (here from 0.03 on), the walk
    # keeps the width before and says so.
    gap, spread, width, stuck = noise_walk(lambda b, w: abs(60.0 * w + b - 1.8),
                                           neighbour_gap, 0.0, spreads)
    assert stuck and width == NOISE_WIDTHS[NOISE_WIDTHS.index(0.03) - 1]
    assert spread == pytest.approx(1.8 - 60.0 * width)


def test_each_group_of_configurations_is_mapped_with_its_own_source():
    from ljvae_core.disorder import grouped_quantiles, map_grouped

    tall, low = _barometric(0.5, 2000, seed=7), _barometric(2.0, 2000, seed=8)
    coords, groups = np.concatenate([tall, low]), np.repeat([0, 1], 2000)
    target = _barometric_quantiles(1.0)
    sources = grouped_quantiles(coords, groups, BOX)
    assert set(sources) == {None, 0, 1}
    floor = np.abs(height_quantiles(_barometric(1.0, 2000, seed=9)[..., 2]) - target).mean()
    apart = map_grouped(coords, groups, sources, target, BOX)
    together = map_grouped(coords, groups, {None: sources[None]}, target, BOX)
    for g in (0, 1):
        # Each group takes the target; one map for both leaves the tall group tall.
        gap = np.abs(height_quantiles(apart[groups == g][..., 2]) - target).mean()
        assert gap <= 2 * floor + 1e-3
    assert height_quantiles(together[groups == 0][..., 2])[100] > 1.5 * target[100]
