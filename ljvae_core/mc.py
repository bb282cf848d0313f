"""Metropolis Monte Carlo kernels for LJ particles under gravity (Numba), and their driver.

A move picks one particle uniformly, displaces it uniformly in [-delta, delta]^d (mirrored back
into the box on reflecting axes, wrapped on periodic ones) and accepts it with probability
min(1, exp(-dU / T)): every move draws u and is accepted when dU / T <= -ln(1 - u). A sweep is
N attempted moves.

Two kernels share this move; which one runs is an implementation detail of
:class:`MetropolisSampler`:

- *pair matrix* (small systems): the (N, N) matrix of pair energies is kept (padded to whole
  vectors), so a move costs one pass over the N partners at the trial position; an accepted
  move only copies numbers.
- *cell list* (a cut-off and a box at least three times rc + delta wide): particles are kept
  sorted by cell, so the cells near a move are a few contiguous runs; the energies at the old
  and the trial position come from one vectorized pass over them, and the cost of a move does
  not grow with N.

Random numbers come from xoshiro256+ with an explicit state array, so a run is reproducible
from its seed whatever thread or process it runs in.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .potential import (
    batch_total_energies,
    cutoff_squared,
    pair_energy,
    pair_energy_matrix,
    periodic_mask,
)

# Above this many particles the pair matrix costs too much memory, cell list or not.
PAIR_MATRIX_MAX_PARTICLES = 2048
# Below this many particles one pass over everybody beats walking the cells.
CELL_LIST_MIN_PARTICLES = 256


# --------------------------------------------------------------------------- random numbers
def rng_state_from_seed(seed) -> np.ndarray:
    """xoshiro256+ state (4 x uint64) from an int or a numpy SeedSequence."""
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    state = seq.generate_state(4, np.uint64)
    if not state.any():  # the all-zero state is a fixed point of xoshiro
        state[0] = np.uint64(1)
    return state


@njit(inline="always", cache=True)
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(inline="always", cache=True)
def _xoshiro(s0, s1, s2, s3):
    """One xoshiro256+ step on a state held in scalars: (uniform in [0, 1), new state).

    Hot loops keep the state in registers this way; passing the state array to a helper on
    every draw costs an atomic reference-count pair per call.
    """
    result = s0 + s3
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    return float(result >> np.uint64(11)) * (1.0 / 9007199254740992.0), s0, s1, s2, s3


@njit(inline="always", cache=True)
def uniform01(state):
    """Next double in [0, 1) from a xoshiro256+ state array, updated in place."""
    u, s0, s1, s2, s3 = _xoshiro(state[0], state[1], state[2], state[3])
    state[0] = s0
    state[1] = s1
    state[2] = s2
    state[3] = s3
    return u


@njit(cache=True, nogil=True)
def uniform_array(state, n):
    """n draws of :func:`uniform01` (for tests of the generator)."""
    out = np.empty(n)
    for k in range(n):
        out[k] = uniform01(state)
    return out


# --------------------------------------------------------------------------- shared move parts
# Kernels store positions transposed, xt[c, j], so the loops over partners j are contiguous and
# vectorize; reassociation is allowed for those sums only (no assumptions about inf or NaN).
FASTMATH = {"reassoc", "contract", "nsz"}


@njit(inline="always", cache=True)
def _lj_masked(r2, rc2):
    """LJ pair energy at squared distance r2, zero beyond the cut-off."""
    inv6 = 1.0 / (r2 * r2 * r2)
    val = 4.0 * inv6 * (inv6 - 1.0)
    # A select (a mask), not a product with the flag: no int-to-float conversion per pair.
    return val if r2 < rc2 else 0.0


@njit(inline="always", cache=True)
def _moved_coordinate(v, box, periodic):
    """A displaced coordinate brought back into [0, box]: wrapped on a periodic axis, mirrored
    at the walls on a reflecting one (a step never exceeds half the box)."""
    if periodic:  # the same for every move along an axis: a well-predicted branch
        v -= box * math.floor(v / box)
        return 0.0 if v >= box else v  # rounding of a tiny negative v
    # Mirrored: |v| below the floor, 2 box - v above the ceiling.
    v = abs(v)
    return min(v, 2.0 * box - v)


@njit(inline="always", cache=True)
def _propose(xt, i, delta, box, pmask, state, trial):
    for c in range(xt.shape[0]):
        v = xt[c, i] + delta * (2.0 * uniform01(state) - 1.0)
        trial[c] = _moved_coordinate(v, box, pmask[c] != 0.0)


@njit(inline="always", cache=True)
def metropolis_threshold(s0, s1, s2, s3):
    """The Metropolis test's random number for the next move, on a xoshiro state held in
    scalars (see :func:`_xoshiro`): (threshold, new state). A move whose energy change is du
    is accepted when beta * du <= threshold = -ln(1 - u), that is with probability
    min(1, exp(-beta * du)); a move that lowers the energy always is.

    Every move draws one before its pair terms are summed, so the logarithm runs while they
    are and the decision is one comparison once the energy change is known. At N = 30 a move
    took 1.1 times as long when only uphill moves drew and the exponential came after the
    energy change, and 1.03 times when the threshold was drawn after the pair terms."""
    u, s0, s1, s2, s3 = _xoshiro(s0, s1, s2, s3)
    return -math.log(1.0 - u), s0, s1, s2, s3


@njit(inline="always", cache=True)
def _threshold(state):
    """:func:`metropolis_threshold` on a state array, updated in place."""
    threshold, state[0], state[1], state[2], state[3] = metropolis_threshold(
        state[0], state[1], state[2], state[3])
    return threshold


@njit(inline="always", cache=True)
def _record(sweep, record_every, pos, energy, trace, snapshots):
    """Store the energy after a sweep, and every record_every sweeps the configuration: the
    first d rows and N columns of pos, as (N, d), the shape of ``snapshots``' rows."""
    if trace.shape[0] > sweep:
        trace[sweep] = energy
    if record_every > 0 and (sweep + 1) % record_every == 0:
        k = (sweep + 1) // record_every - 1
        if k < snapshots.shape[0]:
            for c in range(snapshots.shape[2]):
                for j in range(snapshots.shape[1]):
                    snapshots[k, j, c] = pos[c, j]


# --------------------------------------------------------------------------- pair-matrix kernel
# The pair matrix and the kernel's copy of the positions have room for a multiple of this many
# particles (a 512-bit vector of doubles), the slots past N masked out: the partner loop then
# runs in whole vectors, with no scalar tail (at N = 30 a move took 6 % longer with one).
PARTNER_LANES = 8


def padded_size(n: int) -> int:
    """Slots for n particles in the pair-matrix kernel's arrays."""
    return -(-n // PARTNER_LANES) * PARTNER_LANES


def padded_pair_matrix(positions, box, pmask, rc2) -> np.ndarray:
    """The pair-energy matrix of positions (N, d) in the pair-matrix kernel's layout: square,
    :func:`padded_size` (N) wide, zero outside the first N rows and columns."""
    n = len(positions)
    out = np.zeros((padded_size(n), padded_size(n)))
    out[:n, :n] = pair_energy_matrix(positions, box, pmask, rc2)
    return out


@njit(inline="always", cache=True)
def _partner_energies(x3, t0, t1, t2, i, n, wrap, pbox, inv_box, rc2, new_u, pair_u):
    """Pair energies of particle i moved to (t0, t1, t2) with every other one, into new_u
    (0 for i itself and for the slots past n); returns their sum and that of its row of
    pair_u (its energy where it is). One fused pass per partner: the squared distance never
    goes through memory, and the loop vectorizes across partners. Summing the old row here
    costs less than keeping per-particle totals up to date after every accepted move."""
    e_new = 0.0
    e_old = 0.0
    for j in range(x3.shape[1]):
        d0 = x3[0, j] - t0
        d1 = x3[1, j] - t1
        d2 = x3[2, j] - t2
        if wrap:  # a constant in each compiled kernel: no branch is left in the loop
            d0 -= pbox[0] * np.rint(d0 * inv_box)
            d1 -= pbox[1] * np.rint(d1 * inv_box)
            d2 -= pbox[2] * np.rint(d2 * inv_box)
        # Selects, not branches (the cut-off, the particle itself, the padding): the loop
        # vectorizes.
        val = _lj_masked(d0 * d0 + d1 * d1 + d2 * d2, rc2)
        new_u[j] = val if (j != i) & (j < n) else 0.0
        e_new += new_u[j]
        e_old += pair_u[i, j]
    return e_new, e_old


def sweeps_pair_matrix(
    xt, pair_u, box, pmask, rc2, gamma4, beta, delta, n_sweeps, record_every,
    energy, state, trace, snapshots,
):
    """Run n_sweeps sweeps in place on positions xt (d, N), d <= 3, and their pair matrix
    from :func:`padded_pair_matrix`; returns (energy, accepted moves).

    trace[s] gets the energy after sweep s (if trace is long enough); every record_every
    sweeps the configuration is copied, as (N, d), into the next row of snapshots. Boxes
    with and without periodic axes run kernels compiled apart: one kernel holding both
    partner loops behind a run-time flag takes 1.3x as long per move.
    """
    kernel = _sweeps_wrapped if np.any(pmask != 0.0) else _sweeps_open
    return kernel(xt, pair_u, box, pmask, rc2, gamma4, beta, delta, n_sweeps,
                  record_every, energy, state, trace, snapshots)


@njit(inline="always", cache=True)
def _pair_matrix_sweeps(
    xt, pair_u, box, pmask, rc2, gamma4, beta, delta, n_sweeps, record_every,
    energy, state, trace, snapshots, wrap,
):
    """:func:`sweeps_pair_matrix` for a constant ``wrap`` (whether any axis is periodic).

    The move is written out here (no helpers taking arrays but inlined ones) to keep
    reference counting out of it. It works on a copy of the positions with three rows (rows
    past d are zeros and add exactly nothing, so one fused loop serves 2D and 3D) and the
    pair matrix's padded width.
    """
    d, n = xt.shape
    m = pair_u.shape[0]
    up = d - 1
    x3 = np.zeros((3, m))
    x3[:d, :n] = xt
    pbox = np.zeros(3)
    for c in range(d):
        if pmask[c] != 0.0:
            pbox[c] = box
    new_u = np.empty(m)
    trial = np.zeros(3)
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    inv_box = 1.0 / box
    accepted = 0
    for sweep in range(n_sweeps):
        for _ in range(n):
            u, s0, s1, s2, s3 = _xoshiro(s0, s1, s2, s3)
            i = int(u * n)
            for c in range(d):
                u, s0, s1, s2, s3 = _xoshiro(s0, s1, s2, s3)
                v = x3[c, i] + delta * (2.0 * u - 1.0)
                trial[c] = _moved_coordinate(v, box, pmask[c] != 0.0)
            t0, t1, t2 = trial[0], trial[1], trial[2]  # missing axes: 0, as in x3
            threshold, s0, s1, s2, s3 = metropolis_threshold(s0, s1, s2, s3)
            e_new, e_old = _partner_energies(x3, t0, t1, t2, i, n, wrap, pbox, inv_box, rc2,
                                             new_u, pair_u)
            du = e_new - e_old + gamma4 * (trial[up] - x3[up, i])
            if beta * du <= threshold:
                for j in range(m):
                    pair_u[i, j] = new_u[j]
                for j in range(n):
                    pair_u[j, i] = new_u[j]
                x3[0, i] = t0
                x3[1, i] = t1
                x3[2, i] = t2
                energy += du
                accepted += 1
        _record(sweep, record_every, x3, energy, trace, snapshots)
    xt[:, :] = x3[:d, :n]
    state[0], state[1], state[2], state[3] = s0, s1, s2, s3
    return energy, accepted


@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def _sweeps_open(xt, pair_u, box, pmask, rc2, gamma4, beta, delta, n_sweeps,
                 record_every, energy, state, trace, snapshots):
    return _pair_matrix_sweeps(xt, pair_u, box, pmask, rc2, gamma4, beta, delta,
                               n_sweeps, record_every, energy, state, trace, snapshots, False)


@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def _sweeps_wrapped(xt, pair_u, box, pmask, rc2, gamma4, beta, delta, n_sweeps,
                    record_every, energy, state, trace, snapshots):
    return _pair_matrix_sweeps(xt, pair_u, box, pmask, rc2, gamma4, beta, delta,
                               n_sweeps, record_every, energy, state, trace, snapshots, True)


# --------------------------------------------------------------------------- cell-list kernel
# Particles are kept sorted by cell (row-major over the axes, the last axis fastest), cell k
# owning slots start[k]:start[k+1] of the sorted coordinates sx (d, N). The cells of a column
# along the last axis are then one contiguous run of slots, summed by one vectorized loop.
# Cells are at least rc + delta wide across the columns (so the 3^(d-1) columns around the
# old position also hold every partner of the trial position) and a fraction of that along
# them (so the runs stop close to the cut-off sphere). Both energies come from one pass.
COLUMN_SPLIT = 4
# Stand-in coordinate of the moving particle while its partners are summed: contributes 0.
_FAR = 1e15


def cell_grid(box, cutoff, delta, dim, pmask):
    """Cells per axis, their widths and the stencil reach per axis, or None when a cell list
    would not pay off (fewer than three columns per axis) or could not be built."""
    if cutoff is None:
        return None
    reach_len = cutoff + delta
    counts = [int(box / reach_len)] * (dim - 1) + [int(box / (reach_len / COLUMN_SPLIT))]
    reach = [1] * (dim - 1) + [COLUMN_SPLIT]
    if min(counts[:-1]) < 3:
        return None
    # A periodic axis must not see one cell twice through the stencil.
    for c in range(dim):
        if pmask[c] != 0.0 and counts[c] < 2 * reach[c] + 1:
            return None
    ncell = np.array(counts, np.int64)
    return ncell, box / ncell, np.array(reach, np.int64)


def neighbour_table(ncell, reach, pmask):
    """Neighbour cells along each axis, and the periodic image each is seen through.

    nb[c, k, o]: coordinate along axis c of the cell at offset o - reach[c] from cell
    coordinate k, or -1 if it lies beyond a wall; wrap[c, k, o]: -1, 0 or +1 box lengths by
    which that cell's particles are displaced as seen from cell k.
    """
    dim = len(ncell)
    span = 2 * int(reach.max()) + 1
    table = np.full((dim, int(ncell.max()), span), -1, np.int64)
    wrap = np.zeros(table.shape)
    for c in range(dim):
        for k in range(ncell[c]):
            for o in range(2 * reach[c] + 1):
                kk = k + o - reach[c]
                if 0 <= kk < ncell[c]:
                    table[c, k, o] = kk
                elif pmask[c] != 0.0:
                    table[c, k, o] = kk % ncell[c]
                    wrap[c, k, o] = kk // ncell[c]
    return table, wrap


@njit(inline="always", cache=True)
def _cell_of_point(p, cell_len, ncell):
    """Flat cell index (row-major over the axes) of point p."""
    idx = 0
    for c in range(p.shape[0]):
        k = int(p[c] / cell_len[c])
        idx = idx * ncell[c] + (ncell[c] - 1 if k >= ncell[c] else k)
    return idx


@njit(cache=True, nogil=True)
def build_cells(xt, cell_len, ncell):
    """Counting sort of the particles by cell.

    Returns (start, order, where, sx, cell): slot range of each cell, particle in each slot,
    slot of each particle, coordinates in slot order (d, N), and cell of each particle.
    """
    d, n = xt.shape
    n_cells = 1
    for c in range(d):
        n_cells *= ncell[c]
    cell = np.empty(n, np.int64)
    start = np.zeros(n_cells + 1, np.int64)
    p = np.empty(d)
    for i in range(n):
        for c in range(d):
            p[c] = xt[c, i]
        cell[i] = _cell_of_point(p, cell_len, ncell)
        start[cell[i] + 1] += 1
    for k in range(n_cells):
        start[k + 1] += start[k]
    fill = start[:-1].copy()
    order = np.empty(n, np.int64)
    where = np.empty(n, np.int64)
    sx = np.empty((d, n))
    for i in range(n):
        s = fill[cell[i]]
        fill[cell[i]] += 1
        order[s] = i
        where[i] = s
        for c in range(d):
            sx[c, s] = xt[c, i]
    return start, order, where, sx, cell


@njit(inline="always", cache=True)
def _slab_gap2(off, w, tp, tq):
    """Squared distance from the nearer of two coordinates tp, tq (measured from the lower face
    of the home cell, of width w) to the slab of the cell off cells away; 0 inside it."""
    if off > 0:
        gap = off * w - max(tp, tq)
    elif off < 0:
        gap = min(tp, tq) + (-off - 1) * w
    else:
        gap = 0.0
    return gap * gap if gap > 0.0 else 0.0


@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def sweeps_cell_list(
    xt, start, order, where, sx, cell, nb, wrap, ncell, cell_len, reach, box, pmask, rc2,
    gamma4, beta, delta, n_sweeps, record_every, energy, state, trace, snapshots,
):
    """Cell-list version of :func:`sweeps_pair_matrix`; returns (energy, accepted moves).

    The cells must come from :func:`cell_grid` for this delta (or a larger one).
    """
    d, n = xt.shape
    up = d - 1
    trial = np.empty(d)
    near = np.empty(d)
    p_old = np.empty(d)
    home = np.empty(d - 1, np.int64)
    gaps = np.zeros((d - 1, nb.shape[2]))
    n_ox = 2 * reach[0] + 1 if d == 3 else 1
    n_oy = 2 * reach[up - 1] + 1
    nz = ncell[up]
    inv_wz = 1.0 / cell_len[up]
    z_periodic = pmask[up] != 0.0
    accepted = 0
    # The stencil walk and the pair sums are written out here rather than in helpers taking
    # arrays: every array handed to an inlined helper costs an atomic reference count
    # increment and decrement per call, which cost more than the pair sums themselves.
    for sweep in range(n_sweeps):
        for _ in range(n):
            i = int(uniform01(state) * n)
            _propose(xt, i, delta, box, pmask, state, trial)
            threshold = _threshold(state)
            slot = where[i]
            for c in range(d):
                p_old[c] = xt[c, i]
                sx[c, slot] = _FAR
                # The trial's image next to the old position, which the stencil is built on.
                near[c] = trial[c] - pmask[c] * box * np.rint((trial[c] - p_old[c]) / box)
            old_home = cell[i]
            # Home cell coordinates, and across the columns the squared distance from the
            # nearer of the two points to each slab of cells around them, per axis.
            hz = old_home % nz
            rest = old_home // nz
            for c in range(up - 1, -1, -1):
                k = rest % ncell[c]
                rest //= ncell[c]
                home[c] = k
                w = cell_len[c]
                for o in range(2 * reach[c] + 1):
                    gaps[c, o] = _slab_gap2(o - reach[c], w, near[c] - k * w, p_old[c] - k * w)
            hx = home[0]
            hy = home[up - 1]
            z_min = min(near[up], p_old[up])
            z_max = max(near[up], p_old[up])
            e_new = 0.0
            e_old = 0.0
            for ox in range(n_ox):
                cx = nb[0, hx, ox] if d == 3 else 0
                gx = gaps[0, ox] if d == 3 else 0.0
                if cx < 0 or gx >= rc2:
                    continue
                sh_x = box * wrap[0, hx, ox] if d == 3 else 0.0
                for oy in range(n_oy):
                    cy = nb[up - 1, hy, oy]
                    gxy = gx + gaps[up - 1, oy]
                    if cy < 0 or gxy >= rc2:
                        continue
                    sh_y = box * wrap[up - 1, hy, oy]
                    # Cells of this column along the last axis that reach within the
                    # remaining distance of either point: one range, computed directly (a
                    # per-cell test costs mispredicted branches). The slack only adds cells.
                    reach_z = math.sqrt(rc2 - gxy) + 1e-9
                    kz_lo = max(int(math.floor((z_min - reach_z) * inv_wz)), hz - reach[up])
                    kz_hi = min(int(math.floor((z_max + reach_z) * inv_wz)), hz + reach[up])
                    col0 = (cx * ncell[up - 1] + cy) * nz
                    # The range split where it crosses a periodic seam (images one box below,
                    # in, above); a reflecting axis keeps only the middle piece.
                    for piece in range(-1, 2):
                        k_lo = max(kz_lo - piece * nz, 0)
                        k_hi = min(kz_hi - piece * nz, nz - 1)
                        if k_lo > k_hi or (piece != 0 and not z_periodic):
                            continue
                        sh_z = box * piece
                        # Unsigned slot numbers: no negative-index wraparound, so the loads
                        # stay contiguous and the loop vectorizes.
                        lo = np.uint64(start[col0 + k_lo])
                        hi = np.uint64(start[col0 + k_hi + 1])
                        if d == 3:
                            px, py, pz = near[0] - sh_x, near[1] - sh_y, near[2] - sh_z
                            qx, qy, qz = p_old[0] - sh_x, p_old[1] - sh_y, p_old[2] - sh_z
                            for s in range(lo, hi):
                                ax, ay, az = sx[0, s] - px, sx[1, s] - py, sx[2, s] - pz
                                bx, by, bz = sx[0, s] - qx, sx[1, s] - qy, sx[2, s] - qz
                                e_new += _lj_masked(ax * ax + ay * ay + az * az, rc2)
                                e_old += _lj_masked(bx * bx + by * by + bz * bz, rc2)
                        else:
                            px, py = near[0] - sh_y, near[1] - sh_z
                            qx, qy = p_old[0] - sh_y, p_old[1] - sh_z
                            for s in range(lo, hi):
                                ax, ay = sx[0, s] - px, sx[1, s] - py
                                bx, by = sx[0, s] - qx, sx[1, s] - qy
                                e_new += _lj_masked(ax * ax + ay * ay, rc2)
                                e_old += _lj_masked(bx * bx + by * by, rc2)
            du = e_new - e_old + gamma4 * (trial[up] - p_old[up])
            if beta * du <= threshold:
                new_home = _cell_of_point(trial, cell_len, ncell)
                if new_home != old_home:
                    # The hole the particle leaves travels cell by cell to the new cell (one
                    # slot copy per cell boundary crossed), so no run of particles is shifted.
                    step = 1 if new_home > old_home else -1
                    for k in range(old_home, new_home, step):
                        if step > 0:
                            start[k + 1] -= 1
                            src = start[k + 1]
                        else:
                            src = start[k]
                            start[k] += 1
                        if src != slot:  # otherwise the slot is the hole itself
                            for c in range(d):
                                sx[c, slot] = sx[c, src]
                            j = order[src]
                            order[slot] = j
                            where[j] = slot
                        slot = src
                    order[slot] = i
                    where[i] = slot
                    cell[i] = new_home
                for c in range(d):
                    xt[c, i] = trial[c]
                    sx[c, slot] = trial[c]
                energy += du
                accepted += 1
            else:
                for c in range(d):
                    sx[c, slot] = p_old[c]
        _record(sweep, record_every, xt, energy, trace, snapshots)
    return energy, accepted


# --------------------------------------------------------------------------- driver
class MoveCounters:
    """Moves attempted and accepted since the counters were last reset (what step tuning
    reads of a chain)."""

    @property
    def acceptance(self) -> float:
        """Fraction of accepted moves since the counters were last reset."""
        return self.accepted / self.moves if self.moves else float("nan")

    def reset_counters(self):
        self.moves = 0
        self.accepted = 0


class MetropolisSampler(MoveCounters):
    """One Markov chain: positions, energies, step size and random state, advanced in sweeps.

    Parameters
    ----------
    positions : (N, d) array inside [0, box]^d (copied).
    box : side length L.
    temperature, gamma : T and the gravity coupling.
    periodic_axes : axis letters with periodic boundaries, e.g. 'xy'; others reflect.
    cutoff : truncation radius of the pair term (None: all pairs).
    step_size : maximal displacement delta per coordinate.
    seed : int or SeedSequence for the chain's own random numbers.
    """

    def __init__(
        self, positions, box, temperature, gamma=0.0, periodic_axes="", cutoff=None,
        step_size=0.2, seed=0,
    ):
        positions = np.asarray(positions, dtype=np.float64)
        self.n, self.dim = positions.shape
        if not 1 <= self.dim <= 3:
            raise ValueError(f"positions must have 1 to 3 coordinates, not {self.dim}")
        self._xt = np.ascontiguousarray(positions.T)
        self.box = float(box)
        self.temperature = float(temperature)
        self.gamma = float(gamma)
        self.pmask = periodic_mask(periodic_axes, self.dim)
        self.cutoff = cutoff
        self.rc2 = cutoff_squared(cutoff)
        self.step_size = float(step_size)
        self.state = rng_state_from_seed(seed)
        self.reset_counters()
        self.pair_u = None
        self._grid = None
        self._setup_kernel()
        self.energy = self.full_energy()

    @property
    def positions(self) -> np.ndarray:
        """Current configuration as a fresh (N, d) array."""
        return np.ascontiguousarray(self._xt.T)

    def energies_of(self, configurations) -> np.ndarray:
        """Total energies of configurations (M, N, d) of this system, recomputed in order.

        The running energy of the kernels is a sum of vectorized, reassociated terms whose
        last bits can depend on where the thread's allocator put the arrays; stored samples
        get these instead, so that the same seed gives the same bits everywhere."""
        coords = np.ascontiguousarray(configurations, dtype=np.float64)
        return batch_total_energies(coords, self.box, self.pmask, self.rc2,
                                    np.full(len(coords), 4.0 * self.gamma))

    def full_energy(self) -> float:
        """Energy recomputed from scratch (pair term + gravity), for checks and resets."""
        pos = self.positions
        pair = pair_energy(pos, self.box, self.pmask, self.rc2)
        return float(pair + 4.0 * self.gamma * pos[:, -1].sum())

    # -- kernel choice and bookkeeping
    def _setup_kernel(self):
        """Choose the kernel for the current step size and build its tables if needed."""
        delta = self._delta()
        grid = None
        if self.n > CELL_LIST_MIN_PARTICLES:
            grid = cell_grid(self.box, self.cutoff, delta, self.dim, self.pmask)
        # Whether moves look only at nearby cells (a cut-off and a large enough box).
        self.uses_cell_list = grid is not None
        if grid is not None:
            self.pair_u = None
            if self._grid is None or any(
                not np.array_equal(a, b) for a, b in zip(grid, self._grid, strict=True)
            ):
                self._grid = grid
                ncell, cell_len, reach = grid
                self.neighbours, self.wraps = neighbour_table(ncell, reach, self.pmask)
                built = build_cells(self._xt, cell_len, ncell)
                self.cell_start, self.order, self.where, self.sorted_xt, self.cell = built
            return
        self._grid = None
        if self.n > PAIR_MATRIX_MAX_PARTICLES:
            raise ValueError(
                f"{self.n} particles need a cut-off, in a box at least three times (cut-off + "
                "step size) wide, so that moves look at nearby cells only: the pair-energy "
                "matrix for all of them would not fit in memory"
            )
        if self.pair_u is None:
            self.pair_u = padded_pair_matrix(self.positions, self.box, self.pmask, self.rc2)

    def _delta(self) -> float:
        return min(self.step_size, 0.5 * self.box)

    # -- running
    def run(self, n_sweeps: int, record_every: int = 0, trace: bool = True):
        """Advance n_sweeps sweeps.

        Returns (energy after each sweep, snapshots every record_every sweeps as (K, N, d)).
        Energies are totals (pair + gravity) of the possibly truncated potential.
        """
        n_sweeps = int(n_sweeps)
        energy_trace = np.empty(n_sweeps if trace else 0)
        n_snap = n_sweeps // record_every if record_every > 0 else 0
        snapshots = np.empty((n_snap, self.n, self.dim))
        beta = 1.0 / self.temperature
        gamma4 = 4.0 * self.gamma
        delta = self._delta()
        self._setup_kernel()
        if not self.uses_cell_list:
            self.energy, acc = sweeps_pair_matrix(
                self._xt, self.pair_u, self.box, self.pmask, self.rc2, gamma4,
                beta, delta, n_sweeps, record_every, self.energy, self.state, energy_trace,
                snapshots,
            )
        else:
            ncell, cell_len, reach = self._grid
            self.energy, acc = sweeps_cell_list(
                self._xt, self.cell_start, self.order, self.where, self.sorted_xt, self.cell,
                self.neighbours, self.wraps, ncell, cell_len, reach, self.box, self.pmask,
                self.rc2, gamma4, beta, delta, n_sweeps, record_every, self.energy, self.state,
                energy_trace, snapshots,
            )
        self.accepted += acc
        self.moves += n_sweeps * self.n
        return energy_trace, snapshots
