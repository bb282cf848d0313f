import numpy as np
import pytest

from ljvae_core.potential import total_energy
from ljvae_core.sampling import SimulationParams, simulate
from ljvae_core.system import System


def test_a_dataset_knows_the_system_it_was_simulated_in():
    ds = simulate(SimulationParams(n_particles=6, dim=3, box=6.0, gammas=(0.5,), n_samples=20,
                                   n_chains=2, periodic="XY", cutoff=2.5, seed=1))
    system = ds.system
    assert system == System(box=6.0, dim=3, periodic="xy", cutoff=2.5)
    assert system.mask.tolist() == [1.0, 1.0, 0.0]
    assert system.walls_up and not system.walls_across
    assert system.cutoff_squared == pytest.approx(6.25)
    # Its energies are the potential's, configuration by configuration.
    by_one = [total_energy(x, 6.0, 0.5, "xy", 2.5)["total"] for x in ds.coords[:3]]
    assert np.allclose(system.energies(ds.coords[:3], 0.5), by_one)


def test_walls_follow_the_periodic_axes():
    assert System(5.0, 2).walls_up and System(5.0, 2).walls_across
    assert not System(5.0, 2, periodic="y").walls_up
    assert System(5.0, 3, periodic="").cutoff_squared == np.inf


def test_a_free_cluster_has_no_box_and_its_own_potential():
    from scipy.spatial.transform import Rotation

    from ljvae_core.analysis import valid_fraction
    from ljvae_core.potential import LJ13_SIGMA
    from ljvae_core.twosample import configuration_features

    cluster = System(box=None, dim=3, potential="lj13")
    assert cluster.free and cluster.sigma == LJ13_SIGMA
    assert System.from_params({"box": None, "dim": 3, "potential": "lj13"}) == cluster
    with pytest.raises(ValueError, match="no periodic axis"):
        System(box=None, dim=3, periodic="x")
    with pytest.raises(ValueError, match="unknown potential"):
        System(box=5.0, dim=3, potential="morse")
    coords = np.random.default_rng(0).normal(0, 1.0, (4, 13, 3))
    turned = Rotation.random(random_state=1).apply(coords.reshape(-1, 3)).reshape(coords.shape)
    moved = turned[:, np.random.default_rng(2).permutation(13)] + 7.0
    # What judges an ensemble of clusters sees neither where it is, nor how it is turned or
    # numbered.
    assert np.allclose(configuration_features(coords, cluster),
                       configuration_features(moved, cluster))
    assert np.allclose(cluster.energies(coords), cluster.energies(moved))
    # Overlaps are judged at 0.8 of the cluster's sigma.
    pair = np.array([[[0.0, 0, 0], [0.75, 0, 0]]])
    assert valid_fraction(pair, cluster) == 1.0
    assert valid_fraction(pair, System(box=None, dim=3)) == 0.0
