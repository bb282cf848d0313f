"""The ``cache/`` store: datasets and models saved atomically and listed cheaply.

Layout::

    cache/datasets/<name>.joblib   the dataset as a plain dict (joblib)
    cache/datasets/<name>.json     a small summary, so listing never unpickles anything
    cache/models/<name>/           model.keras + meta.joblib + summary.json

Every write goes to a temporary file in the same folder, then ``os.replace``: a crash never
leaves a half-written artifact under its final name.

Joblib files are *signed*: ljvae writes a header with an HMAC-SHA256 of the payload, keyed by a
random secret of this user's installation ($LJVAE_KEY_FILE, else ~/.config/ljvae/key; created
on first use, readable by its owner only). :func:`load_signed` checks it before unpickling
anything, so a foreign or tampered file put in ``cache/`` (or passed on the command line) is
refused, never unpickled.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import re
import secrets
import shutil
import tempfile
import warnings
from pathlib import Path

import joblib

from .sampling import Dataset

DATASET_SUFFIX = ".joblib"
SUMMARY_SUFFIX = ".json"


def base_cache_dir() -> Path:
    """$LJVAE_CACHE, else ./cache: the folder of the whole installation."""
    return Path(os.environ.get("LJVAE_CACHE", "cache"))


def cache_dir(root: str | os.PathLike | None = None) -> Path:
    """The cache folder: the argument, else the current context's (a hosted visitor's own,
    see :mod:`ljvae_core.hosted`), else :func:`base_cache_dir`."""
    from .hosted import current_cache_root

    return Path(root or current_cache_root() or base_cache_dir())


def datasets_dir(root=None) -> Path:
    return cache_dir(root) / "datasets"


def models_dir(root=None) -> Path:
    return cache_dir(root) / "models"


MODEL_SUMMARY = "summary.json"
# A model folder's Keras file and its signed meta (ljvae_core.model_store writes them).
MODEL_FILE = "model.keras"
META_FILE = "meta.joblib"
SIGNATURE_MAGIC = b"LJVAE-SIGNED-1\n"


class UntrustedFileError(ValueError):
    """A file that ljvae did not write (or that was changed since): never unpickled."""


def key_file() -> Path:
    if os.environ.get("LJVAE_KEY_FILE"):
        return Path(os.environ["LJVAE_KEY_FILE"])
    config = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config) / "ljvae" / "key"


def _signing_key() -> bytes:
    path = key_file()
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def dump_signed(obj, path) -> None:
    """joblib.dump(obj) behind a signature header (see the module docstring)."""
    payload = io.BytesIO()
    joblib.dump(obj, payload)
    data = payload.getvalue()
    digest = hmac.new(_signing_key(), data, hashlib.sha256).hexdigest().encode()
    with open(path, "wb") as fh:
        fh.write(SIGNATURE_MAGIC + digest + b"\n" + data)


_trusted_versions: dict[tuple, bool] = {}


def is_trusted(path) -> bool:
    """Whether ``path`` carries a valid ljvae signature (checked once per file version)."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return False
    version = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if version not in _trusted_versions:
        try:
            _verified_payload(path)
            _trusted_versions[version] = True
        except (OSError, UntrustedFileError):
            _trusted_versions[version] = False
    return _trusted_versions[version]


def _verified_payload(path: Path) -> bytes:
    with open(path, "rb") as fh:
        head = fh.read(len(SIGNATURE_MAGIC) + 65)
        data = fh.read()
    digest = head[len(SIGNATURE_MAGIC):-1]
    if not head.startswith(SIGNATURE_MAGIC) or len(digest) != 64:
        raise UntrustedFileError(f"{path.name} was not written by ljvae; it is not loaded")
    expected = hmac.new(_signing_key(), data, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(digest, expected):
        raise UntrustedFileError(f"{path.name} was written by another ljvae installation or "
                                 "changed since; it is not loaded")
    return data


def load_signed(path):
    """Load a file written by :func:`dump_signed` after checking its signature."""
    return joblib.load(io.BytesIO(_verified_payload(Path(path))))


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call write(tmp_path) on a temporary sibling of path, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_folder(directory, write) -> Path:
    """``write(tmp)`` fills a temporary sibling folder, which then replaces ``directory``; a
    failure leaves nothing half-written under its name."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        write(tmp)
        _swap_into_place(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def _swap_into_place(tmp: Path, directory: Path, attempts: int = 20) -> None:
    """Rename the finished folder ``tmp`` to ``directory``, moving an existing one aside
    first. Two processes saving the same name both succeed; the last one stays."""
    for _ in range(attempts):
        if directory.exists():
            aside = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old.", dir=directory.parent))
            try:
                os.replace(directory, aside / "model")
            except FileNotFoundError:  # another writer moved it first
                pass
            finally:
                shutil.rmtree(aside, ignore_errors=True)
        try:
            os.replace(tmp, directory)
            return
        except OSError:  # another writer put its folder there in between: go again
            continue
    raise OSError(f"could not save {directory.name}: other processes keep replacing it")


def safe_name(name: str) -> str:
    """A file-system friendly artifact name (letters, digits, '-', '_', '.')."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip()).strip("._")
    if not cleaned:
        raise ValueError(f"{name!r} is not a usable name")
    return cleaned[:120]


def default_dataset_name(params: dict) -> str:
    gammas = "-".join(f"{g:g}" for g in params["gammas"])
    temps = "-".join(f"{t:g}" for t in params["temperatures"])
    box = "free" if params["box"] is None else f"L{params['box']:g}"
    return safe_name(
        f"N{params['n_particles']}_{params['dim']}d_{box}_T{temps}_g{gammas}"
        f"_M{params['n_samples']}_s{params['seed']}"
    )


def dataset_summary(ds: Dataset, name: str) -> dict:
    p = ds.params
    return {
        "name": name,
        "samples": len(ds),
        "particles": ds.n_particles,
        "dim": ds.dim,
        "box": p["box"],
        "temperatures": list(p["temperatures"]),
        "gammas": list(p["gammas"]),
        "chains": p["n_chains"],
        "periodic": p["periodic"],
        "cutoff": p["cutoff"],
        "potential": ds.system.potential,
        "imported": ds.imported,
        "seed": ds.seed,
        "version": ds.version,
    }


def save_dataset(ds: Dataset, name: str | None = None, root=None) -> Path:
    """Store ds under cache/datasets/<name>.joblib (atomically); returns the path."""
    name = safe_name(name) if name else default_dataset_name(ds.params)
    folder = datasets_dir(root)
    path = atomic_write(folder / f"{name}{DATASET_SUFFIX}", lambda t: dump_signed(ds.to_dict(), t))
    summary = json.dumps(dataset_summary(ds, name), indent=1)
    atomic_write(folder / f"{name}{SUMMARY_SUFFIX}", lambda t: Path(t).write_text(summary))
    return path


def write_dataset_file(ds: Dataset, path: str | os.PathLike) -> Path:
    """Store ds at an explicit path (the CLI's --out), atomically."""
    return atomic_write(path, lambda t: dump_signed(ds.to_dict(), t))


def list_datasets(root=None) -> list[dict]:
    """Summaries of the stored datasets, newest first; unreadable entries are skipped."""
    folder = datasets_dir(root)
    if not folder.is_dir():
        return []
    found = []
    for summary_path in folder.glob(f"*{SUMMARY_SUFFIX}"):
        data_path = summary_path.with_suffix(DATASET_SUFFIX)
        try:
            summary = json.loads(summary_path.read_text())
            summary["modified"] = data_path.stat().st_mtime
            if not isinstance(summary, dict):
                raise ValueError("not a dataset summary")
        except (OSError, ValueError) as err:
            warnings.warn(f"skipping {summary_path.name}: {err}", stacklevel=2)
            continue
        if not is_trusted(data_path):
            warnings.warn(f"skipping {data_path.name}: not written by this ljvae installation",
                          stacklevel=2)
            continue
        summary["path"] = str(data_path)
        found.append(summary)
    return sorted(found, key=lambda s: s["modified"], reverse=True)


def dataset_name(name_or_path: str | os.PathLike) -> str:
    """A dataset's name in the store from its name or its file's path. Not ``Path.stem``:
    default names hold dots (``..._g0-0.5-1-2_...``), which a stem would cut."""
    return Path(str(name_or_path)).name.removesuffix(DATASET_SUFFIX)


def load_dataset(name_or_path: str | os.PathLike, root=None) -> Dataset:
    """Load a dataset from a file that ljvae wrote, or by its name in the store."""
    path = Path(name_or_path)
    if not path.is_file() and len(path.parts) == 1 and path.suffix != DATASET_SUFFIX:
        stored = datasets_dir(root) / f"{safe_name(str(name_or_path))}{DATASET_SUFFIX}"
        # A name's dots are no file suffix: "..._T0.8-1.5_..." is a name if it is stored.
        if stored.is_file() or not path.suffix:
            path = stored
    if not path.is_file():
        raise FileNotFoundError(f"no dataset at {path}")
    data = load_signed(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold an ljvae dataset")
    return Dataset.from_dict(data)


def list_models(root=None) -> list[dict]:
    """Summaries of the stored models (their summary.json), newest first; directories
    without a readable summary are skipped with a warning."""
    folder = models_dir(root)
    if not folder.is_dir():
        return []
    found = []
    for entry in folder.iterdir():
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        try:
            summary = json.loads((entry / MODEL_SUMMARY).read_text())
            summary["modified"] = (entry / MODEL_SUMMARY).stat().st_mtime
            if not isinstance(summary, dict):
                raise ValueError("not a model summary")
        except (OSError, ValueError) as err:
            warnings.warn(f"skipping model {entry.name}: {err}", stacklevel=2)
            continue
        if not is_trusted(entry / META_FILE):
            warnings.warn(f"skipping model {entry.name}: not written by this ljvae installation",
                          stacklevel=2)
            continue
        summary["name"], summary["path"] = entry.name, str(entry)
        found.append(summary)
    return sorted(found, key=lambda s: s["modified"], reverse=True)
