"""Monte Carlo kernels: physical laws, exact bookkeeping and reproducibility."""

import math

import numpy as np
import pytest
from scipy import stats

from ljvae_core import mc
from ljvae_core.analysis import barometric_fit
from ljvae_core.mc import MetropolisSampler, rng_state_from_seed, uniform_array
from ljvae_core.potential import tail_correction
from ljvae_core.sampling import (
    initial_configuration,
    integrated_autocorrelation_time,
    tune_step_size,
)


def _sampler(n, dim, box, temperature=1.0, gamma=0.0, periodic="", cutoff=None, seed=0):
    start = initial_configuration(n, dim, box, np.random.default_rng(seed))
    return MetropolisSampler(start, box, temperature, gamma, periodic, cutoff, 0.3, seed)


def test_generator_is_uniform_and_seeded():
    draws = uniform_array(rng_state_from_seed(7), 200_000)
    assert stats.kstest(draws, "uniform").pvalue > 1e-3
    assert np.array_equal(draws[:100], uniform_array(rng_state_from_seed(7), 100))
    assert not np.array_equal(draws[:100], uniform_array(rng_state_from_seed(8), 100))


def test_metropolis_threshold_accepts_with_the_boltzmann_probability():
    # A move is accepted when beta * du <= threshold: downhill always, uphill with
    # probability exp(-beta * du). Each threshold is -ln(1 - u) of exactly one draw.
    state = rng_state_from_seed(3)
    thresholds = np.empty(20_000)
    for k in range(thresholds.size):
        u = uniform_array(state.copy(), 1)[0]
        thresholds[k], *after = mc.metropolis_threshold(*state)
        assert math.isclose(thresholds[k], -math.log1p(-u))
        uniform_array(state, 1)
        assert np.array_equal(after, state)
    assert thresholds.min() >= 0.0  # so a move that lowers the energy is always accepted
    for x in (0.05, 0.7, 2.5):
        p = math.exp(-x)
        accepted = np.mean(x <= thresholds)
        assert abs(accepted - p) < 5 * math.sqrt(p * (1 - p) / thresholds.size)


@pytest.mark.parametrize("dim,periodic", [(3, ""), (2, ""), (3, "xy"), (2, "x")])
def test_particles_stay_in_box_and_running_energy_is_exact(dim, periodic):
    s = _sampler(40, dim, 5.0 if dim == 3 else 7.0, gamma=0.5, periodic=periodic)
    s.step_size = 1.5  # large steps hit the walls often
    trace, snaps = s.run(300, record_every=10)
    assert snaps.min() >= 0.0 and snaps.max() <= s.box
    assert np.isfinite(trace).all()
    assert s.energy == pytest.approx(s.full_energy(), rel=1e-10, abs=1e-10)


def test_cell_list_kernel_follows_the_same_trajectory(monkeypatch):
    # Both kernels draw random numbers identically, so equal energies mean equal moves.
    box, cutoff = 12.0, 2.5
    reference = _sampler(300, 3, box, 1.2, 0.2, "xy", cutoff, seed=3)
    e_cells, _ = reference.run(40)
    assert reference.uses_cell_list
    # Patched only now: run() chooses the kernel again each time.
    monkeypatch.setattr(mc, "CELL_LIST_MIN_PARTICLES", 10_000)
    matrix = _sampler(300, 3, box, 1.2, 0.2, "xy", cutoff, seed=3)
    e_matrix, _ = matrix.run(40)
    assert not matrix.uses_cell_list
    assert np.allclose(reference.positions, matrix.positions, atol=1e-12)
    assert np.allclose(e_cells, e_matrix, rtol=1e-10)
    assert reference.energy == pytest.approx(reference.full_energy(), rel=1e-10)


@pytest.mark.parametrize("dim,box,periodic", [(3, 12.0, "xyz"), (3, 12.0, ""), (2, 40.0, "xy"),
                                              (2, 40.0, "")])
def test_cell_list_kernel_follows_the_pair_matrix_on_every_boundary(dim, box, periodic,
                                                                   monkeypatch):
    # Periodic or reflecting along the column axis too: the column ranges split at the seam.
    # In sparse 2D systems an isolated particle's du is exactly 0 in one kernel and a rounding
    # residue in the other: both accept it, and both drew the same random numbers.
    cells = _sampler(300, dim, box, 1.0, 0.0, periodic, 2.5, seed=5)
    e_cells, _ = cells.run(40)
    assert cells.uses_cell_list
    # Patched only now: run() chooses the kernel again each time.
    monkeypatch.setattr(mc, "CELL_LIST_MIN_PARTICLES", 10_000)
    matrix = _sampler(300, dim, box, 1.0, 0.0, periodic, 2.5, seed=5)
    e_matrix, _ = matrix.run(40)
    assert not matrix.uses_cell_list
    assert np.allclose(cells.positions, matrix.positions, atol=1e-12)
    assert np.allclose(e_cells, e_matrix, rtol=1e-10)
    assert cells.energy == pytest.approx(cells.full_energy(), rel=1e-10)


@pytest.mark.parametrize("dim,periodic", [(3, "xy"), (2, "x"), (3, "xyz"), (2, "xy")])
def test_cell_bookkeeping_survives_many_moves_between_cells(dim, periodic):
    # A dense clump under strong gravity: particles cross cells (and the periodic seam) often.
    box = 16.0 if dim == 3 else 60.0
    s = _sampler(400, dim, box, temperature=0.8, gamma=2.0, periodic=periodic, cutoff=2.5)
    assert s.uses_cell_list
    s.run(200)
    ncell, cell_len, _ = s._grid
    home = (s.positions // cell_len).astype(int).clip(max=ncell - 1)
    flat = np.ravel_multi_index(home.T, ncell)
    assert np.array_equal(flat, s.cell)
    assert np.array_equal(np.diff(s.cell_start), np.bincount(flat, minlength=ncell.prod()))
    assert np.array_equal(s.order[s.where], np.arange(s.n))
    assert np.all((s.cell_start[flat] <= s.where) & (s.where < s.cell_start[flat + 1]))
    assert np.array_equal(s.sorted_xt[:, s.where], s.positions.T)
    assert s.energy == pytest.approx(s.full_energy(), rel=1e-9)


def test_kernel_follows_the_step_size():
    # A step larger than the cell margin needs another grid (or the pair matrix).
    s = _sampler(400, 3, 16.0, 1.0, 0.0, "xy", 2.5)
    first = s._grid[0].copy()
    s.step_size = 2.0
    s.run(5)
    assert s._grid is None or not np.array_equal(s._grid[0], first)
    s.step_size = 0.3  # back to the step the sampler was built with
    s.run(5)
    assert s.uses_cell_list and np.array_equal(s._grid[0], first)
    assert s.energy == pytest.approx(s.full_energy(), rel=1e-9)


def test_single_particle_height_follows_truncated_exponential():
    # Detailed balance: the only invariant density is exp(-4 gamma z / T) on [0, L].
    box, gamma, temperature = 3.0, 0.5, 1.0
    s = MetropolisSampler(np.array([[1.0, 1.0]]), box, temperature, gamma, "", None, 1.0, 11)
    _, snaps = s.run(400_000, record_every=20)
    heights = snaps[:, 0, 1]
    rate = 4 * gamma / temperature
    dist = stats.truncexpon(b=rate * box, scale=1 / rate)
    assert stats.kstest(heights, dist.cdf).pvalue > 1e-3
    assert stats.kstest(snaps[:, 0, 0] / box, "uniform").pvalue > 1e-3


@pytest.mark.parametrize("dim", [2, 3])
def test_dilute_gas_follows_the_barometric_law(dim):
    # Few particles far apart: interactions are negligible and rho(z) ~ exp(-4 gamma z / T).
    gamma, temperature, box = 0.25, 1.5, 30.0
    s = _sampler(6, dim, box, temperature, gamma, seed=dim)
    tune_step_size(s, 0.4, 200)
    s.run(500)
    _, snaps = s.run(60_000, record_every=10)
    fit = barometric_fit(snaps[..., -1].ravel(), box)
    expected = 4 * gamma / temperature
    assert fit["rate"] == pytest.approx(expected, rel=0.04)


def test_nvt_energy_matches_nist(reference_dir):
    # NIST SRSW NVT MC, T = 0.85, rho = 0.776, N = 500, rc = 3 with tail correction.
    n, temperature, rho, nist_u, nist_sd = 500, 0.85, 0.776, -5.5121, 4.55e-4
    box = (n / rho) ** (1 / 3)
    s = _sampler(n, 3, box, temperature, 0.0, "xyz", 3.0, seed=5)
    tune_step_size(s, 0.4, 300)
    s.run(700)
    trace, _ = s.run(3000)
    u = (trace + tail_correction(n, box**3, 3, 3.0)) / n
    sd = u.std() * math.sqrt(integrated_autocorrelation_time(u) / u.size)
    assert abs(u.mean() - nist_u) < 3 * math.hypot(sd, nist_sd)


def test_same_seed_same_chain():
    a = _sampler(30, 3, 5.0, gamma=0.1, seed=4)
    b = _sampler(30, 3, 5.0, gamma=0.1, seed=4)
    assert np.array_equal(a.run(50)[0], b.run(50)[0])
    assert np.array_equal(a.positions, b.positions)
