"""Simulate: choose the system, run Monte Carlo chains in the background, save the dataset."""

import streamlit as st

from ljvae_core.hosted import LimitError, check_simulation
from ljvae_core.sampling import FORM_RANGES, ParameterError, SimulationParams, params_from_form
from ljvae_core.workflows import simulate_and_save
from ljvae_ui.hosting import hosted_limits
from ljvae_ui.state import (
    SELECTED_DATASET,
    job_blocked,
    job_progress,
    redraw_when_finished,
    start_job,
)

JOB = "simulation_job"
WIDGET_KEYS = {"n_samples": "samples", "n_chains": "chains"}
DEFAULTS = SimulationParams()


def listed(values) -> str:
    return ", ".join(f"{v:g}" for v in values)

st.title("Simulate")
st.caption("Metropolis Monte Carlo of Lennard-Jones particles in a box under gravity.")


def params_from_widgets() -> tuple[SimulationParams, str | None, str | None]:
    def number(label, name, default=None, **kwargs):
        low, high = FORM_RANGES[name]
        value = getattr(DEFAULTS, name) if default is None else default
        return st.number_input(label, low, high, value, key=WIDGET_KEYS.get(name, name),
                               **kwargs)

    left, mid, right = st.columns(3)
    with left:
        n = number("Particles N", "n_particles")
        dim = st.radio("Dimension", (3, 2), horizontal=True, key="dim",
                       format_func=lambda d: f"{d}D")
        box = number("Box length L (σ)", "box")
        st.caption(f"Density N/L^d = {n / box ** dim:.3g}")
    with mid:
        temps = st.text_input("Temperatures T", listed(DEFAULTS.temperatures), key="temperatures",
                              help="One or more, separated by commas")
        gammas = st.text_input("Gravity couplings γ", listed(DEFAULTS.gammas), key="gammas",
                               help="One or more, separated by commas")
        samples = number("Samples per (T, γ)", "n_samples", help="Configurations kept "
                         "per state point, split evenly over its chains.")
        chains = number("Independent chains", "n_chains")
    with right:
        seed = number("Seed", "seed")
        periodic = st.multiselect("Periodic axes (others reflect)", list("xy"[: dim - 1]),
                                  key="periodic",
                                  help="The up axis always reflects: gravity needs a floor.")
        use_cutoff = st.checkbox("Truncate the potential", key="use_cutoff")
        cutoff = number("Cut-off rc (σ)", "cutoff", 3.0, disabled=not use_cutoff)
        name = st.text_input("Dataset name (optional)", key="name")
    with st.expander("Scale-out"):
        scheduler = st.text_input(
            "Dask scheduler (optional)", key="scheduler", placeholder="tcp://host:8786",
            help="Run the chains on this Dask cluster instead of this machine's cores. "
                 "The same seed gives the same dataset either way.")
    params = params_from_form({
        "n_particles": n, "dim": dim, "box": box, "temperatures": temps, "gammas": gammas,
        "n_samples": samples, "n_chains": chains, "seed": seed, "periodic": periodic,
        "cutoff": cutoff if use_cutoff else None})
    return params, name.strip() or None, scheduler.strip() or None


@st.fragment(run_every=1.0)
def job_panel():
    job = st.session_state.get(JOB)
    if job is None:
        return
    if job_progress(job, "cancel"):
        return
    redraw_when_finished(JOB)
    if job.status == "done":
        st.session_state[SELECTED_DATASET] = job.result
        st.success(f"Saved dataset **{job.result}** in {job.elapsed:.1f} s.")
        st.page_link("app_pages/dataset.py", label="Inspect it on the Dataset page",
                     icon=":material/bar_chart:")
    elif job.status == "cancelled":
        st.warning("The simulation was cancelled; nothing was saved.")
    else:
        st.error(f"The simulation failed: {job.error}")


limits = hosted_limits()
try:
    params, name, scheduler = params_from_widgets()
    if limits is not None:
        check_simulation(params, limits)
        # A public server must not be made to connect to addresses a visitor types in.
        scheduler = None
except LimitError as err:
    st.error(f"Not allowed here: {err}.")
    params, name, scheduler = None, None, None
except ParameterError as err:
    st.error(f"Please fix the parameters: {err}.")
    params, name, scheduler = None, None, None

blocked = job_blocked(JOB)
if blocked and blocked != "this job is still running":
    st.caption(f"Simulation is paused: {blocked}.")
if st.button("Run simulation", type="primary", disabled=params is None or blocked is not None,
             key="run"):
    if start_job(JOB, simulate_and_save, params, name, label="simulate", scheduler=scheduler):
        st.rerun()
job_panel()
