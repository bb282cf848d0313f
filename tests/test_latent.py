"""Latent-space analysis: projections, gamma clustering, energy maps and anomaly scores."""

import numpy as np
import pytest

from ljvae_core.anomaly import physical_statistics
from ljvae_core.latent import Projection, energy_map, gamma_clustering, unseen_chains
from ljvae_core.priors import LatentPrior
from ljvae_core.sampling import SimulationParams, simulate
from ljvae_core.settings import TrainSettings
from ljvae_core.training import train


@pytest.fixture(scope="module")
def trained_and_data():
    params = SimulationParams(n_particles=10, dim=2, box=5.0, gammas=(0.0, 2.0),
                              n_samples=160, n_chains=4, seed=21)
    ds = simulate(params)
    trained = train(ds, TrainSettings(representation="distances", latent_dim=6, epochs=10))
    return trained, ds


def test_latent_prior_samples_the_distribution_it_was_fitted_to():
    rng = np.random.default_rng(5)
    # Two well-separated, correlated clusters, 3:1.
    cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    latent = np.concatenate([rng.multivariate_normal([-6, 0], cov, 3000),
                             rng.multivariate_normal([6, 2], 0.25 * cov, 1000)])
    prior = LatentPrior.fit(latent, components=2)
    z = prior.sample(20000, np.random.default_rng(0))
    right = z[:, 0] > 0
    assert abs(right.mean() - 0.25) < 0.02
    assert np.allclose(z[~right].mean(0), [-6, 0], atol=0.05)
    assert np.allclose(np.cov(z[~right].T), cov, atol=0.05)
    assert np.allclose(np.cov(z[right].T), 0.25 * cov, atol=0.03)
    # Seeded, and persisted as plain arrays.
    again = LatentPrior.from_dict(prior.to_dict())
    assert np.array_equal(again.sample(5, np.random.default_rng(1)),
                          prior.sample(5, np.random.default_rng(1)))


def test_mixture_log_likelihood_is_the_density_sklearn_scores():
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(2)
    latent = np.concatenate([rng.normal(-2, 1, (300, 3)), rng.normal(3, 0.5, (100, 3))])
    mixture = GaussianMixture(2, covariance_type="full", random_state=0).fit(latent)
    prior = LatentPrior(mixture.weights_, mixture.means_, mixture.covariances_)
    assert np.allclose(prior.log_likelihood(latent[:50]), mixture.score_samples(latent[:50]))


def test_refining_the_prior_moves_its_samples_off_penalized_regions():
    import tensorflow as tf

    rng = np.random.default_rng(3)
    latent, held_out = rng.normal(size=(4000, 2)), rng.normal(size=(4000, 2))
    plain = LatentPrior.fit(latent, components=2)

    def penalty(z):  # a wall at z0 = 1
        return tf.square(tf.nn.relu(z[:, 0] - 1.0))

    refined = plain.refine(penalty, latent, weight=100.0, steps=300, seed=0)
    before, after = (p.sample(20000, np.random.default_rng(1)) for p in (plain, refined))
    assert (before[:, 0] > 1.5).mean() > 0.05
    assert (after[:, 0] > 1.5).mean() < 0.4 * (before[:, 0] > 1.5).mean()
    # The unpenalized direction keeps its distribution; the density pays a little.
    assert abs(after[:, 1].std() - before[:, 1].std()) < 0.05
    loss = plain.log_likelihood(held_out).mean() - refined.log_likelihood(held_out).mean()
    assert 0 < loss < 0.5
    assert refined.physics_weight == 100.0
    assert LatentPrior.from_dict(refined.to_dict()).physics_weight == 100.0


def test_the_prior_refined_by_the_physics_loss_decodes_fewer_unphysical_samples(
        trained_and_data):
    from ljvae_core.calibration import _prior_penalty

    trained, ds = trained_and_data
    idx = np.asarray(trained.meta["train_indices"])
    latent = trained.encode(ds.coords[idx], ds.gamma[idx], ds.temperature[idx])
    plain = LatentPrior.fit(latent, components=2)
    # Widened three times over, the mixture decodes configurations that overflow the box.
    wide = LatentPrior(plain.weights, plain.means, 9.0 * plain.covariances)
    penalty = _prior_penalty(trained, ds, idx)
    refined = wide.refine(penalty, latent, weight=300.0, steps=200)

    def mean_penalty(prior):
        import tensorflow as tf

        z = tf.constant(prior.sample(2000, np.random.default_rng(0)), tf.float32)
        return float(tf.reduce_mean(penalty(z)))

    assert mean_penalty(wide) > 0.05
    assert mean_penalty(refined) < 0.5 * mean_penalty(wide)


def test_generation_samples_the_fitted_prior_when_the_model_has_one(trained_and_data):
    from ljvae_core.calibration import attach_latent_prior

    trained, ds = trained_and_data
    fitted = dict(trained.meta)
    attach_latent_prior(trained, ds)
    try:
        prior = LatentPrior.from_dict(trained.meta["latent_prior"])
        assert prior.means.shape[1] == trained.settings.latent_dim
        # Refined by the joint physics loss (on by default), the plain fit kept beside it.
        assert prior.physics_weight == trained.settings.prior_physics_weight > 0
        assert trained.unrefined_latent_prior.physics_weight == 0.0
        assert trained.available_priors() == ["default", "unrefined", "normal"]
        plain = trained.generate(20, seed=3, prior="unrefined")
        assert plain.shape == (20, *ds.coords.shape[1:])
        assert not np.array_equal(plain, trained.generate(20, seed=3))
        a = trained.generate(20, seed=3)
        assert np.array_equal(a, trained.generate(20, seed=3))
        assert not np.array_equal(a, trained.generate(20, seed=3, prior="normal"))
        with pytest.raises(ValueError, match="unknown prior"):
            trained.generate(2, prior="uniform")
        # Models fitted without the physics loss, or with no prior at all.
        trained.meta.pop("latent_prior_plain")
        assert trained.available_priors() == ["default", "normal"]
        trained.meta.pop("latent_prior")
        assert trained.available_priors() == ["normal"]
    finally:
        trained.meta.clear()
        trained.meta.update(fitted)


def test_projection_is_pca_above_two_dimensions():
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(200, 5)) * [5, 3, 0.1, 0.1, 0.1]
    proj = Projection.fit(latent)
    points = proj.transform(latent)
    assert points.shape == (200, 2) and proj.explained > 0.99
    assert np.allclose(proj.transform(proj.inverse(points)), points, atol=1e-8)
    flat = Projection.fit(latent[:, :2])
    assert flat.pca is None and np.array_equal(flat.transform(latent[:, :2]), latent[:, :2])


def test_gamma_clustering_scores_separable_and_mixed_labels():
    rng = np.random.default_rng(1)
    gamma = np.repeat([0.0, 1.0, 2.0], 300)
    chain = np.repeat(np.arange(18), 50)
    separated = np.column_stack([gamma * 3 + rng.normal(0, 0.2, 900), rng.normal(size=900)])
    mixed = rng.normal(size=(900, 2))
    good, bad = gamma_clustering(separated, gamma, chain), gamma_clustering(mixed, gamma, chain)
    assert good["gamma_r2"] > 0.95 and good["gamma_silhouette"] > 0.5
    assert bad["gamma_r2"] < 0.1 and abs(bad["gamma_silhouette"]) < 0.1


def test_gamma_probe_is_scored_on_the_chains_the_model_never_saw(trained_and_data):
    trained, ds = trained_and_data
    test = unseen_chains(trained, ds)
    assert np.array_equal(np.flatnonzero(test), np.sort(trained.meta["validation_indices"]))
    assert not set(ds.chain[test]) & set(ds.chain[~test])
    assert unseen_chains(trained, ds.first_of_each_chain(20)) is None
    # A latent that knows gamma only where it was trained: the probe sees through it.
    rng = np.random.default_rng(0)
    memorized = rng.normal(size=(len(ds), 3))
    memorized[~test, 0] += 3 * ds.gamma[~test]
    assert gamma_clustering(memorized, ds.gamma, ds.chain, test=test)["gamma_r2"] < 0.1


def test_encode_and_energy_map_shapes(trained_and_data):
    trained, ds = trained_and_data
    latent = trained.encode(ds.coords[:50])
    assert latent.shape == (50, 6)
    proj = Projection.fit(latent)
    emap = energy_map(trained, proj, proj.transform(latent), resolution=5)
    assert emap.energy.shape == (5, 5) and emap.configurations.shape == (25, 10, 2)
    assert np.isfinite(emap.energy).all()


def test_anomaly_scores_rank_overlaps_above_normal_configurations(trained_and_data):
    trained, ds = trained_and_data
    normal = ds.coords[:60]
    overlap = normal.copy()
    overlap[:, 1] = overlap[:, 0] + 0.3  # one pair pushed within 0.3 sigma
    overlap = np.clip(overlap, 0, ds.box)
    pair = [physical_statistics(x, ds.system)[0] for x in (overlap, normal)]
    assert np.all(pair[0] > pair[1])
    nelbo = trained.negative_elbo(normal)
    assert nelbo.shape == (60,) and np.isfinite(nelbo).all()
    uniform = np.random.default_rng(2).uniform(0, ds.box, normal.shape)
    assert np.median(trained.negative_elbo(uniform)) > np.median(nelbo)


def test_anomaly_harness_reports_auc_per_kind(trained_and_data):
    from ljvae_core.anomaly import ANOMALY_KINDS, AnomalyScorer, anomaly_report
    from ljvae_core.evaluation import held_out_indices

    trained, ds = trained_and_data
    report = anomaly_report(trained, ds, held_out_indices(trained, ds), n=40)
    assert set(report["auc"]) == set(ANOMALY_KINDS)
    for detail in report["auc_detail"].values():
        assert all(0 <= v <= 1 for v in detail.values())
    # Overlaps are what the energy score is for.
    assert report["auc"]["uniform"] > 0.95 and report["auc"]["overlap"] > 0.95
    zeros = np.zeros(100)
    scorer = AnomalyScorer.fit(np.arange(100.0), zeros, zeros, zeros, zeros + 1)
    assert scorer.threshold == pytest.approx(np.percentile(np.maximum(
        (np.arange(100.0) - 49.5) / 49.5, 0.0), 99))
    again = AnomalyScorer.from_dict(scorer.to_dict())
    assert again.percentile_among_normal([scorer.threshold])[0] == pytest.approx(99, abs=1)


def test_energy_score_flags_what_no_training_ensemble_would_produce():
    from ljvae_core.anomaly import AnomalyScorer

    rng = np.random.default_rng(0)
    # Two training ensembles: (pair, height) around (-1, 2.5) at gamma 0, (-2, 0.3) at gamma 2.
    pair = np.r_[rng.normal(-1, 0.1, 500), rng.normal(-2, 0.1, 500)]
    height = np.r_[rng.normal(2.5, 0.1, 500), rng.normal(0.3, 0.05, 500)]
    gamma = np.r_[np.zeros(500), np.full(500, 2.0)]
    scorer = AnomalyScorer.fit(np.zeros(1000), pair, height, gamma, np.ones(1000))
    assert len(scorer.conditions) == 2
    # Typical of either ensemble: low; a mix of the two (gamma 0's energy at gamma 2's height,
    # what a stronger gravity does) or lower still (gamma = 4): high.
    typical = scorer.energy_z([-1.0, -2.0], [2.5, 0.3])
    atypical = scorer.energy_z([-1.0, -2.0, -2.0], [0.3, 0.0, 1.4])
    assert typical.max() < 0.5 and atypical.min() > 3


@pytest.mark.parametrize("bad,message", [
    (np.zeros((0, 10, 2)), "no configuration"),
    (np.full((1, 10, 3), 1.0), "3D, the model is 2D"),
    (np.full((1, 7, 2), 1.0), "hold 7 particles, the model expects 10"),
    (np.full((1, 10, 2), np.nan), "NaN"),
    (np.full((1, 10, 2), 6.0), "outside the model's box"),
])
def test_uploads_are_validated_against_the_model(bad, message):
    from ljvae_core.features import DistanceMatrix
    from ljvae_core.scoring import validate_for_model
    from ljvae_core.trained import TrainedModel

    model = TrainedModel(None, DistanceMatrix(L=5.0, d=2).fit(np.ones((1, 10, 2))),
                         TrainSettings(), {"dataset_params": {"periodic": ""}})
    with pytest.raises(ValueError, match=message):
        validate_for_model(model, bad)
    assert validate_for_model(model, np.full((10, 2), 2.0)).shape == (1, 10, 2)


def test_uploads_are_wrapped_on_periodic_axes_only():
    from ljvae_core.features import DistanceMatrix
    from ljvae_core.scoring import validate_for_model
    from ljvae_core.trained import TrainedModel

    model = TrainedModel(None, DistanceMatrix(L=5.0, d=2).fit(np.ones((1, 10, 2))),
                         TrainSettings(), {"dataset_params": {"periodic": "x"}})
    coords = np.full((10, 2), 2.0)
    coords[0] = [6.5, 1.0]
    coords[1] = [-0.5, 1.0]
    wrapped = validate_for_model(model, coords)[0]
    np.testing.assert_allclose(wrapped[:2], [[1.5, 1.0], [4.5, 1.0]])
    coords[0] = [1.0, 6.5]
    with pytest.raises(ValueError, match="outside"):
        validate_for_model(model, coords)
