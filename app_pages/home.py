"""Home: what ljvae does, the workflow, and what is stored in cache/."""

import streamlit as st

from ljvae_core.artifacts import cache_dir, list_datasets, list_models
from ljvae_core.demo import BUILD_SETTINGS, DEMO_DATASET, DEMO_MODEL, DEMO_PARAMS, run_demo
from ljvae_ui.state import (
    SELECTED_DATASET,
    SELECTED_MODEL,
    datasets_table,
    job_blocked,
    models_table,
    queue_notice,
    redraw_when_finished,
    start_job,
    unmeasured_note,
)

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
   at a chosen γ (raw or after thermal sweeps), judged one state point at a time against
   Monte Carlo: a classifier's AUC, energies, g(r) and ρ(z), beside Monte Carlo's own floor.
5. **Latent & Anomaly** — γ and energies read from the latent space, anomaly scores, and
   scoring of configurations you upload.

Units are reduced Lennard-Jones units (σ = ε = m = k_B = 1); the potential energy is
U = Σ 4(r⁻¹² − r⁻⁶) + 4γ Σ z.
"""
)

st.subheader("Quick demo")


def demo_summary(result: dict) -> None:
    """The demo's figures, with where to look at them."""
    rec, gen, lat = result["reconstruction"], result["generation"], result["latent"]
    st.success(f"Done in {result['seconds']:.0f} s: the pre-trained model, judged on "
               f"{result['held_out_samples']} fresh Monte Carlo configurations it never saw.")
    # Two by two: four side by side cut every label short on a 1024-pixel screen.
    cols = [*st.columns(2), *st.columns(2)]
    cols[0].metric("Median reconstruction error", f"{rec['rmsd_median']:.2f} σ",
                   help="Root-mean-square displacement between each configuration and its "
                        "reconstruction, after matching particles and aligning. A random other "
                        f"configuration of the same γ scores {rec['baseline_rmsd_median']:.2f} σ.")
    cols[1].metric("Valid generated samples", f"{gen['valid_fraction']:.0%}",
                   help="Share of configurations decoded from the latent prior with no pair "
                        "of particles closer than 0.8 σ, before any relaxation.")
    w1 = gen["energy_w1_relaxed_vs_quenched_mc"]
    cols[2].metric("Energy gap to Monte Carlo", f"{w1:.3f}",
                   help="Wasserstein distance between the energy-per-particle distributions of "
                        "generated and Monte Carlo configurations, both relaxed by the same "
                        "zero-temperature quench (ε per particle; 0 is identical).")
    cols[3].metric("γ read off the latent (R²)", "—" if lat["gamma_r2"] is None
                   else f"{lat['gamma_r2']:.2f}",
                   help="A straight line from the latent space to γ, scored on chains it was "
                        "not fitted on (1 is perfect).")
    st.page_link("app_pages/reconstruct.py", label="See reconstructions and generated samples",
                 icon=":material/compare:")
    st.page_link("app_pages/latent.py", label="Explore the latent map and score uploads",
                 icon=":material/scatter_plot:")


@st.fragment(run_every=1.0)
def demo_panel():
    job = st.session_state.get(DEMO_JOB)
    if job is None:
        return
    if queue_notice(job, "leave_demo_queue"):
        return
    if job.running:
        st.progress(job.fraction, text=f"{job.message} ({job.elapsed:.0f} s)")
        return
    if job.status == "done":
        st.session_state[SELECTED_DATASET] = job.result["dataset"]
        st.session_state[SELECTED_MODEL] = job.result["model"]
    redraw_when_finished(DEMO_JOB)
    if job.status == "done":
        demo_summary(job.result)
    elif job.status == "failed":
        st.error(f"The demo failed: {job.error}.")
    else:
        st.caption("You left the queue: the demo did not start.")


g = ", ".join(f"{x:g}" for x in DEMO_PARAMS.gammas)
st.markdown(
    f"One click simulates fresh Monte Carlo data of the study's system — "
    f"{DEMO_PARAMS.n_particles} particles in 3D (L = {DEMO_PARAMS.box:g}, T = 1) at γ = {g}, "
    f"{DEMO_PARAMS.n_samples} configurations per γ — then loads the "
    f"default model that ships with ljvae (a distances VAE with latent size "
    f"{BUILD_SETTINGS.latent_dim}, trained for {BUILD_SETTINGS.planned_epochs} epochs on 16 000 "
    "configurations of the same system), judges it on the fresh data and prepares its latent "
    f"map. About 20 s on two cores; it replaces the dataset `{DEMO_DATASET}` and the model "
    f"`{DEMO_MODEL}`. To train a model yourself, open **Train**.")
if st.button("Run the quick demo", type="primary", disabled=job_blocked(DEMO_JOB) is not None,
             key="demo"):
    if start_job(DEMO_JOB, run_demo, label="demo"):
        st.rerun()
demo_panel()

st.subheader("Datasets")
datasets = list_datasets()
if datasets:
    st.dataframe(datasets_table(datasets), hide_index=True, width="stretch")
else:
    st.info("No dataset yet: start on the **Simulate** page.")
    st.page_link("app_pages/simulate.py", label="Simulate a dataset", icon=":material/casino:")

st.subheader("Models")
models = list_models()
if models:
    table, columns = models_table(models)
    st.dataframe(table, hide_index=True, width="stretch", column_config=columns)
    if note := unmeasured_note(models):
        st.caption(note)
else:
    st.caption("No model yet: train one on the **Train** page.")
st.caption(f"Artifacts are stored under `{cache_dir().resolve()}`.")
