"""Plain-data trees (dicts, lists, tuples, numbers, strings, NumPy arrays) as a JSON file and
an ``.npz`` of its arrays: a format any machine may read without trusting its author, since
neither ``json`` nor ``numpy.load(allow_pickle=False)`` runs code. Models shipped with ljvae
(the quick demo's) use it; the cache's own signed joblib files stay as they are.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

ARRAY, TUPLE = "__array__", "__tuple__"


class PortableFormatError(ValueError):
    """A portable file that is malformed, or a tree that the format cannot hold."""


def _encode(obj, arrays: dict):
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise PortableFormatError("arrays of Python objects cannot be stored portably")
        key = f"a{len(arrays)}"
        arrays[key] = obj
        return {ARRAY: key}
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise PortableFormatError("only dicts with string keys can be stored portably")
        return {k: _encode(v, arrays) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return {TUPLE: [_encode(v, arrays) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, arrays) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise PortableFormatError(f"a {type(obj).__name__} cannot be stored portably")


def _decode(obj, arrays):
    if isinstance(obj, dict):
        if set(obj) == {ARRAY}:
            return arrays[obj[ARRAY]]
        if set(obj) == {TUPLE}:
            return tuple(_decode(v, arrays) for v in obj[TUPLE])
        return {k: _decode(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, arrays) for v in obj]
    return obj


def write_tree(tree, stem: str | os.PathLike) -> None:
    """Write ``stem.json`` and ``stem.npz`` (compressed)."""
    arrays: dict = {}
    encoded = _encode(tree, arrays)
    stem = Path(stem)
    stem.with_suffix(".json").write_text(json.dumps(encoded))
    np.savez_compressed(stem.with_suffix(".npz"), **arrays)


def read_tree(stem: str | os.PathLike):
    """The tree written by :func:`write_tree` (no code from the files is ever run)."""
    stem = Path(stem)
    try:
        encoded = json.loads(stem.with_suffix(".json").read_text())
        with np.load(stem.with_suffix(".npz"), allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        return _decode(encoded, arrays)
    except (ValueError, KeyError, OSError) as err:
        raise PortableFormatError(f"{stem.name} is not a readable portable file ({err})") from err
