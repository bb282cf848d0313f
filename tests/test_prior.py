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

    def decode_sample(self, z, rng, gamma=None, temperature=None):
        return self.decode(z, gamma, temperature)

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
    # The grid's best, or midway between it and a neighbour.
    assert scale == pytest.approx(0.7, abs=0.026)
    assert min(abs(2 * scale - a - b) for a in PRIOR_SCALES for b in PRIOR_SCALES) < 1e-12
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
    assert scale == pytest.approx(0.6, abs=0.026)


def test_a_refinement_that_diverges_keeps_the_fit():
    import tensorflow as tf

    from ljvae_core.priors import LatentPrior

    latent = np.random.default_rng(0).normal(size=(200, 3))
    plain = LatentPrior.fit(latent, components=2)
    # A decoder trained for a few epochs can make a penalty whose gradients overflow.
    refined = plain.refine(lambda z: np.nan * tf.reduce_sum(z, axis=-1), latent, 1.0, steps=5)
    assert refined is plain


def test_a_kernel_prior_draws_around_its_points_with_their_spread_times_its_bandwidth():
    from ljvae_core.priors import KernelPrior, prior_from_dict

    rng = np.random.default_rng(0)
    points = rng.normal(size=(400, 3)) @ np.diag([2.0, 1.0, 0.1]) + 5.0
    kernel = KernelPrior.fit(points).scaled(0.5)
    assert kernel.bandwidth == 0.5
    z = kernel.sample(40_000, np.random.default_rng(1))
    # A draw is a point plus Gaussian noise of the points' covariance times bandwidth^2.
    expected = np.cov(points, rowvar=False) * (1 - 1 / len(points) + 0.25)
    drawn = np.cov(z, rowvar=False)
    assert np.allclose(np.diag(drawn), np.diag(expected), rtol=0.05)
    assert np.allclose(drawn, expected, atol=0.05)
    assert np.allclose(z.mean(axis=0), points.mean(axis=0), atol=0.03)
    at_zero = kernel.scaled(0.0).sample(50, np.random.default_rng(2))
    assert all(np.isclose(points, row).all(axis=1).any() for row in at_zero)  # replays points
    again = prior_from_dict(kernel.to_dict())
    assert isinstance(again, KernelPrior) and again.bandwidth == 0.5
    assert np.array_equal(again.sample(5, np.random.default_rng(3)),
                          kernel.sample(5, np.random.default_rng(3)))
    mixture = LatentPrior.fit(points, components=2)
    assert isinstance(prior_from_dict(mixture.to_dict()), LatentPrior)


def test_a_kernel_prior_is_for_models_that_decode_coordinates():
    from ljvae_core.settings import TrainSettings

    assert not list(TrainSettings(generation_prior="kernel").errors())
    assert not list(TrainSettings(generation_prior="kernel", conditional=True).errors())
    grids = TrainSettings(generation_prior="kernel", representation="voxels", decoder="direct")
    assert any("kernel generation prior" in e for e in grids.errors())
    assert any("unknown generation prior" in e
               for e in TrainSettings(generation_prior="flow").errors())
    # Only a mixture is refined by the physics loss: the form disables its weight otherwise.
    assert not TrainSettings(generation_prior="kernel").applies("prior_physics_weight")
    assert TrainSettings(generation_prior="kernel", conditional=True).applies(
        "prior_physics_weight")
    assert TrainSettings().applies("prior_physics_weight")


def test_a_conditional_prior_of_kernel_densities_carries_their_moments_between_states():
    from ljvae_core.priors import ConditionalPrior, KernelPrior, gaussian_moments

    rng = np.random.default_rng(0)
    a = KernelPrior.fit(rng.normal(size=(500, 2)), bandwidth=0.2)
    b = KernelPrior.fit(rng.normal(size=(500, 2)) * 3.0 + 10.0, bandwidth=0.2)
    prior = ConditionalPrior.from_dict(ConditionalPrior([(0.0, 1.0), (2.0, 1.0)],
                                                        [a, b]).to_dict())
    assert all(isinstance(p, KernelPrior) for p in prior.priors)
    mean, cov = gaussian_moments(a)
    assert np.allclose(cov, np.cov(a.points, rowvar=False) * (1 - 1 / 500 + 0.04))
    halfway = prior.sample(20_000, 1.0, 1.0, np.random.default_rng(1))
    # Halfway along the Wasserstein geodesic of two isotropic Gaussians: the mean halfway,
    # the spread halfway (1 and 3 times 1.02 become 2.04 in standard deviation).
    assert np.allclose(halfway.mean(axis=0), 0.5 * (mean + b.points.mean(axis=0)), atol=0.1)
    assert np.allclose(halfway.std(axis=0), 2.0 * np.sqrt(1.04), rtol=0.06)


class _LeaningModel:
    """A conditional model stand-in whose samples' mean height is 0.9 - 0.2 z for latents z
    (one particle, in a box of 5), with trained heights 1.0 at gamma 0 and 0.5 at gamma 2."""

    def __init__(self):
        from ljvae_core.priors import ConditionalPrior, LatentPrior
        from ljvae_core.system import System

        priors = [LatentPrior(np.ones(1), np.array([[g]]), np.full((1, 1, 1), 1e-6))
                  for g in (0.0, 2.0)]
        self.conditional_prior = ConditionalPrior([(0.0, 1.0), (2.0, 1.0)], priors,
                                                  [(1.0, -0.25, 0.0), (0.5, -0.25, 0.0)])
        self.system = System(box=5.0, dim=3)

    def decode(self, z, gamma=None, temperature=None):
        x = np.full((len(z), 1, 3), 2.5)
        x[:, 0, 2] = 0.9 - 0.2 * np.asarray(z)[:, 0]
        return x

    def decode_sample(self, z, rng, gamma=None, temperature=None):
        return self.decode(z, gamma, temperature)


def test_a_model_generates_between_state_points_where_its_height_is_the_expected_one():
    from ljvae_core.trained import TrainedModel

    model = _LeaningModel()
    # Expected at gamma = 1: 0.75 (linear between the trained heights); 0.9 - 0.2 z reaches
    # it at z = 0.75, whose latents the prior draws at gamma' = 0.75.
    gamma, temperature = TrainedModel.generation_state(model, 1.0, 1.0)
    assert gamma == pytest.approx(0.75, abs=1e-3) and temperature == 1.0
    assert TrainedModel.generation_state(model, 2.0, 1.0) == (2.0, 1.0)
    assert model._steered  # kept: steering decodes thousands of probes


class _FlatModel:
    """Stands in for a TrainedModel whose decoder puts particles on the floor, on the
    ceiling and in between."""

    def __init__(self, height_noise, system, decoder="coordinates"):
        from ljvae_core.settings import TrainSettings
        from ljvae_core.trained import TrainedModel

        self.settings = TrainSettings(height_noise=height_noise, decoder=decoder)
        self.system = system
        self.has_height_noise = TrainedModel.has_height_noise.fget(self)


def _decoded(n=4000):
    x = np.full((n, 3, 3), 2.5)
    x[:, :, 2] = [0.0, 2.5, 5.0]  # floor, middle, ceiling of a box of 5
    return x


def test_generated_heights_get_their_noise_inside_the_box():
    from ljvae_core.system import System
    from ljvae_core.trained import TrainedModel

    model = _FlatModel(0.02, System(box=5.0, dim=3))
    decoded = np.concatenate([_decoded(), [[[2.5, 2.5, 5.5]] * 3]])  # the last: outside
    noisy = TrainedModel._with_height_noise(model, decoded, np.random.default_rng(0))
    assert np.array_equal(noisy[-1], decoded[-1])  # still outside, to be counted invalid
    noisy, decoded = noisy[:-1], decoded[:-1]
    h = noisy[..., 2]
    assert np.all((h >= 0) & (h <= 5.0)) and np.array_equal(noisy[..., :2], decoded[..., :2])
    assert np.std(h[:, 1]) == pytest.approx(0.02, rel=0.05)  # away from the walls
    # Reflected at the walls: a half-normal of the same width, no sheet on the floor.
    assert np.mean(h[:, 0]) == pytest.approx(0.02 * np.sqrt(2 / np.pi), rel=0.05)
    assert np.mean(h[:, 0] < 1e-4) < 0.01 and np.mean(5.0 - h[:, 2] < 1e-4) < 0.01
    again = TrainedModel._with_height_noise(model, decoded, np.random.default_rng(0))
    assert np.array_equal(noisy, again)


def test_no_height_noise_without_a_width_or_a_floor():
    from ljvae_core.system import System
    from ljvae_core.trained import TrainedModel

    decoded = _decoded(10)
    for model in (_FlatModel(0.0, System(box=5.0, dim=3)),
                  _FlatModel(0.02, System(box=5.0, dim=3, periodic="xyz")),
                  _FlatModel(0.02, System(box=None, dim=3)),
                  _FlatModel(0.02, System(box=5.0, dim=3), decoder="direct")):
        out = TrainedModel._with_height_noise(model, decoded, np.random.default_rng(0))
        assert np.array_equal(out, decoded)


def test_the_calibration_looks_between_the_grid_values_beside_the_best():
    from ljvae_core.noise_walk import finest_minimum

    tried = []

    def cost(x):
        tried.append(x)
        return abs(x - 0.27)

    assert finest_minimum([0.1, 0.2, 0.3, 0.4], cost) == 0.25
    assert sorted(tried[4:]) == [0.25, 0.35]  # the two midpoints beside 0.3, nothing else
    assert finest_minimum([0.1, 0.2, 0.3], lambda x: x) == 0.1  # at an end: one midpoint
    assert finest_minimum([0.1, 0.2, 0.3], lambda x: -x) == 0.3
    assert finest_minimum([0.5], lambda x: x) == 0.5


def test_a_free_cluster_settles_what_its_settings_alone_cannot():
    # Auto means a kernel density for a free cluster and a mixture in a box: only the mixture
    # is refined, and only a box has heights.
    from ljvae_core.settings import TrainSettings

    auto = TrainSettings()
    assert auto.kernel_prior(free=True) and not auto.kernel_prior(free=False)
    assert not auto.applies("prior_physics_weight", free=True)
    assert TrainSettings(generation_prior="mixture").applies("prior_physics_weight", free=True)
    assert TrainSettings(conditional=True).applies("prior_physics_weight", free=True)
    for name in ("log_heights", "height_noise"):
        assert auto.applies(name) and not auto.applies(name, free=True)
    assert auto.with_value("height_noise", 0.1, free=True).height_noise == auto.height_noise
    assert auto.with_value("height_noise", 0.1).height_noise == 0.1
