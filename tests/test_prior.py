"""The generation prior is always a valid density: sampled, scored and refined without a
Cholesky failure, whatever the latent directions the encoder leaves unused."""

import numpy as np

from ljvae_core.priors import COVARIANCE_FLOOR, LatentPrior, positive_definite


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
