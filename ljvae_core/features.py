"""Representations: configurations (M, N, d) in a box turned into model inputs and back.

Each representation is a scikit-learn transformer: parameters in ``__init__`` (among them the
box length ``L`` and the dimension ``d``), ``fit(coords)`` learning what it needs (a trailing
underscore marks learned state), ``transform(coords) -> X`` and ``inverse_transform(X) ->
coords``. :func:`representation_to_dict` / :func:`representation_from_dict` persist one as
plain numbers, so model metadata never needs to pickle a class.

- :class:`SortedCoordinates` ("coords"): particles ordered along an axis, scaled to [-1, 1],
  flattened. Exact inverse (up to the particle order, which it fixes).
- :class:`VoxelGrid` ("voxels"): particle density on n^d cells, optionally smeared with a
  Gaussian, divided by its largest value. Inverse by peak picking (see its docstring).
- :class:`DistanceMatrix` ("distances"): pairwise distances over the box diagonal, particles
  ordered by distance from the origin, with two channels of particle heights. Inverse by
  classical MDS, stood upright on the heights.
"""

from __future__ import annotations

import itertools
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit
from sklearn.base import BaseEstimator, TransformerMixin

from .geometry import _rotations, assignment_orders, classical_mds, pairwise_distances


def _as_batch(coords, d: int | None = None) -> np.ndarray:
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim == 2:
        coords = coords[None]
    if coords.ndim != 3:
        raise ValueError(f"configurations must be (M, N, d) or (N, d), got shape {coords.shape}")
    if d is not None and coords.shape[-1] != d:
        raise ValueError(f"configurations are {coords.shape[-1]}D, the representation is {d}D")
    return coords


class Representation(TransformerMixin, BaseEstimator):
    """Shared checks: fit records the particle count; transforms insist on it."""

    kind = ""

    def fit(self, coords, y=None):
        coords = _as_batch(coords, self.d)
        self.n_particles_ = coords.shape[1]
        return self

    def _checked(self, coords) -> np.ndarray:
        coords = _as_batch(coords, self.d)
        if not hasattr(self, "n_particles_"):
            raise RuntimeError(f"{type(self).__name__} must be fitted before use")
        if coords.shape[1] != self.n_particles_:
            raise ValueError(
                f"configurations have {coords.shape[1]} particles, the representation was "
                f"fitted on {self.n_particles_}"
            )
        return coords

    def input_shape(self) -> tuple[int, ...]:
        """Shape of one transformed configuration (the model's input)."""
        return self.transform(np.full((1, self.n_particles_, self.d), 0.5 * self.L)).shape[1:]


# --------------------------------------------------------------------------- coords
class SortedCoordinates(Representation):
    """Particles sorted along ``sort_axis`` ('x', 'y', 'z', or 'up', the last axis) or, with
    ``sort_axis="template"``, put on the sites of a template by optimal assignment;
    coordinates mapped from [0, L] to [-1, 1] and flattened to N*d values.

    The template (``template_``, learned by :meth:`fit`) is the mean of the training
    configurations each assigned onto the previous template, a few times over, starting from
    their order along x. A sort along an axis jumps whenever two particles swap ranks, which
    happens between any two configurations; assignment to fixed sites moves a particle to
    another site only when it wanders there."""

    kind = "coords"

    def __init__(self, L: float = 5.0, d: int = 3, sort_axis: str = "template"):
        self.L = L
        self.d = d
        self.sort_axis = sort_axis

    def _axis(self) -> int:
        letters = "xyz"[: self.d]
        if self.sort_axis == "up":
            return self.d - 1
        if self.sort_axis not in letters:
            raise ValueError(f"sort_axis must be 'template', 'up' or one of {tuple(letters)}, "
                             f"got {self.sort_axis!r}")
        return letters.index(self.sort_axis)

    def fit(self, coords, y=None, iterations: int = 4, max_fit: int = 2000):
        super().fit(coords)
        if self.sort_axis != "template":
            return self
        coords = _as_batch(coords, self.d)
        pick = np.random.default_rng(0).choice(len(coords), min(len(coords), max_fit),
                                               replace=False)
        sample = coords[np.sort(pick)]
        order = np.argsort(sample[..., 0], axis=1, kind="stable")
        self.template_ = np.take_along_axis(sample, order[..., None], axis=1).mean(axis=0)
        for _ in range(iterations):
            self.template_ = self.sort(sample).mean(axis=0)
        return self

    def sort(self, coords) -> np.ndarray:
        """The configurations with their particles in this representation's order."""
        coords = self._checked(coords)
        if self.sort_axis == "template":
            template = np.broadcast_to(self.template_, coords.shape)
            order = assignment_orders(coords, template).reshape(coords.shape[:2])
        else:
            order = np.argsort(coords[..., self._axis()], axis=1, kind="stable")
        return np.take_along_axis(coords, order[..., None], axis=1)

    def transform(self, coords) -> np.ndarray:
        return self.values(self.sort(coords))

    def values(self, ordered) -> np.ndarray:
        """The model inputs of configurations whose particles are already in the wanted
        order (transform sorts them first)."""
        ordered = np.asarray(ordered, dtype=np.float64)
        return (2.0 * ordered / self.L - 1.0).reshape(len(ordered), -1)

    def inverse_transform(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64).reshape(len(X), self.n_particles_, self.d)
        return np.clip((X + 1.0) * (0.5 * self.L), 0.0, self.L)


# --------------------------------------------------------------------------- voxels
class VoxelGrid(Representation):
    """Density of particles on a grid of ``n_cells``^d cells of side h = L / n_cells.

    Without smearing a cell holds its particle count; with ``smearing`` = w > 0 each particle
    spreads as a Gaussian of width w integrated over the cells (each particle's weight sums
    to one inside the box). The grid is divided by its largest value (#N / #N_max) so that
    the densest cell reads 1. Shape (n, n, n, 1) in 3D, (n, n, 1) in 2D. Give ``n_cells`` or
    ``cell_size`` (h; n_cells = round(L / h)).

    Inverse: the grid is rescaled to hold N particles, then N peaks are picked greedily: the
    fullest cell, refined to the weighted centroid of its neighbourhood, then one
    particle's footprint is removed there. Without smearing, particles land on cell centres
    (error up to h * sqrt(d) / 2 each); the round-trip error as a function of h and w is
    printed by ``experiments/representations.py`` and tabled in docs/representations.md.
    """

    kind = "voxels"

    def __init__(self, L: float = 5.0, d: int = 3, n_cells: int | None = 16,
                 cell_size: float | None = None, smearing: float = 0.0):
        self.L = L
        self.d = d
        self.n_cells = n_cells
        self.cell_size = cell_size
        self.smearing = smearing

    def cells(self) -> int:
        if self.cell_size is not None:
            if not self.cell_size > 0:
                raise ValueError(f"cell size must be positive, got {self.cell_size}")
            return max(1, int(round(self.L / self.cell_size)))
        if self.n_cells is None or int(self.n_cells) < 1:
            raise ValueError(f"number of cells must be at least 1, got {self.n_cells}")
        return int(self.n_cells)

    def _axis_weights(self, x) -> np.ndarray:
        """(..., n) weight of coordinate(s) x in each cell along one axis, summing to one."""
        n = self.cells()
        h = self.L / n
        x = np.asarray(x, dtype=np.float64)
        if self.smearing <= 0:
            k = np.clip((x / h).astype(np.int64), 0, n - 1)
            return np.eye(n)[k]
        edges = np.linspace(0.0, self.L, n + 1)
        cdf = _normal_cdf((edges - x[..., None]) / self.smearing)
        mass = np.diff(cdf, axis=-1)
        return mass / np.maximum(mass.sum(axis=-1, keepdims=True), 1e-300)

    def _counts(self, coords) -> np.ndarray:
        """(M, n, ..., n) expected particle count per cell (separable per axis)."""
        letters = "abc"[: self.d]
        w = [self._axis_weights(coords[..., c]) for c in range(self.d)]  # each (M, N, n)
        spec = ",".join(f"mp{letter}" for letter in letters) + "->m" + letters
        return np.einsum(spec, *w, optimize=True)

    def transform(self, coords) -> np.ndarray:
        counts = self._counts(self._checked(coords))
        peak = counts.reshape(len(counts), -1).max(axis=1)
        return (counts / peak.reshape((-1,) + (1,) * self.d))[..., None]

    def inverse_transform(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        grid = np.clip(X.reshape(X.shape[: self.d + 1]), 0.0, None)
        total = grid.reshape(len(grid), -1).sum(axis=1)
        scale = self.n_particles_ / np.maximum(total, 1e-300)
        grid = grid * scale.reshape((-1,) + (1,) * self.d)
        out = np.empty((len(grid), self.n_particles_, self.d))
        for i in range(self.n_particles_):
            out[:, i] = self._next_peak(grid)
            grid -= self._footprints(out[:, i])
        return out

    def _next_peak(self, grid) -> np.ndarray:
        """(M, d) position of the fullest cell of each grid, refined (smeared grids only) to
        the weighted centroid of its 3^d neighbourhood (wider windows were measured to pull
        in neighbouring particles and do worse)."""
        m, n = len(grid), self.cells()
        h = self.L / n
        cell = np.stack(np.unravel_index(grid.reshape(m, -1).argmax(axis=1), grid.shape[1:]), 1)
        if self.smearing <= 0:
            return (cell + 0.5) * h
        offsets = np.stack(np.meshgrid(*[np.arange(-1, 2)] * self.d, indexing="ij"), -1)
        offsets = offsets.reshape(-1, self.d)
        near = cell[:, None, :] + offsets[None]  # (M, 3^d, d)
        inside = np.all((near >= 0) & (near < n), axis=-1)
        index = (np.arange(m)[:, None],) + tuple(np.clip(near[..., c], 0, n - 1)
                                                  for c in range(self.d))
        weight = np.clip(grid[index], 0.0, None) * inside
        mass = weight.sum(axis=1, keepdims=True)
        centroid = (weight[..., None] * (near + 0.5) * h).sum(axis=1) / np.maximum(mass, 1e-300)
        return np.where(mass > 0, centroid, (cell + 0.5) * h)

    def _footprints(self, points) -> np.ndarray:
        """(M, n, ..., n) grid contribution of one particle at each of the points (M, d)."""
        return self._counts(points[:, None, :])


def _normal_cdf(x):
    from scipy.special import ndtr

    return ndtr(x)


# --------------------------------------------------------------------------- distances
class DistanceMatrix(Representation):
    """Pairwise distances, particles ordered by distance from the box origin, divided by the
    box diagonal L*sqrt(d) so that they lie in (0, 1); shape (N, N, 1).

    With ``heights=True`` (the default) two more channels carry each particle's height: channel
    1 holds z_i along row i, channel 2 holds z_j along column j, so the input is (N, N, 3).
    Heights are divided by ``height_scale`` = L*sqrt(2N): each appears 2N times, and so its
    squared error weighs in a model's loss as one value's, not 2N. A distance matrix alone is
    blind to gravity -- it has no up -- while the heights are the other half of the energy
    U = U_LJ + 4 gamma sum z.

    Inverse: classical MDS (:func:`ljvae_core.geometry.classical_mds`). Without heights the
    shape is placed back in the box by :func:`place_in_box` (oriented to fit, flattest side
    up, resting on the floor): round trips are exact up to a rigid motion and a mirror image.
    With heights it is stood upright by :func:`place_upright`: exact up to a turn about the
    up axis, a mirror and a shift across (compare with :func:`ljvae_core.geometry.kabsch`).

    With ``free=True`` (a free cluster: no box, no up) ``L`` is a length that bounds the
    cluster's diameter, there are no height channels, particles are ordered by distance from
    the centre of mass, and the inverse is the centred MDS shape: exact up to a rotation and
    a mirror, the symmetries of a free cluster's energy.
    """

    kind = "distances"

    def __init__(self, L: float = 5.0, d: int = 3, heights: bool = True, free: bool = False):
        self.L = L
        self.d = d
        self.heights = heights
        self.free = free

    @property
    def with_heights(self) -> bool:
        """Whether the matrices carry height channels (a free cluster has no up)."""
        return self.heights and not self.free

    @property
    def scale(self) -> float:
        return self.L * math.sqrt(self.d)

    @property
    def height_scale(self) -> float:
        return self.L * math.sqrt(2 * self.n_particles_)

    def sort(self, coords) -> np.ndarray:
        """The configurations with their particles in this representation's order."""
        coords = self._checked(coords)
        if self.free:
            coords = coords - coords.mean(axis=1, keepdims=True)
        order = np.argsort((coords**2).sum(axis=-1), axis=1, kind="stable")
        return np.take_along_axis(coords, order[..., None], axis=1)

    def transform(self, coords) -> np.ndarray:
        return self.values(self.sort(coords))

    def values(self, ordered) -> np.ndarray:
        """The model inputs of configurations whose particles are already in the wanted
        order (transform sorts them first)."""
        ordered = np.asarray(ordered, dtype=np.float64)
        D = pairwise_distances(ordered) / self.scale
        if not self.with_heights:
            return D[..., None]
        h = ordered[..., -1] / self.height_scale
        rows = np.broadcast_to(h[:, :, None], D.shape)
        return np.stack([D, rows, np.swapaxes(rows, 1, 2)], axis=-1)

    def distances(self, X) -> np.ndarray:
        """Distance matrices (M, N, N) in sigma from model outputs: symmetrized, zero diagonal,
        no negative entries."""
        D = np.asarray(X, dtype=np.float64)[..., 0] * self.scale
        D = np.clip(0.5 * (D + np.swapaxes(D, -1, -2)), 0.0, None)
        idx = np.arange(D.shape[-1])
        D[..., idx, idx] = 0.0
        return D

    def particle_heights(self, X) -> np.ndarray:
        """Heights (M, N) in sigma from model outputs with height channels (the mean of each
        particle's row in channel 1 and column in channel 2)."""
        X = np.asarray(X, dtype=np.float64)
        if X.shape[-1] < 3:
            raise ValueError("these outputs carry no height channels")
        return 0.5 * (X[..., 1].mean(axis=-1) + X[..., 2].mean(axis=-2)) * self.height_scale

    def inverse_transform(self, X) -> np.ndarray:
        centred = classical_mds(self.distances(X), self.d)
        if self.free:
            return centred
        if not self.heights:
            return place_in_box(centred, self.L)
        return place_upright(centred, self.particle_heights(X), self.L)


class ShapeFrame:
    """The front end of the distances VAE's ``mds`` encoder: distance matrices with heights
    (a :class:`DistanceMatrix` with ``heights=True``) turned back into shapes in one frame.

    Each matrix becomes coordinates by classical MDS, stood upright on its heights
    (:func:`stand_upright`), and is then turned about the vertical, mirrored if that fits
    better, shifted across and (with ``reorder``) has its particles re-ordered -- all onto a
    template, the mean shape of the training set in this frame (:func:`match_onto`, which
    gives what :func:`ljvae_core.geometry.match_across` does for many shapes at once). What a
    distance matrix forgets (a turn about the vertical, a mirror, a shift across) is thus
    fixed the same way for every configuration, and the particle order follows the
    template's sites instead of jumping whenever two particles swap their distances from the
    box's corner.

    In this frame thermal configurations are close to Gaussian: PCA with 64 components
    reconstructs held-out ones of the study's system to 0.24 sigma (median), where networks
    fed the matrices themselves stay at 0.65 sigma, what knowing only gamma gives
    (``experiments/frame_pca_check.py``)."""

    def __init__(self, rep: DistanceMatrix, template=None, reorder: bool = True,
                 rounds: int = 4):
        if not (getattr(rep, "heights", False) or getattr(rep, "free", False)):
            raise ValueError("the MDS front end needs distance matrices with height channels")
        self.rep = rep
        self.template = None if template is None else np.asarray(template, dtype=np.float64)
        self.reorder = bool(reorder)
        self.rounds = int(rounds)

    def shapes(self, X) -> np.ndarray:
        """(M, N, d) upright coordinates of model inputs X, in no particular frame across (a
        free cluster's: centred, in no particular orientation)."""
        centred = classical_mds(self.rep.distances(X), self.rep.d)
        if self.rep.free:
            return centred
        return stand_upright(centred, self.rep.particle_heights(X))

    def fit(self, X, iterations: int = 4, max_fit: int = 2000, seed: int = 0) -> ShapeFrame:
        """The template: the mean of (at most ``max_fit``) training shapes, each matched onto
        the previous template, a few times over."""
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(X), min(len(X), max_fit), replace=False)
        shapes = self.shapes(np.asarray(X)[pick])
        self.template = shapes[0]
        for _ in range(iterations):
            self.template = self._onto_template(shapes)[1].mean(axis=0)
        return self

    def transform(self, X) -> tuple[np.ndarray, np.ndarray]:
        """(orders (M, N), shapes (M, N, d) in sigma): each input's shape matched onto the
        template, shapes[m] being its particles ``orders[m]`` (in the input's order) moved."""
        if self.template is None:
            raise RuntimeError("ShapeFrame must be fitted before use")
        return self._onto_template(self.shapes(X))

    def _onto_template(self, shapes):
        return match_onto(shapes, self.template, self.rounds if self.reorder else 0,
                          keep_up=not self.rep.free)

    def to_dict(self) -> dict:
        return {"template": self.template.tolist(), "reorder": self.reorder,
                "rounds": self.rounds}

    @classmethod
    def from_dict(cls, rep: DistanceMatrix, data: dict) -> ShapeFrame:
        return cls(rep, data["template"], data["reorder"], data["rounds"])


# --------------------------------------------------------------------------- frame matching
# Shapes matched onto a template per chunk, chunks on up to _MATCH_THREADS threads. Chunks of
# 250 sets measured as fast per set as chunks of 2000, and let an encoding in steps of 2000
# configurations use the cores.
_MATCH_CHUNK = 256
_MATCH_THREADS = 8


def match_onto(shapes, template, rounds: int = 4,
               keep_up: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """What :func:`ljvae_core.geometry.match_across` returns for ``shapes`` (M, N, d) against
    one ``template`` (N, d) with ``max_rounds=rounds``, for many sets at once. With
    ``keep_up`` False (free clusters) the sets are centred, turned and mirrored in every
    direction, as :func:`ljvae_core.geometry.match_and_align` does.

    The alternations of all sets and starts run side by side: each round is one batched
    rotation of every set still improving, and its assignments are solved by compiled code
    warm-started from the previous round (:func:`_assign_sites`): one SciPy call per set,
    start and round would be most of the time an encoding takes."""
    shapes = np.asarray(shapes, dtype=np.float64)
    template = np.asarray(template, dtype=np.float64)
    if not np.isfinite(shapes).all():
        raise ValueError("the shapes hold NaN or infinite coordinates")
    if len(shapes) == 0:
        return np.empty(shapes.shape[:2], dtype=np.int64), shapes.copy()
    chunks = [shapes[a:a + _MATCH_CHUNK] for a in range(0, len(shapes), _MATCH_CHUNK)]
    if len(chunks) == 1:
        return _match_chunk(shapes, template, rounds, keep_up)
    # The compiled assignments and NumPy's batched algebra release the GIL: chunks run on
    # the machine's cores side by side.
    with ThreadPoolExecutor(min(len(chunks), os.cpu_count() or 1, _MATCH_THREADS)) as pool:
        done = list(pool.map(lambda chunk: _match_chunk(chunk, template, rounds, keep_up),
                             chunks))
    return np.concatenate([o for o, _ in done]), np.concatenate([m for _, m in done])


def _match_chunk(P, template, rounds, keep_up=True):
    """:func:`match_onto` for one chunk of sets (M, N, d)."""
    across = np.ones(P.shape[-1])
    if keep_up:
        across[-1] = 0.0  # heights stay as they are: sets are centred across only
    p_mean = P.mean(axis=-2, keepdims=True) * across
    q_mean = template.mean(axis=-2, keepdims=True) * across
    P0, q0 = P - p_mean, template - q_mean
    start = _rotations(P0, np.broadcast_to(q0, P0.shape), True, keep_last_axis=keep_up)
    if rounds <= 0:
        return np.tile(np.arange(P.shape[1]), (len(P), 1)), P0 @ start + q_mean
    starts = np.stack([start, *_principal_turns(P0, q0, keep_up)], axis=1)
    errors, orders, moved = _alternate(P0, q0, starts, rounds, keep_up)
    best = errors.argmin(axis=1)  # the first of equals, as min() keeps it
    picked = np.arange(len(P))
    return orders[picked, best], moved[picked, best] + q_mean


def _principal_turns(P0, q0, keep_up=True) -> list[np.ndarray]:
    """(M, d, d) turns about the vertical (in every direction without ``keep_up``) that put
    the principal axes (across) of each set on those of the template, one array per sign
    choice (geometry's, mirrors allowed)."""
    d = P0.shape[-1]
    k = d - 1 if keep_up else d
    flat, flat_q = P0[..., :k], q0[:, :k]
    frame_p = np.linalg.eigh(np.swapaxes(flat, -1, -2) @ flat)[1][..., ::-1]
    frame_q = np.linalg.eigh(flat_q.T @ flat_q)[1][:, ::-1]
    turns = []
    for signs in itertools.product((1.0, -1.0), repeat=k):
        turn = np.tile(np.eye(d), (len(P0), 1, 1))
        turn[:, :k, :k] = frame_p @ np.diag(signs) @ frame_q.T
        turns.append(turn)
    return turns


def _alternate(P0, q0, starts, rounds, keep_up=True):
    """Assignment and alignment alternated from every start (M, S, d, d) of every set, as
    geometry's ``_assign_and_align`` does for one: (squared errors (M, S), orders (M, S, N),
    moved sets (M, S, N, d)) of the best round of each; a start stops at its first round
    that does not improve."""
    m, s = starts.shape[:2]
    n, d = P0.shape[1:]
    P = np.repeat(P0, s, axis=0)
    current = P @ starts.reshape(-1, d, d)
    error, moved = np.full(m * s, np.inf), current.copy()
    orders = np.tile(np.arange(n), (m * s, 1))
    sites, duals = np.full((m * s, n), -1, dtype=np.int64), np.zeros((m * s, n))
    going = np.arange(m * s)
    for _ in range(rounds):
        if going.size == 0:
            break
        site, dual = sites[going], duals[going]
        _assign_sites(np.ascontiguousarray(current[going]), np.ascontiguousarray(q0), site,
                      dual)
        sites[going], duals[going] = site, dual
        order = np.argsort(site, axis=1)  # the particle put on each template site
        permuted = np.take_along_axis(P[going], order[..., None], axis=1)
        rotation = _rotations(permuted, np.broadcast_to(q0, permuted.shape), True,
                              keep_last_axis=keep_up)
        aligned = permuted @ rotation
        new = ((aligned - q0) ** 2).sum(axis=(1, 2))
        with np.errstate(invalid="ignore"):  # inf - inf: every first round improves
            better = ~(new >= error[going] - 1e-12 * np.maximum(1.0, error[going]))
        going = going[better]
        error[going], moved[going], orders[going] = new[better], aligned[better], order[better]
        current[going] = P[going] @ rotation[better]
    return error.reshape(m, s), orders.reshape(m, s, n), moved.reshape(m, s, n, d)


@njit(cache=True, nogil=True)
def _assign_sites(points, sites, assigned, prices):
    """Optimal assignments, warm-started: for each set b of ``points`` (B, N, d),
    ``assigned[b]`` (N,) becomes the site (row of ``sites``, (N, d)) of each point in the
    assignment of least total squared distance, ``prices[b]`` (N,) the sites' dual prices.
    On entry they hold a previous round's (-1 and zeros: none).

    Shortest augmenting paths (Jonker and Volgenant; Crouse 2016): each point starts at its
    cheapest site under the prices, keeping its previous one when that is still among the
    cheapest, and every point left without a site is placed by a Dijkstra search over reduced
    costs. Consecutive rounds of an alternation move the points little, so most keep their
    site. For a unique optimum (any real data) this is what SciPy's linear_sum_assignment
    finds."""
    m, n, d = points.shape
    cost, reduced_min = np.empty((n, n)), np.empty(n)
    dist, pred = np.empty(n), np.empty(n, dtype=np.int64)
    row_of, col_of = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    seen_row, seen_col = np.empty(n, dtype=np.bool_), np.empty(n, dtype=np.bool_)
    todo = np.empty(n, dtype=np.int64)
    for b in range(m):
        for i in range(n):
            for j in range(n):
                total = 0.0
                for k in range(d):
                    step = points[b, i, k] - sites[j, k]
                    total += step * step
                cost[i, j] = total
        v = prices[b]
        _start_rows(cost, v, assigned[b], reduced_min, row_of, col_of)
        for i in range(n):
            if col_of[i] < 0:
                _augment(cost, reduced_min, v, row_of, col_of, i, dist, pred, seen_row,
                         seen_col, todo)
        assigned[b] = col_of


@njit(cache=True, nogil=True)
def _start_rows(cost, v, previous, u, row_of, col_of):
    """Feasible row prices u (each row's least reduced cost) and a partial assignment on
    tight edges: a row keeps its previous column when that is still its cheapest, else
    takes its cheapest one if free."""
    n = cost.shape[0]
    row_of[:] = -1
    col_of[:] = -1
    for i in range(n):
        best, arg = np.inf, -1
        for j in range(n):
            r = cost[i, j] - v[j]
            if r < best:
                best, arg = r, j
        u[i] = best
        j = previous[i]
        if j < 0 or cost[i, j] - v[j] != best:
            j = arg
        if row_of[j] < 0:
            row_of[j], col_of[i] = i, j


@njit(cache=True, nogil=True)
def _augment(cost, u, v, row_of, col_of, start, dist, pred, seen_row, seen_col, todo):
    """Give row ``start`` a column along the shortest augmenting path (Dijkstra over reduced
    costs, which the prices keep non-negative), then update the prices so that the edges of
    the assignment stay tight."""
    n = cost.shape[0]
    dist[:] = np.inf
    seen_row[:] = False
    seen_col[:] = False
    for k in range(n):
        todo[k] = k
    left, i, low, sink = n, start, 0.0, -1
    while sink < 0:
        seen_row[i] = True
        best, pick = np.inf, -1
        for k in range(left):
            j = todo[k]
            r = low + cost[i, j] - u[i] - v[j]
            if r < dist[j]:
                dist[j], pred[j] = r, i
            # Among equally near columns a free one ends the search sooner.
            if dist[j] < best or (dist[j] == best and row_of[j] < 0):
                best, pick = dist[j], k
        low, j = best, todo[pick]
        seen_col[j] = True
        left -= 1
        todo[pick] = todo[left]
        if row_of[j] < 0:
            sink = j
        else:
            i = row_of[j]
    u[start] += low
    for r in range(n):
        if seen_row[r] and r != start:
            u[r] += low - dist[col_of[r]]
    for j in range(n):
        if seen_col[j]:
            v[j] -= low - dist[j]
    j = sink
    while True:
        i = pred[j]
        row_of[j] = i
        col_of[i], j = j, col_of[i]
        if i == start:
            break


def place_upright(centred, heights, L: float, turns: int = 90) -> np.ndarray:
    """Put point sets (M, N, d) known up to a rigid motion into [0, L]^d so that their last
    coordinates match the given heights (M, N) as well as a rigid motion allows.

    The up direction is the unit vector u that best predicts the heights from the centred
    points (least squares, normalized); the set is rotated to put u up and raised to the
    heights' mean, shifted whole into [0, L] if it pokes out. Across, it is turned about the
    up axis (``turns`` angles over a quarter turn, the box's symmetry) to the orientation that
    overflows the box least, and centred.
    Sets whose heights say nothing of an up direction fall back to :func:`place_in_box`.
    """
    X, h, u, usable = _up_directions(centred, heights)
    out = np.empty_like(X)
    for k in np.flatnonzero(~usable):
        out[k] = place_in_box(X[k][None], L)[0]
    # In chunks: trying every turn of a chunk holds (rows, turns, N, d - 1) values.
    rows = np.flatnonzero(usable)
    for chunk in np.array_split(rows, max(1, -(-len(rows) // 512))):
        up = np.einsum("mnd,md->mn", X[chunk], u[chunk])
        across = X[chunk] @ _complements(u[chunk])
        out[chunk, :, :-1] = _turned_to_fit(across, L, turns)
        out[chunk, :, -1] = _inside_rigidly(up + h[chunk].mean(axis=1, keepdims=True), L)
    return np.clip(out, 0.0, L)


def _up_directions(centred, heights):
    """(centred sets, heights, unit up vectors u (M, d), usable): u is the direction that best
    predicts the heights from the centred points (least squares, normalized); unusable where
    the heights say nothing of one."""
    X = np.asarray(centred, dtype=np.float64)
    X = X - X.mean(axis=1, keepdims=True)
    h = np.asarray(heights, dtype=np.float64)
    d = X.shape[-1]
    gram = X.transpose(0, 2, 1) @ X + 1e-12 * np.eye(d)
    a = np.linalg.solve(gram, (X.transpose(0, 2, 1) @ (h - h.mean(1, keepdims=True))[..., None]))
    a = a[..., 0]
    norm = np.linalg.norm(a, axis=1)
    usable = norm > 1e-6
    return X, h, a / np.where(usable, norm, 1.0)[:, None], usable


def stand_upright(centred, heights) -> np.ndarray:
    """Point sets (M, N, d) known up to a rigid motion, turned so that their last coordinates
    are the given heights (M, N) and centred across; the turn about the vertical (and a
    mirror) is left as it comes. Sets whose heights say nothing of an up direction keep their
    principal axes across."""
    X, h, u, usable = _up_directions(centred, heights)
    out = np.empty_like(X)
    out[usable, :, :-1] = X[usable] @ _complements(u[usable])
    for k in np.flatnonzero(~usable):
        _, _, vt = np.linalg.svd(X[k], full_matrices=False)
        out[k, :, :-1] = X[k] @ vt[:-1].T
    out[..., -1] = h
    return out


def _inside_rigidly(z, L: float) -> np.ndarray:
    """Each set's heights (M, N) shifted as a whole (not clipped one by one, which would
    squash a layer onto the floor) to lie in [0, L] where their extent allows."""
    low, high = z.min(axis=1, keepdims=True), z.max(axis=1, keepdims=True)
    return z - np.where(low < 0.0, low, np.where(high > L, np.minimum(high - L, low), 0.0))


def _complements(u) -> np.ndarray:
    """(M, d, d-1) orthonormal bases of the planes perpendicular to unit vectors u (M, d)."""
    d = u.shape[-1]
    stacked = np.concatenate([u[:, :, None], np.broadcast_to(np.eye(d), (len(u), d, d))], -1)
    q, _ = np.linalg.qr(stacked)
    return q[:, :, 1:d]


def _turned_to_fit(across, L: float, turns: int) -> np.ndarray:
    """In-plane points of each set (M, N, d-1), turned (3D) to overflow the box's floor
    least, centred."""
    if across.shape[-1] == 2:
        angles = np.linspace(0.0, 0.5 * np.pi, turns, endpoint=False)
        c, s = np.cos(angles), np.sin(angles)
        rotations = np.stack([np.stack([c, s], -1), np.stack([-s, c], -1)], -2)  # (K, 2, 2)
        # (M, K, 2, N): the extents are reductions over the last, contiguous axis.
        tried = np.einsum("mnd,kde->mken", across, rotations, optimize=True)
        extent = tried.max(axis=-1) - tried.min(axis=-1)
        overflow = np.clip(extent - L, 0.0, None).sum(axis=-1)
        across = tried[np.arange(len(tried)), np.argmin(overflow, axis=1)].transpose(0, 2, 1)
    low, high = across.min(axis=1, keepdims=True), across.max(axis=1, keepdims=True)
    return across + 0.5 * L - 0.5 * (low + high)


def _signed_permutations(d: int) -> np.ndarray:
    """All (d! * 2^d) signed permutation matrices: the box's symmetries, mirrors included."""
    mats = []
    for perm in itertools.permutations(range(d)):
        for signs in itertools.product((1.0, -1.0), repeat=d):
            m = np.zeros((d, d))
            m[list(perm), range(d)] = signs
            mats.append(m)
    return np.array(mats)


def _box_misfit(Y, L: float):
    """How much point sets (..., N, d) overflow a box of side L (sum of squared excess
    extents), plus a slight preference for a flat vertical extent as a tie-break."""
    extent = Y.max(axis=-2) - Y.min(axis=-2)
    return (np.clip(extent - L, 0.0, None) ** 2).sum(axis=-1) + 1e-3 * extent[..., -1] / L


def _best_orientation(X, L: float, candidates) -> np.ndarray:
    """X (N, d) rotated (or mirrored) to fit the box best: the box-symmetric orientations of
    its principal axes first, then, if it still overflows, a local search over rotations."""
    from scipy.optimize import minimize
    from scipy.spatial.transform import Rotation

    _, axes = np.linalg.eigh(X.T @ X)
    tried = X @ axes @ candidates  # (K, N, d)
    misfit = _box_misfit(tried, L)
    order = np.argsort(misfit)
    if _overflow(tried[order[0]], L) <= 0.0 or X.shape[1] != 3:
        return tried[order[0]]

    def stop_when_it_fits(intermediate_result):
        if intermediate_result.fun <= 0.0:
            raise StopIteration

    best, best_overflow = tried[order[0]], np.inf
    for start in tried[order[:_REFINED_STARTS]]:
        found = minimize(lambda v, s=start: _overflow(s @ Rotation.from_rotvec(v).as_matrix(), L),
                         np.zeros(3), method="Nelder-Mead", callback=stop_when_it_fits,
                         options={"maxiter": 300})
        if found.fun < best_overflow:
            best = start @ Rotation.from_rotvec(found.x).as_matrix()
            best_overflow = found.fun
        if best_overflow <= 0.0:
            break
    return best


def _overflow(Y, L: float) -> float:
    """Total length by which the extents of one point set (N, d) exceed the box."""
    return float(np.clip(np.ptp(Y, axis=0) - L, 0.0, None).sum())


# Orientations refined by local search when none of the box-symmetric ones fits.
_REFINED_STARTS = 4


def place_in_box(centred, L: float) -> np.ndarray:
    """Put point sets (M, N, d) known up to a rigid motion into [0, L]^d.

    Each is oriented to fit the box (see :func:`_best_orientation`; among fitting
    orientations the flattest one up, as for a layer settled by gravity), centred across,
    and rests half a diameter above the floor when there is room (else lower). Only sets
    that cannot fit at all are clipped into the box.
    """
    X = np.asarray(centred, dtype=np.float64)
    X = X - X.mean(axis=1, keepdims=True)
    candidates = _signed_permutations(X.shape[-1])
    out = np.stack([_best_orientation(x, L, candidates) for x in X])
    low, high = out.min(axis=1, keepdims=True), out.max(axis=1, keepdims=True)
    out[..., :-1] += 0.5 * L - 0.5 * (low + high)[..., :-1]
    floor = np.clip(L - (high - low)[..., -1], 0.0, 0.5)
    out[..., -1] += floor - low[..., -1]
    return np.clip(out, 0.0, L)


# --------------------------------------------------------------------------- persistence
REPRESENTATIONS = {cls.kind: cls for cls in (SortedCoordinates, VoxelGrid, DistanceMatrix)}


def make_representation(kind: str, L: float, d: int, **params) -> Representation:
    """A representation by its name ('coords', 'voxels' or 'distances')."""
    if kind not in REPRESENTATIONS:
        raise ValueError(f"unknown representation {kind!r}; choose from {sorted(REPRESENTATIONS)}")
    return REPRESENTATIONS[kind](L=L, d=d, **params)


def representation_to_dict(rep: Representation) -> dict:
    """Plain-data description of a fitted representation (for model metadata)."""
    data = {"kind": rep.kind, "params": rep.get_params(), "n_particles": rep.n_particles_}
    if getattr(rep, "template_", None) is not None:
        data["template"] = np.asarray(rep.template_).tolist()
    return data


def representation_from_dict(data: dict) -> Representation:
    params = dict(data["params"])
    if data["kind"] == "distances":
        params.setdefault("heights", False)  # models saved before the height channels
    rep = make_representation(data["kind"], **params)
    rep.n_particles_ = int(data["n_particles"])
    if data.get("template") is not None:
        rep.template_ = np.asarray(data["template"], dtype=np.float64)
    return rep
