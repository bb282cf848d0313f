"""Shared fixtures: the published reference data kept in tests/data, a throw-away cache
folder, and a running `streamlit run app.py` server on a loopback port."""

import os
from pathlib import Path

import pytest

from experiments.serving import free_port, streamlit_server  # noqa: F401 - for the tests

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def signing_key(tmp_path_factory):
    """The tests sign artifacts with a key of their own, not the user's (subprocesses and
    servers started by the tests inherit it)."""
    path = tmp_path_factory.mktemp("key") / "key"
    old = os.environ.get("LJVAE_KEY_FILE")
    os.environ["LJVAE_KEY_FILE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("LJVAE_KEY_FILE", None)
    else:
        os.environ["LJVAE_KEY_FILE"] = old


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """NIST's published sample configurations and energies, kept with the tests."""
    return REPO / "tests" / "data" / "nist"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache folder, also exported as LJVAE_CACHE for code that reads it."""
    root = tmp_path / "cache"
    monkeypatch.setenv("LJVAE_CACHE", str(root))
    return root
