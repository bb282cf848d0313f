"""g(r), distribution distances and structure statistics."""

import numpy as np
import pytest

from ljvae_core.analysis import (
    STRUCTURE_MIN_CONFIGURATIONS,
    STRUCTURE_PAIRS,
    compare_distributions,
    energies_per_particle,
    nearest_neighbour_distances,
    radial_distribution,
    structure_statistics,
    structure_subset,
    uniform_pair_distance_probability,
    valid_fraction,
)
from ljvae_core.geometry import pairwise_distances
from ljvae_core.potential import periodic_mask, total_energy
from ljvae_core.sampling import SimulationParams, simulate
from ljvae_core.system import System


def _box(length, dim=3, periodic=""):
    return System(box=length, dim=dim, periodic=periodic)


@pytest.mark.parametrize("dim,periodic", [(3, ""), (2, ""), (3, "xy"), (2, "x")])
def test_ideal_gas_has_flat_g_of_r_in_any_box(dim, periodic):
    rng = np.random.default_rng(0)
    gas = rng.uniform(0, 4.0, (3000, 20, dim))
    rdf = radial_distribution(gas, _box(4.0, dim, periodic), r_max=3.0 if not periodic else 2.0,
                              bins=15)
    # Pair counts are Poisson around the uniform expectation: z-scores stay small.
    expected = rdf.pair_counts * rdf.configurations / rdf.g
    assert np.all(np.abs(rdf.g - 1) * np.sqrt(expected) < 4.5)
    assert abs(rdf.g.mean() - 1) < 0.02


@pytest.mark.parametrize("dim", [2, 3])
def test_pair_distance_probability_integrates_to_one_and_matches_shells(dim):
    box = 3.0
    edges = np.linspace(0, box * np.sqrt(dim), 301)
    for periodic in ("", "x", "xyz"[:dim]):
        assert uniform_pair_distance_probability(edges, box, dim, periodic).sum() == (
            pytest.approx(1.0, abs=2e-3))
    # Beyond L/2 the fully periodic case is integrated numerically; below it, it must agree
    # with the exact shell volumes.
    numeric = uniform_pair_distance_probability(edges, box, dim, "xyz"[:dim])
    below = edges[1:] <= box / 2
    exact = uniform_pair_distance_probability(edges[: below.sum() + 1], box, dim, "xyz"[:dim])
    assert np.allclose(numeric[below], exact, rtol=1e-6, atol=1e-12)


def test_g_of_r_matches_freud_on_a_periodic_box():
    import freud
    rng = np.random.default_rng(1)
    box = 8.0
    # A structured (non-ideal) configuration: a jittered lattice.
    grid = np.stack(np.meshgrid(*[np.arange(8) + 0.5] * 3, indexing="ij"), -1).reshape(-1, 3)
    frames = (grid[None] + rng.normal(0, 0.05, (5, len(grid), 3))) % box
    ours = radial_distribution(frames, _box(box, 3, "xyz"), r_max=3.5, bins=35)
    fbox = freud.box.Box.cube(box)
    theirs = freud.density.RDF(bins=35, r_max=3.5)
    for frame in frames:
        theirs.compute(system=(fbox, (frame - box / 2).astype(np.float32)), reset=False)
    assert np.allclose(ours.r, theirs.bin_centers, atol=1e-6)
    # freud normalizes by N^2 rather than N(N-1): correct for it, then compare.
    n = len(grid)
    assert np.allclose(ours.g * (n - 1) / n, theirs.rdf, atol=2e-3, rtol=2e-3)
    assert ours.g.max() > 2  # the lattice peak is there


def test_l1_distance_between_g_of_r_curves():
    rng = np.random.default_rng(2)
    a = radial_distribution(rng.uniform(0, 5, (200, 30, 3)), _box(5.0), bins=20)
    b = radial_distribution(rng.uniform(0, 5, (200, 30, 3)), _box(5.0), bins=20)
    assert a.l1_distance(a) == 0
    assert 0 < a.l1_distance(b) < 0.3
    with pytest.raises(ValueError, match="share their bins"):
        a.l1_distance(radial_distribution(rng.uniform(0, 5, (5, 30, 3)), _box(5.0), bins=10))


def test_nearest_neighbours_and_validity():
    X = np.array([[[0, 0, 0], [0.5, 0, 0], [3, 0, 0]], [[0, 0, 0], [1, 0, 0], [3, 0, 0]]],
                 dtype=float)
    nn = nearest_neighbour_distances(X, _box(10.0))
    assert np.allclose(nn, [[0.5, 0.5, 2.5], [1, 1, 2]])
    assert valid_fraction(X, _box(10.0)) == 0.5
    # Periodic images count.
    Y = np.array([[[0.2, 1, 1], [9.9, 1, 1]]])
    assert nearest_neighbour_distances(Y, _box(10.0, 3, "x"))[0, 0] == pytest.approx(0.3)


def test_energies_per_particle_agree_with_total_energy_and_are_capped():
    rng = np.random.default_rng(3)
    X = rng.uniform(0, 5, (4, 10, 3))
    e = energies_per_particle(X, _box(5.0), gamma=0.5)
    for m in range(4):
        assert e[m] == pytest.approx(min(total_energy(X[m], 5.0, 0.5)["total"] / 10, 1e3))
    X[0, 1] = X[0, 0]  # exact overlap: infinite energy
    assert energies_per_particle(X, _box(5.0))[0] == 1e3


def test_compare_distributions_separates_different_states():
    rng = np.random.default_rng(4)
    low = rng.uniform(0, 5, (300, 30, 3)) * [1, 1, 0.5]
    also_low = rng.uniform(0, 5, (300, 30, 3)) * [1, 1, 0.5]
    high = rng.uniform(0, 5, (300, 30, 3))
    same = compare_distributions(low, also_low, _box(5.0), gamma=1.0)
    different = compare_distributions(low, high, _box(5.0), gamma=1.0)
    for key in ("w1_energy_per_particle", "w1_nearest_neighbour", "w1_height", "rdf_l1"):
        assert 0 <= same[key] < different[key]
    # Uniform heights on [0, 2.5] vs [0, 5]: W1 = integral of |2.5u - 5u| du = 1.25.
    assert different["w1_height"] == pytest.approx(1.25, rel=0.1)
    assert 0 <= different["valid_fraction"] <= 1
    with pytest.raises(ValueError, match="differ in shape"):
        compare_distributions(low[:, :10], high, _box(5.0))


def test_structure_statistics_of_a_barometric_gas():
    rng = np.random.default_rng(5)
    rate, box = 2.0, 5.0
    # Inverse-CDF sampling of the truncated exponential.
    u = rng.uniform(size=(400, 10))
    z = -np.log1p(-u * -np.expm1(-rate * box)) / rate
    X = np.concatenate([rng.uniform(0, box, (400, 10, 2)), z[..., None]], axis=-1)
    stats = structure_statistics(X, _box(box), gamma=0.5, temperature=1.0)
    assert stats["barometric_rate_dilute"] == 2.0
    assert stats["barometric_rate_fit"] == pytest.approx(2.0, rel=0.05)
    assert stats["configurations"] == 400


@pytest.mark.parametrize("dim,periodic", [(3, ""), (3, "xyz"), (2, "x")])
def test_pair_counts_and_nearest_neighbours_match_all_distance_matrices(dim, periodic):
    rng = np.random.default_rng(6)
    X = rng.uniform(0, 5.0, (50, 25, dim))
    dist = pairwise_distances(X, 5.0, periodic_mask(periodic, dim))
    iu = np.triu_indices(25, k=1)
    rdf = radial_distribution(X, _box(5.0, dim, periodic), bins=40)
    direct = np.histogram(dist[:, iu[0], iu[1]].ravel(), bins=rdf.edges)[0]
    assert np.array_equal(np.rint(rdf.pair_counts * len(X)), direct)
    dist[:, np.arange(25), np.arange(25)] = np.inf
    nearest = nearest_neighbour_distances(X, _box(5.0, dim, periodic))
    assert np.array_equal(nearest, dist.min(axis=-1))
    # A broken (NaN) configuration has no nearest neighbour and is never valid.
    X[3, 7] = np.nan
    assert np.isnan(nearest_neighbour_distances(X, _box(5.0, dim, periodic))[3]).any()
    assert valid_fraction(X[3:4], _box(5.0, dim, periodic)) == 0.0


def test_lennard_jones_g_of_r_peaks_near_the_potential_minimum():
    params = SimulationParams(n_particles=30, dim=3, box=5.0, gammas=(0.0,), n_samples=300,
                              n_chains=2, seed=0, tune_sweeps=200, prelim_sweeps=500)
    ds = simulate(params)
    rdf = radial_distribution(ds.coords, ds.system, bins=60)
    assert rdf.r[np.argmax(rdf.g)] == pytest.approx(2 ** (1 / 6), abs=0.06)
    assert rdf.g.max() > 2
    assert np.all(rdf.g[rdf.r < 0.8] == 0)  # the hard core


def test_structure_subset_keeps_small_systems_whole_and_caps_large_ones_by_pairs():
    # The default system (30 particles, 435 pairs each): every configuration, in order.
    assert np.array_equal(structure_subset(1500, 30, 1500), np.arange(1500))
    assert np.array_equal(structure_subset(3000, 30, 1500), np.arange(1500) * 2)
    # 300 particles: a few million pairs, spread over the whole set (every chain).
    pairs = 300 * 299 // 2
    keep = structure_subset(1500, 300, 1500)
    assert len(keep) * pairs <= STRUCTURE_PAIRS < (len(keep) + 1) * pairs
    assert len(np.unique(keep)) == len(keep) and keep[0] == 0 and keep[-1] > 1400
    # Very large systems keep enough configurations for statistics over them.
    assert len(structure_subset(1500, 3000, 1500)) == STRUCTURE_MIN_CONFIGURATIONS
    assert len(structure_subset(40, 3000, 1500)) == 40
    assert len(structure_subset(0, 30, 1500)) == 0


def test_a_pair_capped_g_of_r_of_a_large_ideal_gas_is_still_flat():
    rng = np.random.default_rng(7)
    gas = rng.uniform(0, 10.0, (1500, 300, 3))
    rdf = radial_distribution(gas[structure_subset(1500, 300, 1500)], _box(10.0))
    expected = rdf.pair_counts * rdf.configurations / rdf.g
    assert np.all(np.abs(rdf.g - 1) * np.sqrt(expected) < 4.5)
    assert abs(rdf.g.mean() - 1) < 0.01
    assert np.abs(rdf.g - 1)[rdf.r > 1].max() < 0.05


def test_structure_by_condition_describes_each_state_point_on_its_own():
    from ljvae_core.analysis import structure_by_condition
    from ljvae_core.sampling import SimulationParams, simulate

    ds = simulate(SimulationParams(n_particles=12, dim=2, box=6.0, gammas=(0.0, 2.0),
                                   n_samples=60, n_chains=2, seed=5))
    parts = structure_by_condition(ds, max_configurations=40)
    assert [p["gamma"] for p in parts] == [0.0, 2.0]
    assert all(p["statistics"]["configurations"] == 40 for p in parts)
    # Gravity pulls the particles down; each condition's own configurations say so.
    assert parts[1]["statistics"]["height"] < 0.5 * parts[0]["statistics"]["height"]
    assert parts[1]["statistics"]["height"] == pytest.approx(
        ds.coords[ds.gamma == 2.0][..., -1].mean(), rel=0.2)


def test_height_response_of_an_ideal_gas_is_the_barometric_law_derivatives():
    from ljvae_core.analysis import height_response

    # Independent heights of rate 4 gamma / T (an ideal gas in a very tall box): <h> = T / 4
    # gamma, so d<h>/d gamma = -T / (4 gamma^2) and d<h>/dT = 1 / (4 gamma).
    gamma, temperature, n = 0.5, 1.5, 30
    z = np.random.default_rng(0).exponential(temperature / (4 * gamma), (40000, n, 1))
    coords = np.concatenate([np.zeros((40000, n, 2)), z], axis=-1)
    energy = 4 * gamma * z[..., 0].sum(axis=1)
    r = height_response(coords, energy, temperature)
    assert r.mean == pytest.approx(temperature / (4 * gamma), rel=0.01)
    assert r.d_gamma == pytest.approx(-temperature / (4 * gamma**2), rel=0.03)
    assert r.d_temperature == pytest.approx(1 / (4 * gamma), rel=0.03)
