"""Fuzzing the upload path: hundreds of malformed or hostile files, each answered with one
clear sentence (or scored, if it happens to be a valid configuration); nothing crashes,
nothing is executed."""

import io
import os
import pickle
import zipfile

import numpy as np
import pytest

pytest.importorskip("keras")

from ljvae_core.io import extxyz_text  # noqa: E402
from ljvae_core.latent import score_files  # noqa: E402
from ljvae_core.sampling import SimulationParams, simulate  # noqa: E402
from ljvae_core.training import TrainSettings, attach_anomaly_scorer, train  # noqa: E402

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
        message = result.error
        assert message.startswith(name), message
        assert "\n" not in message and "Traceback" not in message and len(message) < 400
    assert refused > 150
    assert not (tmp_path / "PWNED").exists()
    by_name = {name: r for (name, _), r in zip(cases, scored, strict=True)}
    assert "empty" in by_name["empty.xyz"].error
    assert "limit" in by_name["too_big.csv"].error
    assert "particles" in by_name["huge_n.csv"].error
    assert "NaN" in by_name["nan.csv"].error
    assert "outside" in by_name["outside.csv"].error
    assert "unknown file type" in by_name["pickle.pkl"].error
    # Caught before ase.io, which would spend minutes on a header claiming 10^9 particles.
    assert "announces 1000000000 particles" in by_name["count_too_big.xyz"].error
    assert by_name["конфигурация 🧪.xyz"].error is None
