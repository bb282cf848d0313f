"""Latent & Anomaly: the encoded dataset in a 2D view coloured by γ, T or energy, how well
the latent separates γ, and the energy of configurations decoded over the map."""

import numpy as np
import pandas as pd
import streamlit as st

from ljvae_core.evaluation import held_out_indices
from ljvae_core.latent import encode, energy_map, gamma_clustering, project
from ljvae_ui.charts import latent_scatter
from ljvae_ui.state import cached_dataset, cached_model, pick_compatible_dataset, pick_model
from ljvae_ui.views import configuration_html

# Points drawn in the map (all are used for the scores).
MAX_POINTS = 3000

st.title("Latent & Anomaly")
summary = pick_model()
if summary is None:
    st.info("No model yet: train one on the Train page first.")
    st.page_link("pages/train.py", label="Train", icon="🧠")
    st.stop()
trained = cached_model(summary["path"], summary["modified"])
chosen, ds = pick_compatible_dataset(summary, "Dataset to encode", "latent_dataset")


@st.cache_data(max_entries=4, show_spinner="Encoding the dataset…")
def encoded(model_path: str, model_modified: float, data_path: str, data_modified: float):
    model = cached_model(model_path, model_modified)
    data = cached_dataset(data_path, data_modified)
    latent = encode(model, data.coords, data.gamma, data.temperature)
    points, projection = project(latent)
    scores = gamma_clustering(latent, data.gamma, data.chain)
    return points, projection, scores


points, projection, scores = encoded(summary["path"], summary["modified"], chosen["path"],
                                     chosen["modified"])
cols = st.columns(3)
cols[0].metric("γ silhouette", "—" if scores["gamma_silhouette"] is None
               else f"{scores['gamma_silhouette']:.3f}")
cols[1].metric("γ probe R² (held-out chains)", "—" if scores["gamma_r2"] is None
               else f"{scores['gamma_r2']:.3f}")
cols[2].metric("View", "latent itself" if projection.pca is None
               else f"PCA, {projection.explained:.0%} of the variance")

left, right = st.columns([2, 1])
colour = right.radio("Colour by", ("γ", "T", "U/N"), horizontal=True, key="latent_colour")
show_map = right.checkbox("Energy map of decoded configurations", key="energy_map")
held = held_out_indices(trained, ds)
rng = np.random.default_rng(0)
shown = np.sort(rng.choice(len(ds), min(len(ds), MAX_POINTS), replace=False))
frame = pd.DataFrame({"u": points[shown, 0], "v": points[shown, 1], "index": shown,
                      "γ": ds.gamma[shown], "T": ds.temperature[shown],
                      "U/N": ds.energy[shown] / ds.n_particles})
emap = None
if show_map:
    gamma_map = right.number_input("Decode at γ", -10.0, 10.0, float(ds.gamma[0]),
                                   key="map_gamma") if trained.settings.conditional else 0.0
    resolution = right.slider("Grid", 8, 40, 20, key="map_resolution")
    with st.spinner("Decoding the grid…"):
        emap = energy_map(trained, projection, points, ds.box, gamma_map,
                          float(ds.temperature[0]), ds.params.get("periodic", ""), resolution)
event = left.altair_chart(latent_scatter(frame, colour, emap), width="stretch",
                          on_select="rerun", key="latent_chart")
picked = event.selection.get("picked") if event and event.selection else None
with right:
    if picked:
        k = int(picked[0]["index"])
        st.markdown(f"**Configuration {k}** (γ = {ds.gamma[k]:g}, "
                    f"{'held out' if k in set(held.tolist()) else 'training'})")
        st.iframe(configuration_html(ds.coords[k], ds.box, width=340, height=300), height=320)
    else:
        st.caption("Click a point to see its configuration.")
st.caption("Anomaly scores and uploads come with the next issue.")
