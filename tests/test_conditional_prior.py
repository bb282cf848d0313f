"""The per-state-point generation prior draws the latents of the state point asked for, and
between trained state points follows the Gaussian optimal-transport path."""

import numpy as np
import pytest

from ljvae_core.priors import ConditionalPrior, LatentPrior, gaussian_moments, transport_map

GAMMAS = (0.0, 1.0, 2.0)


def _prior(scales):
    """One Gaussian per gamma: mean gamma * (3, -1), standard deviations ``scales[k]``."""
    priors = [LatentPrior(np.ones(1), np.array([[3.0 * g, -g]]), np.diag(np.square(s))[None])
              for g, s in zip(GAMMAS, scales, strict=True)]
    return ConditionalPrior(np.array([[g, 1.0] for g in GAMMAS]), priors)


def test_a_trained_state_point_draws_its_own_mixture_only():
    prior = _prior([(0.1, 0.1), (0.2, 0.2), (0.4, 0.4)])
    z = prior.sample(4000, 1.0, 1.0, np.random.default_rng(0))
    assert np.allclose(z.mean(axis=0), [3.0, -1.0], atol=0.02)
    assert np.allclose(z.std(axis=0), 0.2, rtol=0.05)


def test_between_state_points_the_moments_follow_the_wasserstein_geodesic():
    prior = _prior([(0.1, 0.3), (0.5, 0.1), (0.4, 0.4)])
    z = prior.sample(20000, 0.25, 1.0, np.random.default_rng(1))
    # A quarter of the way from gamma 0 to 1: means and (diagonal) standard deviations both
    # interpolate linearly along the geodesic between Gaussians.
    assert np.allclose(z.mean(axis=0), [0.75, -0.25], atol=0.02)
    assert np.allclose(z.std(axis=0), [0.2, 0.25], rtol=0.04)


def test_samples_may_be_drawn_at_one_state_point_each():
    prior = _prior([(0.1, 0.1)] * 3)
    gamma = np.repeat([0.0, 2.0], 500)
    z = prior.sample(1000, gamma, 1.0, np.random.default_rng(2))
    assert np.allclose(z[:500].mean(axis=0), [0.0, 0.0], atol=0.03)
    assert np.allclose(z[500:].mean(axis=0), [6.0, -2.0], atol=0.03)


def test_extrapolation_follows_the_last_segment_then_stops():
    prior = _prior([(0.1, 0.1), (0.2, 0.2), (0.3, 0.3)])
    assert prior.path(2.5, 1.0) == (1, 2, 1.5)
    assert prior.extrapolates(2.5, 1.0) and not prior.extrapolates(0.5, 1.0)
    z = prior.sample(5000, 2.5, 1.0, np.random.default_rng(3))
    assert np.allclose(z.mean(axis=0), [7.5, -2.5], atol=0.03)
    with pytest.raises(ValueError, match="too far from the state points"):
        prior.sample(10, 3.5, 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="too far"):
        prior.sample(10, -1.5, 1.0, np.random.default_rng(0))


def test_the_transport_map_pushes_one_gaussian_onto_the_other():
    rng = np.random.default_rng(4)
    a, b = (m @ m.T + 0.1 * np.eye(4) for m in rng.normal(size=(2, 4, 4)))
    t = transport_map(a, b)
    assert np.allclose(t @ a @ t.T, b, atol=1e-8)


def test_mixture_moments_and_a_round_trip_through_a_dict():
    mix = LatentPrior(np.array([1.0, 3.0]), np.array([[0.0], [2.0]]),
                      np.array([[[1.0]], [[0.25]]]))
    mean, cov = gaussian_moments(mix)
    z = mix.sample(200000, np.random.default_rng(5))
    assert np.isclose(mean[0], z.mean(), atol=0.01) and np.isclose(cov[0, 0], z.var(), atol=0.02)
    prior = _prior([(0.1, 0.2)] * 3)
    again = ConditionalPrior.from_dict(prior.to_dict())
    assert np.array_equal(again.conditions, prior.conditions)
    assert np.array_equal(again.priors[2].means, prior.priors[2].means)


def _with_heights(height, slope):
    """The test prior with trained heights height(g) and slopes d height / d gamma slope(g)."""
    prior = _prior([(0.1, 0.1)] * 3)
    rows = [(height(g), slope(g), 0.0) for g in GAMMAS]
    return ConditionalPrior(prior.conditions, prior.priors, np.array(rows))


def test_the_expected_height_interpolates_means_and_slopes_exactly_for_a_cubic():
    def cubic(g):
        return 2.0 - g + 0.3 * g**2 - 0.05 * g**3

    prior = _with_heights(cubic, lambda g: -1.0 + 0.6 * g - 0.15 * g**2)
    for g in (0.0, 0.3, 1.0, 1.7):
        assert np.isclose(prior.expected_height(g, 1.0), cubic(g))
    assert prior.expected_height(2.5, 1.0) is None  # past the trained state points
    assert ConditionalPrior.from_dict(prior.to_dict()).expected_height(0.3, 1.0) == \
        pytest.approx(cubic(0.3))


def test_steering_finds_the_state_point_whose_decoded_height_is_the_expected_one():
    prior = _with_heights(lambda g: 1.0 - 0.25 * g, lambda g: -0.25)

    def decoded(g, t):  # a model too high between its state points (1 - 0.25 g at 0, 1, 2)
        return 1.0 - 0.25 * g - 0.1 * np.sin(np.pi * g)

    gamma, temperature = prior.steered_state(1.5, 1.0, decoded, grid=201)
    assert temperature == 1.0
    assert np.isclose(decoded(gamma, 1.0), 1.0 - 0.25 * 1.5, atol=1e-4)
    assert gamma > 1.5  # too high there, so steered toward the stronger field
    # Trained state points, and those past them, are never moved.
    assert prior.steered_state(1.0, 1.0, decoded) == (1.0, 1.0)
    assert prior.steered_state(2.5, 1.0, decoded) == (2.5, 1.0)


def test_without_a_crossing_or_without_heights_the_state_point_stays():
    prior = _with_heights(lambda g: 1.0 - 0.25 * g, lambda g: -0.25)
    assert prior.steered_state(0.5, 1.0, lambda g, t: 5.0) == (0.5, 1.0)
    bare = _prior([(0.1, 0.1)] * 3)
    assert bare.expected_height(0.5, 1.0) is None
    assert bare.steered_state(0.5, 1.0, lambda g, t: 0.0) == (0.5, 1.0)


def test_a_direction_both_gaussians_leave_at_the_floor_is_not_stretched():
    from ljvae_core.priors import COVARIANCE_FLOOR

    a = np.diag([1.0, COVARIANCE_FLOOR])
    b = np.diag([4.0, COVARIANCE_FLOOR])
    assert np.allclose(transport_map(a, b), np.diag([2.0, 1.0]))


def test_each_latent_is_labelled_with_the_end_it_was_drawn_from():
    prior = _prior([(0.1, 0.1), (0.2, 0.2), (0.3, 0.3)])
    z, ends = prior.sample_labelled(4000, 0.25, 1.0, np.random.default_rng(5))
    assert np.array_equal(z, prior.sample(4000, 0.25, 1.0, np.random.default_rng(5)))
    assert set(ends) == {0, 1} and np.mean(ends == 0) == pytest.approx(0.75, abs=0.02)
    # Carried along the path, each end's latents have the geodesic's mean at a quarter.
    for end in (0, 1):
        assert np.allclose(z[ends == end].mean(axis=0), [0.75, -0.25], atol=0.05)
    assert set(prior.sample_labelled(50, 2.0, 1.0, np.random.default_rng(6))[1]) == {2}
