"""Train: choose dataset, representation and model settings; train in the background with live
loss curves and a stop button; the saved model joins the model list with its evaluation."""

import math

import streamlit as st

from ljvae_core.artifacts import list_models
from ljvae_core.hosted import LimitError, check_training
from ljvae_core.settings import (
    FORM_LAYOUT,
    REPRESENTATION_PARAMS,
    TrainingError,
    TrainSettings,
    representation_params,
    setting_options,
)
from ljvae_core.workflows import train_and_save
from ljvae_ui.charts import training_charts
from ljvae_ui.hosting import hosted_limits
from ljvae_ui.state import (
    SELECTED_MODEL,
    job_blocked,
    models_table,
    pick_dataset,
    queue_notice,
    redraw_when_finished,
    start_job,
    unmeasured_note,
)

JOB = "training_job"
LOG = "training_log"
REPRESENTATIONS = {
    "distances": "distance matrices",
    "coords": "sorted coordinates",
    "voxels": "voxel density grids",
}
# What each representation is good for, with its figures on the study system (30 particles,
# 3D, gamma in {0, 0.5, 1, 2}; held-out chains; docs/results.md has the commands).
DESCRIPTIONS = {
    "distances": "Pair distances and heights, put back into shapes in one frame → dense VAE "
                 "decoding coordinates. Its samples are the most physical (energy per particle "
                 "W1 0.025 from Monte Carlo, against 0.09 for the others), and it is the only "
                 "choice for free clusters; median RMSD 0.25σ (90th percentile 0.51σ), 1.1 s "
                 "per epoch.",
    "coords": "Coordinates, each particle on a site of the training set's mean "
              "configuration → dense VAE decoding coordinates. The fastest and closest "
              "reconstructions: median RMSD 0.23σ (90th percentile 0.49σ), 0.95 s per epoch.",
    "voxels": "Particle density on a grid, read back into particles by peak picking → dense "
              "VAE decoding coordinates. Blind to the particles' order from the start; median "
              "RMSD 0.39σ (90th percentile 0.66σ), 1.0 s per epoch.",
}

# Widget keys that differ from the setting's name.
KEYS = {"seed": "train_seed", "warmup_epochs": "warmup"}
PARAM_KEYS = {"heights": "distance_heights"}

st.title("Train")
st.caption("Variational autoencoders on Monte Carlo configurations; the validation set is made "
           "of whole held-out chains.")

summary = pick_dataset()
if summary is None:
    st.info("No dataset yet: make one on the Simulate page first.")
    st.page_link("app_pages/simulate.py", label="Simulate", icon=":material/casino:")
    st.stop()


def setting_input(name: str, current: TrainSettings, free: bool) -> TrainSettings:
    """The widget of one training setting (label, range, help and default from the settings
    themselves), disabled where ``current`` or the system (``free``: a free cluster) makes
    it irrelevant; ``current`` with its value."""
    if name == "representation_params":
        return current.with_value(name, representation_widgets(current, free), free)
    options = setting_options(name)
    default, key = options["default"], KEYS.get(name, name)
    common = {"key": key, "help": options["help"] or None,
              "disabled": not current.applies(name, free)}
    if isinstance(default, bool):
        value = st.checkbox(options["label"], default, **common)
    elif options["choices"] and name == "representation":
        value = st.selectbox(options["label"], options["choices"],
                             format_func=REPRESENTATIONS.__getitem__, **common)
    elif options["choices"]:
        value = st.radio(options["label"], options["choices"], horizontal=True,
                         index=options["choices"].index(default), **common)
    else:
        value = st.number_input(options["label"], options["low"], options["high"], default,
                                step=options["step"], format=_decimals(options["step"]),
                                **common)
    return current.with_value(name, value, free)


def _decimals(step) -> str | None:
    """A format with the decimals a float step needs (Streamlit shows two: 0.015 as 0.01)."""
    if not isinstance(step, float):
        return None
    return f"%.{max(2, -math.floor(math.log10(step)))}f"


def compare_representations():
    """One line per representation: what it is good for, and its measured figures."""
    with st.expander("Compare the representations"):
        st.markdown("\n".join(f"- **{REPRESENTATIONS[kind].capitalize()}**: {text}"
                               for kind, text in DESCRIPTIONS.items()))
        st.caption("Reconstructions of held-out chains of the study system (30 particles, 3D, "
                   "γ = 0, 0.5, 1, 2), default settings, 2 CPU cores, 2026-12-02; a random "
                   "other configuration of the same γ is 0.71σ away (docs: Results).")


def form_section(section: str, settings: TrainSettings, free: bool) -> TrainSettings:
    """One section of :data:`FORM_LAYOUT`, its columns side by side."""
    for column, names in zip(st.columns(len(FORM_LAYOUT[section])), FORM_LAYOUT[section],
                             strict=True):
        with column:
            for name in names:
                settings = setting_input(name, settings, free)
                if name == "representation":
                    st.caption(DESCRIPTIONS[settings.representation])
                if name == "epochs" and settings.automatic_epochs_note:
                    st.caption(settings.automatic_epochs_note)
    return settings


def settings_from_widgets(free: bool) -> tuple[TrainSettings, str | None]:
    """The settings a newcomer needs first, then the rest under "Advanced" (``free``: for a
    free cluster)."""
    settings = form_section("basic", TrainSettings(), free)
    compare_representations()
    name = st.text_input("Model name (optional)", key="model_name",
                         placeholder="dataset-representation-z<latent size>")
    with st.expander("Advanced settings (the defaults are the ones the documented results use)"):
        settings = form_section("advanced", settings, free)
    settings.validate()
    return settings, name.strip() or None


def representation_widgets(settings: TrainSettings, free: bool) -> dict:
    """The chosen representation's own parameters, each from its metadata (those a free
    cluster makes moot disabled for one)."""
    values = {}
    for name, spec in REPRESENTATION_PARAMS.get(settings.representation, {}).items():
        key, default = PARAM_KEYS.get(name, name), spec["default"]
        moot = free and spec.get("box_only", False)
        if isinstance(default, bool):
            shown = st.checkbox(spec["label"], default, key=key, help=spec["help"],
                                disabled=moot)
            # A disabled box keeps what was ticked before; what it stands for is the default.
            values[name] = default if moot else shown
        elif spec.get("choices") and isinstance(default, str):
            values[name] = st.radio(spec["label"], spec["choices"], horizontal=True,
                                    index=spec["choices"].index(default), key=key,
                                    help=spec["help"])
        elif spec.get("choices"):
            values[name] = st.select_slider(spec["label"], spec["choices"], default, key=key,
                                            help=spec["help"])
        else:
            values[name] = st.number_input(spec["label"], spec["low"], spec["high"], default,
                                           step=spec["step"], key=key, help=spec["help"])
    return representation_params(settings.representation, values)


@st.fragment(run_every=1.0)
def job_panel():
    job = st.session_state.get(JOB)
    log = st.session_state.get(LOG) or []
    if job is None or queue_notice(job, "leave_train_queue"):
        return
    if job.running:
        st.progress(job.fraction, text=f"{job.message} ({job.elapsed:.0f} s)")
        if st.button("Stop training (keep the model so far)", key="stop"):
            job.cancel()
    if log:
        for column, chart in zip(st.columns(2), training_charts(list(log)), strict=True):
            column.altair_chart(chart, width="stretch")
    if job.running:
        return
    if job.status == "done":
        st.session_state[SELECTED_MODEL] = job.result
    redraw_when_finished(JOB)
    if job.status == "done":
        st.success(f"Saved model **{job.result}** in {job.elapsed:.0f} s (evaluated on held-out "
                   "chains, below).")
        st.page_link("app_pages/reconstruct.py", label="Reconstruct and generate with it",
                     icon=":material/compare:")
    elif job.status == "cancelled":
        st.caption("You left the queue: training did not start.")
    else:
        st.error(f"Training failed: {job.error}")


try:
    settings, name = settings_from_widgets(free=summary["box"] is None)
except TrainingError as err:
    st.error(f"Please fix the settings: {err}.")
    settings = None
if settings is not None and summary["box"] is None:
    if settings.representation != "distances":
        st.error("Please fix the settings: a free cluster (no box) trains on distance "
                 "matrices, which see neither where it is nor how it is turned.")
        settings = None
    else:
        st.caption("A free cluster: its distance matrices carry no height channels and its "
                   "decoder no log-heights (there is no up); the hard core works in its "
                   "potential's σ.")

limits = hosted_limits()
if settings is not None and limits is not None:
    try:
        check_training(settings, summary["samples"], limits)
    except LimitError as err:
        st.error(f"Not allowed here: {err}.")
        settings = None
blocked = job_blocked(JOB)
if blocked and blocked != "this job is still running":
    st.caption(f"Training is paused: {blocked}.")
if st.button("Train", type="primary", disabled=settings is None or blocked is not None,
             key="train"):
    log = st.session_state[LOG] = []
    if start_job(JOB, train_and_save, summary["name"], settings, name, epoch_log=log,
                 label="train"):
        st.rerun()
job_panel()

st.subheader("Models")
models = list_models()
if models:
    table, columns = models_table(models)
    st.dataframe(table, hide_index=True, width="stretch", column_config=columns)
    if note := unmeasured_note(models):
        st.caption(note)
    with st.expander("Loss weights and relaxed validity of each model"):
        table, columns = models_table(models, expert=True)
        st.dataframe(table, hide_index=True, width="stretch", column_config=columns)
else:
    st.caption("No model yet.")
