"""The free cluster's Metropolis chain: its running energy, its target distribution (exact for
two particles, the published split's for LJ13), its seeding."""

import numpy as np
import pytest
from scipy.integrate import quad

from ljvae_core.cluster_mc import ClusterSampler
from ljvae_core.lj13 import reference_clusters
from ljvae_core.potential import cluster_energies
from ljvae_core.sampling import tune_step_size


def test_running_energy_is_the_published_energy_of_the_centred_cluster():
    start = reference_clusters()[3] + 5.0
    chain = ClusterSampler(start, temperature=1.0, step_size=0.15, seed=1)
    trace, snapshots = chain.run(50)
    assert snapshots.shape == (0, 13, 3) and 0.2 < chain.acceptance < 0.8
    assert np.abs(chain.positions.mean(axis=0)).max() < 1e-12
    exact = cluster_energies(chain.positions, ordered_pairs=True)[0]
    assert trace[-1] == pytest.approx(exact, rel=1e-9, abs=1e-9)


def test_two_particles_follow_their_boltzmann_density_with_pairs_counted_twice():
    # In 1D the separation s of two tethered particles has density
    # exp(-(2 u(|s|) + s^2 / 4) / T): the tether 1/2 sum |x - x_mean|^2 is s^2 / 4. The
    # chance of s lying in the well (below 1.2) is 0.56 so; with the pair once, 0.40.
    def weight(s):
        r6 = abs(s) ** -6.0
        return np.exp(-(2.0 * (r6 * r6 - 2.0 * r6) + 0.25 * s * s))

    exact = quad(weight, 0.6, 1.2, points=[1.0])[0] / quad(weight, 0.6, 12.0, points=[1.0])[0]
    chain = ClusterSampler(np.array([[0.0], [1.2]]), 1.0, step_size=0.5, seed=3)
    chain.run(1000, trace=False)
    inside = []
    for _ in range(40_000):
        chain.run(2, trace=False)
        inside.append(np.ptp(chain.positions) < 1.2)
    blocks = np.asarray(inside, dtype=float).reshape(40, -1).mean(axis=1)
    assert abs(blocks.mean() - exact) < 5 * blocks.std() / np.sqrt(len(blocks))


def test_lj13_chains_reproduce_the_published_split_energies():
    reference = reference_clusters()
    energies = cluster_energies(reference, ordered_pairs=True)
    means = []
    for seed in range(4):
        chain = ClusterSampler(reference[seed], 1.0, 0.2, seed=seed)
        tune_step_size(chain, 0.4, 200)
        means.append(chain.run(40_000)[0][1000:].mean())
    # Four independent chains of about 250 energy autocorrelation times each.
    error = np.hypot(np.std(means) / np.sqrt(len(means)), energies.std() / np.sqrt(len(energies)))
    assert abs(np.mean(means) - energies.mean()) < 4 * error + 0.05
    # Pairs counted once would put the chain near a mean energy of -17, the tether alone at +18.
    assert abs(np.mean(means) - energies.mean()) < 1.0


def test_the_same_seed_gives_the_same_chain():
    start = reference_clusters()[0]
    runs = [ClusterSampler(start, 1.0, 0.2, seed=7) for _ in range(2)]
    for chain in runs:
        chain.run(100)
    assert np.array_equal(runs[0].positions, runs[1].positions)
    other = ClusterSampler(start, 1.0, 0.2, seed=8)
    other.run(100)
    assert not np.array_equal(other.positions, runs[0].positions)


def test_a_cluster_is_one_finite_array():
    with pytest.raises(ValueError, match="finite"):
        ClusterSampler(np.full((13, 3), np.nan))
