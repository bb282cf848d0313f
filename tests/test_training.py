"""Training: chain split, learning, persistence, stopping, and the physics loss."""

import threading
from dataclasses import replace

import numpy as np
import pytest

from ljvae_core.artifacts import list_models, models_dir
from ljvae_core.model_store import load_model, model_summary, save_model
from ljvae_core.physics_tf import lj_energy_from_distances
from ljvae_core.sampling import SimulationParams, simulate
from ljvae_core.settings import TrainingError, TrainSettings
from ljvae_core.training import split_by_chain, train


@pytest.fixture(scope="module")
def small_dataset():
    params = SimulationParams(n_particles=10, dim=2, box=5.0, gammas=(0.0, 1.0),
                              n_samples=160, n_chains=4, seed=11)
    return simulate(params)


def test_split_keeps_chains_whole(small_dataset):
    train_idx, val_idx = split_by_chain(small_dataset, 0.25, 0)
    assert len(train_idx) + len(val_idx) == len(small_dataset)
    assert not set(small_dataset.chain[train_idx]) & set(small_dataset.chain[val_idx])
    # Every condition is represented in validation.
    assert set(small_dataset.condition[val_idx]) == {0, 1}


def test_training_lowers_the_loss_and_round_trips(small_dataset, tmp_path):
    seen = []
    settings = TrainSettings(representation="distances", latent_dim=4, epochs=6, batch_size=32)
    trained = train(small_dataset, settings, progress=seen.append)
    loss = trained.history["loss"]
    assert loss[-1] < loss[0]
    assert [p["epoch"] for p in seen] == list(range(1, len(loss) + 1))
    assert {"loss", "reconstruction", "kl", "val_loss"} <= set(seen[0])
    path = save_model(trained, models_dir(tmp_path) / "model")
    again = load_model(path)
    x = again.model_inputs(small_dataset.coords[:8])
    assert np.array_equal(np.asarray(again.model(x)), np.asarray(trained.model(x)))
    assert again.settings == settings
    assert again.meta["dataset_fingerprint"] == trained.meta["dataset_fingerprint"]
    assert again.system == small_dataset.system
    # Saving again over it replaces it whole; the store lists it without unpickling.
    save_model(again, path)
    assert sorted(p.name for p in models_dir(tmp_path).iterdir()) == ["model"]
    listed = list_models(tmp_path)
    assert [m["name"] for m in listed] == ["model"]
    assert listed[0]["representation"] == "distances" and listed[0]["latent_dim"] == 4


def test_conditional_coordinates_model_trains(small_dataset, tmp_path, monkeypatch):
    settings = TrainSettings(representation="coords", latent_dim=2, epochs=3, conditional=True)
    trained = train(small_dataset, settings)
    x, c = trained.model_inputs(small_dataset.coords[:4], small_dataset.gamma[:4],
                                small_dataset.temperature[:4])
    assert c.shape == (4, 2)
    assert trained.model((x, c)).shape == x.shape
    # The prior's physics loss decodes its samples under the training conditions.
    from ljvae_core.calibration import attach_latent_prior

    attach_latent_prior(trained, small_dataset)
    assert trained.latent_prior.physics_weight == settings.prior_physics_weight
    assert trained.unrefined_latent_prior.physics_weight == 0.0
    out = trained.generate(5, gamma=1.0, temperature=1.0)
    assert out.shape == (5, *small_dataset.coords.shape[1:]) and np.isfinite(out).all()
    _generation_draws_the_latents_of_the_state_point_asked_for(trained, small_dataset, tmp_path)
    _between_state_points_the_walk_chooses_spread_and_noise(trained, monkeypatch)


def _generation_draws_the_latents_of_the_state_point_asked_for(trained, ds, tmp_path):
    from ljvae_core.calibration import KERNEL_BANDWIDTHS
    from ljvae_core.model_store import export_model, import_model
    from ljvae_core.priors import KernelPrior

    assert trained.available_priors() == ["default", "pooled", "unrefined", "normal"]
    prior = trained.conditional_prior
    assert prior.conditions.tolist() == [[0.0, 1.0], [1.0, 1.0]]
    # By default a conditional model draws from a kernel density per state point.
    assert all(isinstance(p, KernelPrior) for p in prior.priors)
    grid = sorted(KERNEL_BANDWIDTHS)  # its values, or midway between two neighbours
    searched = grid + [0.5 * (a + b) for a, b in zip(grid[:-1], grid[1:], strict=True)]
    assert all(s in searched for s in trained.meta["conditional_prior_scales"])
    assert len(trained.meta["conditional_prior_scales"]) == 2
    latent = trained.encode(ds.coords, ds.gamma, ds.temperature)
    centres = [latent[ds.gamma == g].mean(axis=0) for g in (0.0, 1.0)]
    for g, own, other in ((0.0, *centres), (1.0, *centres[::-1])):
        drawn = prior.sample(400, g, 1.0, np.random.default_rng(0)).mean(axis=0)
        assert np.linalg.norm(drawn - own) < np.linalg.norm(drawn - other)
    with pytest.raises(ValueError, match="too far from the state points"):
        trained.generate(3, gamma=5.0, temperature=1.0)
    again = import_model(export_model(trained, tmp_path / "portable"))
    assert np.array_equal(again.conditional_prior.priors[1].points, prior.priors[1].points)
    _generated_heights_take_the_training_heights(again, ds)


def _generated_heights_take_the_training_heights(trained, ds):
    from scipy.stats import wasserstein_distance

    from ljvae_core.noise_walk import NOISE_WIDTHS

    prior = trained.conditional_prior
    assert all(w in NOISE_WIDTHS for w in prior.noise)
    held = ds.coords[ds.gamma == 1.0][..., -1].ravel()
    rng = np.random.default_rng(0)
    unmapped = trained._unmapped(prior, 1000, 1.0, 1.0, 0, rng)[0][..., -1].ravel()
    mapped = trained.generate(1000, 1.0, 1.0)[..., -1].ravel()
    assert wasserstein_distance(mapped, held) < 0.5 * wasserstein_distance(unmapped, held)
    # The decoder's own hard core, made again at a larger distance, pushes contacts out.
    from ljvae_core.analysis import nearest_neighbour_distances

    decoded = trained.decode(prior.sample(50, 1.0, 1.0, rng), 1.0, 1.0)
    core = trained.settings.repel_distance
    pushed = trained.pushed_apart(decoded, core + 0.1)
    def close(x):  # share of particles with a neighbour well inside the decoder's hard core
        return np.mean(nearest_neighbour_distances(x, trained.system) < core - 0.03)
    assert close(decoded) > 0.2 and close(pushed) < 0.5 * close(decoded)
    # One state point at a time, each as when asked for alone; none that is not a number.
    mixed = trained.generate(6, np.array([0.0, 1.0, 0.0, 1.0, 1.0, 0.0]), 1.0, seed=4)
    assert mixed.shape == (6, *ds.coords.shape[1:]) and np.isfinite(mixed).all()
    assert trained.generate(0, 1.0, 1.0).shape == (0, *ds.coords.shape[1:])
    with pytest.raises(ValueError, match="finite"):
        trained.generate(3, np.nan, 1.0)
    # evaluate reports the noise a state point's samples got.
    from ljvae_core.statepoints import _generated_at

    assert _generated_at(trained, 1.0, 1.0, 0)["noise"] == prior.noise[1]


def _between_state_points_the_walk_chooses_spread_and_noise(trained, monkeypatch):
    from ljvae_core.noise_walk import NOISE_WIDTHS, SPREAD_FACTORS
    from ljvae_core.priors import ConditionalPrior
    from ljvae_core.statepoints import _generated_at

    # The small dataset's 120 configurations per state point carry about 100
    # effective ones at gamma = 0.9, 4 at 0.5.
    monkeypatch.setattr("ljvae_core.disorder.MIN_EFFECTIVE", 5)
    prior = trained.conditional_prior
    there = prior.reweighted(0.9, 1.0)
    assert there is not None and there.neighbours.shape == there.heights.shape
    spread, width = trained.disorder_at(0.9, 1.0)
    grid = sorted(SPREAD_FACTORS)
    assert spread in grid + [round(0.5 * (a + b), 6)
                             for a, b in zip(grid[:-1], grid[1:], strict=True)]
    assert width in NOISE_WIDTHS
    # The walk draws from the model's own stream: the same whatever seed samples take.
    from ljvae_core.noise_walk import disorder_between

    assert disorder_between(trained, 0.9, 1.0) == (spread, width)
    # Heights mapped onto the reweighted ones: decoded where asked, not steered.
    assert trained.generation_state(0.9, 1.0, 2) == (0.9, 1.0)
    assert _generated_at(trained, 0.9, 1.0, 2) == {
        "gamma": 0.9, "temperature": 1.0, "spread": spread, "noise": width}
    assert np.isfinite(trained.generate(20, 0.9, 1.0, seed=2)).all()
    # A trained state point keeps its calibration; a model without the training
    # configurations' neighbour distances interpolates the width at the trained spread.
    assert trained.disorder_at(1.0, 1.0) == (1.0, prior.noise[1])
    for kept in trained.meta["conditional_prior"]["ensembles"]:
        kept["neighbours"] = None
    trained.__dict__.pop("_disorder")
    assert trained.disorder_at(0.9, 1.0) == (1.0, ConditionalPrior.from_dict(
        trained.meta["conditional_prior"]).noise_width(0.9, 1.0))


def test_training_under_a_one_device_strategy(small_dataset, tmp_path):
    import tensorflow as tf

    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    settings = TrainSettings(representation="distances", latent_dim=4, epochs=4, batch_size=32)
    trained = train(small_dataset, settings, strategy=strategy)
    assert trained.model.distribute_strategy is strategy
    assert trained.history["loss"][-1] < trained.history["loss"][0]
    again = load_model(save_model(trained, models_dir(tmp_path) / "distributed"))
    x = again.model_inputs(small_dataset.coords[:4])
    np.testing.assert_allclose(np.asarray(again.model(x)), np.asarray(trained.model(x)),
                               rtol=1e-6)


def test_stop_event_ends_training_early(small_dataset):
    stop = threading.Event()

    def progress(p):
        if p["epoch"] == 2:
            stop.set()

    trained = train(small_dataset, TrainSettings(latent_dim=2, epochs=50), progress, stop)
    assert trained.meta["epochs_run"] == 2


def test_automatic_epochs_are_longer_for_a_conditional_model():
    from ljvae_core.settings import AUTO_EPOCHS, AUTO_EPOCHS_CONDITIONAL

    assert TrainSettings().planned_epochs == AUTO_EPOCHS
    assert TrainSettings(conditional=True).planned_epochs == AUTO_EPOCHS_CONDITIONAL
    assert AUTO_EPOCHS_CONDITIONAL > AUTO_EPOCHS
    # A number given is trained as given, conditional or not.
    assert TrainSettings(epochs=7, conditional=True).planned_epochs == 7
    with pytest.raises(TrainingError, match="epochs cannot be negative"):
        TrainSettings(epochs=-1).validate()


def test_training_runs_the_automatic_epochs(small_dataset, monkeypatch):
    import ljvae_core.settings as settings_module

    monkeypatch.setattr(settings_module, "AUTO_EPOCHS_CONDITIONAL", 3)
    seen = []
    settings = TrainSettings(representation="coords", latent_dim=2, conditional=True,
                             patience=50)
    trained = train(small_dataset, settings, progress=seen.append)
    assert trained.meta["epochs_run"] == trained.meta["epochs_planned"] == 3
    assert {p["epochs"] for p in seen} == {3}


def test_physics_loss_lowers_decoded_energies(small_dataset):
    def decoded_energy(weight):
        settings = TrainSettings(representation="distances", latent_dim=4, epochs=8,
                                 physics_weight=weight, seed=3)
        trained = train(small_dataset, settings)
        rng = np.random.default_rng(0)
        z = rng.normal(size=(200, 4)).astype("float32")
        distances = trained.representation.distances(np.asarray(trained.model.decode(z)))
        return float(np.mean(lj_energy_from_distances(distances.astype("float32"), 10)))

    # The energy the penalty sees (pairs floored at 0.6 sigma) of samples from the prior.
    with_physics, without = decoded_energy(20.0), decoded_energy(0.0)
    assert with_physics < without


def test_bad_settings_are_refused(small_dataset):
    with pytest.raises(TrainingError, match="physics loss needs"):
        train(small_dataset, TrainSettings(representation="voxels", decoder="direct",
                                           physics_weight=1.0))
    with pytest.raises(TrainingError, match="must be positive"):
        TrainSettings(representation="coords", coordinate_weight=0.0).validate()
    with pytest.raises(TrainingError, match="validation fraction"):
        TrainSettings(validation_fraction=1.5).validate()
    with pytest.raises(TrainingError, match="height noise cannot be negative"):
        TrainSettings(height_noise=-0.01).validate()


def test_distance_regressor_learns_coordinates(small_dataset):
    from ljvae_core.regressor import regressor_coordinates, train_distance_regressor

    train_idx, _ = split_by_chain(small_dataset, 0.25, 0)
    model, rep = train_distance_regressor(small_dataset, train_idx, epochs=1)
    x = rep.transform(small_dataset.coords[:100]).astype("float32")
    target = rep.distances(x).astype("float32")
    history = model.fit(x, target, epochs=30, batch_size=20, verbose=0).history["loss"]
    # The distance stress (sigma^2) falls well below where it started.
    assert history[-1] < 0.5 * history[0]
    coords = regressor_coordinates(model, rep, x)
    assert coords.shape == (100, 10, 2)
    assert coords.min() >= 0 and coords.max() <= small_dataset.box


def test_matched_targets_follow_the_decoders_particle_order(small_dataset):
    from ljvae_core.ordering import OrderMatcher

    settings = TrainSettings(representation="distances", latent_dim=4, epochs=6, batch_size=32,
                             match_every=2, distance_encoder="rows")
    trained = train(small_dataset, settings)
    history = trained.history
    assert len(history["loss"]) == 6 and history["loss"][-1] < history["loss"][0]
    # Matched after epochs 2 and 4; some particles changed place.
    assert len(history["reordered"]) == 2 and 0 < history["reordered"][-1] < 1
    # A matched target is the same configuration (same distances, heights) in another order,
    # and it fits the decoder's output at least as well as the input's order.
    rep, coords = trained.representation, small_dataset.coords[:40]
    x = trained.model_inputs(coords)
    matcher = OrderMatcher(rep, {"some": trained.model_data(coords, targets=False)},
                           {"some": coords})
    matcher.match(trained.model)
    target = matcher.targets["some"]
    assert np.allclose(np.sort(target[..., 0], axis=None), np.sort(x[..., 0], axis=None),
                       atol=1e-6)
    out = np.asarray(trained.model.predict(x, verbose=0))
    assert np.mean((out - target) ** 2) <= np.mean((out - x) ** 2) + 1e-9
    with pytest.raises(TrainingError, match="cannot be negative"):
        TrainSettings(match_every=-1).validate()
    # Sorted coordinates in the template order are in a steady order already; sorted
    # along x they are matched to the decoder's order like distance matrices.
    template = train(small_dataset, TrainSettings(representation="coords", latent_dim=2,
                                                  epochs=3, match_every=1))
    assert "reordered" not in template.history
    by_x = TrainSettings(representation="coords", latent_dim=2, epochs=3, match_every=1,
                         representation_params={"sort_axis": "x"})
    sorted_x = train(small_dataset, by_x)
    assert len(sorted_x.history["reordered"]) == 2
    data = sorted_x.model_data(small_dataset.coords[:16])
    out = sorted_x.output(data)
    matched = sorted_x.in_output_order(data["target"], out)
    assert np.mean((out - matched) ** 2) <= np.mean((out - data["target"]) ** 2) + 1e-9


def test_a_conditional_model_matches_particle_orders_on_its_decoded_coordinates(small_dataset):
    settings = TrainSettings(representation="distances", latent_dim=4, epochs=2, batch_size=32,
                             match_every=1, distance_encoder="rows", conditional=True)
    history = train(small_dataset, settings).history
    assert len(history["reordered"]) == 1 and 0 < history["reordered"][0] < 1


def test_baseline_rmsd_is_what_knowing_only_the_condition_gives(small_dataset):
    from types import SimpleNamespace

    from ljvae_core.evaluation import _baseline_rmsd

    held_out = np.flatnonzero(small_dataset.chain == small_dataset.chain[0])
    assert _baseline_rmsd(small_dataset, held_out) > 0.1
    # A condition whose configurations are all alike: a stand-in matches exactly.
    same = SimpleNamespace(coords=np.repeat(small_dataset.coords[:1], 20, axis=0),
                           condition=np.zeros(20, dtype=int))
    assert _baseline_rmsd(same, np.arange(5)) < 1e-9
    assert _baseline_rmsd(same, np.arange(20)) is None  # nothing left to stand in


def test_mds_encoder_trains_on_shapes_in_one_frame(small_dataset):
    from ljvae_core.geometry import matched_rmsd

    settings = TrainSettings(representation="distances", latent_dim=8, epochs=8, batch_size=32,
                             distance_encoder="mds")
    trained = train(small_dataset, settings)
    history = trained.history
    assert history["coordinates"][-1] < history["coordinates"][0]
    assert "reordered" not in history  # the frame orders the particles itself
    coords = small_dataset.coords[:12]
    data = trained.model_data(coords)
    # The input is the configuration itself, in the frame; the target its matrix.
    assert data["x"].shape == (12, 10, 2)
    assert matched_rmsd(data["coordinates"].astype(float), coords).max() < 1e-4
    assert np.allclose(data["target"], trained.representation.values(data["coordinates"]))
    decoded = trained.model.decoded_coordinates(data["x"])
    assert decoded.shape == (12, 10, 2)
    # The distances the decoder outputs are those of its coordinates.
    out = np.asarray(trained.model.predict(data["x"], verbose=0))
    assert np.allclose(trained.representation.distances(out)[0],
                       np.linalg.norm(decoded[0][:, None] - decoded[0][None], axis=-1),
                       atol=1e-4)
    with pytest.raises(TrainingError, match="height channels"):
        TrainSettings(representation_params={"heights": False}).validate()


@pytest.mark.parametrize("encoder,conditional", [("mds", False), ("rows", True)])
def test_what_training_computed_of_the_inputs_is_what_the_model_makes_of_them(
        small_dataset, encoder, conditional, monkeypatch):
    from ljvae_core.calibration import attach_after_training
    from ljvae_core.trained import TrainedModel

    settings = TrainSettings(representation="distances", latent_dim=4, epochs=1,
                             conditional=conditional, distance_encoder=encoder, match_every=0)
    trained = train(small_dataset, settings)
    val = np.asarray(trained.meta["validation_indices"])
    some = np.asarray(trained.meta["train_indices"])[::3]
    computed = TrainedModel.model_data
    calls = []
    monkeypatch.setattr(TrainedModel, "model_data",
                        lambda self, *a, **k: calls.append(1) or computed(self, *a, **k))
    for idx, targets in ((val, True), (some, False), (val[::-2], True)):
        kept = trained.rows_data(small_dataset, idx, targets)
        assert not calls  # sliced from what training kept, not computed again
        fresh = computed(trained, small_dataset.coords[idx], small_dataset.gamma[idx],
                         small_dataset.temperature[idx], targets)
        assert kept.keys() == fresh.keys()
        assert all(np.array_equal(kept[k], fresh[k]) for k in fresh)
    # Rows from both parts at once are computed afresh.
    mixed = np.r_[val[:2], some[:2]]
    assert np.array_equal(trained.rows_data(small_dataset, mixed)["x"], computed(
        trained, small_dataset.coords[mixed], small_dataset.gamma[mixed],
        small_dataset.temperature[mixed])["x"])
    assert calls
    scores = trained.elbo_of(trained.rows_data(small_dataset, val))
    assert np.array_equal(scores, trained.negative_elbo(
        small_dataset.coords[val], small_dataset.gamma[val], small_dataset.temperature[val]))
    attach_after_training(trained, small_dataset)
    assert "_kept_inputs" not in trained.__dict__  # not held once the priors are fitted


def test_xla_only_for_long_runs_of_the_coordinate_decoder():
    from ljvae_core.training import _jit_compile

    long_run = TrainSettings(epochs=100)
    assert _jit_compile(long_run, 12000, None) is True
    # Compiling takes seconds: short runs (the tests, the demo) and other models keep Keras'
    # choice, and so does a distribution strategy.
    assert _jit_compile(TrainSettings(epochs=3), 300, None) == "auto"
    assert _jit_compile(TrainSettings(epochs=100, representation="voxels",
                                      voxel_encoder="conv"), 12000, None) == "auto"
    assert _jit_compile(TrainSettings(epochs=100, representation="coords",
                                      decoder="direct"), 12000, None) == "auto"
    assert _jit_compile(long_run, 12000, object()) == "auto"


def test_state_head_reads_gamma_from_the_latent_and_round_trips(small_dataset, tmp_path):
    from ljvae_core.latent import read_state

    settings = TrainSettings(representation="distances", latent_dim=4, epochs=25,
                             state_weight=30.0, seed=0)
    trained = train(small_dataset, settings)
    state = trained.history["state"]
    assert state[-1] < state[0]
    # Only gamma varies in this dataset: the head has one output, and read off the latent
    # means of the held-out chains it tells gamma = 0 from gamma = 1.
    assert trained.meta["state_columns"] == [0]
    val = trained.meta["validation_indices"]
    latent = trained.encode(small_dataset.coords[val])
    guess = np.asarray(trained.model.state_head(latent.astype("float32")))[:, 0]
    truth = small_dataset.gamma[val]
    assert guess[truth == 1.0].mean() - guess[truth == 0.0].mean() > 1.0
    # Read back in the units of gamma: nearer the truth than the training mean (0.5) is.
    read = read_state(trained, latent)
    assert set(read) == {"gamma"}
    assert np.mean(np.abs(read["gamma"] - truth)) < 0.3
    again = load_model(save_model(trained, models_dir(tmp_path) / "state"))
    assert np.allclose(np.asarray(again.model.state_head(latent.astype("float32")))[:, 0], guess)


def test_no_state_head_for_conditional_models_or_a_single_state_point(small_dataset):
    conditional = train(small_dataset, TrainSettings(representation="distances", latent_dim=2,
                                                     epochs=1, conditional=True))
    keep = small_dataset.gamma == 0.0
    one_gamma = replace(small_dataset, **{name: getattr(small_dataset, name)[keep] for name in
                                          ("coords", "energy", "gamma", "temperature", "chain",
                                           "condition")})
    single = train(one_gamma, TrainSettings(representation="distances", latent_dim=2, epochs=1))
    for trained in (conditional, single):
        assert trained.settings.state_weight > 0  # the default, unused here
        assert trained.model.state_head is None and trained.meta["state_columns"] == []
        assert model_summary(trained)["state_weight"] == 0.0


def test_models_saved_before_the_newer_options_load_without_them(small_dataset, tmp_path):
    from ljvae_core.artifacts import dump_signed, load_signed
    from ljvae_core.model_store import META_FILE

    trained = train(small_dataset, TrainSettings(representation="distances", latent_dim=2,
                                                 epochs=1, state_weight=0.0, repel_steps=0))
    path = save_model(trained, models_dir(tmp_path) / "old")
    meta = load_signed(path / META_FILE)
    for newer in ("repel_steps", "repel_trigger", "log_heights", "state_weight",
                  "height_noise"):
        del meta["settings"][newer]
    dump_signed(meta, path / META_FILE)
    settings = load_model(path).settings
    assert (settings.repel_steps, settings.repel_trigger, settings.log_heights,
            settings.state_weight, settings.height_noise) == (0, 0.0, False, 0.0, 0.0)


def test_a_failure_after_training_keeps_the_trained_model(small_dataset, cache, monkeypatch):
    from ljvae_core import evaluation
    from ljvae_core.artifacts import save_dataset
    from ljvae_core.workflows import EvaluationError, train_and_save

    save_dataset(small_dataset, "small")

    def broken(*args, **kwargs):
        raise np.linalg.LinAlgError("Matrix is not positive definite")

    monkeypatch.setattr(evaluation, "evaluate", broken)
    settings = TrainSettings(representation="distances", latent_dim=3, epochs=2)
    with pytest.raises(EvaluationError, match="saved as small-distances-z3") as failure:
        train_and_save("small", settings)
    assert failure.value.model_name == "small-distances-z3"
    again = load_model(models_dir() / "small-distances-z3")
    assert again.meta["epochs_run"] == 2 and again.meta["dataset_name"] == "small"


def test_the_train_command_offers_the_settings_own_defaults_and_help():
    from ljvae_core.cli import TRAIN_FLAGS, build_parser
    from ljvae_core.settings import setting_options

    parser = build_parser()
    plain = parser.parse_args(["train", "d.joblib", "--out", "m"])
    assert TrainSettings(**{n: getattr(plain, n) for n, _ in TRAIN_FLAGS}) == TrainSettings()
    given = parser.parse_args(["train", "d.joblib", "--out", "m", "--linear-heights",
                               "--conditional", "--latent-dim", "8", "--beta", "0.5"])
    settings = TrainSettings(**{n: getattr(given, n) for n, _ in TRAIN_FLAGS})
    assert settings == replace(TrainSettings(), log_heights=False, conditional=True,
                               latent_dim=8, beta=0.5)
    text = parser._subparsers._group_actions[0].choices["train"].format_help()
    text = " ".join(text.split()).lower()
    for name, flag in TRAIN_FLAGS:
        label = " ".join(setting_options(name)["label"].split(" (")[0].split()).lower()
        assert flag in text and label in text, name
    # Every setting the Train page offers is on the command line too.
    from ljvae_core.settings import FORM_FIELDS

    assert set(FORM_FIELDS) - {"representation_params"} <= {n for n, _ in TRAIN_FLAGS}


def test_representation_parameters_have_one_source():
    import inspect

    from ljvae_core.cli import build_parser
    from ljvae_core.features import REPRESENTATIONS
    from ljvae_core.settings import REPRESENTATION_PARAMS, representation_params

    for kind, specs in REPRESENTATION_PARAMS.items():
        own = inspect.signature(REPRESENTATIONS[kind]).parameters
        for name, spec in specs.items():
            assert own[name].default == spec["default"], (kind, name)
    parser = build_parser()
    plain = vars(parser.parse_args(["train", "d.joblib", "--out", "m"]))
    assert representation_params("distances", plain) == {}
    assert representation_params("voxels", plain) == {}
    given = vars(parser.parse_args(["train", "d.joblib", "--out", "m", "--no-heights",
                                    "--voxel-cells", "8", "--smearing", "0.3"]))
    assert representation_params("distances", given) == {"heights": False}
    assert representation_params("voxels", given) == {"n_cells": 8, "smearing": 0.3}


@pytest.mark.parametrize("encoder", ["peaks", "conv"])
def test_a_voxel_model_decodes_coordinates_and_scores_them_in_its_own_order(small_dataset,
                                                                           tmp_path, encoder):
    settings = TrainSettings(representation="voxels", latent_dim=3, epochs=3,
                             voxel_encoder=encoder, representation_params={"n_cells": 8})
    trained = train(small_dataset, settings)
    # Its targets are in the template order of sorted coordinates: nothing to re-order.
    assert "reordered" not in trained.history
    assert trained.output_representation.sort_axis == "template"
    coords = small_dataset.coords[:6]
    data = trained.model_data(coords)
    # The peaks encoder's fixed first stage: the particles peak picking finds, as sorted
    # coordinates in the targets' template order.
    inputs = {"peaks": (6, 20), "conv": (6, 8, 8, 1)}[encoder]
    assert data["x"].shape == inputs and data["target"].shape == (6, 20)
    if encoder == "peaks":
        found = trained.representation.inverse_transform(trained.representation.transform(coords))
        assert np.allclose(data["x"], trained.output_representation.transform(found), atol=1e-6)
    back = trained.reconstruct(coords)
    assert back.shape == coords.shape and np.isfinite(back).all()
    again = load_model(save_model(trained, models_dir(tmp_path) / "voxels"))
    assert np.allclose(again.reconstruct(coords), back, atol=1e-5)
    # Targets are scored in the decoder's particle order (the ELBO, the evaluation).
    out = again.output(data)
    matched = again.in_output_order(data["target"], out)
    assert np.mean((out - matched) ** 2) <= np.mean((out - data["target"]) ** 2) + 1e-9
    assert np.isfinite(again.negative_elbo(coords)).all()


def test_models_saved_before_the_decoder_setting_keep_their_decoders():
    from ljvae_core.model_store import _current_names

    old = {"representation": "coords", "distance_decoder": "coordinates", "latent_dim": 2}
    assert _current_names(old) == {"representation": "coords", "decoder": "direct",
                                   "latent_dim": 2}
    assert _current_names({"distance_decoder": "direct"}) == {"decoder": "direct"}
    assert _current_names({"decoder": "coordinates"}) == {"decoder": "coordinates"}
