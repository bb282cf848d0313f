"""VAE building blocks: sampling, symmetric outputs, the TensorFlow LJ energy, architectures."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from ljvae_core.geometry import pairwise_distances  # noqa: E402
from ljvae_core.models import (  # noqa: E402
    Sampling,
    SymmetricDistances,
    build_vae,
    default_dense_widths,
    lj_energy_from_distances,
    pairwise_distances_tf,
)
from ljvae_core.potential import pair_energy, periodic_mask  # noqa: E402


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
                    through_coordinates=(3, 10.0), distance_encoder="rows")
    rows = vae.encoder.get_layer("encoder_rows_0")
    assert rows.kernel.shape[:2] == (1, 12)
    x = np.random.default_rng(3).uniform(size=(2, 12, 12, 3)).astype("float32")
    inputs = (x, np.zeros((2, 2), "float32")) if conditional else x
    assert vae(inputs).shape == (2, 12, 12, 3)


def test_bad_architectures_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="multiple of 8"):
        build_vae("voxels", (12, 12, 12, 1), 4)
    with pytest.raises(ValueError, match="unknown representation"):
        build_vae("graph", (3,), 4)
    with pytest.raises(ValueError, match="unknown distance encoder"):
        build_vae("distances", (6, 6, 1), 4, distance_encoder="graph")


def test_coordinate_decoder_emits_euclidean_distance_matrices(tmp_path):
    from ljvae_core.geometry import classical_mds

    vae = build_vae("distances", (12, 12, 1), 4, through_coordinates=(3, 10.0))
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

    vae = build_vae("distances", (12, 12, 3), 4, through_coordinates=(3, 10.0), height_scale=5.0)
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
