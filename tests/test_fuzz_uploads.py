"""Fuzzing the upload path: hundreds of malformed or hostile files, each answered with one
clear sentence (or scored, if it happens to be a valid configuration); nothing crashes,
nothing is executed."""

import io
import os
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ljvae_core.calibration import attach_anomaly_scorer
from ljvae_core.io import extxyz_text
from ljvae_core.sampling import SimulationParams, simulate
from ljvae_core.scoring import score_files
from ljvae_core.settings import TrainSettings
from ljvae_core.training import train

N, BOX = 6, 5.0


@pytest.fixture(scope="module")
def model():
    ds = simulate(SimulationParams(n_particles=N, dim=2, box=BOX, gammas=(0.0, 1.0),
                                   n_samples=60, n_chains=2, seed=5))
    trained = train(ds, TrainSettings(representation="coords", latent_dim=2, epochs=2))
    attach_anomaly_scorer(trained, ds)
    return trained, ds


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def _npy(array) -> bytes:
    stream = io.BytesIO()
    np.save(stream, array, allow_pickle=True)
    return stream.getvalue()


def _zip_bomb() -> bytes:
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("arr_0.npy", b"\0" * (50 * 2**20))  # 50 MB of zeros in ~50 kB
    return stream.getvalue()


def _handmade(good_xyz: bytes, good: np.ndarray) -> list[tuple[str, bytes]]:
    csv = "x,y\n" + "\n".join(f"{x},{y}" for x, y in good)
    return [
        ("empty.xyz", b""), ("empty.csv", b""), ("empty.npy", b""),
        ("blank.xyz", b"\n\n\n"), ("header_only.csv", b"x,y\n"),
        ("truncated.xyz", good_xyz[: len(good_xyz) // 2]),
        ("count_too_big.xyz", good_xyz.replace(f"{N}\n".encode(), b"1000000000\n", 1)),
        ("count_negative.xyz", good_xyz.replace(f"{N}\n".encode(), b"-3\n", 1)),
        ("count_text.xyz", good_xyz.replace(f"{N}\n".encode(), b"six\n", 1)),
        ("text_in_numbers.csv", csv.replace(str(good[0, 0]), "abc").encode()),
        ("nan.csv", csv.replace(str(good[1, 1]), "nan").encode()),
        ("inf.csv", csv.replace(str(good[2, 0]), "inf").encode()),
        ("outside.csv", csv.replace(str(good[0, 0]), "99").encode()),
        ("negative.csv", csv.replace(str(good[0, 1]), "-1").encode()),
        ("wrong_columns.csv", csv.replace("x,y", "a,b", 1).encode()),
        ("three_d.csv", ("x,y,z\n" + "\n".join(f"{x},{y},1" for x, y in good)).encode()),
        ("too_few.csv", "\n".join(csv.splitlines()[:3]).encode()),
        ("huge_n.csv", ("x,y\n" + "1,1\n" * 100_000).encode()),
        ("pickle.npy", pickle.dumps(_Exploit())),
        ("pickle_in_npy.npy", _npy(np.array([_Exploit()], dtype=object))),
        ("object_dtype.npy", _npy(np.array([[1, "a"]], dtype=object))),
        ("strings.npy", _npy(np.array([["1", "2"]] * N))),
        ("complex.npy", _npy(good.astype(complex))),
        ("wrong_shape.npy", _npy(np.zeros((2, 3, 4, 5)))),
        ("scalar.npy", _npy(np.float64(3.0))),
        ("zip_bomb.npy", _zip_bomb()),
        ("zip_bomb.npz", _zip_bomb()),
        ("pickle.pkl", pickle.dumps(_Exploit())),
        ("binary.xyz", os.urandom(2048)),
        ("latin1.csv", "x,y\n1,é\n".encode("latin-1")),
        ("utf16.xyz", good_xyz.decode().encode("utf-16")),
        ("конфигурация 🧪.xyz", good_xyz),
        ("../../etc/passwd.xyz", good_xyz),
        ("no_extension", good_xyz),
        ("nul\0name.csv", csv.encode()),
        ("too_big.csv", b"x,y\n" + b"1,1\n" * (6 * 2**20)),
        ("huge_line.xyz", b"6\n" + b"A" * (5 * 2**20) + b"\n"),
        ("lattice_junk.xyz", good_xyz.replace(b"Lattice=", b"Lattice=junk", 1)),
        ("nested_quotes.xyz", good_xyz.replace(b'"', b'"""', 2)),
        ("cut_short.npy", _npy(good)[:-5]),
    ]


def _mutations(good_xyz: bytes, good: np.ndarray, count: int) -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(0)
    cases = []
    sources = {"xyz": good_xyz, "csv": ("x,y\n" + "\n".join(
        f"{x},{y}" for x, y in good)).encode(), "npy": _npy(good)}
    for k in range(count):
        kind = ("xyz", "csv", "npy")[k % 3]
        data = bytearray(sources[kind])
        op = rng.integers(4)
        if op == 0:  # flip random bytes
            for i in rng.integers(0, len(data), size=rng.integers(1, 8)):
                data[i] = rng.integers(256)
        elif op == 1:  # cut somewhere
            data = data[: rng.integers(0, len(data))]
        elif op == 2:  # insert junk
            i = rng.integers(0, len(data))
            data[i:i] = bytes(rng.integers(0, 256, size=rng.integers(1, 32)).astype(np.uint8))
        else:  # duplicate a slice
            i, j = sorted(rng.integers(0, len(data), size=2))
            data[j:j] = data[i:j]
        cases.append((f"mutant_{k}.{kind}", bytes(data)))
    return cases


# Interpreter and library text that must never reach a user.
LEAKS = ("Traceback", "Error", "Exception", "codec", "Errno", "object has no attribute",
         "invalid literal", "could not convert", "cannot reshape", "allow_pickle", "dtype",
         "NpzFile", "genfromtxt", "Some errors", "line #", "<class", "b'", "\\x", "None")


def assert_one_clear_sentence(name: str, message: str):
    assert message.startswith(f"{name}: "), message
    assert message.count(name) == 1, message
    # One sentence: a full stop at its end only (quoted pieces of the file aside).
    assert message.endswith(".") and ". " not in re.sub(r"'[^']*'", "", message), message
    assert "\n" not in message and len(message) < 300, message
    leaked = [fragment for fragment in LEAKS if fragment in message[len(name):]]
    assert not leaked, (leaked, message)


def test_two_hundred_hostile_uploads_get_clear_messages(model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trained, ds = model
    good = ds.coords[0]
    good_xyz = extxyz_text(good, BOX).encode()
    cases = _handmade(good_xyz, good) + _mutations(good_xyz, good, 200)
    assert len(cases) >= 200
    scored = score_files(trained, cases, max_bytes=4 * 2**20)
    assert len(scored) == len(cases)
    refused = 0
    for (name, _), result in zip(cases, scored, strict=True):
        if result.error is None:
            assert result.results and all(np.isfinite(r["score"]) for r in result.results)
            continue
        refused += 1
        assert_one_clear_sentence(name, result.error)
    assert refused > 150
    assert not (tmp_path / "PWNED").exists()
    by_name = {name: r.error for (name, _), r in zip(cases, scored, strict=True)}
    expected = {
        "empty.xyz": "empty", "empty.npy": "empty", "blank.xyz": "no frame",
        "too_big.csv": "limit", "huge_n.csv": "particles", "nan.csv": "NaN",
        "outside.csv": "outside", "pickle.pkl": "unknown file type .pkl",
        "no_extension": "unknown file type", "binary.xyz": "binary data",
        "latin1.csv": "not UTF-8", "utf16.xyz": "UTF-16", "pickle.npy": "not a .npy array",
        "pickle_in_npy.npy": "Python objects", "object_dtype.npy": "Python objects",
        "strings.npy": "holds text", "complex.npy": "complex numbers",
        "wrong_shape.npy": "shape (2, 3, 4, 5)", "scalar.npy": "single number",
        "zip_bomb.npy": ".npz archive", "text_in_numbers.csv": "'abc' where a number",
        "header_only.csv": "no line of particle coordinates", "wrong_columns.csv": "header",
        "three_d.csv": "3D, the model is 2D", "truncated.xyz": "announces 6 particles",
        "count_negative.xyz": "announces -3 particles", "count_text.xyz": "'six'",
        "lattice_junk.xyz": "extended XYZ", "cut_short.npy": "cut short",
        # Caught before ase.io, which would spend minutes on a header claiming 10^9 particles.
        "count_too_big.xyz": "announces 1000000000 particles",
    }
    for name, fragment in expected.items():
        assert fragment in by_name[name], (name, by_name[name])
    assert by_name["конфигурация 🧪.xyz"] is None


def test_files_given_by_path_get_clear_messages(model, tmp_path):
    trained, _ = model
    (tmp_path / "folder.xyz").mkdir()
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "junk.npy").write_bytes(os.urandom(300))
    cases = {"missing.xyz": "no such file", "folder.xyz": "folder", "empty.csv": "empty",
             "junk.npy": "not a .npy array"}
    paths = [(str(tmp_path / name), tmp_path / name) for name in cases]
    for (path, _), result, fragment in zip(paths, score_files(trained, paths), cases.values(),
                                           strict=True):
        assert_one_clear_sentence(path, result.error)
        assert fragment in result.error, result.error


def test_the_score_command_prints_the_same_sentence(model, tmp_path):
    import subprocess
    import sys

    from ljvae_core.model_store import save_model

    trained, _ = model
    save_model(trained, tmp_path / "model")
    bad = tmp_path / "bad.xyz"
    bad.write_bytes(b"\x93\x00\xff\xfe" * 300)
    out = subprocess.run([sys.executable, "-m", "ljvae_core", "score", str(tmp_path / "model"),
                          str(bad)], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 2
    assert out.stderr.splitlines()[-1] == (
        f"error: {bad}: the file holds binary data, not the text of an XYZ or CSV file.")
