"""The benchmark command prints its JSON contract with sane figures."""

import json
import subprocess
import sys

import pytest

from ljvae_core.bench import N30, REFERENCE_SOURCE, compile_reference, reference_moves_per_second


def test_quick_bench_prints_the_contract_keys():
    out = subprocess.run([sys.executable, "-m", "ljvae_core", "bench", "--quick"], check=True,
                         capture_output=True, text=True, timeout=300)
    result = json.loads(out.stdout)
    for system in ("n30", "n4000"):
        assert result["mc"][system]["moves_per_s"] > 0
        assert 0 < result["mc"][system]["acceptance"] < 1
    assert result["mc"]["n4000"]["cell_list"] is True
    assert result["sampling"]["samples"] == 400 and result["sampling"]["seconds"] > 0
    assert result["geometry"]["max_rmsd"] < 1e-8
    assert result["training"]["dense_epoch_seconds"] > 0


def test_the_shipped_reference_kernel_builds_and_runs_the_study_system(tmp_path):
    exe = compile_reference(REFERENCE_SOURCE, tmp_path)
    if exe is None:
        pytest.skip("no C++ compiler on this machine")
    assert reference_moves_per_second(exe, N30, 200_000) > 0
