"""Home: what ljvae does, the workflow, and what is stored in cache/."""

import pandas as pd
import streamlit as st

from ljvae_core.artifacts import cache_dir, list_datasets, list_models
from ljvae_core.demo import DEMO_DATASET, DEMO_PARAMS, DEMO_SETTINGS, run_demo
from ljvae_ui.state import SELECTED_DATASET, SELECTED_MODEL, job_blocked, models_table, start_job

DEMO_JOB = "demo_job"

st.title("ljvae — Lennard-Jones configurations and variational autoencoders")
st.markdown(
    """
Simulate Lennard-Jones particles in a box under gravity with Metropolis Monte Carlo, then
learn their configurations with variational autoencoders and read physics from the latent space.

**Workflow**
1. **Simulate** — N particles, 2D or 3D, one or more gravity couplings γ and temperatures T;
   chains are equilibrated, their autocorrelation time τ measured, and one configuration is
   kept every ⌈k·τ⌉ sweeps.
2. **Dataset** — energy traces, autocorrelation, energy histograms, density profiles ρ(z)
   against the barometric law, and 3D views of any configuration; downloads as XYZ or NPZ.
3. **Train** — variational autoencoders on sorted coordinates, voxel grids or distance
   matrices, with live loss curves; each model is evaluated on held-out chains.
4. **Reconstruct** — decoded configurations next to the originals, and new ones generated
   from the latent prior, judged by their energies, g(r) and ρ(z).
5. **Latent & Anomaly** — γ and energies read from the latent space, anomaly scores, and
   scoring of configurations you upload.

Units are reduced Lennard-Jones units (σ = ε = m = k_B = 1); the potential energy is
U = Σ 4(r⁻¹² − r⁻⁶) + 4γ Σ z.
"""
)

st.subheader("Quick demo")


@st.fragment(run_every=1.0)
def demo_panel():
    job = st.session_state.get(DEMO_JOB)
    if job is None:
        return
    if job.running:
        st.progress(job.fraction, text=f"{job.message} ({job.elapsed:.0f} s)")
        return
    if job.status == "done":
        st.session_state[SELECTED_DATASET] = job.result["dataset"]
        st.session_state[SELECTED_MODEL] = job.result["model"]
        st.session_state[DEMO_JOB] = None
        st.switch_page("app_pages/latent.py")
    elif job.status == "failed":
        st.error(f"The demo failed: {job.error}")


g = ", ".join(f"{x:g}" for x in DEMO_PARAMS.gammas)
st.markdown(
    f"One click runs the whole workflow on a small version of the original study's system: "
    f"{DEMO_PARAMS.n_particles} particles in 3D (L = {DEMO_PARAMS.box:g}, T = 1) at γ = {g}, "
    f"{DEMO_PARAMS.n_samples} samples per γ; a distances VAE (latent "
    f"{DEMO_SETTINGS.latent_dim}, {DEMO_SETTINGS.epochs} epochs); its evaluation; then its "
    f"latent map opens. About a minute; it replaces the dataset `{DEMO_DATASET}` and its model.")
if st.button("Run the quick demo", type="primary", disabled=job_blocked(DEMO_JOB) is not None,
             key="demo"):
    if start_job(DEMO_JOB, run_demo, label="demo"):
        st.rerun()
demo_panel()

st.subheader("Datasets")
datasets = list_datasets()
if datasets:
    table = pd.DataFrame(datasets)[
        ["name", "particles", "dim", "box", "gammas", "temperatures", "samples", "chains"]
    ]
    table["gammas"] = table["gammas"].map(lambda g: ", ".join(f"{x:g}" for x in g))
    table["temperatures"] = table["temperatures"].map(lambda t: ", ".join(f"{x:g}" for x in t))
    st.dataframe(table, hide_index=True, width="stretch")
else:
    st.info("No dataset yet: start on the **Simulate** page.")
    st.page_link("app_pages/simulate.py", label="Simulate a dataset", icon="🎲")

st.subheader("Models")
models = list_models()
if models:
    st.dataframe(models_table(models), hide_index=True, width="stretch")
else:
    st.caption("No model yet: train one on the **Train** page.")
st.caption(f"Artifacts are stored under `{cache_dir().resolve()}`.")
