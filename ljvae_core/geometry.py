"""Point-set geometry: classical MDS, Kabsch alignment and permutation-invariant RMSD.

Every function takes one configuration ``(N, d)`` or a batch ``(M, N, d)`` (distance matrices
``(N, N)`` or ``(M, N, N)``) and returns the same leading shape. Batches are vectorized with
numpy's stacked linear algebra; only the assignment problem of :func:`matched_rmsd` loops.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.optimize import linear_sum_assignment


def _batched(a: np.ndarray, core_ndim: int) -> tuple[np.ndarray, bool]:
    """(array with a leading batch axis, whether one was added)."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == core_ndim:
        return a[None], True
    if a.ndim != core_ndim + 1:
        raise ValueError(f"expected {core_ndim} or {core_ndim + 1} dimensions, got {a.ndim}")
    return a, False


def classical_mds(distances, d: int) -> np.ndarray:
    """Coordinates (M, N, d) whose pairwise distances best match the given (M, N, N) ones.

    Torgerson's method: double-centre the squared distances into a Gram matrix
    B = -J D^2 J / 2, keep its d largest eigenpairs and clip negative eigenvalues (a noisy or
    non-Euclidean matrix has some) to zero. The matrix is symmetrized first. The result is
    centred at the origin; its orientation (and handedness) is arbitrary.
    """
    D, single = _batched(distances, 2)
    n = D.shape[-1]
    if D.shape[-2] != n:
        raise ValueError(f"distance matrices must be square, got {D.shape[-2:]}")
    if not 1 <= d <= n:
        raise ValueError(f"dimension d must be between 1 and N={n}, got {d}")
    sq = 0.5 * (D + np.swapaxes(D, -1, -2))
    sq = sq * sq
    row_mean = sq.mean(axis=-1, keepdims=True)
    gram = -0.5 * (sq - row_mean - np.swapaxes(row_mean, -1, -2) + sq.mean(axis=(-2, -1),
                                                                           keepdims=True))
    top_values, top_vectors = _top_eigenpairs(gram, d)
    top_values = np.clip(top_values, 0.0, None)
    coords = top_vectors * np.sqrt(top_values)[..., None, :]
    return coords[0] if single else coords


# Subspace iteration settles the top eigenpairs of (nearly) low-rank Gram matrices in a few
# matrix products, far cheaper than a full eigendecomposition per matrix; the matrices whose
# residual stays above the tolerance (noisy, non-Euclidean input) get the full one.
_SUBSPACE_EXTRA = 4
_SUBSPACE_ROUNDS = 3
_RESIDUAL_TOL = 1e-10


def _top_eigenpairs(sym, d):
    """The d largest eigenvalues (descending) and their eigenvectors of symmetric (M, n, n)."""
    n = sym.shape[-1]
    width = min(n, d + _SUBSPACE_EXTRA)
    start = np.random.default_rng(0).normal(size=(n, width))
    basis = sym @ start
    for _ in range(_SUBSPACE_ROUNDS):
        basis, _ = np.linalg.qr(sym @ basis)
    small = np.swapaxes(basis, -1, -2) @ sym @ basis
    ritz_values, ritz_vectors = np.linalg.eigh(small)
    values = ritz_values[..., ::-1][..., :d]
    vectors = basis @ ritz_vectors[..., ::-1][..., :d]
    scale = np.maximum(np.abs(sym).max(axis=(-2, -1)), 1e-300)
    residual = np.abs(sym @ vectors - vectors * values[..., None, :]).max(axis=(-2, -1))
    redo = np.flatnonzero(residual > _RESIDUAL_TOL * scale)
    if redo.size:
        all_values, all_vectors = np.linalg.eigh(sym[redo])
        values[redo] = all_values[..., ::-1][..., :d]
        vectors[redo] = all_vectors[..., ::-1][..., :d]
    return values, vectors


def _optimal_rotations(P0, Q0, allow_reflection):
    """Orthogonal R (M, d, d) minimizing |P0 R - Q0| for centred P0, Q0 (M, N, d)."""
    u, _, vt = np.linalg.svd(np.swapaxes(P0, -1, -2) @ Q0)
    if not allow_reflection:
        sign = np.sign(np.linalg.det(u @ vt))
        sign[sign == 0] = 1.0
        u = u.copy()
        u[..., :, -1] *= sign[..., None]
    return u @ vt


def _rotations(P0, Q0, allow_reflection, keep_last_axis=False):
    """:func:`_optimal_rotations`, or with keep_last_axis the best (d, d) ones that turn (and
    mirror) only the first d-1 axes, leaving the last (vertical) one as it is."""
    if not keep_last_axis:
        return _optimal_rotations(P0, Q0, allow_reflection)
    d = P0.shape[-1]
    rotation = np.zeros(P0.shape[:-2] + (d, d))
    rotation[..., -1, -1] = 1.0
    rotation[..., :-1, :-1] = _optimal_rotations(P0[..., :-1], Q0[..., :-1], allow_reflection)
    return rotation


def kabsch(P, Q, allow_reflection: bool = True) -> np.ndarray:
    """P aligned onto Q: the rigid motion (rotation, and mirror if allowed, plus translation)
    of P that minimizes the RMSD to Q, particle i of P matched with particle i of Q."""
    Pb, single = _batched(P, 2)
    Qb, _ = _batched(Q, 2)
    if Pb.shape != Qb.shape:
        raise ValueError(f"P and Q must have the same shape, got {Pb.shape} and {Qb.shape}")
    p_mean = Pb.mean(axis=-2, keepdims=True)
    q_mean = Qb.mean(axis=-2, keepdims=True)
    rotation = _optimal_rotations(Pb - p_mean, Qb - q_mean, allow_reflection)
    aligned = (Pb - p_mean) @ rotation + q_mean
    return aligned[0] if single else aligned


def rmsd(P, Q) -> np.ndarray | float:
    """Root-mean-square distance between matched particles, without any alignment."""
    Pb, single = _batched(P, 2)
    Qb, _ = _batched(Q, 2)
    value = np.sqrt(((Pb - Qb) ** 2).sum(axis=-1).mean(axis=-1))
    return float(value[0]) if single else value


def _principal_frame(X0):
    """Principal axes (d, d), largest variance first, of one centred point set."""
    _, vectors = np.linalg.eigh(X0.T @ X0)
    return vectors[:, ::-1]


def _assign_and_align(P0, Q0, start, allow_reflection, max_rounds, keep_last_axis=False):
    """Alternate assignment and alignment from the rotated start P0 @ start; returns
    (squared error, aligned and permuted P0, order) with P0[order] matching Q0 row by row.
    With keep_last_axis the rotations turn only the first d-1 axes (see :func:`_rotations`)."""
    current = P0 @ start
    best = (np.inf, current, np.arange(len(P0)))
    for _ in range(max_rounds):
        cost = ((current[:, None, :] - Q0[None, :, :]) ** 2).sum(axis=-1)
        rows, cols = linear_sum_assignment(cost)
        order = np.empty(len(P0), dtype=np.int64)
        order[cols] = rows
        permuted = P0[order]
        rotation = _rotations(permuted[None], Q0[None], allow_reflection, keep_last_axis)[0]
        aligned = permuted @ rotation
        error = ((aligned - Q0) ** 2).sum()
        if error >= best[0] - 1e-12 * max(1.0, best[0]):
            break
        best = (error, aligned, order)
        # Unpermuted P0 under the new rotation seeds the next assignment.
        current = P0 @ rotation
    return best


def _best_match(p, q, allow_reflection, max_rounds):
    """(squared error, p permuted and rigidly moved onto q) for one pair of point sets."""
    d = p.shape[-1]
    p0 = p - p.mean(axis=0)
    q_mean = q.mean(axis=0)
    q0 = q - q_mean
    frame_p, frame_q = _principal_frame(p0), _principal_frame(q0)
    best = (np.inf, p0)
    for signs in itertools.product((1.0, -1.0), repeat=d):
        start = frame_p @ np.diag(signs) @ frame_q.T
        if not allow_reflection and np.linalg.det(start) < 0:
            continue
        found = _assign_and_align(p0, q0, start, allow_reflection, max_rounds)
        if found[0] < best[0]:
            best = found
    return best[0], best[1] + q_mean


def matching_orders(P, Q, allow_reflection: bool = True, max_rounds: int = 4) -> np.ndarray:
    """(M, N) particle orders such that P[m][order[m]] best matches Q[m] particle for particle.

    Starts from the alignment of the given correspondence (P[i] with Q[i]) and alternates the
    optimal assignment with Kabsch: one start instead of :func:`matched_rmsd`'s 2^d, for sets
    whose orders already nearly agree (a decoder's output and its target)."""
    orders, _, single = _match_each(P, Q, allow_reflection, max_rounds, keep_last_axis=False,
                                    principal_starts=False)
    return orders[0] if single else orders


def match_across(P, Q, allow_reflection: bool = True, max_rounds: int = 4,
                 principal_starts: bool = True):
    """(orders (M, N), moved (M, N, d)): P's particles matched to Q's, and P moved onto Q by a
    turn about the last (vertical) axis, a mirror if allowed and a shift across -- the motions
    that keep each particle's height. ``moved[m]`` is ``P[m][orders[m]]`` so moved.

    What a decoder that knows which way is up can be trained against: P a configuration, Q
    what the decoder made of it, whose frame across is arbitrary but whose heights are not.
    With ``max_rounds=0`` P keeps its order and is only moved (turned, mirrored, shifted).
    The alternation starts from the alignment of the given order and, with
    ``principal_starts``, also from every matching of the principal axes across (five times
    the work in 3D); the best result is kept. Without them it suits sets whose orders already
    nearly agree (a decoder's output and its target)."""
    orders, moved, single = _match_each(P, Q, allow_reflection, max_rounds,
                                        keep_last_axis=True, principal_starts=principal_starts)
    return (orders[0], moved[0]) if single else (orders, moved)


def _match_each(P, Q, allow_reflection, max_rounds, keep_last_axis, principal_starts):
    """(orders, P permuted and moved onto Q, whether one pair was given): the assignment and
    alignment alternation for every pair of sets, started from the alignment of the given
    order (and, with principal_starts, from the principal axes across). With keep_last_axis
    the sets are centred and turned across only, so heights stay as they are."""
    Pb, single = _batched(P, 2)
    Qb, _ = _batched(Q, 2)
    if Pb.shape != Qb.shape:
        raise ValueError(f"P and Q must have the same shape, got {Pb.shape} and {Qb.shape}")
    centred = np.ones(Pb.shape[-1])
    if keep_last_axis:
        centred[-1] = 0.0
    p_mean = Pb.mean(axis=-2, keepdims=True) * centred
    q_mean = Qb.mean(axis=-2, keepdims=True) * centred
    P0, Q0 = Pb - p_mean, Qb - q_mean
    starts = _rotations(P0, Q0, allow_reflection, keep_last_axis)
    found = []
    for p0, q0, start in zip(P0, Q0, starts, strict=True):
        candidates = [start]
        if max_rounds > 0 and principal_starts:  # the given order may be far off
            candidates += _principal_turns(p0, q0, allow_reflection)
        found.append(min((_assign_and_align(p0, q0, s, allow_reflection, max_rounds,
                                            keep_last_axis) for s in candidates),
                         key=lambda f: f[0]))
    orders = np.stack([f[2] for f in found])
    moved = np.stack([f[1] for f in found]) + q_mean
    return orders, moved, single


def _principal_turns(p0, q0, allow_reflection) -> list:
    """(d, d) turns about the vertical that put the principal axes across of p0 on those of
    q0, for every sign choice (mirror images only if allowed)."""
    d = p0.shape[-1]
    frame_p, frame_q = _principal_frame(p0[:, :-1]), _principal_frame(q0[:, :-1])
    turns = []
    for signs in itertools.product((1.0, -1.0), repeat=d - 1):
        turn = np.eye(d)
        turn[:-1, :-1] = frame_p @ np.diag(signs) @ frame_q.T
        if allow_reflection or np.linalg.det(turn) > 0:
            turns.append(turn)
    return turns


def assignment_orders(P, Q) -> np.ndarray:
    """(M, N) particle orders such that P[m][order[m]] lies closest to Q[m] particle for
    particle (least summed squared distance), with no motion: for sets in one fixed frame,
    such as configurations in a box with walls and a decoder's output for them."""
    Pb, single = _batched(P, 2)
    Qb, _ = _batched(Q, 2)
    if Pb.shape != Qb.shape:
        raise ValueError(f"P and Q must have the same shape, got {Pb.shape} and {Qb.shape}")
    orders = np.empty(Pb.shape[:2], dtype=np.int64)
    for m, (p, q) in enumerate(zip(Pb, Qb, strict=True)):
        rows, cols = linear_sum_assignment(((p[:, None, :] - q[None, :, :]) ** 2).sum(-1))
        orders[m, cols] = rows
    return orders[0] if single else orders


def match_and_align(P, Q, allow_reflection: bool = True, max_rounds: int = 8) -> np.ndarray:
    """P's particles reordered to match Q's and rigidly moved onto them (see
    :func:`matched_rmsd`); row i of the result corresponds to particle i of Q."""
    Pb, single = _batched(P, 2)
    Qb, _ = _batched(Q, 2)
    if Pb.shape != Qb.shape:
        raise ValueError(f"P and Q must have the same shape, got {Pb.shape} and {Qb.shape}")
    out = np.stack([_best_match(p, q, allow_reflection, max_rounds)[1]
                    for p, q in zip(Pb, Qb, strict=True)])
    return out[0] if single else out


def matched_rmsd(P, Q, allow_reflection: bool = True, max_rounds: int = 8) -> np.ndarray | float:
    """RMSD after the best rigid alignment and the best matching of indistinguishable particles.

    Alternates the optimal assignment (``scipy.optimize.linear_sum_assignment`` on squared
    distances) with Kabsch alignment. The alternation is started from every sign choice of the
    principal axes of both sets (2^d starts, half of them mirror images), which finds the
    global optimum for the well-separated particles of a liquid; the best result is kept.
    """
    Pb, single = _batched(P, 2)
    Qb, _ = _batched(Q, 2)
    if Pb.shape != Qb.shape:
        raise ValueError(f"P and Q must have the same shape, got {Pb.shape} and {Qb.shape}")
    out = np.array([np.sqrt(_best_match(p, q, allow_reflection, max_rounds)[0] / len(p))
                    for p, q in zip(Pb, Qb, strict=True)])
    return float(out[0]) if single else out


def pairwise_distances(coords, box: float | None = None, periodic_mask=None) -> np.ndarray:
    """(M, N, N) distance matrices; minimum image on axes where periodic_mask is non-zero."""
    X, single = _batched(coords, 2)
    periodic = np.zeros(X.shape[-1], dtype=bool)
    if periodic_mask is not None and box is not None:
        periodic = np.broadcast_to(np.asarray(periodic_mask) != 0, periodic.shape)
    # One axis at a time: an (M, N, N, d) array of differences summed over its last axis
    # took five times as long for thousands of configurations (the same sums, in the same
    # order).
    square = np.zeros(X.shape[:-1] + X.shape[-2:-1])
    for axis in range(X.shape[-1]):
        diff = X[:, :, None, axis] - X[:, None, :, axis]
        if periodic[axis]:
            diff -= box * np.rint(diff / box)
        square += diff * diff
    dist = np.sqrt(square)
    return dist[0] if single else dist
