"""Datasets from other tools' trajectories, the LJ13 cluster's energy and its benchmark."""

import io
import json
from types import SimpleNamespace

import numpy as np
import pytest

from ljvae_core.analysis import wasserstein
from ljvae_core.potential import cluster_energies, tether_energies
from ljvae_core.system import System
from ljvae_core.trajectory import BLOCKS_PER_RUN, ImportFailure, ImportOptions, import_dataset


@pytest.fixture
def run(capsys):
    """The command line, in this process: (exit status, stdout, stderr) of ``main(args)``."""
    from ljvae_core.cli import main

    def call(*args):
        status = main([str(a) for a in args])
        captured = capsys.readouterr()
        return SimpleNamespace(returncode=status, stdout=captured.out, stderr=captured.err)
    return call


def _gas(rng, frames=40, n=6, dim=3, box=5.0):
    return rng.uniform(0.5, box - 0.5, (frames, n, dim))


def test_cluster_energy_follows_the_published_convention():
    pair = np.array([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    # LJ at its minimum (-1 at r = 1) plus the tether: 1/2 (0.5^2 + 0.5^2).
    assert cluster_energies(pair)[0] == pytest.approx(-0.75)
    assert cluster_energies(pair, ordered_pairs=True)[0] == pytest.approx(-1.75)
    # The tether does not see where the cluster is; the pair term does not either.
    shifted = pair + 3.0
    assert cluster_energies(shifted)[0] == pytest.approx(-0.75)
    assert tether_energies(shifted)[0] == pytest.approx(0.25)


def test_the_lj13_reference_split_has_its_published_mean_energy():
    from ljvae_core.lj13 import reference_clusters

    clusters = reference_clusters()
    assert clusters.shape == (10_000, 13, 3)
    energy, tether = cluster_energies(clusters), tether_energies(clusters)
    # About -17.0 per cluster (LJ -26.0, tether +9.1); the ordered-pairs convention ≈ -43.
    assert energy.mean() == pytest.approx(-17.0, abs=0.1)
    assert tether.mean() == pytest.approx(9.06, abs=0.1)
    assert cluster_energies(clusters, ordered_pairs=True).mean() == pytest.approx(-43.0, abs=0.2)
    assert np.abs(clusters.mean(axis=1)).max() < 1e-5  # centre of mass removed


def test_wasserstein_matches_scipy_and_the_sorted_formula():
    from scipy.stats import wasserstein_distance

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=500), rng.normal(0.5, 2.0, size=321)
    assert wasserstein(a, b, p=1) == pytest.approx(wasserstein_distance(a, b), rel=1e-12)
    c = rng.normal(size=500)
    assert wasserstein(a, c) == pytest.approx(np.sqrt(np.mean((np.sort(a) - np.sort(c)) ** 2)))
    assert wasserstein(a, a + 1.5) == pytest.approx(1.5)


def test_extended_xyz_frames_bring_their_box_and_state_labels(tmp_path):
    from ljvae_core.io import write_extxyz

    rng = np.random.default_rng(1)
    coords = _gas(rng)
    gamma = np.repeat([0.0, 1.0], 20)
    write_extxyz(tmp_path / "run.xyz", coords, 5.0, info={"gamma": gamma})
    ds = import_dataset([tmp_path / "run.xyz"])
    assert ds.box == 5.0 and ds.imported and ds.system.potential == "lj-gravity"
    assert np.allclose(ds.coords, coords) and np.array_equal(ds.gamma, gamma)
    assert np.allclose(ds.energy, System(box=5.0, dim=3).energies(coords, gamma))
    # Each state point's frames are cut into contiguous blocks, which stand for chains.
    for g in (0.0, 1.0):
        chains = ds.chain[ds.gamma == g]
        assert len(np.unique(chains)) == BLOCKS_PER_RUN and np.all(np.diff(chains) >= 0)
    # The command line's labels win over the file's.
    again = import_dataset([tmp_path / "run.xyz"], ImportOptions(gamma=(0.5,)))
    assert (again.gamma == 0.5).all() and len(again.conditions) == 1


def test_arrays_and_files_of_several_runs(tmp_path):
    rng = np.random.default_rng(2)
    flat = _gas(rng, dim=2).reshape(40, -1)
    np.save(tmp_path / "a.npy", flat)
    np.savez(tmp_path / "b.npz", coords=_gas(rng, dim=2))
    ds = import_dataset([tmp_path / "a.npy", tmp_path / "b.npz"],
                        ImportOptions(dim=2, box=5.0, temperature=(1.0, 2.0)))
    assert ds.coords.shape == (80, 6, 2)
    assert np.allclose(ds.coords[:40].reshape(40, -1), flat)
    assert sorted(set(ds.temperature)) == [1.0, 2.0] and len(ds.conditions) == 2
    assert len(np.unique(ds.chain)) == 2 * BLOCKS_PER_RUN


def test_lammps_dumps_and_ase_trajectories_are_read(tmp_path):
    import ase
    import ase.io

    rng = np.random.default_rng(3)
    coords = _gas(rng, frames=3, n=4)
    lines = []
    for step, frame in enumerate(coords):
        lines += ["ITEM: TIMESTEP", str(step), "ITEM: NUMBER OF ATOMS", "4",
                  "ITEM: BOX BOUNDS ff ff ff", *["0 5"] * 3, "ITEM: ATOMS id type x y z",
                  *[f"{i + 1} 1 {x:.8f} {y:.8f} {z:.8f}" for i, (x, y, z) in enumerate(frame)]]
    (tmp_path / "run.lammpstrj").write_text("\n".join(lines) + "\n")
    ds = import_dataset([tmp_path / "run.lammpstrj"])
    assert ds.box == pytest.approx(5.0) and np.allclose(ds.coords, coords, atol=1e-7)
    frames = [ase.Atoms("Ar4", positions=x, cell=[5, 5, 5]) for x in coords]
    ase.io.write(tmp_path / "run.traj", frames)
    assert np.allclose(import_dataset([tmp_path / "run.traj"]).coords, coords)


def test_a_free_cluster_is_centred_and_keeps_no_box(tmp_path):
    rng = np.random.default_rng(4)
    clusters = rng.normal(3.0, 0.6, (30, 13, 3))
    np.save(tmp_path / "c.npy", clusters)
    ds = import_dataset([tmp_path / "c.npy"], ImportOptions(potential="lj13"))
    assert ds.box is None and ds.system.free
    assert np.abs(ds.coords.mean(axis=1)).max() < 1e-12
    assert np.allclose(ds.energy, cluster_energies(clusters))


@pytest.mark.parametrize("name, content, options, sentence", [
    ("empty.xyz", b"", ImportOptions(), "the file is empty"),
    ("junk.xyz", bytes(range(256)) * 4, ImportOptions(), "not UTF-8"),
    ("obj.npy", None, ImportOptions(box=5.0), "never unpickled"),
    ("two.npz", "two", ImportOptions(box=5.0), "name the coordinates 'coords'"),
    ("flat.npy", np.zeros((4, 7)), ImportOptions(box=5.0), "must be (M, N, d)"),
    ("nobox.npy", np.ones((4, 3, 3)), ImportOptions(), "gives no box"),
    ("out.npy", np.full((4, 3, 3), 7.0), ImportOptions(box=5.0), "outside the box"),
    ("fall.npy", np.ones((4, 3, 3)), ImportOptions(free=True, gamma=(1.0,)), "needs a floor"),
    ("nan.npy", np.full((4, 3, 3), np.nan), ImportOptions(box=5.0), "not finite"),
])
def test_bad_files_get_one_sentence(tmp_path, name, content, options, sentence):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is None:
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif isinstance(content, str):
        np.savez(path, a=np.ones((2, 3, 3)), b=np.ones((2, 3, 3)))
    else:
        np.save(path, content)
    with pytest.raises(ImportFailure) as err:
        import_dataset([path], options)
    message = str(err.value)
    assert sentence in message and message.count("\n") == 0 and message.endswith(".")


def test_files_of_different_systems_are_refused_together(tmp_path):
    np.save(tmp_path / "a.npy", np.ones((3, 4, 3)))
    np.save(tmp_path / "b.npy", np.ones((3, 5, 3)))
    with pytest.raises(ImportFailure, match="different sizes"):
        import_dataset([tmp_path / "a.npy", tmp_path / "b.npy"], ImportOptions(box=5.0))


def test_import_command_writes_a_dataset_or_nothing(tmp_path, run):
    rng = np.random.default_rng(5)
    np.save(tmp_path / "c.npy", rng.normal(0, 0.6, (40, 13, 3)).reshape(40, 39))
    out = tmp_path / "D"
    done = run("import", tmp_path / "c.npy", "--potential", "lj13", "--no-box", "--out", out)
    assert done.returncode == 0, done.stderr
    assert "40 configurations of 13 particles in 3D, a free cluster" in done.stderr
    from ljvae_core.artifacts import load_dataset

    assert load_dataset(out).system.free  # a path without a suffix is a path
    bad = run("import", tmp_path / "c.npy", "--out", tmp_path / "E")
    assert bad.returncode == 2 and "gives no box" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "E").exists()


def test_lj13_benchmark_tells_a_distorted_sample_from_monte_carlo(tmp_path, run):
    from ljvae_core.lj13 import reference_clusters

    clusters = reference_clusters()
    np.savez(tmp_path / "same.npz", coords=clusters[::2][:2000])
    np.savez(tmp_path / "wide.npz", coords=1.05 * clusters[::2][:2000])
    figures = {}
    for name in ("same", "wide"):
        done = run("benchmark", "lj13", "--data", tmp_path / f"{name}.npz")
        assert done.returncode == 0, done.stderr
        figures[name] = json.loads(done.stdout)
    floor = figures["same"]["floor"]
    assert figures["same"]["held_out_samples"] == 5000 and floor["samples"] == 2000
    # Monte Carlo against Monte Carlo: small figures, all clusters valid.
    assert figures["same"]["generated"]["energy_w2"] < 3 * floor["energy_w2"] + 0.2
    assert floor["valid_fraction"] == 1.0
    wide = figures["wide"]["generated"]
    assert wide["energy_w2"] > 10 * floor["energy_w2"]
    assert wide["distance_w1"] > 0.05 > 10 * floor["distance_w1"]
    assert wide["energy_w2_squared"] == pytest.approx(wide["energy_w2"] ** 2)
    bad = run("benchmark", "lj13", "--data", tmp_path / "missing.npz")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


_SUFFIXES = [".xyz", ".extxyz", ".lammpstrj", ".data", ".traj", ".npy", ".npz", ".bin"]


def _hostile_files():
    from hypothesis import strategies as st

    text = st.text(max_size=300).map(str.encode)
    header = st.sampled_from([b"ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\n", b"3\n\n",
                              b"\x93NUMPY\x01\x00", b"PK\x03\x04", b""])
    body = st.one_of(st.binary(max_size=400), text)
    return st.tuples(st.sampled_from(_SUFFIXES), st.builds(lambda h, b: h + b, header, body))


def test_hostile_files_get_one_sentence_and_never_crash(tmp_path):
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=150, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(_hostile_files())
    def check(case):
        suffix, content = case
        try:
            ds = import_dataset([(f"f{suffix}", io.BytesIO(content))],
                                ImportOptions(box=5.0))
        except ImportFailure as err:
            message = str(err)
            assert message.endswith(".") and "\n" not in message and "Traceback" not in message
            return
        assert np.isfinite(ds.coords).all() and len(ds) > 0  # it happened to be a trajectory

    check()


def test_the_energy_command_prints_both_pair_conventions_for_lj13(tmp_path, run):
    from ljvae_core.io import write_extxyz

    pair = np.array([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    write_extxyz(tmp_path / "pair.xyz", pair, None)
    done = run("energy", tmp_path / "pair.xyz", "--potential", "lj13")
    assert done.returncode == 0, done.stderr
    terms = json.loads(done.stdout)
    assert terms["pair"] == pytest.approx(-1.0) and terms["tether"] == pytest.approx(0.25)
    assert terms["total"] == pytest.approx(-0.75)
    assert terms["total_ordered_pairs"] == pytest.approx(-1.75)
    assert terms["gravity"] == 0.0 and terms["particles"] == 2
