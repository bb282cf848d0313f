"""The classifier two-sample test: chance on two halves of one Monte Carlo ensemble, near
certainty on two state points, and in between for a mild difference."""

import numpy as np
import pytest

from ljvae_core.sampling import SimulationParams, simulate
from ljvae_core.system import System
from ljvae_core.twosample import classifier_auc, configuration_features

BOX = 5.0
SYSTEM = System(box=BOX, dim=3)


@pytest.fixture(scope="module")
def ensembles():
    data = simulate(SimulationParams(n_particles=16, dim=3, box=BOX, gammas=(0.0, 2.0),
                                     n_samples=600, n_chains=2, seed=3))
    return {g: data.coords[data.gamma == g] for g in (0.0, 2.0)}


def test_features_do_not_depend_on_the_particle_order(ensembles):
    coords = ensembles[0.0][:5]
    shuffled = coords[:, np.random.default_rng(0).permutation(coords.shape[1])]
    assert np.allclose(configuration_features(coords, SYSTEM),
                       configuration_features(shuffled, SYSTEM))
    assert configuration_features(coords, SYSTEM).shape == (5, 3 * coords.shape[1])


def test_two_halves_of_one_ensemble_are_at_chance(ensembles):
    coords = ensembles[0.0]
    auc = classifier_auc(coords[::2], coords[1::2], SYSTEM)
    assert 0.35 < auc < 0.65


def test_two_state_points_are_told_apart(ensembles):
    assert classifier_auc(ensembles[0.0], ensembles[2.0], SYSTEM) > 0.95


def test_mean_shapes_without_fluctuations_are_told_apart(ensembles):
    # Every configuration pulled halfway to the ensemble's mean profile: too regular.
    coords = ensembles[0.0]
    order = np.argsort(coords[..., -1], axis=1)
    sorted_coords = np.take_along_axis(coords, order[..., None], axis=1)
    smooth = 0.5 * (sorted_coords + sorted_coords.mean(axis=0, keepdims=True))
    assert classifier_auc(smooth[::2], coords[1::2], SYSTEM) > 0.8


def test_too_few_configurations_are_refused(ensembles):
    with pytest.raises(ValueError, match="at least 5 configurations"):
        classifier_auc(ensembles[0.0][:3], ensembles[2.0][:3], SYSTEM)


class _Unseen:
    """A stand-in model that was not trained on the dataset: every configuration is held out."""

    def trained_on(self, dataset):
        return False


def test_an_unconditional_models_reference_spans_every_state_point():
    from ljvae_core.statepoints import pooled_monte_carlo_pair

    data = simulate(SimulationParams(n_particles=6, dim=2, box=BOX, gammas=(0.0, 2.0),
                                     n_samples=20, n_chains=1, seed=4))
    pair = pooled_monte_carlo_pair(_Unseen(), data, 15, seed=1)
    assert len(pair.reference) == len(pair.second) == 15
    rows = {c.tobytes(): g for c, g in zip(data.coords, data.gamma, strict=True)}
    picked = [[rows[c.tobytes()] for c in part] for part in (pair.reference, pair.second)]
    assert all(set(gammas) == {0.0, 2.0} for gammas in picked)
    assert not {c.tobytes() for c in pair.reference} & {c.tobytes() for c in pair.second}
