"""`streamlit run app.py` on a free loopback port, and the headless Chromium that visits it,
for the browser tests and the crowd benchmark."""

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("LJVAE_CHROMIUM", "/usr/bin/chromium")
# Headless Chromium on a closed network, as root, with WebGL in software for 3Dmol.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--use-gl=angle", "--use-angle=swiftshader",
                 "--enable-unsafe-swiftshader", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
# A page whose script has finished its run.
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"


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
