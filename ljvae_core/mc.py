"""Metropolis Monte Carlo kernels for LJ particles under gravity (Numba), and their driver.

A move picks one particle uniformly, displaces it uniformly in [-delta, delta]^d (mirrored back
into the box on reflecting axes, wrapped on periodic ones) and accepts it with probability
min(1, exp(-dU / T)). A sweep is N attempted moves.

Two kernels share this move; which one runs is an implementation detail of
:class:`MetropolisSampler`:

- *pair matrix* (small systems): the (N, N) matrix of pair energies is kept, so a move costs
  one pass over the N partners at the trial position; an accepted move only copies numbers.
- *cell list* (a cut-off and a box of at least five cells per axis): cells of side >= rc/2, so
  a move looks at the 5^d surrounding cells only, and its cost does not grow with N. Per-particle
  energies are kept so that the old position is only revisited when a move is accepted.

Random numbers come from xoshiro256+ with an explicit state array, so a run is reproducible
from its seed whatever thread or process it runs in.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .potential import (
    cutoff_squared,
    pair_energies_per_particle,
    pair_energy,
    pair_energy_matrix,
    periodic_mask,
)

# Cells are at least rc / CELL_SUBDIVISION wide; the search covers +-CELL_SUBDIVISION cells.
CELL_SUBDIVISION = 2
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
def uniform01(state):
    """Next double in [0, 1) from a xoshiro256+ state, updated in place."""
    s0 = state[0]
    s1 = state[1]
    s2 = state[2]
    s3 = state[3]
    result = s0 + s3
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    state[0] = s0
    state[1] = s1
    state[2] = s2
    state[3] = s3
    return float(result >> np.uint64(11)) * (1.0 / 9007199254740992.0)


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
# Stand-in squared distance of a particle to its own old position: contributes nothing.
_SELF_R2 = 1e30


@njit(inline="always", cache=True)
def _propose(xt, i, delta, box, pmask, state, trial):
    for c in range(xt.shape[0]):
        v = xt[c, i] + delta * (2.0 * uniform01(state) - 1.0)
        if pmask[c] != 0.0:
            v -= box * math.floor(v / box)
            if v >= box:  # rounding of a tiny negative v
                v = 0.0
        elif v < 0.0:
            v = -v
        elif v > box:
            v = 2.0 * box - v
        trial[c] = v


@njit(inline="always", cache=True)
def _accepts(du, beta, state):
    return du <= 0.0 or uniform01(state) < math.exp(-beta * du)


@njit(inline="always", cache=True)
def _record(sweep, record_every, xt, energy, trace, snapshots):
    if trace.shape[0] > sweep:
        trace[sweep] = energy
    if record_every > 0 and (sweep + 1) % record_every == 0:
        k = (sweep + 1) // record_every - 1
        if k < snapshots.shape[0]:
            for c in range(xt.shape[0]):
                for j in range(xt.shape[1]):
                    snapshots[k, j, c] = xt[c, j]


@njit(inline="always", cache=True)
def _min_image(dx, box, half):
    """Minimum image of a difference of two coordinates that both lie in [0, box)."""
    return dx - box * ((dx > half) * 1.0 - (dx < -half) * 1.0)


@njit(inline="always", cache=True)
def _squared_distances_all(xt, p, box, pmask, r2):
    """r2[j] = squared distance from p to every particle j, minimum image."""
    n = xt.shape[1]
    for j in range(n):
        r2[j] = 0.0
    half = 0.5 * box
    for c in range(xt.shape[0]):
        pc = p[c]
        row = xt[c]
        if pmask[c] != 0.0:
            for j in range(n):
                dx = _min_image(row[j] - pc, box, half)
                r2[j] += dx * dx
        else:
            for j in range(n):
                dx = row[j] - pc
                r2[j] += dx * dx


@njit(inline="always", cache=True)
def _pair_energies(r2, n_idx, rc2, u):
    """u[m] = LJ pair energy at r2[m] (zero beyond the cut-off); returns their sum."""
    total = 0.0
    for m in range(n_idx):
        # Branch-free (a product with the in-range flag) so that the loop vectorizes.
        inv6 = 1.0 / (r2[m] * r2[m] * r2[m])
        val = 4.0 * inv6 * (inv6 - 1.0) * (r2[m] < rc2)
        u[m] = val
        total += val
    return total


# --------------------------------------------------------------------------- pair-matrix kernel
@njit(cache=True, nogil=True, fastmath=FASTMATH)
def sweeps_pair_matrix(
    xt, pair_u, part_u, box, pmask, rc2, gamma4, beta, delta, n_sweeps, record_every,
    energy, state, trace, snapshots,
):
    """Run n_sweeps sweeps in place on positions xt (d, N); returns (energy, accepted moves).

    trace[s] gets the energy after sweep s (if trace is long enough); every record_every
    sweeps the configuration is copied, as (N, d), into the next row of snapshots.
    """
    d, n = xt.shape
    up = d - 1
    r2 = np.empty(n)
    new_u = np.empty(n)
    trial = np.empty(d)
    accepted = 0
    for sweep in range(n_sweeps):
        for _ in range(n):
            i = int(uniform01(state) * n)
            _propose(xt, i, delta, box, pmask, state, trial)
            _squared_distances_all(xt, trial, box, pmask, r2)
            r2[i] = _SELF_R2
            e_new = _pair_energies(r2, n, rc2, new_u)
            e_new -= new_u[i]
            new_u[i] = 0.0
            du = e_new - part_u[i] + gamma4 * (trial[up] - xt[up, i])
            if _accepts(du, beta, state):
                for j in range(n):
                    part_u[j] += new_u[j] - pair_u[i, j]
                    pair_u[i, j] = new_u[j]
                    pair_u[j, i] = new_u[j]
                part_u[i] = e_new
                for c in range(d):
                    xt[c, i] = trial[c]
                energy += du
                accepted += 1
        _record(sweep, record_every, xt, energy, trace, snapshots)
    return energy, accepted


# --------------------------------------------------------------------------- cell-list kernel
@njit(inline="always", cache=True)
def _cell_coord(x, cell_len, ncell):
    k = int(x / cell_len)
    return ncell - 1 if k >= ncell else k


@njit(inline="always", cache=True)
def _cell_of(xt, i, cell_len, ncell):
    """Flat cell index (row-major over x, y[, z]) of column i of xt."""
    idx = 0
    for c in range(xt.shape[0]):
        idx = idx * ncell + _cell_coord(xt[c, i], cell_len, ncell)
    return idx


def neighbour_table(ncell, pmask, dim):
    """nb[c, k, o]: coordinate along axis c of the o-th neighbour of cell coordinate k, or -1.

    Axes beyond dim (2D systems run on a 3-axis table) have the single neighbour 0.
    """
    span = 2 * CELL_SUBDIVISION + 1
    table = np.full((3, ncell, span), -1, np.int64)
    for c in range(3):
        for k in range(ncell):
            if c >= dim:
                table[c, k, 0] = 0
                continue
            for o in range(span):
                kk = k + o - CELL_SUBDIVISION
                if 0 <= kk < ncell:
                    table[c, k, o] = kk
                elif pmask[c] != 0.0:
                    table[c, k, o] = kk % ncell
    return table


@njit(cache=True, nogil=True)
def build_cells(xt, cell_len, ncell, capacity):
    """Cell membership: members and coordinates per cell (cells, capacity[, d]), count, and
    cell and slot of each particle. Returns ok=False when a cell would exceed its capacity.
    """
    d, n = xt.shape
    members = np.empty((ncell**d, capacity), np.int64)
    cell_pos = np.empty((ncell**d, capacity, d))
    count = np.zeros(ncell**d, np.int64)
    cell = np.empty(n, np.int64)
    slot = np.empty(n, np.int64)
    for i in range(n):
        k = _cell_of(xt, i, cell_len, ncell)
        if count[k] >= capacity:
            return members, cell_pos, count, cell, slot, False
        members[k, count[k]] = i
        for c in range(d):
            cell_pos[k, count[k], c] = xt[c, i]
        slot[i] = count[k]
        cell[i] = k
        count[k] += 1
    return members, cell_pos, count, cell, slot, True


@njit(inline="always", cache=True)
def _axis_gaps(p, home_coord, cell_len, span, gaps, c):
    """Squared distance from p[c] to the slabs of the neighbouring cells along axis c."""
    t = p[c] - home_coord * cell_len
    for o in range(span):
        off = o - CELL_SUBDIVISION
        if off > 0:
            gap = off * cell_len - t
        elif off < 0:
            gap = t + (-off - 1) * cell_len
        else:
            gap = 0.0
        gaps[c, o] = gap * gap if gap > 0.0 else 0.0


@njit(inline="always", cache=True)
def _neighbours_within(
    p, home, skip, members, cell_pos, count, nb, cell_len, ncell, box, pmask, rc2, gaps,
    idx, r2,
):
    """Particles (except `skip`) closer than the cut-off to point p in cell `home`.

    Fills idx and r2; returns how many. Cells whose nearest face is beyond the cut-off are
    skipped, and coordinates are read from the cell-ordered copy, which is contiguous.
    """
    d = p.shape[0]
    span = nb.shape[2]
    if d == 3:
        hx, hy, hz = home // (ncell * ncell), (home // ncell) % ncell, home % ncell
        ny, nz = ncell, ncell
    else:
        hx, hy, hz = home // ncell, home % ncell, 0
        ny, nz = ncell, 1
    _axis_gaps(p, hx, cell_len, span, gaps, 0)
    _axis_gaps(p, hy, cell_len, span, gaps, 1)
    if d == 3:
        _axis_gaps(p, hz, cell_len, span, gaps, 2)
    half = 0.5 * box
    found = 0
    for ox in range(span):
        cx = nb[0, hx, ox]
        if cx < 0 or gaps[0, ox] >= rc2:
            continue
        for oy in range(span):
            cy = nb[1, hy, oy]
            gxy = gaps[0, ox] + gaps[1, oy]
            if cy < 0 or gxy >= rc2:
                continue
            for oz in range(span if d == 3 else 1):
                cz = nb[2, hz, oz]
                if cz < 0 or (d == 3 and gxy + gaps[2, oz] >= rc2):
                    continue
                k = (cx * ny + cy) * nz + cz
                for s in range(count[k]):
                    dist2 = 0.0
                    for c in range(d):
                        dx = cell_pos[k, s, c] - p[c]
                        if pmask[c] != 0.0:
                            dx = _min_image(dx, box, half)
                        dist2 += dx * dx
                    if dist2 < rc2:
                        j = members[k, s]
                        if j != skip:
                            idx[found] = j
                            r2[found] = dist2
                            found += 1
    return found


@njit(cache=True, nogil=True)
def _grown(members, cell_pos, count):
    """Copies of the per-cell tables with twice the room per cell."""
    cap = 2 * members.shape[1]
    bigger = np.empty((members.shape[0], cap), np.int64)
    bigger_pos = np.empty((members.shape[0], cap, cell_pos.shape[2]))
    for k in range(members.shape[0]):
        for s in range(count[k]):
            bigger[k, s] = members[k, s]
            bigger_pos[k, s, :] = cell_pos[k, s, :]
    return bigger, bigger_pos


@njit(inline="always", cache=True)
def _move_between_cells(i, old, new, members, cell_pos, count, cell, slot, trial):
    last = members[old, count[old] - 1]
    members[old, slot[i]] = last
    cell_pos[old, slot[i], :] = cell_pos[old, count[old] - 1, :]
    slot[last] = slot[i]
    count[old] -= 1
    members[new, count[new]] = i
    cell_pos[new, count[new], :] = trial
    slot[i] = count[new]
    count[new] += 1
    cell[i] = new


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def sweeps_cell_list(
    xt, part_u, members, cell_pos, count, cell, slot, nb, cell_len, ncell, box, pmask, rc2,
    gamma4, beta, delta, n_sweeps, record_every, energy, state, trace, snapshots,
):
    """Cell-list version of :func:`sweeps_pair_matrix`.

    Returns (energy, accepted, members, cell_pos); the tables come back reallocated with more
    room when a cell ran out of capacity.
    """
    d, n = xt.shape
    up = d - 1
    trial = np.empty(d)
    p_old = np.empty(d)
    gaps = np.zeros((3, nb.shape[2]))
    idx = np.empty(n, np.int64)
    r2 = np.empty(n)
    new_u = np.empty(n)
    old_u = np.empty(n)
    accepted = 0
    for sweep in range(n_sweeps):
        for _ in range(n):
            i = int(uniform01(state) * n)
            _propose(xt, i, delta, box, pmask, state, trial)
            new_home = 0
            for c in range(d):
                new_home = new_home * ncell + _cell_coord(trial[c], cell_len, ncell)
            n_new = _neighbours_within(trial, new_home, i, members, cell_pos, count, nb,
                                       cell_len, ncell, box, pmask, rc2, gaps, idx, r2)
            e_new = _pair_energies(r2, n_new, rc2, new_u)
            du = e_new - part_u[i] + gamma4 * (trial[up] - xt[up, i])
            if not _accepts(du, beta, state):
                continue
            # The new partners gain their share of i's energy, the old ones lose theirs.
            for m in range(n_new):
                part_u[idx[m]] += new_u[m]
            old_home = cell[i]
            for c in range(d):
                p_old[c] = xt[c, i]
            n_old = _neighbours_within(p_old, old_home, i, members, cell_pos, count, nb,
                                       cell_len, ncell, box, pmask, rc2, gaps, idx, r2)
            _pair_energies(r2, n_old, rc2, old_u)
            for m in range(n_old):
                part_u[idx[m]] -= old_u[m]
            part_u[i] = e_new
            for c in range(d):
                xt[c, i] = trial[c]
            if new_home == old_home:
                cell_pos[old_home, slot[i], :] = trial
            else:
                if count[new_home] >= members.shape[1]:
                    members, cell_pos = _grown(members, cell_pos, count)
                _move_between_cells(i, old_home, new_home, members, cell_pos, count, cell,
                                    slot, trial)
            energy += du
            accepted += 1
        _record(sweep, record_every, xt, energy, trace, snapshots)
    return energy, accepted, members, cell_pos


# --------------------------------------------------------------------------- driver
class MetropolisSampler:
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
        self._xt = np.ascontiguousarray(positions.T)
        self.box = float(box)
        self.temperature = float(temperature)
        self.gamma = float(gamma)
        self.pmask = periodic_mask(periodic_axes, self.dim)
        self.cutoff = cutoff
        self.rc2 = cutoff_squared(cutoff)
        self.step_size = float(step_size)
        self.state = rng_state_from_seed(seed)
        self.moves = 0
        self.accepted = 0
        self._setup_kernel()

    @property
    def positions(self) -> np.ndarray:
        """Current configuration as a fresh (N, d) array."""
        return np.ascontiguousarray(self._xt.T)

    @property
    def acceptance(self) -> float:
        """Fraction of accepted moves since the counters were last reset."""
        return self.accepted / self.moves if self.moves else float("nan")

    def reset_counters(self):
        self.moves = 0
        self.accepted = 0

    def full_energy(self) -> float:
        """Energy recomputed from scratch (pair term + gravity), for checks and resets."""
        pos = self.positions
        pair = pair_energy(pos, self.box, self.pmask, self.rc2)
        return float(pair + 4.0 * self.gamma * pos[:, -1].sum())

    # -- kernel choice and bookkeeping
    def _cells_per_axis(self) -> int:
        if self.cutoff is None:
            return 0
        return int(self.box / (self.cutoff / CELL_SUBDIVISION))

    def _wants_cell_list(self) -> bool:
        enough_cells = self._cells_per_axis() >= 2 * CELL_SUBDIVISION + 1
        return enough_cells and self.n > CELL_LIST_MIN_PARTICLES

    def _setup_kernel(self):
        pos = self.positions
        # Whether moves look only at nearby cells (a cut-off and a large enough box).
        self.uses_cell_list = self._wants_cell_list()
        if self.uses_cell_list:
            self.ncell = self._cells_per_axis()
            self.cell_len = self.box / self.ncell
            self.neighbours = neighbour_table(self.ncell, self.pmask, self.dim)
            capacity = min(self.n, int(2.0 * self.cell_len**self.dim) + 16)
            while True:
                built = build_cells(self._xt, self.cell_len, self.ncell, capacity)
                self.members, self.cell_pos, self.count, self.cell, self.slot, ok = built
                if ok:
                    break
                capacity = min(self.n, 2 * capacity)
            self.part_u = pair_energies_per_particle(pos, self.box, self.pmask, self.rc2)
            self.pair_u = None
        else:
            if self.n > PAIR_MATRIX_MAX_PARTICLES:
                raise ValueError(
                    f"{self.n} particles need a cut-off of at most {self.box / 5 * 2:.3g} "
                    "(cell list): without one, the pair-energy matrix would not fit in memory"
                )
            self.pair_u = pair_energy_matrix(pos, self.box, self.pmask, self.rc2)
            self.part_u = self.pair_u.sum(axis=1)
        self.energy = self.full_energy()

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
        delta = min(self.step_size, 0.5 * self.box)
        if self.pair_u is not None:
            self.energy, acc = sweeps_pair_matrix(
                self._xt, self.pair_u, self.part_u, self.box, self.pmask, self.rc2, gamma4,
                beta, delta, n_sweeps, record_every, self.energy, self.state, energy_trace,
                snapshots,
            )
        else:
            self.energy, acc, self.members, self.cell_pos = sweeps_cell_list(
                self._xt, self.part_u, self.members, self.cell_pos, self.count, self.cell,
                self.slot,
                self.neighbours, self.cell_len, self.ncell, self.box, self.pmask, self.rc2,
                gamma4, beta, delta, n_sweeps, record_every, self.energy, self.state,
                energy_trace, snapshots,
            )
        self.accepted += acc
        self.moves += n_sweeps * self.n
        return energy_trace, snapshots
