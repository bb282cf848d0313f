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
