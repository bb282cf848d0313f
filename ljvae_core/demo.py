"""The quick demo: the whole workflow on a small version of the original study's system, in
about a minute on two CPU cores (Home's "Run the quick demo" and ``python -m ljvae_core demo``).

1. simulate 30 particles in 3D (L = 5, T = 1) at gamma = 0, 1 and 2;
2. train a small distances VAE on them;
3. evaluate it on held-out chains (reconstruction, generation, anomaly threshold);
4. encode the dataset for the latent map (gamma silhouette, and the R^2 of a linear probe
   on chains it was not fitted on).
"""

from __future__ import annotations

import time

from .sampling import SimulationParams
from .training import TrainSettings

DEMO_DATASET = "demo"
DEMO_MODEL = "demo-distances"
DEMO_PARAMS = SimulationParams(n_particles=30, dim=3, box=5.0, gammas=(0.0, 1.0, 2.0),
                               n_samples=400, n_chains=3, seed=0)
DEMO_SETTINGS = TrainSettings(representation="distances", latent_dim=16, epochs=20,
                              batch_size=32, patience=5)
STEPS = ("simulating", "training", "evaluating", "encoding the latent map")
# Where each step starts and ends on the overall progress bar (by its usual share of time).
SPANS = ((0.0, 0.3), (0.3, 0.75), (0.75, 0.9), (0.9, 1.0))


def _step_reporter(progress, k: int):
    lo, hi = SPANS[k]
    title = f"Step {k + 1}/{len(STEPS)}: {STEPS[k]}"

    def report(fraction, message=""):
        if progress is not None:
            progress(lo + (hi - lo) * min(max(fraction, 0.0), 1.0),
                     f"{title} — {message}" if message else title)

    return report


def run_demo(root=None, progress=None, cancel=None, n_generate: int = 100) -> dict:
    """Run the demo, storing dataset ``demo`` and model ``demo-distances`` under ``root``'s
    cache (replacing earlier ones); returns their names, the key figures and the time taken."""
    from .artifacts import load_dataset, models_dir, save_dataset
    from .latent import encode, gamma_clustering, unseen_chains
    from .sampling import Cancelled, simulate
    from .training import load_model, train_and_save

    started = time.perf_counter()
    dataset = simulate(DEMO_PARAMS, progress=_step_reporter(progress, 0), cancel=cancel)
    save_dataset(dataset, DEMO_DATASET, root)
    train_progress = _step_reporter(progress, 1)
    eval_progress = _step_reporter(progress, 2)

    def split_progress(fraction, message=""):
        # train_and_save spends its first 90 % training, the rest evaluating.
        if fraction < 0.9:
            train_progress(fraction / 0.9, message)
        else:
            eval_progress((fraction - 0.9) / 0.1, message)

    model_name = train_and_save(DEMO_DATASET, DEMO_SETTINGS, DEMO_MODEL, root, split_progress,
                                cancel, n_generate=n_generate)
    if cancel is not None and cancel.is_set():
        raise Cancelled("the demo was cancelled")
    report = _step_reporter(progress, 3)
    report(0.0, "encoding the dataset")
    trained = load_model(models_dir(root) / model_name)
    dataset = load_dataset(DEMO_DATASET, root)
    latent = encode(trained, dataset.coords, dataset.gamma, dataset.temperature)
    # The probe's R^2 is measured on chains neither it nor the model was fitted on.
    clustering = gamma_clustering(latent, dataset.gamma, dataset.chain,
                                  test=unseen_chains(trained, dataset))
    report(1.0, "done")
    metrics = trained.meta["metrics"]
    return {
        "dataset": DEMO_DATASET, "model": model_name,
        "reconstruction": metrics["reconstruction"],
        "generation": {k: metrics["generation"][k]
                       for k in ("valid_fraction", "valid_fraction_relaxed", "energy_w1_relaxed")},
        "latent": clustering,
        "seconds": time.perf_counter() - started,
    }
