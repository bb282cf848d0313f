"""Classical MDS, Kabsch alignment and permutation-invariant RMSD."""

import numpy as np
import pytest

from ljvae_core.geometry import (
    classical_mds,
    kabsch,
    match_and_align,
    matched_rmsd,
    pairwise_distances,
    rmsd,
)


def _random_rigid_motion(rng, d, mirror=False):
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    if mirror:
        q[:, 0] *= -1
    return q, rng.normal(size=d) * 3


@pytest.mark.parametrize("d", [2, 3])
def test_mds_then_kabsch_recovers_exact_configurations(d):
    rng = np.random.default_rng(1)
    X = rng.uniform(0, 5, (200, 30, d))
    Y = classical_mds(pairwise_distances(X), d)
    assert Y.shape == X.shape
    assert np.allclose(Y.mean(axis=1), 0.0, atol=1e-10)
    assert rmsd(kabsch(Y, X), X).max() < 1e-8


def test_mds_of_a_noisy_non_euclidean_matrix_is_the_top_eigenspace():
    rng = np.random.default_rng(2)
    X = rng.uniform(0, 5, (50, 20, 3))
    D = pairwise_distances(X) + np.abs(rng.normal(0, 0.3, (50, 20, 20)))
    Y = classical_mds(D, 3)
    # The result must reproduce the clipped top-3 part of the double-centred Gram matrix.
    S = (0.5 * (D + np.swapaxes(D, 1, 2))) ** 2
    J = np.eye(20) - 1.0 / 20
    B = -0.5 * J @ S @ J
    w, v = np.linalg.eigh(B)
    top = (v[..., -3:] * np.clip(w[..., None, -3:], 0, None)) @ np.swapaxes(v[..., -3:], 1, 2)
    assert np.allclose(Y @ np.swapaxes(Y, 1, 2), top, atol=1e-8)


def test_mds_rejects_bad_input():
    with pytest.raises(ValueError, match="square"):
        classical_mds(np.zeros((4, 3)), 2)
    with pytest.raises(ValueError, match="between 1 and N"):
        classical_mds(np.zeros((3, 3)), 4)


@pytest.mark.parametrize("mirror", [False, True])
def test_kabsch_undoes_a_rigid_motion(mirror):
    rng = np.random.default_rng(3)
    Q = rng.normal(size=(25, 3))
    R, t = _random_rigid_motion(rng, 3, mirror)
    P = Q @ R + t
    assert rmsd(kabsch(P, Q), Q) < 1e-10
    proper_only = kabsch(P, Q, allow_reflection=False)
    if mirror:  # a mirror image cannot be reached by a rotation
        assert rmsd(proper_only, Q) > 0.1
        assert np.linalg.det(np.linalg.lstsq(P - P.mean(0), proper_only - Q.mean(0),
                                             rcond=None)[0]) > 0
    else:
        assert rmsd(proper_only, Q) < 1e-10


def test_kabsch_is_batched_and_keeps_shapes():
    rng = np.random.default_rng(4)
    Q = rng.normal(size=(7, 12, 2))
    P = Q[:, ::-1] + 1.0
    out = kabsch(P, Q)
    assert out.shape == Q.shape
    # A batch gives what each item gives alone.
    assert np.allclose(out[3], kabsch(P[3], Q[3]))


@pytest.mark.parametrize("d", [2, 3])
def test_matched_rmsd_ignores_order_and_rigid_motion(d):
    rng = np.random.default_rng(5)
    Q = rng.uniform(0, 5, (20, 30, d))
    P = np.empty_like(Q)
    for m in range(len(Q)):
        R, t = _random_rigid_motion(rng, d, mirror=bool(m % 2))
        P[m] = Q[m][rng.permutation(30)] @ R + t
    assert matched_rmsd(P, Q).max() < 1e-8
    # Plain RMSD, blind to the permutation, sees large differences.
    assert rmsd(kabsch(P, Q), Q).min() > 0.5


def test_matched_rmsd_measures_noise():
    rng = np.random.default_rng(6)
    Q = rng.uniform(0, 6, (40, 30, 3))
    noise = 0.05
    P = Q + rng.normal(0, noise, Q.shape)
    value = matched_rmsd(P, Q)
    # Alignment can only lower the error, never below zero; the expected noise is sqrt(3)*0.05.
    assert np.all(value <= rmsd(P, Q) + 1e-12)
    assert np.median(value) == pytest.approx(noise * np.sqrt(3), rel=0.15)


def test_periodic_pairwise_distances_use_the_minimum_image():
    X = np.array([[0.1, 0.5, 0.5], [4.9, 0.5, 4.5]])
    D = pairwise_distances(X, 5.0, np.array([1.0, 0.0, 0.0]))
    assert D[0, 1] == pytest.approx(np.hypot(0.2, 4.0))


def test_match_and_align_returns_the_matched_particles():
    rng = np.random.default_rng(7)
    Q = rng.uniform(0, 5, (30, 3))
    perm = rng.permutation(30)
    R, t = _random_rigid_motion(rng, 3)
    P = Q[perm] @ R + t
    matched = match_and_align(P, Q)
    assert np.allclose(matched, Q, atol=1e-8)


def test_assignment_orders_undo_a_shuffle():
    from ljvae_core.geometry import assignment_orders

    rng = np.random.default_rng(5)
    Q = rng.uniform(0, 5, (6, 20, 3))
    perms = np.stack([rng.permutation(20) for _ in range(6)])
    P = np.take_along_axis(Q, perms[..., None], axis=1) + rng.normal(0, 0.01, Q.shape)
    orders = assignment_orders(P, Q)
    assert np.allclose(np.take_along_axis(P, orders[..., None], axis=1), Q, atol=0.05)
    assert np.array_equal(assignment_orders(P[0], Q[0]), orders[0])


def test_matching_orders_undo_local_swaps_under_any_rigid_motion():
    from scipy.spatial.transform import Rotation

    from ljvae_core.geometry import matching_orders

    rng = np.random.default_rng(7)
    Q = rng.uniform(0, 5, (200, 30, 3))
    swapped = np.tile(np.arange(30), (200, 1))
    for row in swapped:
        for i in rng.choice(29, 4, replace=False):
            row[[i, i + 1]] = row[[i + 1, i]]
    moved = np.einsum("mnd,mde->mne", Q, Rotation.random(200, random_state=1).as_matrix())
    P = np.take_along_axis(moved + rng.normal(0, 0.05, Q.shape), swapped[..., None], axis=1)
    orders = matching_orders(P, Q)
    # P[order] is Q particle for particle again.
    assert np.mean(np.take_along_axis(swapped, orders, axis=1) == np.arange(30)) > 0.99
    assert np.array_equal(matching_orders(Q[0], Q[0]), np.arange(30))


@pytest.mark.parametrize("dim", [2, 3])
def test_match_across_undoes_turns_mirrors_and_shifts_that_keep_heights(dim):
    from scipy.spatial.transform import Rotation

    from ljvae_core.geometry import match_across

    rng = np.random.default_rng(3)
    Q = rng.uniform(0, 5, (50, 30, dim))
    swapped = np.tile(np.arange(30), (50, 1))
    for row in swapped:
        for i in rng.choice(29, 3, replace=False):
            row[[i, i + 1]] = row[[i + 1, i]]
    across = np.eye(dim)[None].repeat(50, axis=0)
    if dim == 3:
        angles = rng.uniform(0, 2 * np.pi, 50)
        across[:, :2, :2] = Rotation.from_euler("z", angles[:, None]).as_matrix()[:, :2, :2]
    across[::2, 0] *= -1  # every other one mirrored
    shift = np.zeros(dim)
    shift[:-1] = rng.normal(0, 2, dim - 1)
    moved = np.einsum("mnd,mde->mne", Q, across) + shift
    P = np.take_along_axis(moved, swapped[..., None], axis=1)
    for starts in (True, False):  # orders nearly agree: the given one is start enough
        orders, aligned = match_across(P, Q, principal_starts=starts)
        assert np.mean(np.take_along_axis(swapped, orders, axis=1) == np.arange(30)) > 0.99
        assert np.median(np.abs(aligned - Q).max(axis=(1, 2))) < 1e-8
    # Heights are never moved: only the particles' order changes them.
    assert np.allclose(np.sort(aligned[..., -1], axis=1), np.sort(P[..., -1], axis=1))
