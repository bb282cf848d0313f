"""The generation prior is always a valid density: sampled, scored and refined without a
Cholesky failure, whatever the latent directions the encoder leaves unused."""

import numpy as np
import pytest

from ljvae_core.priors import COVARIANCE_FLOOR, LatentPrior, positive_definite
from ljvae_core.system import System


def _least_eigenvalue(prior):
    return np.linalg.eigvalsh(prior.covariances).min()


def test_an_indefinite_covariance_becomes_the_nearest_valid_one():
    # What float32 rounding left in a saved refined prior: one eigenvalue just below zero.
    vectors = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
    cov = vectors @ np.diag([0.2, 1e-3, -1e-17]) @ vectors.T
    prior = LatentPrior(np.ones(1), np.zeros((1, 3)), cov[None])
    assert _least_eigenvalue(prior) >= COVARIANCE_FLOOR * (1 - 1e-9)
    # Only the offending direction moved.
    assert np.allclose(prior.covariances[0], cov, atol=2 * COVARIANCE_FLOOR)
    z = prior.sample(1000, np.random.default_rng(1))
    assert np.isfinite(z).all() and np.isfinite(prior.log_likelihood(z[:20])).all()
    # A loaded prior is repaired the same way.
    again = LatentPrior.from_dict({"weights": np.ones(1), "means": np.zeros((1, 3)),
                                   "covariances": cov[None]})
    assert np.allclose(again.covariances, prior.covariances)


def test_valid_covariances_are_left_alone():
    cov = np.array([[[1.0, 0.3], [0.3, 0.5]], [[0.1, 0.0], [0.0, 2.0]]])
    assert np.array_equal(positive_definite(cov, COVARIANCE_FLOOR), cov)


def test_refining_keeps_unused_latent_directions_above_the_floor():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    # Five latent directions the encoder does not use: every posterior mean has the same value.
    latent = np.column_stack([rng.normal(size=(2000, 3)), np.full((2000, 5), 0.3)])
    plain = LatentPrior.fit(latent, components=4)
    refined = plain.refine(lambda z: tf.zeros(tf.shape(z)[:1]), latent, 1.0, steps=300)
    assert _least_eigenvalue(refined) >= COVARIANCE_FLOOR * (1 - 1e-9)
    np.linalg.cholesky(refined.covariances)
    z = refined.sample(2000, np.random.default_rng(2))
    # The used directions keep their spread, the unused ones stay where the data is.
    assert np.allclose(z[:, :3].std(axis=0), 1.0, atol=0.1)
    assert np.allclose(z[:, 3:].mean(axis=0), 0.3, atol=0.05)


class _PairDecoder:
    """A stand-in model decoding latent z (M, 1) into a pair of particles 1.3 + z apart."""

    system = System(box=None, dim=3)

    def decode(self, z, gamma=None, temperature=None):
        r = 1.3 + np.asarray(z)[:, 0]
        pair = np.zeros((len(r), 2, 3))
        pair[:, 1, 0] = r
        return pair


def test_the_calibrated_scale_makes_decoded_energies_those_of_the_data():
    from ljvae_core.calibration import PRIOR_SCALES, calibrated_scale
    from ljvae_core.priors import LatentPrior

    # The data's pair distances spread 0.7 times as much as the prior's latent.
    rng = np.random.default_rng(0)
    r = 1.3 + 0.7 * 0.1 * rng.normal(size=4000)
    data = np.zeros((4000, 2, 3))
    data[:, 1, 0] = r
    prior = LatentPrior(np.ones(1), np.zeros((1, 1)), np.full((1, 1, 1), 0.1**2))
    scale = calibrated_scale(_PairDecoder(), prior, data, n=4000)
    assert scale == pytest.approx(0.7, abs=0.051) and scale in PRIOR_SCALES
    # A prior as spread as the data keeps its spread.
    assert calibrated_scale(_PairDecoder(), prior.scaled(0.7), data, n=4000) == 1.0
    # Scaling keeps the components and narrows each of them.
    narrow = prior.scaled(0.5)
    assert np.allclose(narrow.covariances, 0.25 * prior.covariances)
    assert np.allclose(narrow.sample(5, np.random.default_rng(1)),
                       0.5 * prior.sample(5, np.random.default_rng(1)))


class _StandingPair(_PairDecoder):
    """A pair 1.3 apart at height 0.5 + z: only gravity tells its samples apart."""

    def decode(self, z, gamma=None, temperature=None):
        pair = np.zeros((len(z), 2, 3))
        pair[:, 1, 0] = 1.3
        pair[:, :, 2] = 0.5 + np.asarray(z)[:, :1]
        return pair


def test_a_prior_of_one_state_point_is_scaled_on_the_total_energy_there():
    from ljvae_core.calibration import calibrated_scale
    from ljvae_core.priors import LatentPrior

    # The data's heights spread 0.6 times as much as the prior's latent; LJ is the same.
    data = _StandingPair().decode(0.6 * 0.1 * np.random.default_rng(0).normal(size=(4000, 1)))
    prior = LatentPrior(np.ones(1), np.zeros((1, 1)), np.full((1, 1, 1), 0.1**2))
    scale = calibrated_scale(_StandingPair(), prior, data, n=4000, gamma=2.0, temperature=1.0)
    assert scale == pytest.approx(0.6, abs=0.051)


def test_a_refinement_that_diverges_keeps_the_fit():
    import tensorflow as tf

    from ljvae_core.priors import LatentPrior

    latent = np.random.default_rng(0).normal(size=(200, 3))
    plain = LatentPrior.fit(latent, components=2)
    # A decoder trained for a few epochs can make a penalty whose gradients overflow.
    refined = plain.refine(lambda z: np.nan * tf.reduce_sum(z, axis=-1), latent, 1.0, steps=5)
    assert refined is plain
