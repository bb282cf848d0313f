"""VAE building blocks: sampling, symmetric outputs, the TensorFlow LJ energy, architectures."""

import keras
import numpy as np
import pytest

from ljvae_core.geometry import pairwise_distances
from ljvae_core.models import (
    CoordinateDecoding,
    SymmetricDistances,
    build_vae,
    default_dense_widths,
)
from ljvae_core.physics_tf import lj_energy_from_distances, pairwise_distances_tf
from ljvae_core.potential import pair_energy, periodic_mask
from ljvae_core.vae import Sampling

# A decoder of 3D coordinates whose distance matrices are in units of 10 sigma.
COORDS = CoordinateDecoding(3, 10.0)


def test_sampling_draws_from_the_posterior():
    mean = np.full((20000, 2), [1.0, -2.0], dtype="float32")
    log_var = np.full((20000, 2), np.log([0.25, 4.0]), dtype="float32")
    z = np.asarray(Sampling(seed=3)([mean, log_var]))
    assert np.allclose(z.mean(axis=0), [1, -2], atol=0.05)
    assert np.allclose(z.var(axis=0), [0.25, 4.0], rtol=0.05)


def test_symmetric_distances_by_construction():
    a = np.random.default_rng(0).uniform(size=(3, 6, 6, 1)).astype("float32")
    out = np.asarray(SymmetricDistances()(a))[..., 0]
    assert np.allclose(out, np.swapaxes(out, 1, 2))
    assert np.allclose(np.diagonal(out, axis1=1, axis2=2), 0)


def test_tensorflow_energy_matches_the_numba_energy():
    rng = np.random.default_rng(1)
    from ljvae_core.sampling import initial_configuration

    coords = np.stack([initial_configuration(20, 3, 5.0, rng) for _ in range(4)])
    expected = [pair_energy(c, 5.0, periodic_mask("", 3), np.inf) / 20 for c in coords]
    from_d = np.asarray(lj_energy_from_distances(pairwise_distances(coords).astype("float32"),
                                                 20))
    assert np.allclose(from_d, expected, rtol=1e-4, atol=1e-4)
    from_x = np.asarray(pairwise_distances_tf(coords.astype("float32")))
    assert np.allclose(from_x, pairwise_distances(coords), atol=1e-5)


def test_default_dense_network_is_the_original_studys():
    assert default_dense_widths(60) == [45, 22]
    vae = build_vae("coords", (60,), 2)
    widths = [layer.units for layer in vae.encoder.layers if hasattr(layer, "units")]
    assert widths == [45, 22, 2, 2]


@pytest.mark.parametrize("representation,shape", [
    ("coords", (90,)), ("distances", (30, 30, 1)), ("distances", (30, 30, 3)),
    ("voxels", (16, 16, 16, 1)),
    ("voxels", (16, 16, 1)),
])
@pytest.mark.parametrize("conditional", [False, True])
def test_architectures_map_inputs_to_outputs_of_the_same_shape(representation, shape,
                                                                conditional):
    heights = 5.0 if representation == "distances" and shape[-1] == 3 else None
    vae = build_vae(representation, shape, 5, conditional=conditional, height_scale=heights)
    x = np.random.default_rng(2).uniform(size=(2,) + shape).astype("float32")
    inputs = (x, np.zeros((2, 2), "float32")) if conditional else x
    mean, log_var = vae.encoder(list(inputs) if conditional else inputs)
    assert mean.shape == (2, 5) and log_var.shape == (2, 5)
    assert vae(inputs).shape == (2,) + shape


@pytest.mark.parametrize("conditional", [False, True])
def test_row_encoder_describes_each_particle_by_its_whole_row(conditional):
    vae = build_vae("distances", (12, 12, 3), 5, conditional=conditional, height_scale=5.0,
                    decode_coordinates=COORDS, distance_encoder="rows")
    rows = vae.encoder.get_layer("encoder_rows_0")
    assert rows.kernel.shape[:2] == (1, 12)
    x = np.random.default_rng(3).uniform(size=(2, 12, 12, 3)).astype("float32")
    inputs = (x, np.zeros((2, 2), "float32")) if conditional else x
    assert vae(inputs).shape == (2, 12, 12, 3)


@pytest.mark.parametrize("shape", [(30,), (8, 8, 8, 1), (8, 8, 1)])
@pytest.mark.parametrize("conditional", [False, True])
def test_sorted_coordinates_and_grids_decode_coordinates_in_the_box(shape, conditional,
                                                                    tmp_path):
    dim = 3 if len(shape) != 3 else 2
    n = 10 if dim == 3 else 15
    decoding = CoordinateDecoding(dim, box=5.0, n_particles=n)
    kind = "coords" if len(shape) == 1 else "voxels"
    vae = build_vae(kind, shape if kind == "voxels" else (n * dim,), 4,
                    conditional=conditional, decode_coordinates=decoding,
                    coordinate_weight=30.0, repel={"distance": 0.9, "steps": 2, "height": 5.0},
                    log_heights=True)
    assert vae.has_coordinates and vae.reconstruction_weight == 30.0
    assert vae.coordinate_weight == 0.0  # the output is the coordinates: no second term
    z = np.random.default_rng(6).normal(size=(3, 4)).astype("float32")
    c = np.zeros((3, 2), "float32") if conditional else None
    coordinates, out = vae.decode_with_coordinates(z, c)
    # The output is the decoded coordinates as sorted-coordinate values of the box.
    assert np.allclose(np.asarray(out), 2.0 * np.asarray(coordinates) / 5.0 - 1.0, atol=1e-6)
    assert out.shape == (3, n * dim)
    heights = np.asarray(coordinates).reshape(3, n, dim)[..., -1]
    assert heights.min() >= 0.0 and heights.max() <= 5.0
    vae.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    assert np.allclose(np.asarray(again.decode(z, c)), np.asarray(out), atol=1e-6)


def test_bad_architectures_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="multiple of 8"):
        build_vae("voxels", (12, 12, 12, 1), 4)
    with pytest.raises(ValueError, match="unknown representation"):
        build_vae("graph", (3,), 4)
    with pytest.raises(ValueError, match="unknown distance encoder"):
        build_vae("distances", (6, 6, 1), 4, distance_encoder="graph")


def test_coordinate_decoder_emits_euclidean_distance_matrices(tmp_path):
    from ljvae_core.geometry import classical_mds

    vae = build_vae("distances", (12, 12, 1), 4, decode_coordinates=COORDS)
    z = np.random.default_rng(3).normal(size=(5, 4)).astype("float32")
    D = np.asarray(vae.decode(z))[..., 0] * 10.0
    assert np.allclose(D, np.swapaxes(D, 1, 2), atol=1e-5)
    # A Euclidean matrix: MDS in 3D reproduces it.
    Y = classical_mds(D.astype(float), 3)
    assert np.allclose(pairwise_distances(Y), D, atol=1e-3)
    vae.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    assert np.allclose(np.asarray(again.decode(z)), np.asarray(vae.decode(z)))


def test_coordinate_decoder_with_heights_emits_the_heights_of_its_coordinates():
    from ljvae_core.features import DistanceMatrix
    from ljvae_core.geometry import matched_rmsd
    from ljvae_core.models import DistancesFromCoordinates

    vae = build_vae("distances", (12, 12, 3), 4, decode_coordinates=COORDS, height_scale=5.0)
    z = np.random.default_rng(4).normal(size=(5, 4)).astype("float32")
    assert np.asarray(vae.decode(z)).shape == (5, 12, 12, 3)
    # Channels laid out as the representation's: MDS plus heights give back the decoded
    # coordinates (up to a turn about the up axis, a mirror and a shift across).
    coords = np.random.default_rng(5).uniform(0.5, 4.5, (5, 12, 3))
    rep = DistanceMatrix(L=5.0, d=3).fit(coords)
    layer = DistancesFromCoordinates(12, 3, rep.scale, height_scale=rep.height_scale)
    out = np.asarray(layer(coords.reshape(5, -1).astype("float32")), dtype=np.float64)
    assert np.allclose(rep.particle_heights(out), coords[..., -1], atol=1e-5)
    back = rep.inverse_transform(out)
    assert np.allclose(back[..., -1], coords[..., -1], atol=1e-3)
    assert matched_rmsd(back, coords).max() < 1e-3


def test_repel_sets_an_overlapping_pair_to_the_contact_distance_and_spares_the_rest():
    from ljvae_core.models import Repel

    # Pair (0, 1) overlaps at 0.5 sigma; particle 2 is far from both.
    x = np.array([[[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [3.0, 3.0, 3.0]]], dtype="float32")
    out = np.asarray(Repel(3, 3, distance=0.9, steps=1)(x.reshape(1, -1))).reshape(1, 3, 3)
    d = pairwise_distances(out.astype(float))[0]
    assert d[0, 1] == pytest.approx(0.9, abs=1e-5)
    assert np.allclose(out[0, 2], x[0, 2])
    assert np.allclose(out[0, :2].mean(axis=0), x[0, :2].mean(axis=0), atol=1e-6)  # no drift


def test_repel_with_a_trigger_spares_whole_configurations_and_pushes_overlapping_ones():
    from ljvae_core.models import Repel

    # Both hold a thermal contact at 0.95 sigma, under the contact distance; only the
    # second also holds an overlap (0.5 sigma), under the trigger.
    whole = [[0.0, 0.0, 1.0], [0.95, 0.0, 1.0], [3.0, 3.0, 1.0], [3.0, 3.0, 6.0]]
    overlapping = [[0.0, 0.0, 1.0], [0.95, 0.0, 1.0], [3.0, 3.0, 1.0], [3.5, 3.0, 1.0]]
    x = np.array([whole, overlapping], dtype="float32")
    layer = Repel(4, 3, distance=1.06, steps=1, height=5.0, trigger=0.85)
    out = np.asarray(layer(x.reshape(2, -1))).reshape(2, 4, 3)
    assert np.allclose(out[0, :3], x[0, :3])
    assert out[0, 3, 2] == pytest.approx(5.0)  # still put under the ceiling
    d = pairwise_distances(out[1:].astype(float))[0]
    assert d[0, 1] == pytest.approx(1.06, abs=1e-5) and d[2, 3] == pytest.approx(1.06, abs=1e-5)
    always = np.asarray(Repel(4, 3, distance=1.06, steps=1, height=5.0)(x.reshape(2, -1)))
    assert np.allclose(out[1], always.reshape(2, 4, 3)[1])
    assert pairwise_distances(always.reshape(2, 4, 3)[:1].astype(float))[0][0, 1] > 1.05


def test_repel_clears_the_overlaps_of_a_random_cluster_and_lets_gradients_through():
    import tensorflow as tf

    from ljvae_core.models import Repel

    x = tf.Variable(np.random.default_rng(6).uniform(0, 3, (8, 30, 3)).reshape(8, -1),
                    dtype="float32")
    layer = Repel(30, 3, distance=0.9, steps=8)
    with tf.GradientTape() as tape:
        out = layer(x)
        loss = tf.reduce_sum(out ** 2)
    before = pairwise_distances(x.numpy().reshape(8, 30, 3).astype(float))
    after = pairwise_distances(np.asarray(out).reshape(8, 30, 3).astype(float))
    off = ~np.eye(30, dtype=bool)
    assert (before[:, off] < 0.8).mean() > 0.01
    assert (after[:, off] < 0.8).mean() < 0.1 * (before[:, off] < 0.8).mean()
    grad = tape.gradient(loss, x).numpy()
    assert np.isfinite(grad).all() and np.abs(grad).max() > 0


@pytest.mark.parametrize("log_heights", [False, True])
def test_coordinate_decoder_with_repel_saves_and_loads(tmp_path, log_heights):
    vae = build_vae("distances", (12, 12, 3), 4, decode_coordinates=COORDS, height_scale=5.0,
                    distance_encoder="mds",
                    repel={"distance": 0.9, "steps": 3, "height": 5.0, "trigger": 0.85},
                    log_heights=log_heights)
    assert vae.decoder.get_layer("decoder_coordinates").__class__.__name__ == "Repel"
    z = np.random.default_rng(7).normal(size=(5, 4)).astype("float32")
    vae.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    assert again.decoder.get_layer("decoder_coordinates").trigger == pytest.approx(0.85)
    assert np.allclose(np.asarray(again.decode(z)), np.asarray(vae.decode(z)), atol=1e-6)


def test_exp_heights_keeps_decoded_heights_above_the_floor():
    from ljvae_core.models import ExpHeights

    x = np.random.default_rng(8).normal(0, 3, (4, 36)).astype("float32")
    out = np.asarray(ExpHeights(12, 3)(x)).reshape(4, 12, 3)
    assert (out[..., 2] > 0).all()
    assert np.allclose(np.log(out[..., 2]), x.reshape(4, 12, 3)[..., 2], atol=1e-5)
    assert np.array_equal(out[..., :2], x.reshape(4, 12, 3)[..., :2])


def test_repel_keeps_pushed_particles_between_floor_and_ceiling():
    from ljvae_core.models import Repel

    # A pair overlapping on the floor, one above the other: pushed apart along the vertical,
    # the lower one would go through the floor.
    x = np.array([[[1.0, 1.0, 0.0], [1.0, 1.0, 0.3], [1.0, 1.0, 4.9]]], dtype="float32")
    out = np.asarray(Repel(3, 3, 1.0, 6, height=5.0)(x.reshape(1, -1))).reshape(3, 3)
    assert out[:, 2].min() >= 0.0 and out[:, 2].max() <= 5.0
    assert out[1, 2] - out[0, 2] == pytest.approx(1.0, abs=0.02)  # halves the gap per step


def test_wall_overflow_is_zero_inside_the_box_in_any_turn_and_grows_outside():
    from ljvae_core.physics_tf import wall_overflow

    rng = np.random.default_rng(9)
    inside = rng.uniform(0.2, 4.8, (3, 20, 3))
    turn = np.deg2rad(30.0)
    rotation = np.array([[np.cos(turn), -np.sin(turn), 0], [np.sin(turn), np.cos(turn), 0],
                         [0, 0, 1]])
    turned = inside @ rotation.T  # still fits, once turned back
    assert np.asarray(wall_overflow(turned.astype("float32"), 5.0)).max() < 1e-3
    wide = inside.copy()
    wide[:, 0, :2] = [-3.0, -3.0]  # one particle far outside a corner
    low = inside.copy()
    low[:, 0, 2] = -0.5  # one particle 0.5 below the floor
    assert (np.asarray(wall_overflow(wide.astype("float32"), 5.0)) > 1.0).all()
    assert np.allclose(np.asarray(wall_overflow(low.astype("float32"), 5.0)), 0.25, atol=1e-5)
    assert np.asarray(wall_overflow(wide.astype("float32"), 5.0, side_walls=False)).max() == 0


def test_physics_penalty_counts_the_walls_of_decoded_coordinates():
    from ljvae_core.penalty import PhysicsPenalty
    from ljvae_core.physics_tf import decoded_penalty

    physics = PhysicsPenalty(weight=2.0, energy_cap=0.0, kind="distances", n_particles=12,
                             dim=3, scale=10.0, box=5.0, side_walls=True)
    vae = build_vae("distances", (12, 12, 3), 4, decode_coordinates=COORDS, height_scale=5.0,
                    distance_encoder="mds", physics=physics)
    grid = np.stack(np.meshgrid(*[np.arange(3) * 1.5 + 0.5] * 2, indexing="ij"), -1).reshape(-1, 2)
    coords = np.c_[np.r_[grid, grid[:3]], np.r_[np.full(9, 0.5), np.full(3, 2.0)]]
    coords = coords[None].astype("float32")  # 12 particles 1.5 apart, inside a box of 5
    sunk = coords.copy()
    sunk[0, 0, 2] = -1.0  # one particle 1 below the floor, still clear of the others
    matrix = np.asarray(vae.decoder.get_layer("distances")(coords.reshape(1, -1)))
    (term,) = [t for t in vae.terms if t.name == "physics"]
    inside = float(np.asarray(term.weighted(decoded_penalty(vae.physics, matrix, coords)))[0])
    below = float(np.asarray(term.weighted(decoded_penalty(vae.physics, matrix, sunk)))[0])
    assert below - inside == pytest.approx(2.0 * 1.0, rel=1e-4)  # weight x (1 sigma)^2


def test_loss_terms_and_their_metrics_follow_the_model():
    from ljvae_core.penalty import PhysicsPenalty

    plain = build_vae("coords", (24,), 2, seed=0)
    assert [t.name for t in plain.terms] == ["reconstruction", "kl"]
    physics = PhysicsPenalty(weight=1.0, energy_cap=0.0, kind="coords", n_particles=12, dim=2,
                             scale=2.5)
    full = build_vae("distances", (12, 12, 3), 4, decode_coordinates=COORDS,
                     height_scale=5.0, distance_encoder="mds", physics=physics,
                     coordinate_weight=30.0, n_states=1, state_weight=100.0)
    assert [t.name for t in full.terms] == ["reconstruction", "kl", "physics", "coordinates",
                                             "state"]
    assert [m.name for m in full.metrics] == ["loss", *(t.name for t in full.terms)]
    # The settings survive saving as plain data, and the typed penalty comes back.
    again = type(full).from_config(full.get_config())
    assert again.physics == physics and [t.name for t in again.terms] == [
        t.name for t in full.terms]


def test_wall_overflow_in_2d_measures_the_width_across():
    from ljvae_core.physics_tf import wall_overflow

    coords = np.array([[[0.0, 0.0], [3.0, 1.0], [5.5, 2.0]]], dtype="float32")  # 5.5 wide
    assert float(np.asarray(wall_overflow(coords, 5.0))[0]) == pytest.approx(0.25, abs=1e-5)
    assert float(np.asarray(wall_overflow(coords, 6.0))[0]) == pytest.approx(0.0, abs=1e-6)


def test_the_calibrated_likelihood_is_the_gaussian_one_at_the_batch_variance():
    from ljvae_core.vae import calibrated_nll, gaussian_nll

    rng = np.random.default_rng(0)
    truth, guess = rng.normal(size=(50, 6)), rng.normal(size=(50, 6))
    nll, log_mse = (np.asarray(v, np.float64) for v in calibrated_nll(truth, guess))
    mse = np.mean((truth - guess) ** 2)
    assert log_mse == pytest.approx(np.log(mse))
    # At the batch's own variance, the mean NLL is dims / 2 (1 + log mse).
    assert nll.mean() == pytest.approx(3.0 * (1.0 + np.log(mse)), rel=1e-5)
    sq = np.sum((truth - guess) ** 2, axis=1)
    assert np.allclose(nll, np.asarray(gaussian_nll(sq, 6.0, np.float64(np.log(mse)))), rtol=1e-5)
