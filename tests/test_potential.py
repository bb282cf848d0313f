"""Energies against NIST's published values and against direct formulas."""

import csv
import json
import math

import numpy as np
import pytest

from ljvae_core.cli import main
from ljvae_core.potential import (
    pair_energies_per_particle,
    pair_energy,
    pair_energy_from_distances,
    periodic_mask,
    tail_correction,
    total_energy,
)


def _nist_rows(reference_dir):
    lines = (reference_dir / "nist_lj_sample_energies.tsv").read_text().splitlines()
    body = [line for line in lines if not line.startswith("#")]
    return list(csv.DictReader(body, delimiter="\t"))


def _energy_cli(capsys, *args):
    assert main(["energy", *map(str, args)]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("config", [1, 2, 3, 4])
def test_nist_sample_configurations_every_printed_digit(config, reference_dir, capsys):
    row = _nist_rows(reference_dir)[config - 1]
    path = reference_dir / row["file"]
    out = _energy_cli(capsys, path, "--cutoff", row["rc"], "--tail-correction")
    assert out["particles"] == int(row["N"])
    # NIST prints 5 significant digits: ours, printed the same way, must read identically.
    assert f"{out['pair']:.4E}" == row["Upair"]
    assert f"{out['tail']:.4E}" == row["ULRC"]
    assert out["total"] == pytest.approx(out["pair"] + out["tail"], rel=1e-15)


def test_nist_config4_full_precision(reference_dir, capsys):
    out = _energy_cli(
        capsys, reference_dir / "nist_lj_config4.xyz", "--cutoff", 3, "--tail-correction"
    )
    assert out["pair"] == pytest.approx(-16.790321304625856, rel=1e-9)
    assert out["tail"] == pytest.approx(-0.5451660014945704, rel=1e-9)


def test_two_particles_at_the_minimum():
    r_min = 2 ** (1 / 6)
    pos = np.array([[1.0, 1.0, 1.0], [1.0 + r_min, 1.0, 1.0]])
    energies = total_energy(pos, box=5.0, gamma=0.25)
    assert energies["pair"] == pytest.approx(-1.0, abs=1e-14)
    assert energies["gravity"] == pytest.approx(4 * 0.25 * 2.0)


def test_minimum_image_and_cutoff():
    pos = np.array([[0.2, 1.0], [3.8, 1.0]])  # 3.6 apart directly, 0.4 across the wall
    box = 4.0
    wrapped = 0.4
    direct = pair_energy(pos, box, periodic_mask("", 2), math.inf)
    periodic = pair_energy(pos, box, periodic_mask("x", 2), math.inf)
    assert direct == pytest.approx(4 * (3.6**-12 - 3.6**-6))
    assert periodic == pytest.approx(4 * (wrapped**-12 - wrapped**-6))
    assert pair_energy(pos, box, periodic_mask("", 2), 3.0**2) == 0.0


def test_per_particle_and_distance_matrix_forms_agree():
    rng = np.random.default_rng(0)
    pos = rng.random((12, 3)) * 6.0
    mask = periodic_mask("", 3)
    total = pair_energy(pos, 6.0, mask, math.inf)
    per = pair_energies_per_particle(pos, 6.0, mask, math.inf)
    dist = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    assert per.sum() == pytest.approx(2 * total, rel=1e-12)
    assert pair_energy_from_distances(dist, math.inf) == pytest.approx(total, rel=1e-12)


def test_tail_correction_matches_the_integral():
    # N rho / 2 * integral_rc^inf u(r) 4 pi r^2 dr, numerically
    from scipy.integrate import quad

    n, volume, rc = 100, 1000.0, 2.5
    integral = quad(lambda r: 4 * (r**-12 - r**-6) * 4 * math.pi * r**2, rc, np.inf)[0]
    assert tail_correction(n, volume, 3, rc) == pytest.approx(n * n / volume / 2 * integral)
    integral_2d = quad(lambda r: 4 * (r**-12 - r**-6) * 2 * math.pi * r, rc, np.inf)[0]
    assert tail_correction(n, volume, 2, rc) == pytest.approx(n * n / volume / 2 * integral_2d)


def test_bad_axes_are_refused():
    with pytest.raises(ValueError, match="periodic axes"):
        periodic_mask("xq", 3)
    with pytest.raises(ValueError, match="periodic boundaries on every axis"):
        total_energy(np.eye(2, 3), 5.0, periodic_axes="xy", cutoff=2.0, tail=True)


def test_configuration_energies_take_one_gamma_or_one_per_configuration():
    from ljvae_core.potential import configuration_energies

    coords = np.random.default_rng(8).uniform(0.5, 4.5, (3, 6, 3))
    gammas = np.array([0.0, 0.5, 2.0])
    each = configuration_energies(coords, 5.0, gammas)
    one_by_one = [configuration_energies(c, 5.0, g)[0] for c, g in zip(coords, gammas, strict=True)]
    assert np.array_equal(each, one_by_one)
    # The gravity term is 4 gamma sum z.
    flat = configuration_energies(coords, 5.0, 0.0)
    assert np.allclose(each - flat, 4 * gammas * coords[..., -1].sum(axis=1))
