"""Dataset: parameters, sampling diagnostics, energies, density profiles and 3D views."""

import numpy as np
import pandas as pd
import streamlit as st

from ljvae_core.analysis import radial_distribution, structure_statistics
from ljvae_core.io import extxyz_text, npz_bytes
from ljvae_ui.charts import (
    autocorrelation_chart,
    density_profile_chart,
    energy_histogram_chart,
    energy_trace_chart,
    radial_distribution_chart,
)
from ljvae_ui.state import cached_dataset, pick_dataset
from ljvae_ui.views import configuration_html

# g(r) and the statistics use at most this many configurations per condition (fast enough to
# recompute on a page visit, plenty for smooth curves).
STRUCTURE_SAMPLES = 1500


@st.cache_data(max_entries=8, show_spinner="Computing g(r) and structure statistics…")
def structure_summary(path: str, modified: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """g(r) curves and the statistics table, per (T, γ) condition."""
    ds = cached_dataset(path, modified)
    params = ds.params
    several_t = len(set(ds.temperature)) > 1
    curves, rows = [], []
    for k, cond in enumerate(ds.conditions):
        coords = ds.coords[ds.condition == k][:STRUCTURE_SAMPLES]
        label = f"{cond['gamma']:g}" + (f" (T={cond['temperature']:g})" if several_t else "")
        rdf = radial_distribution(coords, ds.box, params["periodic"])
        curves.append(pd.DataFrame({"r": rdf.r, "g": rdf.g, "condition": label}))
        stats = structure_statistics(coords, ds.box, cond["gamma"], cond["temperature"],
                                     params["periodic"], params["cutoff"])
        rows.append({"T": cond["temperature"], "γ": cond["gamma"], **stats})
    table = pd.DataFrame(rows).rename(columns={
        "configurations": "configs", "energy_per_particle": "U/N",
        "energy_per_particle_std": "σ(U/N)", "nearest_neighbour": "nearest neighbour (σ)",
        "height": "mean height (σ)", "valid_fraction": "valid (no pair < 0.8σ)",
        "barometric_rate_fit": "decay rate fitted", "barometric_rate_dilute": "4γ/T"})
    return pd.concat(curves), table


st.title("Dataset")
summary = pick_dataset()
if summary is None:
    st.info("No dataset yet: make one on the Simulate page.")
    st.page_link("app_pages/simulate.py", label="Simulate", icon="🎲")
    st.stop()

try:
    ds = cached_dataset(summary["path"], summary["modified"])
except (OSError, ValueError, EOFError) as err:
    st.error(f"This dataset could not be read ({err}); it may be damaged. Simulate it again.")
    st.stop()
params = ds.params

st.subheader("Parameters")
cols = st.columns(6)
cols[0].metric("Particles N", ds.n_particles)
cols[1].metric("Dimension", f"{ds.dim}D")
cols[2].metric("Box L", f"{ds.box:g} σ")
cols[3].metric("Samples", len(ds))
cols[4].metric("Chains per condition", params["n_chains"])
cols[5].metric("Seed", ds.seed)
boundaries = params["periodic"] or "none (reflecting walls)"
cutoff = params["cutoff"] if params["cutoff"] is not None else "none (all pairs)"
st.caption(f"Periodic axes: {boundaries} · cut-off: {cutoff} · target acceptance "
           f"{params['target_acceptance']:g} · stride = ⌈{params['stride_factor']:g}·τ⌉ "
           f"({params['decorrelation']})")
st.dataframe(pd.DataFrame(ds.condition_table()).rename(columns={
    "gamma": "γ", "tau": "τ (sweeps)", "threshold_lag": f"lag ρ<{params['threshold']:g}",
    "stride": "stride (sweeps)", "step_size": "step δ"}), hide_index=True, width="stretch")

st.subheader("Sampling diagnostics")
labels = [f"T = {c['temperature']:g}, γ = {c['gamma']:g}" for c in ds.conditions]
left, right = st.columns(2)
cond_index = left.selectbox("Condition", range(len(labels)), format_func=labels.__getitem__,
                            key="diag_condition")
chains = ds.conditions[cond_index]["chains"]
chain_index = right.selectbox("Chain", range(len(chains)), format_func=lambda k: f"chain {k + 1}",
                              key="diag_chain")
chain = chains[chain_index]
trace = np.asarray(chain["energy_trace"])
left.altair_chart(energy_trace_chart(trace, chain["equilibration_sweep"], ds.n_particles),
                  width="stretch")
right.altair_chart(autocorrelation_chart(trace[chain["equilibration_sweep"]:], chain["tau"],
                                         chain["threshold_lag"], params["threshold"]),
                   width="stretch")

st.subheader("Energies and structure")
left, right = st.columns(2)
left.altair_chart(energy_histogram_chart(ds.energy, ds.gamma, ds.n_particles), width="stretch")
right.altair_chart(density_profile_chart(ds.coords, ds.gamma, ds.temperature, ds.box),
                   width="stretch")
curves, table = structure_summary(summary["path"], summary["modified"])
left, right = st.columns([3, 2])
left.altair_chart(radial_distribution_chart(curves), width="stretch")
right.markdown(
    "**Reading g(r)** — pairs at distance r relative to an ideal gas in the same box (walls "
    "included), so 1 means no correlation. The first peak near r ≈ 1.12σ is the nearest-"
    "neighbour shell; γ compresses the fluid and sharpens it.")
st.dataframe(table, hide_index=True, width="stretch", column_config={
    col: st.column_config.NumberColumn(format="%.4g") for col in table.columns[3:]})
st.caption(f"Statistics over up to {STRUCTURE_SAMPLES} configurations per condition. The fitted "
           "decay of ρ(z) matches 4γ/T only in the dilute limit; attraction makes dense layers "
           "decay differently.")

st.subheader("Configurations")
left, right = st.columns([1, 2])
index = left.number_input("Sample", 0, len(ds) - 1, 0, key="sample_index")
left.markdown(f"γ = {ds.gamma[index]:g}, T = {ds.temperature[index]:g}, chain "
              f"{ds.chain[index]}  \nU/N = {ds.energy[index] / ds.n_particles:.4f}")
left.caption("Particles are coloured by height (red at the top, blue at the floor).")
with right:
    st.iframe(configuration_html(ds.coords[index], ds.box), height=440)

st.subheader("Download")
info = {"energy": ds.energy, "gamma": ds.gamma, "temperature": ds.temperature,
        "chain": ds.chain}
left, right = st.columns(2)
left.download_button(
    "Extended XYZ (all frames)", lambda: extxyz_text(ds.coords, ds.box, params["periodic"], info),
    file_name=f"{summary['name']}.xyz", mime="chemical/x-xyz", key="download_xyz")
right.download_button(
    "NumPy .npz", lambda: npz_bytes(coords=ds.coords, **info, box=ds.box),
    file_name=f"{summary['name']}.npz", mime="application/octet-stream", key="download_npz")
