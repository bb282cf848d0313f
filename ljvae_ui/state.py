"""Dataset and model choice shared across pages, cached loading, and background jobs."""

from __future__ import annotations

import time

import streamlit as st

from ljvae_core.artifacts import list_datasets, list_models, load_dataset
from ljvae_core.jobs import BackgroundJob, JobQueue
from ljvae_ui.hosting import hosted_limits

# A queued visitor whose page has been disconnected this long has left (s): a reload or a
# brief network drop reconnects sooner.
PRESENCE_GRACE_SECONDS = 10.0

SELECTED_DATASET = "dataset"
SELECTED_MODEL = "model"


@st.cache_resource(max_entries=4, show_spinner="Loading dataset…")
def cached_dataset(path: str, modified: float):
    """The dataset at path; `modified` makes a rewritten file load afresh."""
    return load_dataset(path)


def box_text(box) -> str:
    """A box length as a dataset list shows it; None is a free cluster."""
    return "free cluster" if box is None else f"L={box:g}"


def dataset_label(summary: dict) -> str:
    gammas = ", ".join(f"{g:g}" for g in summary["gammas"])
    field = "" if summary["box"] is None else f", γ∈{{{gammas}}}"  # a free cluster has none
    return (f"{summary['name']} — N={summary['particles']}, {summary['dim']}D, "
            f"{box_text(summary['box'])}{field}, {summary['samples']} samples")


def _remembered_choice(summaries: list[dict], label: str, remember: str, key: str, describe):
    """Selectbox over artifact summaries, opening on the one last made or chosen on any page
    (its name kept in session state under `remember`); returns the chosen summary or None."""
    if not summaries:
        return None
    names = [s["name"] for s in summaries]
    chosen = st.session_state.get(remember)
    name = st.selectbox(label, names, index=names.index(chosen) if chosen in names else 0,
                        key=key, format_func=lambda n: describe(summaries[names.index(n)]))
    st.session_state[remember] = name
    return summaries[names.index(name)]


def pick_dataset(key: str = "dataset_picker"):
    """Selectbox over stored datasets (the last one made or chosen first); returns its summary."""
    return _remembered_choice(list_datasets(), "Dataset", SELECTED_DATASET, key, dataset_label)


@st.cache_resource(max_entries=3, show_spinner="Loading model…")
def cached_model(path: str, modified: float):
    """The trained model at path (imports TensorFlow); `modified` reloads a rewritten one."""
    from ljvae_core.model_store import load_model

    return load_model(path)


def model_label(summary: dict) -> str:
    kind = "conditional " if summary.get("conditional") else ""
    return (f"{summary['name']} — {kind}{summary['representation']}, latent "
            f"{summary['latent_dim']}, N={summary['particles']}, {summary['dim']}D")


def pick_model(key: str = "model_picker"):
    """Selectbox over stored models (the last one trained or chosen first); its summary."""
    return _remembered_choice(list_models(), "Model", SELECTED_MODEL, key, model_label)


# Model list columns: (header, help shown on hover).
MODEL_COLUMNS = {
    "model": "The model's name in the cache.",
    "representation": "What the VAE sees of each configuration; conditional models are "
                      "given γ and T too.",
    "latent": "Dimension of the latent space.",
    "epochs": "Training epochs run (early stopping may end training sooner).",
    "median RMSD (σ)": "Median reconstruction error of held-out configurations, after "
                       "matching particles and aligning.",
    "valid generated": "Share of generated configurations with no pair closer than 0.8 σ, "
                       "before relaxation.",
    "U/N W1, quenched": "Wasserstein distance between the energy per particle of "
                        "quenched generated samples and of equally quenched Monte Carlo "
                        "configurations (0: identical). None for a free cluster, whose "
                        "samples are judged as they are and after thermal sweeps instead "
                        "(Reconstruct page).",
    "trained on": "The dataset the model was trained on.",
}
EXPERT_COLUMNS = {
    "model": "The model's name in the cache.",
    "valid after quench": "Share of generated configurations with no pair closer than 0.8 σ "
                          "after a short zero-temperature quench.",
    "β": "Weight of the KL term.",
    "physics λ": "Weight of the physics loss during training.",
    "state head W": "Weight of the linear head reading (γ, T) off the latent.",
    "prior physics W": "Weight of the physics penalty in the generation prior's fit.",
    "height noise (σ)": "Width of the noise on generated heights (0: none).",
}


def models_table(models: list[dict], expert: bool = False):
    """The model list as a table that fits a page (name, representation, held-out figures),
    or with ``expert`` the loss weights each was trained with; and the column configuration
    that formats and explains it."""
    import pandas as pd

    rows = [_expert_row(m) if expert else _model_row(m) for m in models]
    table = pd.DataFrame(rows)
    helps = EXPERT_COLUMNS if expert else MODEL_COLUMNS
    formats = {"median RMSD (σ)": "%.3f", "valid generated": "percent",
               "valid after quench": "percent", "U/N W1, quenched": "%.3f"}
    config = {c: st.column_config.NumberColumn(c, help=h, format=formats[c]) if c in formats
              else st.column_config.Column(c, help=h) for c, h in helps.items()}
    # Sized to their content, the columns left model names a few letters short; long
    # dataset names (the default ones spell out every γ and T) pushed the figures out of sight.
    # Pinned, the name stays in view where a narrow window scrolls the figures beside it.
    config["model"] = st.column_config.Column("model", help=helps.get("model"), width=140,
                                              pinned=True)
    if "representation" in helps:  # wide enough for "distances, conditional"
        config["representation"] = st.column_config.Column(
            "representation", help=helps["representation"], width=150)
    if not expert:
        config["trained on"] = st.column_config.Column("trained on", width=72,
                                                       help=helps["trained on"])
    return table, config


def unmeasured_note(models: list[dict]) -> str | None:
    """A sentence for the models table when some of its models carry no figures (trained with
    ``python -m ljvae_core train``, which leaves the evaluation to ``evaluate``, or whose
    evaluation after training failed)."""
    names = [m["name"] for m in models
             if not (m.get("metrics") or {}).get("reconstruction")]
    if not names:
        return None
    shown = ", ".join(f"`{n}`" for n in names[:3]) + (" and others" if len(names) > 3 else "")
    return (f"No figures (None) for {shown}: not evaluated (the command line's `train` "
            "leaves it to `python -m ljvae_core evaluate MODEL DATASET`, which prints them, "
            "and an evaluation that failed after training leaves none).")


def _model_row(m: dict) -> dict:
    metrics = m.get("metrics") or {}
    rec, gen = metrics.get("reconstruction", {}), metrics.get("generation", {})
    kind = REPRESENTATION_NAMES.get(m["representation"], m["representation"])
    return {"model": m["name"],
            "representation": f"{kind}, conditional" if m["conditional"] else kind,
            "latent": m["latent_dim"], "epochs": m["epochs_run"],
            "median RMSD (σ)": rec.get("rmsd_median"),
            "valid generated": gen.get("valid_fraction"),
            # A quench lowers Monte Carlo's energies too: the fair comparison.
            "U/N W1, quenched": gen.get("energy_w1_relaxed_vs_quenched_mc"),
            "trained on": m.get("dataset")}


def _expert_row(m: dict) -> dict:
    gen = (m.get("metrics") or {}).get("generation", {})
    return {"model": m["name"], "valid after quench": gen.get("valid_fraction_relaxed"),
            "β": m["beta"], "physics λ": m["physics_weight"],
            "state head W": m.get("state_weight", 0.0),
            "prior physics W": m.get("prior_physics_weight", 0.0),
            "height noise (σ)": m.get("height_noise", 0.0)}


REPRESENTATION_NAMES = {"distances": "distances", "coords": "sorted coordinates",
                        "voxels": "voxel grid"}


def datasets_table(datasets: list[dict]):
    """The dataset list with human headers."""
    import pandas as pd

    def numbers(values):
        return ", ".join(f"{x:g}" for x in values)

    return pd.DataFrame([{
        "dataset": d["name"], "particles N": d["particles"], "dimension": f"{d['dim']}D",
        "box": box_text(d["box"]), "γ": numbers(d["gammas"]), "T": numbers(d["temperatures"]),
        "configurations": d["samples"], "chains per state point": d["chains"]}
        for d in datasets])


def pick_compatible_dataset(model_summary: dict, label: str, key: str):
    """Selectbox over the stored datasets with the model's N, dimension and box (its training
    dataset first); returns (dataset summary, loaded dataset), or stops the page with a
    message when there is none."""
    datasets = {d["name"]: d for d in list_datasets()}
    compatible = [n for n, d in datasets.items()
                  if d["particles"] == model_summary["particles"]
                  and d["dim"] == model_summary["dim"] and d["box"] == model_summary["box"]]
    if not compatible:
        st.warning("No stored dataset has this model's particle number, dimension and box.")
        st.stop()
    own = model_summary.get("dataset")
    name = st.selectbox(label, compatible, key=key,
                        index=compatible.index(own) if own in compatible else 0)
    chosen = datasets[name]
    return chosen, cached_dataset(chosen["path"], chosen["modified"])


def _running_jobs() -> dict:
    return {k: v for k, v in st.session_state.items()
            if isinstance(v, BackgroundJob) and v.active}


@st.cache_resource
def server_queue(slots: int) -> JobQueue:
    """The one queue every visitor's heavy jobs pass through on a hosted server."""
    return JobQueue(slots)


class _Presence:
    """Whether this visitor's page is still connected, callable from any thread (Streamlit's
    runtime answers that thread-safely), with :data:`PRESENCE_GRACE_SECONDS` of grace."""

    def __init__(self, runtime, session_id: str):
        self.runtime, self.session_id = runtime, session_id
        self.seen = time.time()

    def __call__(self) -> bool:
        if self.runtime.is_active_session(self.session_id):
            self.seen = time.time()
        return time.time() - self.seen < PRESENCE_GRACE_SECONDS


def _presence() -> _Presence | None:
    from streamlit import runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is None or not runtime.exists():
        return None
    return _Presence(runtime.get_instance(), ctx.session_id)


def job_blocked(key: str) -> str | None:
    """Why a job stored under ``key`` cannot start now, or None. The hosted demo runs one
    heavy job per visitor at a time."""
    running = _running_jobs()
    if key in running:
        return "this job is still running"
    if running and hosted_limits() is not None:
        return "the hosted demo runs one job at a time: wait for the running one to finish"
    return None


def start_job(key: str, target, *args, label: str, **kwargs) -> bool:
    """Start ``target`` as a background job under ``key``, unless :func:`job_blocked` says
    no (checked again here, on the server, whatever the buttons showed)."""
    reason = job_blocked(key)
    if reason:
        st.error(f"Not started: {reason}.")
        return False
    limits = hosted_limits()
    queue = None if limits is None else server_queue(limits.job_slots)
    st.session_state[key] = BackgroundJob(target, *args, label=label, queue=queue,
                                          alive=None if queue is None else _presence(),
                                          **kwargs)
    return True


def redraw_when_finished(key: str) -> None:
    """Rerun the whole page once, the first time a fragment sees the job under ``key`` ended:
    what was drawn outside the fragment while it ran (its start button, disabled; the lists
    of datasets and models) is drawn again for its end."""
    job = st.session_state.get(key)
    if job is None or job.active:
        return
    seen = f"{key}_seen_finished"
    if st.session_state.get(seen) is not job:
        st.session_state[seen] = job
        st.rerun(scope="app")


def queue_notice(job, leave_key: str) -> bool:
    """While ``job`` waits for the server: its place in the queue, the expected wait and a
    button to leave the queue; returns whether it is waiting."""
    if not job.queued:
        return False
    place, wait = job.place, job.expected_wait
    ahead = "next in line" if place == 1 else f"number {place} in line"
    guess = (" (no estimate of the wait yet)" if wait is None
             else f", starting in about {_duration(wait)}")
    st.info(f"The server is busy with other visitors' work: yours is {ahead}{guess}. "
            "It starts by itself; you can look around meanwhile.", icon=":material/schedule:")
    if st.button("Leave the queue", key=leave_key):
        job.cancel()
    return True


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(5, 5 * round(seconds / 5)):.0f} s"
    return f"{seconds / 60:.0f} min"


def job_progress(job, cancel_key: str | None = None) -> bool:
    """While ``job`` waits or runs: its place in the queue, or its progress bar (share,
    message, seconds so far) and, with a ``cancel_key``, a Cancel button; returns whether it
    has not ended."""
    if queue_notice(job, f"leave_{cancel_key or job.label}"):
        return True
    if not job.running:
        return False
    st.progress(job.fraction, text=f"{job.fraction:.0%} — {job.message} "
                                   f"({job.elapsed:.0f} s)")
    if cancel_key is not None and st.button("Cancel", key=cancel_key):
        job.cancel()
    return True
