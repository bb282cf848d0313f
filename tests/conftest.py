"""Shared fixtures: the published reference data kept in tests/data, a throw-away cache
folder, and a running `streamlit run app.py` server on a loopback port."""

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(cache_root, log=None, watch=False, **env):
    """`streamlit run app.py` on a free loopback port; yields (url, port). Its output goes to
    the file ``log`` if given; ``watch`` keeps the repository's own file watcher on."""
    port = free_port()
    watcher = [] if watch else ["--server.fileWatcherType", "none"]
    out = open(log, "wb") if log is not None else subprocess.PIPE  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port),
         "--browser.gatherUsageStats", "false", *watcher],
        cwd=REPO, env={**os.environ, "LJVAE_CACHE": str(cache_root), **env},
        stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url, port
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if log is not None:
            out.close()


def _wait_healthy(url, proc, seconds=90.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            tail = proc.stdout.read().decode()[-2000:] if proc.stdout else "see its log"
            raise RuntimeError(f"streamlit exited: {tail}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("streamlit did not become healthy")
