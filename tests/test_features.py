"""Representations: shapes, ranges and round trips."""

import numpy as np
import pytest

from ljvae_core.features import (
    DistanceMatrix,
    ShapeFrame,
    SortedCoordinates,
    VoxelGrid,
    make_representation,
    place_in_box,
    representation_from_dict,
    representation_to_dict,
)
from ljvae_core.geometry import classical_mds, kabsch, matched_rmsd, pairwise_distances, rmsd


@pytest.fixture
def configs():
    return np.random.default_rng(0).uniform(0.2, 4.8, (40, 30, 3))


@pytest.mark.parametrize("axis", ["x", "z", "up"])
def test_sorted_coordinates_round_trip_is_exact(configs, axis):
    rep = SortedCoordinates(L=5.0, d=3, sort_axis=axis).fit(configs)
    X = rep.transform(configs)
    assert X.shape == (40, 90) and X.min() >= -1 and X.max() <= 1
    column = 2 if axis == "up" else "xyz".index(axis)
    assert np.all(np.diff(X.reshape(40, 30, 3)[..., column], axis=1) >= 0)
    assert np.allclose(rep.inverse_transform(X), rep.sort(configs), atol=1e-12)
    # Sorting only permutes the particles.
    assert matched_rmsd(rep.inverse_transform(X[:3]), configs[:3]).max() < 1e-8


def test_template_order_is_blind_to_the_input_order_and_follows_wandering_particles():
    rng = np.random.default_rng(4)
    sites = rng.uniform(0.5, 4.5, (30, 3))
    configs = sites + rng.normal(0, 0.05, (200, 30, 3))
    rep = SortedCoordinates(L=5.0, d=3).fit(configs)
    assert rep.sort_axis == "template" and rep.template_.shape == (30, 3)
    X = rep.transform(configs)
    shuffled = np.stack([c[rng.permutation(30)] for c in configs])
    assert np.array_equal(rep.transform(shuffled), X)
    # Each template site keeps one particle: the values of every configuration lie near
    # the template's, where a sort along x reorders particles of nearly equal x.
    ordered = rep.inverse_transform(X)
    assert np.abs(ordered - rep.template_).max() < 0.3
    assert matched_rmsd(ordered[:3], configs[:3]).max() < 1e-8


def test_sorted_coordinates_rejects_bad_input(configs):
    rep = SortedCoordinates(L=5.0, d=3).fit(configs)
    with pytest.raises(ValueError, match="fitted on 30"):
        rep.transform(configs[:, :10])
    with pytest.raises(ValueError, match="2D, the representation is 3D"):
        rep.transform(configs[..., :2])
    with pytest.raises(ValueError, match="sort_axis"):
        SortedCoordinates(L=5.0, d=2, sort_axis="z").fit(configs[..., :2]).transform(
            configs[..., :2])
    with pytest.raises(RuntimeError, match="fitted"):
        SortedCoordinates().transform(configs)


@pytest.mark.parametrize("d", [2, 3])
def test_distance_matrix_round_trip_up_to_rigid_motion(d):
    rng = np.random.default_rng(1)
    coords = rng.uniform(0, 5, (30, 25, d))
    rep = DistanceMatrix(L=5.0, d=d, heights=False).fit(coords)
    X = rep.transform(coords)
    assert X.shape == (30, 25, 25, 1)
    assert X.min() >= 0 and X.max() < 1
    assert np.allclose(X[..., 0], np.swapaxes(X[..., 0], 1, 2))
    ordered = rep.sort(coords)
    assert np.all(np.diff((ordered**2).sum(-1), axis=1) >= 0)
    mds = classical_mds(rep.distances(X), d)
    assert rmsd(kabsch(mds, ordered), ordered).max() < 1e-8


def test_distance_matrix_inverse_lands_in_the_box_and_keeps_compact_shapes():
    rng = np.random.default_rng(2)
    # A compact cluster (fits the box whatever its orientation) survives exactly.
    coords = 2.5 + rng.uniform(-1.2, 1.2, (20, 20, 3))
    rep = DistanceMatrix(L=5.0, d=3, heights=False).fit(coords)
    back = rep.inverse_transform(rep.transform(coords))
    assert back.min() >= 0 and back.max() <= 5
    assert np.allclose(pairwise_distances(back), pairwise_distances(rep.sort(coords)),
                       atol=1e-8)
    # Its flattest direction ends up vertical, resting half a diameter above the floor.
    assert np.allclose(back[..., -1].min(axis=1), 0.5)


@pytest.mark.parametrize("d", [2, 3])
def test_height_channels_stand_the_shape_upright_again(d):
    rng = np.random.default_rng(4)
    # Settled under gravity: low and flat, particles anywhere across.
    coords = rng.uniform(0, 5, (40, 25, d))
    coords[..., -1] = rng.exponential(0.6, (40, 25)).clip(0, 5)
    rep = DistanceMatrix(L=5.0, d=d).fit(coords)
    X = rep.transform(coords)
    assert X.shape == (40, 25, 25, 3)
    ordered = rep.sort(coords)
    assert np.allclose(X[:, :, 0, 1] * rep.height_scale, ordered[..., -1])  # z_i along row i
    assert np.allclose(X[..., 2], np.swapaxes(X[..., 1], 1, 2))
    assert np.allclose(rep.particle_heights(X), ordered[..., -1])
    back = rep.inverse_transform(X)
    # Exact up to a turn about the up axis, a mirror and a shift across: the heights
    # themselves come back, and the shape with them.
    assert np.allclose(back[..., -1], ordered[..., -1], atol=1e-8)
    assert matched_rmsd(back, coords).max() < 1e-8
    assert back.min() >= 0 and back.max() <= 5
    # Heights that carry no direction (all equal) fall back to the orientation search.
    flat = rep.transform(coords)
    flat[..., 1:] = 0.1
    assert np.isfinite(rep.inverse_transform(flat[:2])).all()


def _settled(rng, m, n, d):
    coords = rng.uniform(0, 5, (m, n, d))
    coords[..., -1] = rng.exponential(0.8, (m, n)).clip(0, 5)
    return coords


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("reorder", [True, False])
def test_shape_frame_puts_every_copy_of_a_configuration_in_the_same_frame(d, reorder):
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(8)
    coords = _settled(rng, 60, 20, d)
    rep = DistanceMatrix(L=5.0, d=d).fit(coords)
    frame = ShapeFrame(rep, reorder=reorder).fit(rep.transform(coords))
    orders, shapes = frame.transform(rep.transform(coords[:10]))
    # The shape is the configuration, moved across only: its particles orders[m] of the
    # input's, their heights untouched.
    ordered = rep.sort(coords[:10])
    assert np.allclose(shapes[..., -1], np.take_along_axis(ordered[..., -1], orders, 1))
    assert matched_rmsd(shapes, coords[:10]).max() < 1e-6
    if not reorder:
        assert np.array_equal(orders, np.tile(np.arange(20), (10, 1)))
    # A copy turned about the vertical, mirrored and shifted across lands on the same shape
    # when the frame re-orders particles (the input order, distance from the box's corner,
    # is another for the copy).
    turn = np.eye(d)
    if d == 3:
        turn[:2, :2] = Rotation.from_euler("z", 1.1).as_matrix()[:2, :2]
    turn[0] *= -1
    shift = np.zeros(d)
    shift[0] = 0.3
    _, again = frame.transform(rep.transform(coords[:10] @ turn.T + shift))
    if reorder:
        assert np.abs(again - shapes).max() < 1e-6
    # Persisted as plain data.
    back = ShapeFrame.from_dict(rep, frame.to_dict())
    assert np.allclose(back.transform(rep.transform(coords[:5]))[1], shapes[:5])
    with pytest.raises(ValueError, match="height channels"):
        ShapeFrame(DistanceMatrix(L=5.0, d=d, heights=False))


def _one_set_at_a_time(frame, X):
    """The shape frame computed set by set: each shape stood upright with its own QR, then
    matched by geometry.match_across (one SciPy assignment per set, start and round)."""
    from ljvae_core.features import _up_directions
    from ljvae_core.geometry import match_across

    rep = frame.rep
    P, h, u, usable = _up_directions(classical_mds(rep.distances(X), rep.d),
                                     rep.particle_heights(X))
    shapes = np.empty_like(P)
    for k in range(len(P)):
        if usable[k]:
            q, _ = np.linalg.qr(np.column_stack([u[k], np.eye(rep.d)]))
            shapes[k, :, :-1] = P[k] @ q[:, 1:rep.d]
        else:
            shapes[k, :, :-1] = P[k] @ np.linalg.svd(P[k], full_matrices=False)[2][:-1].T
        shapes[k, :, -1] = h[k]
    rounds = frame.rounds if frame.reorder else 0
    template = frame.template if frame.template is not None else shapes[0]
    return match_across(shapes, np.broadcast_to(template, shapes.shape), max_rounds=rounds)


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("reorder", [True, False])
def test_batched_shape_frame_matches_the_set_by_set_one(d, reorder, monkeypatch):
    import ljvae_core.features as features
    from ljvae_core.sampling import SimulationParams, simulate

    # Small chunks, so that several run side by side on threads.
    monkeypatch.setattr(features, "_MATCH_CHUNK", 64)
    ds = simulate(SimulationParams(n_particles=30 if d == 3 else 16, dim=d, box=5.0,
                                   gammas=(0.0, 2.0), n_samples=150, n_chains=2, seed=1))
    rep = DistanceMatrix(L=5.0, d=d).fit(ds.coords)
    X = rep.transform(ds.coords)
    frame = ShapeFrame(rep, reorder=reorder).fit(X[:200])
    reference, fitted = ShapeFrame(rep, reorder=reorder), X[:200][_fit_pick(200)]
    for _ in range(4):  # ShapeFrame.fit's iterations
        reference.template = _one_set_at_a_time(reference, fitted)[1].mean(axis=0)
    assert np.abs(frame.template - reference.template).max() < 1e-10
    orders, shapes = frame.transform(X)
    expected_orders, expected = _one_set_at_a_time(frame, X)
    assert np.array_equal(orders, expected_orders)
    assert np.abs(shapes - expected).max() < 1e-10


def _fit_pick(n: int, max_fit: int = 2000, seed: int = 0) -> np.ndarray:
    """The training shapes ShapeFrame.fit draws its template from."""
    return np.random.default_rng(seed).choice(n, min(n, max_fit), replace=False)


def test_warm_started_assignments_are_the_optimal_ones():
    from scipy.optimize import linear_sum_assignment

    from ljvae_core.features import _assign_sites

    rng = np.random.default_rng(2)
    points, sites = rng.normal(size=(300, 12, 3)), rng.normal(size=(12, 3))

    def optimal(p):
        return np.stack([linear_sum_assignment(((x[:, None] - sites) ** 2).sum(-1))[1]
                         for x in p])

    assigned, prices = np.full((300, 12), -1), np.zeros((300, 12))
    _assign_sites(points, sites, assigned, prices)
    assert np.array_equal(assigned, optimal(points))
    # Warm starts from moved points, and from other sets' assignments and arbitrary prices.
    moved = points + rng.normal(0.0, 0.2, points.shape)
    _assign_sites(moved, sites, assigned, prices)
    assert np.array_equal(assigned, optimal(moved))
    stale, noise = assigned[::-1].copy(), rng.normal(0.0, 3.0, prices.shape)
    _assign_sites(points, sites, stale, noise)
    assert np.array_equal(stale, optimal(points))


def test_models_saved_before_height_channels_load_without_them():
    from ljvae_core.features import representation_from_dict, representation_to_dict

    rep = DistanceMatrix(L=5.0, d=3).fit(np.ones((1, 4, 3)))
    data = representation_to_dict(rep)
    assert representation_from_dict(data).heights is True
    del data["params"]["heights"]
    assert representation_from_dict(data).heights is False


def test_place_in_box_lays_shapes_flat_and_rotates_them_in():
    line = np.zeros((1, 3, 3))
    line[0, :, 2] = [-4, 0, 4]  # upright: ends lying on the floor, centred across
    out = place_in_box(line, 10.0)[0]
    assert np.allclose(out[:, 2], 0.5)
    assert np.allclose(np.sort(np.ptp(out[:, :2], axis=0)), [0, 8])
    assert np.allclose(out[:, :2].mean(axis=0), 5)
    # A rod longer than the side fits only along a diagonal.
    rod = np.zeros((1, 2, 3))
    rod[0, :, 0] = [-6, 6]
    placed = place_in_box(rod, 10.0)[0]
    assert np.linalg.norm(placed[0] - placed[1]) == pytest.approx(12.0)


@pytest.mark.parametrize("d", [2, 3])
def test_voxel_grid_shape_normalization_and_mass(d):
    rng = np.random.default_rng(3)
    coords = rng.uniform(0, 5, (10, 30, d))
    rep = VoxelGrid(L=5.0, d=d, n_cells=10).fit(coords)
    X = rep.transform(coords)
    assert X.shape == (10,) + (10,) * d + (1,)
    assert np.allclose(X.reshape(10, -1).max(axis=1), 1.0)
    counts = rep._counts(coords)
    assert np.allclose(counts.reshape(10, -1).sum(axis=1), 30)
    # Unsmeared counts equal a plain histogram.
    expected = np.histogramdd(coords[0], bins=10, range=[(0, 5)] * d)[0]
    assert np.array_equal(counts[0], expected)


def test_voxel_grid_inverse_error_follows_the_cell_size():
    rng = np.random.default_rng(4)
    coords = rng.uniform(0.2, 4.8, (60, 20, 3))
    errors = []
    for n in (10, 20, 40):
        rep = VoxelGrid(L=5.0, d=3, n_cells=n).fit(coords)
        errors.append(np.median(matched_rmsd(rep.inverse_transform(rep.transform(coords)),
                                             coords)))
        # Quantization to cell centres: RMS error h * sqrt(d / 12).
        assert errors[-1] == pytest.approx(5.0 / n * np.sqrt(3 / 12), rel=0.25)
    assert errors[0] > errors[1] > errors[2]


def test_smeared_voxels_are_refined_below_the_quantization_error():
    rng = np.random.default_rng(5)
    coords = rng.uniform(0.5, 4.5, (40, 20, 3))
    plain = VoxelGrid(L=5.0, d=3, n_cells=16).fit(coords)
    smeared = VoxelGrid(L=5.0, d=3, n_cells=16, smearing=0.3).fit(coords)
    err = [np.median(matched_rmsd(r.inverse_transform(r.transform(coords)), coords))
           for r in (plain, smeared)]
    assert err[1] < err[0]
    assert smeared.transform(coords).min() >= 0


def test_voxel_cell_size_sets_the_grid():
    rep = VoxelGrid(L=5.0, d=2, n_cells=None, cell_size=0.25)
    assert rep.cells() == 20
    with pytest.raises(ValueError, match="positive"):
        VoxelGrid(L=5.0, d=2, cell_size=0.0).cells()


@pytest.mark.parametrize("kind", ["coords", "voxels", "distances"])
def test_representations_persist_as_plain_data(configs, kind):
    rep = make_representation(kind, L=5.0, d=3).fit(configs)
    data = representation_to_dict(rep)
    learned = {"template"} if kind == "coords" else set()  # the template order's sites
    assert set(data) == {"kind", "params", "n_particles"} | learned
    again = representation_from_dict(data)
    assert np.array_equal(again.transform(configs[:4]), rep.transform(configs[:4]))
    assert again.input_shape() == rep.transform(configs[:1]).shape[1:]
    with pytest.raises(ValueError, match="unknown representation"):
        make_representation("pixels", L=5.0, d=3)
