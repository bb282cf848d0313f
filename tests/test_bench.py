"""The benchmark command prints its JSON contract with sane figures."""

import json
import subprocess
import sys


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
