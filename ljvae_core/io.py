"""Reading and writing configurations: extended XYZ (via ase.io), CSV and .npy.

Extended XYZ frames carry the box in ``Lattice`` and the boundaries in ``pbc``. 2D
configurations are written with z = 0, a zero third lattice vector and ``dim=2`` in the frame's
info, and read back as 2D. ``.npy`` files are read with ``allow_pickle=False``: nothing a user
hands in is ever unpickled.
"""

from __future__ import annotations

import io as _io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Uploads larger than this are refused before parsing: ~20 MB is over 10^5 frames of 30
# particles in XYZ, far more than one scores at a time.
MAX_UPLOAD_BYTES = 20 * 2**20


class ConfigurationFormatError(ValueError):
    """A configuration file that cannot be read (one clear sentence)."""


@dataclass
class Configurations:
    """Frames read from one file: coords (F, N, d), and the box and pbc if the file says."""

    coords: np.ndarray
    box: float | None = None
    periodic: str | None = None


def read_configurations(source, name: str | None = None) -> Configurations:
    """Read a file path or a binary/text stream; the format follows the name's extension."""
    name = name or (str(source) if isinstance(source, (str, os.PathLike)) else "")
    suffix = Path(name).suffix.lower()
    try:
        if suffix in (".xyz", ".extxyz"):
            return _read_xyz(source)
        if suffix == ".csv":
            return _read_csv(source)
        if suffix == ".npy":
            return _read_npy(source)
    except ConfigurationFormatError:
        raise
    except MemoryError:
        raise ConfigurationFormatError(f"{Path(name).name} is too large to read") from None
    except Exception as err:  # noqa: BLE001 - parsers of untrusted files raise anything
        raise ConfigurationFormatError(f"could not read {Path(name).name}: "
                                       f"{_one_line(err)}") from None
    raise ConfigurationFormatError(
        f"unknown file type {suffix or '(none)'}: use .xyz (extended XYZ), .csv or .npy"
    )


def read_upload(name: str, data: bytes, max_bytes: int = MAX_UPLOAD_BYTES) -> Configurations:
    """Configurations from an uploaded file's name and bytes, refusing empty or huge files."""
    if len(data) == 0:
        raise ConfigurationFormatError(f"{name} is empty")
    if len(data) > max_bytes:
        raise ConfigurationFormatError(
            f"{name} is {len(data) / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB")
    return read_configurations(_io.BytesIO(data), name)


def _one_line(err: Exception) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _as_text_stream(source):
    if isinstance(source, (str, os.PathLike)):
        return open(source, encoding="utf-8")
    data = source.read()
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    return _io.StringIO(data)


def _check_frame_counts(text: str) -> None:
    """Each frame's first line must be a particle count that the rest of the file can hold:
    checked before ase.io, which can spend minutes on a header claiming 10^9 particles."""
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    i = 0
    while i < len(lines):
        try:
            n = int(lines[i].strip())
        except ValueError:
            raise ConfigurationFormatError(
                f"line {i + 1} should be a frame's particle count, not {lines[i][:40]!r}"
            ) from None
        if n < 1 or i + 2 + n > len(lines):
            raise ConfigurationFormatError(
                f"the frame at line {i + 1} announces {n} particles but the file has "
                f"{max(len(lines) - i - 2, 0)} lines left")
        i += n + 2


def _read_xyz(source) -> Configurations:
    import ase.io

    with _as_text_stream(source) as stream:
        text = stream.read()
    _check_frame_counts(text)
    with _io.StringIO(text) as stream:
        frames = ase.io.read(stream, index=":", format="extxyz")
    if not frames:
        raise ConfigurationFormatError("the XYZ file holds no frame")
    counts = {len(f) for f in frames}
    if len(counts) != 1:
        raise ConfigurationFormatError(f"frames hold different particle counts: {sorted(counts)}")
    dim = 2 if frames[0].info.get("dim") == 2 else 3
    coords = np.stack([f.positions[:, :dim] for f in frames])
    cell = frames[0].cell.lengths()[:dim]
    box = float(cell[0]) if cell.any() else None
    pbc = frames[0].pbc[:dim]
    periodic = "".join(a for a, p in zip("xyz"[:dim], pbc, strict=True) if p)
    return Configurations(coords, box, periodic)


def _read_csv(source) -> Configurations:
    with _as_text_stream(source) as stream:
        table = np.genfromtxt(stream, delimiter=",", names=True, dtype=np.float64)
    columns = [c for c in ("x", "y", "z") if table.dtype.names and c in table.dtype.names]
    if columns not in (["x", "y"], ["x", "y", "z"]):
        raise ConfigurationFormatError("a CSV file needs a header with columns x,y or x,y,z")
    coords = np.stack([np.atleast_1d(table[c]) for c in columns], axis=-1)
    return Configurations(coords[None])


def _read_npy(source) -> Configurations:
    if not isinstance(source, (str, os.PathLike)):
        source = _io.BytesIO(source.read())
    array = np.load(source, allow_pickle=False)
    if array.dtype.kind not in "fiu":
        raise ConfigurationFormatError(f"a .npy file must hold numbers, not {array.dtype}")
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[-1] not in (2, 3):
        raise ConfigurationFormatError(
            f"a .npy file must have shape (N, d) or (frames, N, d) with d = 2 or 3, "
            f"got {array.shape}"
        )
    return Configurations(array.astype(np.float64))


def write_extxyz(target, coords, box: float, periodic: str = "", info: dict | None = None):
    """Write frames (F, N, d) as extended XYZ; info maps keys to per-frame sequences."""
    import ase
    import ase.io

    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim == 2:
        coords = coords[None]
    n_frames, n, dim = coords.shape
    cell = np.diag([box] * dim + [0.0] * (3 - dim))
    pbc = [a in periodic for a in "xyz"[:dim]] + [False] * (3 - dim)
    frames = []
    for k in range(n_frames):
        pos = np.zeros((n, 3))
        pos[:, :dim] = coords[k]
        atoms = ase.Atoms(f"Ar{n}", positions=pos, cell=cell, pbc=pbc)
        if dim == 2:
            atoms.info["dim"] = 2
        for key, values in (info or {}).items():
            atoms.info[key] = float(np.asarray(values)[k])
        frames.append(atoms)
    ase.io.write(target, frames, format="extxyz")


def extxyz_text(coords, box, periodic="", info=None) -> str:
    stream = _io.StringIO()
    write_extxyz(stream, coords, box, periodic, info)
    return stream.getvalue()


def npz_bytes(**arrays) -> bytes:
    stream = _io.BytesIO()
    np.savez_compressed(stream, **arrays)
    return stream.getvalue()
