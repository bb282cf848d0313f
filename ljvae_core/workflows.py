"""The app's workflows, each one background job: simulate and store a dataset, train a model on
a stored dataset, evaluate and store it."""

from __future__ import annotations

from .settings import TrainingError, TrainSettings


def simulate_and_save(params, name=None, root=None, progress=None, cancel=None, n_jobs=None,
                      scheduler=None):
    """Simulate (on a Dask cluster if ``scheduler`` is an address) and store in one go; returns
    the dataset's name."""
    from .artifacts import save_dataset
    from .sampling import simulate

    ds = simulate(params, progress=progress, cancel=cancel, n_jobs=n_jobs, scheduler=scheduler)
    if progress is not None:
        progress(1.0, "saving")
    return save_dataset(ds, name, root).stem


def train_and_save(dataset_name, settings: TrainSettings, name=None, root=None, progress=None,
                   cancel=None, epoch_log=None, n_generate: int = 200) -> str:
    """Train on a stored dataset, evaluate on its held-out chains, store the model in
    ``cache/models/``; returns the model's name. What a background job of the app runs.

    ``progress(fraction, message)`` follows the epochs (then the evaluation); every epoch's
    losses are appended to ``epoch_log`` (a list) for live charts; setting ``cancel`` stops
    training early and keeps the model trained so far.
    """
    from .artifacts import dataset_name as stored_name
    from .artifacts import load_dataset, models_dir, safe_name
    from .calibration import attach_after_training
    from .evaluation import evaluate
    from .model_store import save_model
    from .training import train

    dataset = load_dataset(dataset_name, root)
    report = progress or (lambda fraction, message="": None)

    def on_epoch(logs):
        if epoch_log is not None:
            epoch_log.append(logs)
        report(0.9 * logs["epoch"] / logs["epochs"],
               f"epoch {logs['epoch']}/{logs['epochs']}: loss {logs['loss']:.4g}, "
               f"validation {logs.get('val_loss', float('nan')):.4g}")

    trained = train(dataset, settings, on_epoch, cancel)
    data_name = stored_name(dataset_name)
    trained.meta["dataset_name"] = data_name
    base = safe_name(name or f"{data_name}-{settings.representation}"
                             f"-z{settings.latent_dim}")
    folder = models_dir(root)
    final, k = base, 2
    while name is None and (folder / final).exists():
        final, k = f"{base}-{k}", k + 1
    try:
        report(0.91, "fitting the anomaly threshold and the generation prior")
        attach_after_training(trained, dataset, lambda f: report(
            0.91 + 0.02 * f, "refining the generation prior with the joint physics loss"))
        report(0.93, "evaluating on held-out chains")
        trained.meta["metrics"] = evaluate(trained, dataset, n_reconstruct=500,
                                           n_generate=n_generate, seed=settings.seed)
    except Exception as err:
        # Minutes of training are not thrown away for a failure after them.
        save_model(trained, folder / final)
        raise EvaluationError(final, err) from err
    report(0.98, "saving")
    save_model(trained, folder / final)
    return final


class EvaluationError(TrainingError):
    """Training finished and the model was saved (as ``model_name``), but what follows it
    (the anomaly threshold, the generation prior or the evaluation) failed."""

    def __init__(self, model_name: str, cause: BaseException):
        self.model_name = model_name
        super().__init__(f"the model was trained and saved as {model_name}, but evaluating it "
                         f"failed ({str(cause) or type(cause).__name__})")
