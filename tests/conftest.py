"""Shared fixtures: paths to the published reference data and a throw-away cache folder."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _reference_dir() -> Path:
    for candidate in (REPO / "shared" / "reference", REPO.parent / "shared" / "reference"):
        if candidate.is_dir():
            return candidate
    pytest.skip("shared/reference is not beside the repository")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return _reference_dir()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache folder, also exported as LJVAE_CACHE for code that reads it."""
    root = tmp_path / "cache"
    monkeypatch.setenv("LJVAE_CACHE", str(root))
    return root
