"""Simulate: choose the system, run Monte Carlo chains in the background, save the dataset."""

import streamlit as st

from ljvae_core.artifacts import simulate_and_save
from ljvae_core.hosted import LimitError, check_simulation
from ljvae_core.sampling import ParameterError, SimulationParams
from ljvae_ui.state import SELECTED_DATASET, job_blocked, start_job

JOB = "simulation_job"

st.title("Simulate")
st.caption("Metropolis Monte Carlo of Lennard-Jones particles in a box under gravity.")


def parse_numbers(text: str, what: str) -> tuple:
    try:
        values = tuple(float(v) for v in text.replace(";", ",").split(",") if v.strip())
    except ValueError:
        raise ParameterError(f"{what} must be numbers separated by commas, got '{text}'") from None
    if not values:
        raise ParameterError(f"give at least one value for {what}")
    return values


def params_from_widgets() -> tuple[SimulationParams, str | None, str | None]:
    left, mid, right = st.columns(3)
    with left:
        n = st.number_input("Particles N", 2, 5000, 30, key="n_particles")
        dim = st.radio("Dimension", (3, 2), horizontal=True, key="dim",
                       format_func=lambda d: f"{d}D")
        box = st.number_input("Box length L (σ)", 0.1, 1000.0, 5.0, key="box")
        st.caption(f"Density N/L^d = {n / box ** dim:.3g}")
    with mid:
        temps = st.text_input("Temperatures T", "1.0", key="temperatures",
                              help="One or more, separated by commas")
        gammas = st.text_input("Gravity couplings γ", "0, 0.5, 1, 2", key="gammas",
                               help="One or more, separated by commas")
        samples = st.number_input("Samples per (T, γ)", 1, 100_000, 1000, key="samples")
        chains = st.number_input("Independent chains", 1, 64, 4, key="chains")
    with right:
        seed = st.number_input("Seed", 0, 2**31 - 1, 0, key="seed")
        axes = "xy"[: dim - 1]
        periodic = st.multiselect("Periodic axes (others reflect)", list(axes), key="periodic",
                                  help="The up axis always reflects: gravity needs a floor.")
        use_cutoff = st.checkbox("Truncate the potential", key="use_cutoff")
        cutoff = st.number_input("Cut-off rc (σ)", 1.0, 50.0, 3.0, key="cutoff",
                                 disabled=not use_cutoff)
        name = st.text_input("Dataset name (optional)", key="name")
    with st.expander("Scale-out"):
        scheduler = st.text_input(
            "Dask scheduler (optional)", key="scheduler", placeholder="tcp://host:8786",
            help="Run the chains on this Dask cluster instead of this machine's cores. "
                 "The same seed gives the same dataset either way.")
    params = SimulationParams(
        n_particles=int(n), dim=int(dim), box=float(box),
        temperatures=parse_numbers(temps, "temperatures"),
        gammas=parse_numbers(gammas, "gravity couplings"), n_samples=int(samples),
        n_chains=int(chains), seed=int(seed), cutoff=float(cutoff) if use_cutoff else None,
        periodic="".join(periodic),
    )
    return params, name.strip() or None, scheduler.strip() or None


@st.fragment(run_every=1.0)
def job_panel():
    job = st.session_state.get(JOB)
    if job is None:
        return
    if job.running:
        st.progress(job.fraction, text=f"{job.fraction:.0%} — {job.message} "
                                       f"({job.elapsed:.0f} s)")
        if st.button("Cancel", key="cancel"):
            job.cancel()
        return
    if job.status == "done":
        st.session_state[SELECTED_DATASET] = job.result
        st.success(f"Saved dataset **{job.result}** in {job.elapsed:.1f} s.")
        st.page_link("app_pages/dataset.py", label="Inspect it on the Dataset page", icon="📊")
    elif job.status == "cancelled":
        st.warning("The simulation was cancelled; nothing was saved.")
    else:
        st.error(f"The simulation failed: {job.error}")


limits = st.session_state.get("hosted_limits")
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
