"""Reading and writing configurations: extended XYZ (via ase.io), CSV and .npy.

Extended XYZ frames carry the box in ``Lattice`` and the boundaries in ``pbc``. 2D
configurations are written with z = 0, a zero third lattice vector and ``dim=2`` in the frame's
info, and read back as 2D. ``.npy`` files are read with ``allow_pickle=False``: nothing a user
hands in is ever unpickled.
"""

from __future__ import annotations

import io as _io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Uploads larger than this are refused before parsing: ~20 MB is over 10^5 frames of 30
# particles in XYZ, far more than one scores at a time.
MAX_UPLOAD_BYTES = 20 * 2**20

FILE_TYPES = ".xyz (extended XYZ), .csv or .npy"


class ConfigurationFormatError(ValueError):
    """A configuration file that cannot be read: one sentence that names the file once and
    says what is wrong with it in the terms of its format."""


class _Problem(Exception):
    """What is wrong with a file, as a clause to follow its name (the readers' own)."""


@dataclass
class Configurations:
    """Frames read from one file: coords (F, N, d), and the box and pbc if the file says."""

    coords: np.ndarray
    box: float | None = None
    periodic: str | None = None


def read_configurations(source, name: str | None = None) -> Configurations:
    """Read a file path or a binary/text stream; the format follows the name's extension.
    Whatever is wrong with the file raises :class:`ConfigurationFormatError`."""
    name = name or (str(source) if isinstance(source, (str, os.PathLike)) else "the file")
    try:
        return _read(source, Path(name).suffix.lower())
    except _Problem as problem:
        raise ConfigurationFormatError(f"{name}: {problem}.") from None


def read_upload(name: str, data: bytes, max_bytes: int = MAX_UPLOAD_BYTES) -> Configurations:
    """Configurations from an uploaded file's name and bytes, refusing huge files unread."""
    if len(data) > max_bytes:
        raise ConfigurationFormatError(
            f"{name}: the file is {len(data) / 2**20:.1f} MB, over the "
            f"{max_bytes / 2**20:g} MB limit.")
    return read_configurations(_io.BytesIO(data), name)


# Untrusted files make a parser raise anything; what the user reads is the format's rule.
_MALFORMED = {
    ".xyz": "the file is not valid extended XYZ, where each frame is a particle count, a "
            "comment line and one line per particle",
    ".csv": "the file is not a CSV table of x,y or x,y,z columns",
    ".npy": "the file is not a readable .npy array",
}


def _read(source, suffix: str) -> Configurations:
    suffix = ".xyz" if suffix == ".extxyz" else suffix
    reader = {".xyz": _read_xyz, ".csv": _read_csv, ".npy": _read_npy}.get(suffix)
    if reader is None:
        raise _Problem(f"unknown file type {suffix or '(no extension)'}; use {FILE_TYPES}")
    data = _bytes_of(source)
    if not data:
        raise _Problem("the file is empty")
    try:
        return reader(data)
    except _Problem:
        raise
    except MemoryError:
        raise _Problem("the file is too large to read") from None
    except Exception:  # noqa: BLE001 - see _MALFORMED
        raise _Problem(_MALFORMED[suffix]) from None


def _bytes_of(source) -> bytes:
    if not isinstance(source, (str, os.PathLike)):
        data = source.read()
        return data.encode("utf-8") if isinstance(data, str) else bytes(data)
    try:
        return Path(source).read_bytes()
    except FileNotFoundError:
        raise _Problem("there is no such file") from None
    except IsADirectoryError:
        raise _Problem("this is a folder, not a file") from None
    except PermissionError:
        raise _Problem("the file may not be read (permission denied)") from None
    except OSError:
        raise _Problem("the file cannot be read") from None


def _text(data: bytes) -> str:
    """The text of an XYZ or CSV file, which must be UTF-8 (ASCII is)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _Problem("the file is UTF-16 text; save it as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        if _looks_binary(data):
            raise _Problem("the file holds binary data, not the text of an XYZ or CSV "
                           "file") from None
        raise _Problem("the file is not UTF-8 text; save it as UTF-8") from None


def _looks_binary(data: bytes) -> bool:
    head = data[:4096]
    controls = sum(b < 9 or 13 < b < 32 for b in head)
    high = sum(b >= 128 for b in head)
    return controls > 0.02 * len(head) or high > 0.3 * len(head)


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
            raise _Problem(f"line {i + 1} should start a frame with its particle count, not "
                           f"{_quoted(lines[i])}") from None
        if n < 1:
            raise _Problem(f"the frame at line {i + 1} announces {n} particles")
        if i + 2 + n > len(lines):
            raise _Problem(f"the frame at line {i + 1} announces {plural(n, 'particle')} but "
                           f"the file has {plural(max(len(lines) - i - 2, 0), 'line')} left")
        i += n + 2


def _read_xyz(data: bytes) -> Configurations:
    import ase.io

    text = _text(data)
    _check_frame_counts(text)
    with _io.StringIO(text) as stream:
        frames = ase.io.read(stream, index=":", format="extxyz")
    if not frames:
        raise _Problem("the file holds no frame")
    counts = sorted({len(f) for f in frames})
    if len(counts) != 1:
        raise _Problem(f"its frames hold different numbers of particles "
                       f"({', '.join(map(str, counts))})")
    dim = 2 if frames[0].info.get("dim") == 2 else 3
    coords = np.stack([f.positions[:, :dim] for f in frames])
    cell = frames[0].cell.lengths()[:dim]
    box = float(cell[0]) if cell.any() else None
    pbc = frames[0].pbc[:dim]
    periodic = "".join(a for a, p in zip("xyz"[:dim], pbc, strict=True) if p)
    return Configurations(coords, box, periodic)


def _read_csv(data: bytes) -> Configurations:
    """One configuration: a header naming the columns (x, y and maybe z among them), then one
    line of numbers per particle; blank lines and lines starting with # are skipped."""
    lines = [(k + 1, line) for k, line in enumerate(_text(data).splitlines())
             if line.strip() and not line.lstrip().startswith("#")]
    header = [_cell(c).lower() for c in lines[0][1].split(",")] if lines else []
    wanted = [c for c in ("x", "y", "z") if c in header]
    if wanted not in (["x", "y"], ["x", "y", "z"]):
        raise _Problem("its first line must be a header naming the columns x,y or x,y,z")
    columns = [header.index(c) for c in wanted]
    rows = [_csv_row(number, line, len(header), columns) for number, line in lines[1:]]
    if not rows:
        raise _Problem("it has a header but no line of particle coordinates")
    return Configurations(np.array(rows, dtype=np.float64)[None])


def plural(n: int, noun: str) -> str:
    """'1 particle', '3 particles'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _quoted(text: str, limit: int = 20) -> str:
    """A piece of the file, quoted for a message: short, and unprintable characters (and
    quotes) shown as '?'."""
    shown = "".join(c if c.isprintable() and c not in "'\"" else "?" for c in text[:limit])
    return f"'{shown}…'" if len(text) > limit else f"'{shown}'"


def _cell(text: str) -> str:
    return text.strip().strip('"').strip("'").strip()


def _csv_row(number: int, line: str, width: int, columns: list[int]) -> list[float]:
    cells = line.split(",")
    if len(cells) != width:
        raise _Problem(f"line {number} has {plural(len(cells), 'value')} where the header "
                       f"names {width}")
    row = []
    for c in columns:
        try:
            row.append(float(_cell(cells[c])))
        except ValueError:
            raise _Problem(f"line {number} has {_quoted(_cell(cells[c]))} where a number "
                           "should be") from None
    return row


# What a .npy file holds instead of numbers, by NumPy's dtype kind.
_NOT_NUMBERS = {"b": "true/false values", "c": "complex numbers", "U": "text", "S": "text",
                "M": "dates", "m": "time spans", "V": "records"}


def _read_npy(data: bytes) -> Configurations:
    """A .npy array of shape (N, d) or (frames, N, d), d = 2 or 3, of plain numbers: its
    header is checked before any data is read, and nothing is ever unpickled."""
    if data.startswith(b"PK\x03\x04"):
        raise _Problem("the file is a .npz archive of arrays, not a single .npy array")
    stream = _io.BytesIO(data)
    if not data.startswith(b"\x93NUMPY"):
        raise _Problem("the file is not a .npy array")
    version = np.lib.format.read_magic(stream)
    read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                   (2, 0): np.lib.format.read_array_header_2_0}.get(version)
    if read_header is None:
        raise _Problem("the file is a .npy array of a version this program cannot read")
    shape, _, dtype = read_header(stream)
    _check_npy_header(shape, dtype, len(data) - stream.tell())
    array = np.load(_io.BytesIO(data), allow_pickle=False)
    if array.ndim == 2:
        array = array[None]
    return Configurations(array.astype(np.float64))


def _check_npy_header(shape: tuple, dtype: np.dtype, data_bytes: int) -> None:
    if dtype.hasobject:
        raise _Problem("the array holds Python objects, which are never unpickled here; "
                       "save it as an array of numbers")
    if dtype.kind not in "fiu":
        raise _Problem(f"the array holds {_NOT_NUMBERS.get(dtype.kind, 'no numbers')}, "
                       "not coordinates")
    if len(shape) == 0:
        raise _Problem("the array holds a single number, not coordinates")
    if len(shape) not in (2, 3) or shape[-1] not in (2, 3):
        raise _Problem(f"the array has shape {tuple(shape)}; it must be (N, d) or "
                       "(frames, N, d) with d = 2 or 3")
    if math.prod(shape) * dtype.itemsize > data_bytes:
        raise _Problem("the file is cut short: it holds fewer numbers than its header "
                       "announces")


def write_extxyz(target, coords, box: float | None, periodic: str = "",
                 info: dict | None = None):
    """Write frames (F, N, d) as extended XYZ; info maps keys to per-frame sequences. A free
    cluster (``box`` None) has no cell."""
    import ase
    import ase.io

    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim == 2:
        coords = coords[None]
    n_frames, n, dim = coords.shape
    cell = np.diag([box or 0.0] * dim + [0.0] * (3 - dim))
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
