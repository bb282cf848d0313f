"""Datasets from trajectories made elsewhere: every file ``ase.io`` reads (extended XYZ, XYZ,
LAMMPS dump and data files, ASE ``.traj``, ...) and ``.npy``/``.npz`` arrays.

:func:`import_dataset` turns frames into a :class:`~ljvae_core.sampling.Dataset` that every
page and command treats as a simulated one: energies recomputed from the coordinates in the
chosen potential, state labels (γ, T) from the command line or the frames' extended-XYZ info,
the box from the command line or the file's cell, or none (a free cluster, centre of mass
removed). Each file is a run of successive frames; its frames of one state point are cut into
:data:`BLOCKS_PER_RUN` contiguous blocks that stand for chains, so that training's validation
holds out whole stretches of the trajectory. Arrays are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import io as _io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .io import plural
from .sampling import Dataset
from .system import POTENTIALS, System

BLOCKS_PER_RUN = 8
# ase.io's format for a file name's suffix where its own guess needs help.
ASE_FORMATS = {".xyz": "extxyz", ".extxyz": "extxyz", ".lammpstrj": "lammps-dump-text",
               ".dump": "lammps-dump-text", ".data": "lammps-data", ".lmp": "lammps-data",
               ".traj": "traj"}
ARRAY_SUFFIXES = (".npy", ".npz")
# Extended-XYZ info keys read as state labels.
GAMMA_KEYS, TEMPERATURE_KEYS = ("gamma", "lambda"), ("temperature", "T")
# Coordinates this far outside a box with walls are refused, not clipped.
BOX_TOLERANCE = 1e-6


class ImportFailure(ValueError):
    """A file or option that cannot make a dataset: one sentence naming the file once."""


@dataclass(frozen=True)
class ImportOptions:
    """How to read the files: ``dim`` (None: the file's), ``box`` (None: the file's cell),
    ``free`` (no box: a free cluster), γ and T (None: the frames' info, else 0 and 1; one value
    or one per file) and the ``potential`` (:data:`~ljvae_core.system.POTENTIALS`)."""

    dim: int | None = None
    box: float | None = None
    free: bool = False
    gamma: tuple | None = None
    temperature: tuple | None = None
    potential: str = "lj-gravity"

    def errors(self, n_files: int):
        if self.dim not in (None, 2, 3):
            yield "the dimension must be 2 or 3"
        if self.box is not None and self.free:
            yield "give a box length or no box, not both"
        if self.box is not None and not (math.isfinite(self.box) and self.box > 0):
            yield "the box length must be a positive number"
        if self.potential not in POTENTIALS:
            yield f"the potential must be one of {', '.join(POTENTIALS)}"
        for name, values in (("gamma", self.gamma), ("temperature", self.temperature)):
            if values is not None and len(values) not in (1, n_files):
                yield f"give one --{name} or one per file ({n_files})"
        if self.temperature is not None and min(self.temperature) <= 0:
            yield "temperatures must be positive"


@dataclass
class Frames:
    """What one file holds: coords (F, N, d), its cubic box and periodic axes if it says,
    and per-frame γ and T where its frames carry them (else None)."""

    coords: np.ndarray
    box: float | None = None
    periodic: str = ""
    gamma: np.ndarray | None = None
    temperature: np.ndarray | None = None


def read_frames(source, name: str, dim: int | None = None) -> Frames:
    """The frames of a file path or a binary stream named ``name`` (its suffix picks the
    reader); anything wrong raises :class:`ImportFailure`."""
    suffix = Path(name).suffix.lower()
    try:
        data = source.read() if hasattr(source, "read") else Path(source).read_bytes()
    except OSError:
        raise ImportFailure(f"{name}: the file cannot be read.") from None
    if not data:
        raise ImportFailure(f"{name}: the file is empty.")
    try:
        if suffix in ARRAY_SUFFIXES:
            frames = _array_frames(data, suffix, dim)
        else:
            frames = _ase_frames(data, suffix, dim)
    except _Problem as problem:
        raise ImportFailure(f"{name}: {problem}.") from None
    if not np.isfinite(frames.coords).all():
        raise ImportFailure(f"{name}: some coordinates are not finite numbers.")
    return frames


class _Problem(Exception):
    """What is wrong with a file, as a clause to follow its name."""


def _array_frames(data: bytes, suffix: str, dim: int | None) -> Frames:
    try:
        loaded = np.load(_io.BytesIO(data), allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - an untrusted file makes NumPy raise anything
        if "allow_pickle" in str(err):
            raise _Problem("the array holds Python objects, which are never unpickled "
                           "here") from None
        raise _Problem(f"the file is not a readable {suffix} array") from None
    if suffix == ".npz":
        with loaded:
            keys = list(loaded.keys())
            key = "coords" if "coords" in keys else (keys[0] if len(keys) == 1 else None)
            if key is None:
                raise _Problem(f"the archive holds {', '.join(keys) or 'no array'}; name the "
                               "coordinates 'coords'")
            try:
                array = loaded[key]
            except Exception as err:  # noqa: BLE001 - as above, for each array inside
                raise _Problem("the archive holds Python objects, which are never unpickled "
                               "here" if "allow_pickle" in str(err)
                               else "the archive's array cannot be read") from None
    else:
        array = loaded
    return Frames(_as_frames(array, dim))


def _as_frames(array: np.ndarray, dim: int | None) -> np.ndarray:
    """(M, N, d), (N, d) or (M, N·d) numbers as (M, N, d) float64."""
    if array.dtype.kind not in "fiu":
        raise _Problem(f"the array holds {array.dtype} values, not coordinates")
    if array.ndim == 3 and array.shape[-1] in (2, 3):
        frames = array
    elif array.ndim == 2 and array.shape[-1] in (2, 3) and dim is None:
        frames = array[None]
    elif array.ndim == 2 and array.shape[-1] % (dim or 3) == 0:
        frames = array.reshape(len(array), -1, dim or 3)
    else:
        raise _Problem(f"the array has shape {array.shape}; it must be (M, N, d), (N, d) or "
                       "(M, N·d) with d = 2 or 3")
    if dim is not None and frames.shape[-1] != dim:
        raise _Problem(f"its configurations are {frames.shape[-1]}D, not {dim}D")
    if frames.shape[0] == 0 or frames.shape[1] < 2:
        raise _Problem("the array holds no configuration of two or more particles")
    return frames.astype(np.float64)


def _ase_frames(data: bytes, suffix: str, dim: int | None) -> Frames:
    import ase.io

    fmt = ASE_FORMATS.get(suffix)
    stream = _io.BytesIO(data) if fmt == "traj" else _io.StringIO(_text(data))
    try:
        frames = ase.io.read(stream, index=":", format=fmt or _guess(data))
    except Exception:  # noqa: BLE001 - an untrusted file makes a parser raise anything
        raise _Problem(f"ase.io cannot read it as {fmt or 'any format it knows'}") from None
    frames = list(frames) if isinstance(frames, list) else [frames]
    if not frames:
        raise _Problem("the file holds no frame")
    if len({len(f) for f in frames}) != 1:
        raise _Problem("its frames hold different numbers of particles")
    d = dim or (2 if frames[0].info.get("dim") == 2 else 3)
    coords = np.stack([f.positions[:, :d] for f in frames])
    box, periodic = _cell(frames[0], d)
    return Frames(coords, box, periodic, _label(frames, GAMMA_KEYS),
                  _label(frames, TEMPERATURE_KEYS))


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _Problem("the file is not UTF-8 text") from None


def _guess(data: bytes) -> str | None:
    """A format for text that has no telling suffix: LAMMPS dumps start with ITEM lines."""
    return "lammps-dump-text" if data.lstrip().startswith(b"ITEM:") else None


def _cell(atoms, dim: int) -> tuple[float | None, str]:
    """The cubic box of a frame's cell (None where it has none) and its periodic axes."""
    lengths = atoms.cell.lengths()[:dim]
    if not lengths.any():
        return None, ""
    if not np.allclose(lengths, lengths[0], rtol=1e-6) or not atoms.cell.orthorhombic:
        raise _Problem("its cell is not a cube; give the box length with --box")
    periodic = "".join(a for a, p in zip("xyz"[:dim], atoms.pbc[:dim], strict=True) if p)
    return float(lengths[0]), periodic


def _label(frames, keys) -> np.ndarray | None:
    """One state label per frame from the first of ``keys`` in their info, or None."""
    for key in keys:
        if all(key in f.info for f in frames):
            try:
                return np.array([float(f.info[key]) for f in frames])
            except (TypeError, ValueError):
                raise _Problem(f"its '{key}' info is not a number in every frame") from None
    return None


def import_dataset(files, options: ImportOptions = ImportOptions()) -> Dataset:
    """A dataset from ``files``: paths, or (name, binary stream) pairs (uploads)."""
    files = [f if isinstance(f, tuple) else (str(f), f) for f in files]
    problems = list(options.errors(len(files)))
    if not files:
        problems.append("give at least one file")
    if problems:
        raise ImportFailure("; ".join(problems).capitalize() + ".")
    runs = [read_frames(source, name, options.dim) for name, source in files]
    system = _system(runs, [name for name, _ in files], options)
    coords, gamma, temperature, run = _stack(runs, [name for name, _ in files], options, system)
    return _dataset(coords, gamma, temperature, run, system, [name for name, _ in files])


def _system(runs: list[Frames], names: list[str], options: ImportOptions) -> System:
    shapes = {r.coords.shape[1:] for r in runs}
    if len(shapes) != 1:
        raise ImportFailure("The files hold configurations of different sizes ("
                            + ", ".join(f"{n}: {r.coords.shape[1]} particles in "
                                        f"{r.coords.shape[2]}D" for n, r in zip(
                                            names, runs, strict=True)) + ").")
    free = options.free or (options.potential == "lj13" and options.box is None)
    box = None if free else options.box or runs[0].box
    if box is None and not free:
        raise ImportFailure(f"{names[0]}: the file gives no box; pass --box L, or --no-box for "
                            "a free cluster.")
    periodic = "" if free else runs[0].periodic
    return System(box=box, dim=runs[0].coords.shape[2], periodic=periodic,
                  potential=options.potential)


def _stack(runs, names, options, system):
    """All frames placed in the system, with their labels and run index."""
    coords, gamma, temperature, run = [], [], [], []
    for k, (frames, name) in enumerate(zip(runs, names, strict=True)):
        x = _placed(frames.coords, system, name)
        coords.append(x)
        gamma.append(_labels(frames.gamma, options.gamma, k, len(x), 0.0))
        temperature.append(_labels(frames.temperature, options.temperature, k, len(x), 1.0))
        run.append(np.full(len(x), k))
    gamma, temperature = np.concatenate(gamma), np.concatenate(temperature)
    if np.any(gamma != 0) and (system.free or not system.walls_up):
        raise ImportFailure("Gravity needs a floor: with γ other than 0 give a box whose "
                            "vertical axis has walls (--box L).")
    if (temperature <= 0).any():
        raise ImportFailure("Every frame's temperature must be positive.")
    return np.concatenate(coords), gamma, temperature, np.concatenate(run)


def _labels(from_file, from_options, k: int, n: int, default: float) -> np.ndarray:
    """The command line's value for run k where given (it wins), else the file's, else the
    default."""
    if from_options is not None:
        return np.full(n, float(from_options[k if len(from_options) > 1 else 0]))
    return from_file if from_file is not None else np.full(n, default)


def _placed(coords: np.ndarray, system: System, name: str) -> np.ndarray:
    """Free clusters centred on their centre of mass; periodic axes wrapped into the box;
    coordinates outside walls refused."""
    x = system.placed(coords)
    if system.free:
        return x
    axis = system.outside_walls(x, BOX_TOLERANCE)
    if axis is not None:
        raise ImportFailure(f"{name}: some particles lie outside the box [0, {system.box:g}] "
                            f"along {axis}; give the right --box.")
    return np.clip(x, 0.0, system.box)


def _dataset(coords, gamma, temperature, run, system: System, names: list[str]) -> Dataset:
    states = sorted({(float(t), float(g)) for t, g in zip(temperature, gamma, strict=True)})
    condition = np.array([states.index((float(t), float(g)))
                          for t, g in zip(temperature, gamma, strict=True)])
    chain = _blocks(run, condition)
    energy = system.energies(coords, gamma)
    conditions = [{"temperature": t, "gamma": g, "samples": int((condition == k).sum()),
                   "n_chains": len(np.unique(chain[condition == k])), "chains": []}
                  for k, (t, g) in enumerate(states)]
    params = {"n_particles": coords.shape[1], "dim": system.dim, "box": system.box,
              "periodic": system.periodic, "cutoff": None, "potential": system.potential,
              "temperatures": sorted({t for t, _ in states}),
              "gammas": sorted({g for _, g in states}), "n_samples": len(coords),
              "n_chains": max(c["n_chains"] for c in conditions), "seed": 0,
              "imported_from": [Path(n).name for n in names]}
    return Dataset(coords=coords, energy=energy, gamma=gamma, temperature=temperature,
                   chain=chain, condition=condition, params=params, conditions=conditions,
                   seed=0)


def _blocks(run: np.ndarray, condition: np.ndarray) -> np.ndarray:
    """A chain id per frame: each run's frames of one condition cut into BLOCKS_PER_RUN
    contiguous blocks (fewer where it has fewer frames)."""
    chain = np.empty(len(run), np.int64)
    next_id = 0
    for key in sorted(set(zip(run.tolist(), condition.tolist(), strict=True))):
        index = np.flatnonzero((run == key[0]) & (condition == key[1]))
        blocks = min(BLOCKS_PER_RUN, len(index))
        chain[index] = next_id + (np.arange(len(index)) * blocks) // len(index)
        next_id += blocks
    return chain


def describe(ds: Dataset) -> str:
    """One line on what was imported, for the command line and the page."""
    system = ds.system
    where = "a free cluster" if system.free else f"a box of side {system.box:g}"
    return (f"{plural(len(ds), 'configuration')} of {ds.n_particles} particles in "
            f"{ds.dim}D, {where}, potential {system.potential}, "
            f"{plural(len(ds.conditions), 'state point')}")
