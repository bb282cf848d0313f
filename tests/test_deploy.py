"""Deployment files: the Docker image's contract and its health check against a real server
started as the image starts it (hosted limits on)."""

import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO, free_port, streamlit_server

DOCKERFILE = (REPO / "Dockerfile").read_text()


def test_the_image_is_python_311_slim_and_runs_as_a_non_root_user():
    assert re.search(r"^FROM python:3\.11-slim\b", DOCKERFILE, re.M)
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "LJVAE_DEMO=1" in DOCKERFILE
    assert re.search(r"^HEALTHCHECK .*\n?.*scripts/healthcheck\.py", DOCKERFILE, re.M)


def test_the_image_copies_everything_the_app_imports():
    copied = set(re.findall(r"^COPY\s+(?:--\S+\s+)*(\S+)", DOCKERFILE, re.M))
    needed = {"requirements.txt", "app.py", "app_pages", "ljvae_core", "ljvae_ui", "static",
              ".streamlit/config.toml", "scripts/healthcheck.py"}
    assert needed <= copied
    local_packages = {p.name for p in REPO.iterdir() if (p / "__init__.py").exists()}
    assert local_packages <= copied


def _healthcheck(port) -> int:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "healthcheck.py")],
                          env={"LJVAE_PORT": str(port)}, timeout=30).returncode


def test_the_health_check_passes_on_a_hosted_server_and_fails_without_one(tmp_path):
    with streamlit_server(tmp_path / "cache", LJVAE_DEMO="1") as (_, port):
        assert _healthcheck(port) == 0
    assert _healthcheck(free_port()) == 1
    assert Path(REPO / ".dockerignore").read_text().count(".venv") == 1
