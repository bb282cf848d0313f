"""The package: a wheel that carries the library, the shipped model and an ``ljvae`` command,
and declares dependencies that the pinned requirements satisfy."""

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Built from a copy: a build writes build/ and *.egg-info beside its sources.
    source = tmp_path_factory.mktemp("source")
    for name in ("ljvae_core", "ljvae_ui"):
        shutil.copytree(REPO / name, source / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(source)], check=True, capture_output=True)
    return next(out.glob("ljvae-*.whl"))


def _metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        return names, Parser().parsestr(archive.read(info).decode()), archive.read(entry).decode()


def test_the_wheel_holds_the_library_the_shipped_model_and_the_command(wheel):
    names, _, entry_points = _metadata(wheel)
    assert {"ljvae_core/cli.py", "ljvae_core/statepoints.py", "ljvae_ui/state.py"} <= set(names)
    assert {f"ljvae_core/data/demo-model/{f}" for f in ("model.keras", "meta.json",
                                                         "meta.npz")} <= set(names)
    # The LJ13 benchmark's reference clusters travel with the package.
    assert "ljvae_core/data/lj13/lj13_val_10000.npy" in names
    assert "ljvae = ljvae_core.cli:main" in entry_points


def test_the_declared_dependencies_are_met_by_the_pinned_requirements(wheel):
    _, metadata, _ = _metadata(wheel)
    declared = [Requirement(r) for r in metadata.get_all("Requires-Dist")]
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower()] = version
    core = [r for r in declared if r.marker is None]
    assert {r.name for r in core} >= {"numpy", "numba", "scipy", "scikit-learn", "ase", "keras"}
    for requirement in declared:
        assert requirement.name.lower() in pins, f"{requirement.name} is not pinned"
        assert requirement.specifier.contains(pins[requirement.name.lower()]), requirement


def test_the_installed_command_is_the_command_line(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, capture_output=True)
    script = target / "bin" / "ljvae"
    out = subprocess.run([sys.executable, str(script), "generate", "--help"],
                         capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert "--sweeps" in out.stdout and "--samples" in out.stdout
