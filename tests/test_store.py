"""The cache store under stress: a writer killed mid-save, two writers at once, and corrupt
or foreign files (never unpickled)."""

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import joblib
import pytest

from ljvae_core.artifacts import (
    UntrustedFileError,
    dataset_name,
    list_datasets,
    list_models,
    load_dataset,
    save_dataset,
)
from ljvae_core.sampling import SimulationParams, simulate


@pytest.fixture(scope="module")
def tiny():
    return simulate(SimulationParams(n_particles=6, dim=2, gammas=(0.0, 1.0), n_samples=40,
                                     n_chains=2, seed=2))


def _writer(cache, script, *args):
    """A subprocess saving artifacts into `cache` (the same installation: same key)."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *args],
                            env={**os.environ, "LJVAE_CACHE": str(cache)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


SAVE_FOREVER = """
    import sys
    from ljvae_core.artifacts import save_dataset
    from ljvae_core.sampling import SimulationParams, simulate
    ds = simulate(SimulationParams(n_particles=6, dim=2, n_samples=4000, n_chains=1, seed=1))
    print("ready", flush=True)
    k = 0
    while True:
        save_dataset(ds, f"{sys.argv[1]}-{k % 3}")
        k += 1
"""


def test_a_writer_killed_mid_save_leaves_only_whole_artifacts(cache, tiny):
    save_dataset(tiny, "before", cache)
    for delay in (0.05, 0.2, 0.5):
        proc = _writer(cache, SAVE_FOREVER, "victim")
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for summary in list_datasets(cache):
            ds = load_dataset(summary["path"])  # every listed artifact loads whole
            assert len(ds) == summary["samples"]
    assert "before" in [d["name"] for d in list_datasets(cache)]


SAVE_MODEL = """
    import sys
    from ljvae_core.artifacts import load_dataset, models_dir
    from ljvae_core.model_store import save_model
    from ljvae_core.settings import TrainSettings
    from ljvae_core.training import train
    ds = load_dataset("tiny")
    trained = train(ds, TrainSettings(representation="coords", latent_dim=2, epochs=1))
    for _ in range(3):
        save_model(trained, models_dir() / "shared")
    print("saved", sys.argv[1])
"""


def test_two_processes_saving_at_once_both_succeed(cache, tiny):
    save_dataset(tiny, "tiny", cache)
    writers = [_writer(cache, SAVE_MODEL, str(k)) for k in range(2)]
    for w in writers:
        out, err = w.communicate(timeout=300)
        assert w.returncode == 0, err[-2000:]
    assert [m["name"] for m in list_models(cache)] == ["shared"]
    # Datasets too: many saves of one name from two processes.
    script = """
        import sys
        from ljvae_core.artifacts import load_dataset, save_dataset
        ds = load_dataset("tiny")
        for _ in range(20):
            save_dataset(ds, "busy")
    """
    writers = [_writer(cache, script) for _ in range(2)]
    for w in writers:
        _, err = w.communicate(timeout=120)
        assert w.returncode == 0, err[-2000:]
    assert len(load_dataset("busy", cache)) == len(tiny)
    assert not [p for p in (cache / "datasets").iterdir() if p.name.startswith(".")]


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def _forged_summary(cache, name, tiny):
    (cache / "datasets" / f"{name}.json").write_text(json.dumps(
        {"name": name, "samples": len(tiny), "particles": 6, "dim": 2}))


def test_foreign_files_in_the_cache_are_skipped_and_never_unpickled(cache, tiny, tmp_path,
                                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_dataset(tiny, "mine", cache)
    folder = cache / "datasets"
    # A pickle bomb with a plausible summary, a joblib file from elsewhere, and junk.
    (folder / "evil.joblib").write_bytes(pickle.dumps(_Payload()))
    _forged_summary(cache, "evil", tiny)
    joblib.dump(tiny.to_dict(), folder / "foreign.joblib")
    _forged_summary(cache, "foreign", tiny)
    (folder / "junk.joblib").write_bytes(os.urandom(4096))
    _forged_summary(cache, "junk", tiny)
    (folder / "list.json").write_text("[1, 2, 3]")
    with pytest.warns(UserWarning) as caught:
        names = [d["name"] for d in list_datasets(cache)]
    assert names == ["mine"]
    warned = " ".join(str(c.message) for c in caught)
    for name in ("evil", "foreign", "junk", "list"):
        assert name in warned
    for name in ("evil", "foreign", "junk"):
        with pytest.raises(UntrustedFileError):
            load_dataset(name, cache)
    assert not (tmp_path / "PWNED").exists()


def test_a_tampered_dataset_is_refused(cache, tiny):
    path = save_dataset(tiny, "mine", cache)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="mine"):
        assert list_datasets(cache) == []
    with pytest.raises(UntrustedFileError, match="changed"):
        load_dataset("mine", cache)


def test_foreign_models_are_skipped(cache):
    folder = cache / "models" / "stranger"
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"representation": "coords"}))
    (folder / "meta.joblib").write_bytes(pickle.dumps(_Payload()))
    (folder / "model.keras").write_bytes(b"PK")
    with pytest.warns(UserWarning, match="stranger"):
        assert list_models(cache) == []
    from ljvae_core.model_store import load_model

    with pytest.raises(UntrustedFileError):
        load_model(folder)


def test_a_default_name_with_dots_loads_by_name(cache):
    ds = simulate(SimulationParams(n_particles=6, dim=2, gammas=(0.0, 0.5), temperatures=(0.8,),
                                   n_samples=10, n_chains=1, seed=3))
    name = dataset_name(save_dataset(ds, root=cache))
    assert "." in name  # the default name spells out gamma = 0.5 and T = 0.8
    assert len(load_dataset(name, cache)) == len(ds)
    assert dataset_name(name) == name
    # A file of another kind that is not there is still a path, not a stored name.
    with pytest.raises(FileNotFoundError, match="no dataset at mine.npz"):
        load_dataset("mine.npz", cache)
