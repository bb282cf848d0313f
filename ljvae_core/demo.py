"""The quick demo: the project's default model at work on fresh Monte Carlo data, in well under a
minute on two CPU cores (Home's "Run the quick demo" and ``python -m ljvae_core demo``).

1. simulate a fresh, seeded Monte Carlo dataset of the study system (30 particles in 3D,
   L = 5, T = 1) at gamma = 0, 0.5, 1 and 2;
2. install the model that ships with ljvae: the default distances VAE trained on the study
   dataset (16 000 configurations, 100 epochs; :func:`build_demo_model`, run by
   ``python -m ljvae_core demo --build``), stored in the portable format that loads without
   trusting its writer (:func:`ljvae_core.model_store.import_model`);
3. evaluate it on the fresh data, none of which it was trained on (reconstruction,
   generation, anomaly threshold);
4. encode the fresh data for the latent map (gamma silhouette, and the R^2 of a linear probe
   on chains it was not fitted on).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from .sampling import STUDY_PARAMS
from .settings import TrainSettings

DEMO_DATASET = "demo"
DEMO_MODEL = "demo-distances"
SHIPPED_MODEL = Path(__file__).resolve().parent / "data" / "demo-model"
# Fresh data for the demo: the same state points, another seed, so no configuration of it
# was seen in training. Two chains per state point keep it trainable on the Train page.
DEMO_PARAMS = replace(STUDY_PARAMS, n_samples=300, n_chains=2, seed=2026)
BUILD_SETTINGS = TrainSettings(epochs=100)
STEPS = ("simulating fresh Monte Carlo data", "loading the pre-trained model",
         "evaluating it on the fresh data", "encoding the latent map")
# Where each step starts and ends on the overall progress bar (by its usual share of time).
SPANS = ((0.0, 0.3), (0.3, 0.45), (0.45, 0.9), (0.9, 1.0))


def _step_reporter(progress, k: int):
    lo, hi = SPANS[k]
    title = f"Step {k + 1}/{len(STEPS)}: {STEPS[k]}"

    def report(fraction, message=""):
        if progress is not None:
            progress(lo + (hi - lo) * min(max(fraction, 0.0), 1.0),
                     f"{title} — {message}" if message else title)

    return report


def run_demo(root=None, progress=None, cancel=None, n_generate: int = 200) -> dict:
    """Run the demo, storing dataset ``demo`` and model ``demo-distances`` under ``root``'s
    cache (replacing earlier ones); returns their names, the key figures and the time taken."""
    from .artifacts import models_dir, save_dataset
    from .evaluation import evaluate
    from .model_store import import_model, save_model
    from .sampling import Cancelled, simulate

    started = time.perf_counter()
    dataset = simulate(DEMO_PARAMS, progress=_step_reporter(progress, 0), cancel=cancel)
    save_dataset(dataset, DEMO_DATASET, root)
    _step_reporter(progress, 1)(0.0, "TensorFlow and the weights")
    trained = import_model(SHIPPED_MODEL)
    if cancel is not None and cancel.is_set():
        raise Cancelled("the demo was cancelled")
    _step_reporter(progress, 2)(0.0, "reconstructing, generating and relaxing samples")
    trained.meta["metrics"] = evaluate(trained, dataset, n_reconstruct=500,
                                       n_generate=n_generate, seed=0)
    last = _step_reporter(progress, 3)
    last(0.0, "saving the model")
    save_model(trained, models_dir(root) / DEMO_MODEL)
    last(0.3, "encoding the dataset")
    latent = _latent_figures(trained, dataset)
    last(1.0, "done")
    return summary_of(trained, latent, time.perf_counter() - started)


def warm_up() -> float:
    """A tiny demo in memory, nothing saved: TensorFlow imported, the Monte Carlo kernels
    loaded, the shipped model read and evaluated once. A freshly started hosted server runs
    it in the background, so that its first visitors wait no longer than later ones (their
    demos would otherwise pay for all of it, several seconds each). Returns its seconds."""
    from .evaluation import evaluate
    from .model_store import import_model
    from .sampling import simulate

    started = time.perf_counter()
    dataset = simulate(replace(DEMO_PARAMS, n_samples=16))
    evaluate(import_model(SHIPPED_MODEL), dataset, n_reconstruct=16, n_generate=16, seed=0)
    return time.perf_counter() - started


def _latent_figures(trained, dataset) -> dict:
    from .latent import gamma_clustering, unseen_chains

    latent = trained.encode(dataset.coords, dataset.gamma, dataset.temperature)
    # The probe's R^2 is measured on chains neither it nor the model was fitted on.
    return gamma_clustering(latent, dataset.gamma, dataset.chain,
                            test=unseen_chains(trained, dataset))


def summary_of(trained, latent: dict, seconds: float) -> dict:
    """The demo's JSON-ready result: names, the model's figures on the fresh data, time."""
    metrics = trained.meta["metrics"]
    return {
        "dataset": DEMO_DATASET, "model": DEMO_MODEL,
        "trained_on": trained.meta.get("dataset_name"),
        "epochs_trained": trained.meta.get("epochs_run"),
        "held_out_samples": metrics["held_out_samples"],
        "reconstruction": metrics["reconstruction"],
        "generation": {k: metrics["generation"][k]
                       for k in ("valid_fraction", "valid_fraction_relaxed", "energy_w1_relaxed",
                                 "energy_w1_relaxed_vs_quenched_mc")},
        "latent": latent,
        "seconds": seconds,
    }


def build_demo_model(out=SHIPPED_MODEL, settings: TrainSettings = BUILD_SETTINGS,
                     progress=None) -> dict:
    """Simulate the study dataset, train the default model on it, evaluate it on its held-out
    chains and write it to ``out`` in the portable format (what ships as the demo's model);
    returns its evaluation. About ten minutes on two cores."""
    from .calibration import attach_after_training
    from .evaluation import evaluate
    from .model_store import export_model
    from .sampling import simulate
    from .training import train

    report = progress or (lambda fraction, message="": None)
    dataset = simulate(STUDY_PARAMS, progress=lambda f, m="": report(0.1 * f, m))
    trained = train(dataset, settings, lambda logs: report(
        0.1 + 0.8 * logs["epoch"] / logs["epochs"], f"epoch {logs['epoch']}/{logs['epochs']}"))
    trained.meta["dataset_name"] = "study"
    report(0.9, "fitting the anomaly threshold and the generation prior")
    attach_after_training(trained, dataset)
    report(0.95, "evaluating on held-out chains")
    trained.meta["metrics"] = evaluate(trained, dataset, n_reconstruct=1000, n_generate=500)
    export_model(trained, out)
    report(1.0, "done")
    return trained.meta["metrics"]
