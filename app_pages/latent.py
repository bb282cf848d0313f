"""Latent & Anomaly: the encoded dataset in a 2D view coloured by γ, T or energy, how well
the latent separates γ, the energy of configurations decoded over the map, and anomaly
scores of uploaded configurations."""

import numpy as np
import pandas as pd
import streamlit as st

from ljvae_core.analysis import ENERGY_PER_PARTICLE_CAP, particle_energies
from ljvae_core.evaluation import held_out_indices
from ljvae_core.io import MAX_UPLOAD_BYTES
from ljvae_core.latent import energy_map, gamma_clustering, project, unseen_chains
from ljvae_core.scoring import score_files
from ljvae_ui.charts import latent_scatter
from ljvae_ui.hosting import hosted_limits
from ljvae_ui.state import cached_dataset, cached_model, pick_compatible_dataset, pick_model
from ljvae_ui.views import configuration_html

# Points drawn in the map (all are used for the scores).
MAX_POINTS = 3000
# Uploaded configurations drawn on the map at most (all are scored and listed).
MAX_UPLOADS_DRAWN = 300
# Configurations encoded per step of the progress bar of a first view.
ENCODE_STEP = 2000
# Particles are coloured by their pair energy over this range (ε): blue bound, red repelled.
PARTICLE_ENERGY_RANGE = (-6.0, 2.0)
STATE_LABELS = {"gamma": "γ", "temperature": "T"}
PAIR_ENERGY = "LJ U/N (ε)"

st.title("Latent & Anomaly")
summary = pick_model()
if summary is None:
    st.info("No model yet: train one on the Train page first.")
    st.page_link("app_pages/train.py", label="Train", icon=":material/model_training:")
    st.stop()
trained = cached_model(summary["path"], summary["modified"])
chosen, ds = pick_compatible_dataset(summary, "Dataset to encode", "latent_dataset")


def encode_in_steps(model, data) -> np.ndarray:
    """The dataset's latent means, a progress bar naming the step while they come (most of
    the time of the mds encoder goes to putting each shape in the model's frame)."""
    n = len(data)
    step = ": putting their shapes in the model's frame" if model.frame is not None else ""
    bar = st.progress(0.0)
    parts = []
    for start in range(0, n, ENCODE_STEP):
        bar.progress(start / n, text=f"Encoding {n:,} configurations{step} ({start:,} done)…")
        part = slice(start, start + ENCODE_STEP)
        parts.append(model.encode(data.coords[part], data.gamma[part], data.temperature[part]))
    bar.empty()
    return np.concatenate(parts)


@st.cache_data(max_entries=4, show_spinner=False)
def encoded(model_path: str, model_modified: float, data_path: str, data_modified: float):
    model = cached_model(model_path, model_modified)
    data = cached_dataset(data_path, data_modified)
    latent = encode_in_steps(model, data)
    points, projection = project(latent)
    scores = gamma_clustering(latent, data.gamma, data.chain, test=unseen_chains(model, data))
    return points, projection, scores


@st.cache_data(max_entries=8, show_spinner="Decoding the grid…")
def decoded_map(model_path, model_modified, data_path, data_modified, gamma, resolution):
    points, projection, _ = encoded(model_path, model_modified, data_path, data_modified)
    data = cached_dataset(data_path, data_modified)
    return energy_map(cached_model(model_path, model_modified), projection, points, gamma,
                      float(data.temperature[0]), resolution)


@st.cache_data(max_entries=16, show_spinner="Scoring the uploaded configurations…")
def scored_uploads(model_path, model_modified, files: tuple, gamma, temperature, max_bytes):
    return score_files(cached_model(model_path, model_modified), files, gamma, temperature,
                       max_bytes)


def clicked(selection, name: str, field: str) -> int | None:
    """The ``field`` of what the map's selection ``name`` holds, or None: a click on another
    layer's mark leaves an empty entry in this one."""
    chosen = selection.get(name) or []
    value = chosen[0].get(field) if chosen else None
    return None if value is None else int(value)


def follow_map_click(count: int) -> None:
    """Point the Show box at the uploaded configuration last clicked on the map, once per
    click: choosing another one in the box afterwards keeps that choice."""
    state = st.session_state.get("latent_chart") or {}
    row = clicked(state.get("selection") or {}, "upload", "row")
    if row != st.session_state.get("upload_clicked"):
        st.session_state["upload_clicked"] = row
        if row is not None and 0 <= row < count:
            st.session_state["upload_shown"] = row


def drawn_uploads(uploaded: pd.DataFrame, shown: int) -> pd.DataFrame:
    """At most MAX_UPLOADS_DRAWN uploaded configurations for the map, so that a big upload
    does not bury the dataset: the one shown, the anomalous ones, then normal ones evenly
    spread over the files' order."""
    if len(uploaded) <= MAX_UPLOADS_DRAWN:
        return uploaded
    flagged = np.flatnonzero(uploaded["verdict"].to_numpy() == "anomalous")
    first = np.unique(np.r_[shown, flagged[:MAX_UPLOADS_DRAWN - 1]]).astype(int)
    rest = np.setdiff1d(np.arange(len(uploaded)), first)
    room = MAX_UPLOADS_DRAWN - len(first)
    spread = rest[np.linspace(0, len(rest) - 1, room).round().astype(int)] if room > 0 else []
    return uploaded.iloc[np.union1d(first, spread).astype(int)]


def show_configuration(title: str, coords, energies=None):
    st.markdown(title)
    st.iframe(configuration_html(coords, ds.box, height=300, values=energies,
                                 value_range=PARTICLE_ENERGY_RANGE if energies is not None
                                 else None), height=320)


def upload_controls():
    """The uploader, with the state point to score at for conditional models; returns the
    scored files."""
    limits = hosted_limits()
    upload_limit = limits.max_upload_bytes if limits is not None else MAX_UPLOAD_BYTES
    st.caption(
        "Extended XYZ (several frames allowed), CSV with x,y[,z] columns, or .npy of shape "
        f"(N, d) or (frames, N, d); up to {upload_limit / 2**20:g} MB per file. A configuration "
        "is anomalous when its score exceeds the model's "
        f"{trained.meta.get('anomaly', {}).get('percentile', 99):g}th percentile of held-out "
        "normal data. The score is the larger of two robust z-scores: the negative ELBO, and how "
        + ("far the cluster's energy per particle and mean distance from its centre lie from "
           "the training ensemble's." if trained.system.free else
           "far the configuration's pair energy and mean height (the two terms of "
           "U = U_LJ + 4γΣz) lie from the training ensemble they are closest to."))
    uploads = st.file_uploader("Configurations", type=["xyz", "extxyz", "csv", "npy"],
                               accept_multiple_files=True, key="uploads")
    if not uploads:
        return []
    params = trained.meta.get("dataset_params", {})
    gamma_score, temperature_score = None, None
    if trained.settings.conditional:
        c1, c2 = st.columns(2)
        gamma_score = c1.number_input(
            "Score at γ", value=float(min(params.get("gammas", [0.0]))), key="score_gamma")
        temperature_score = c2.number_input(
            "Score at T", min_value=0.01, value=float(min(params.get("temperatures", [1.0]))),
            key="score_temperature")
    files = tuple((f.name, f.getvalue()) for f in uploads)
    return scored_uploads(summary["path"], summary["modified"], files, gamma_score,
                          temperature_score, upload_limit)


def uploads_table(rows) -> tuple[pd.DataFrame, dict]:
    """One row per scored frame, with human headers, and its column configuration."""
    table = pd.DataFrame([{"file": f.name, "frame": k, "score": r["score"],
                           "threshold": r["threshold"],
                           "verdict": "anomalous" if r["anomalous"] else "normal",
                           "percentile (normal)": r["percentile"],
                           PAIR_ENERGY: r["energy_per_particle"],
                           "height (σ)": r["mean_height"], "−ELBO (nats)": r["negative_elbo"],
                           **{f"{STATE_LABELS[k]} read off": v
                              for k, v in r.get("state", {}).items()}}
                          for f, k, r in rows])
    config = {
        "score": st.column_config.NumberColumn(format="%.2f"),
        "threshold": st.column_config.NumberColumn(format="%.2f"),
        "percentile (normal)": st.column_config.NumberColumn(
            format="%.1f %%", help="Share of held-out normal configurations that score lower."),
        "height (σ)": st.column_config.NumberColumn(format="%.2f", help="Mean particle height."),
        PAIR_ENERGY: st.column_config.NumberColumn(
            format="%.3f", help="LJ pair energy per particle; overlapping particles make it "
                                f"astronomically large, and it is shown capped at "
                                f"{ENERGY_PER_PARTICLE_CAP:g}."),
        "−ELBO (nats)": st.column_config.NumberColumn(
            format="%.1f", help="Negative evidence lower bound: how poorly the model explains "
                                "the configuration (lower is more typical). It is a density "
                                "of continuous coordinates, so it can be negative."),
        **{f"{label} read off": st.column_config.NumberColumn(
            format="%.2f", help="What the model's state head reads off this configuration's "
                                "latent point.")
            for label in STATE_LABELS.values() if f"{label} read off" in table}}
    return table, config


def show_uploaded(rows, table: pd.DataFrame):
    """The chosen uploaded frame in 3D with its verdict; returns the points to draw on the
    map."""
    uv = projection.transform(np.array([r["latent"] for _, _, r in rows]))
    labels = [f"{f.name} · frame {k} · {'anomalous' if r['anomalous'] else 'normal'}"
              for f, k, r in rows]
    follow_map_click(len(rows))
    which = st.selectbox("Show", range(len(rows)), format_func=labels.__getitem__,
                         key="upload_shown")
    drawn = drawn_uploads(pd.DataFrame({
        "u": uv[:, 0], "v": uv[:, 1], "row": np.arange(len(rows)),
        "name": [f"{f.name} · frame {k}" for f, k, _ in rows], "verdict": table["verdict"],
        "score": table["score"]}), which)
    f, k, r = rows[which]
    view, legend = st.columns([1, 1])
    with view:
        energies = particle_energies(f.coords[k], ds.system)[0]
        show_configuration(f"**{f.name}**, frame {k}", f.coords[k], energies)
    legend.markdown(
        f"Score **{r['score']:.2f}** against threshold {r['threshold']:.2f}: "
        f"**{'anomalous' if r['anomalous'] else 'normal'}**, above "
        f"{r['percentile']:.1f} % of held-out normal configurations.\n\n"
        f"Particles are coloured by their pair energy, blue at {PARTICLE_ENERGY_RANGE[0]:g} ε "
        f"(well bound) to red at {PARTICLE_ENERGY_RANGE[1]:g} ε and above (overlapping). "
        f"Highest: {energies.max():.2f} ε.")
    return drawn


points, projection, scores = encoded(summary["path"], summary["modified"], chosen["path"],
                                     chosen["modified"])
cols = st.columns(3)
cols[0].metric("γ silhouette", "—" if scores["gamma_silhouette"] is None
               else f"{scores['gamma_silhouette']:.3f}")
cols[1].metric("γ probe R²", "—" if scores["gamma_r2"] is None
               else f"{scores['gamma_r2']:.3f}",
               help="A ridge regression latent → γ, fitted on some chains and scored on others: "
                    "on the model's own validation chains when this is its training dataset "
                    "(its state head, if it has one, saw the γ of every training chain).")
cols[2].metric("Variance in view", "100%" if projection.pca is None
               else f"{projection.explained:.0%}",
               help="The map shows the latent itself when it is 2D, else its first two "
                    "principal components (PCA) and the share of the variance they hold.")

left, right = st.columns([2, 1])
map_area = left.container()
show_map = right.checkbox("Energy map", key="energy_map",
                          help="Colours the map by the energy per particle of the "
                               "configuration decoded at each point of a grid.")
colour = right.radio("Colour points by", ("γ", "T", "U/N"), horizontal=True, key="latent_colour",
                     disabled=show_map,
                     help="Over the energy map the points are drawn white: one colour scale, "
                          "the map's.")
emap = None
if show_map:
    gamma_map = right.number_input("Decode at γ", -10.0, 10.0, float(ds.gamma[0]),
                                   key="map_gamma") if trained.settings.conditional else 0.0
    resolution = right.slider("Grid", 8, 40, 20, key="map_resolution")
    emap = decoded_map(summary["path"], summary["modified"], chosen["path"], chosen["modified"],
                       float(gamma_map), int(resolution))
    right.caption("Click a cell to see the configuration decoded there.")

# ---------------------------------------------------------------- uploads
st.subheader("Score configurations")
scored = upload_controls()
for failed in (f for f in scored if f.error):
    st.error(failed.error)
rows = [(f, k, r) for f in scored if not f.error for k, r in enumerate(f.results)]
uploaded_points = None
if rows:
    table, config = uploads_table(rows)
    st.dataframe(table, hide_index=True, width="stretch", column_config=config)
    uploaded_points = show_uploaded(rows, table)

# ---------------------------------------------------------------- the map
held = held_out_indices(trained, ds)
rng = np.random.default_rng(0)
shown = np.sort(rng.choice(len(ds), min(len(ds), MAX_POINTS), replace=False))
frame = pd.DataFrame({"u": points[shown, 0], "v": points[shown, 1], "index": shown,
                      "γ": ds.gamma[shown], "T": ds.temperature[shown],
                      "U/N": ds.energy[shown] / ds.n_particles})
event = map_area.altair_chart(latent_scatter(frame, colour, emap, uploaded_points),
                              width="stretch", on_select="rerun", key="latent_chart")
if uploaded_points is not None:
    drawn = (f"The map shows {len(uploaded_points):,} of the {len(rows):,} uploaded "
             "configurations: the one shown, the anomalous ones, then normal ones spread over "
             "the files. " if len(uploaded_points) < len(rows) else "")
    map_area.caption(f"{drawn}Click an uploaded configuration (◇ normal, △ anomalous) to "
                     "show it under Score configurations.")
selection = event.selection if event and event.selection else {}
with right:
    k, c = clicked(selection, "picked", "index"), clicked(selection, "cell", "cell")
    if k is not None:
        field = "" if ds.system.free else f"γ = {ds.gamma[k]:g}, "
        show_configuration(f"**Configuration {k}** ({field}"
                           f"{'held out' if k in set(held.tolist()) else 'training'})",
                           ds.coords[k])
    elif c is not None and emap is not None:
        show_configuration(f"**Decoded at cell {c}**: U/N = {emap.energy.ravel()[c]:.3f}",
                           emap.configurations[c],
                           particle_energies(emap.configurations[c], ds.system)[0])
    else:
        st.caption("Click a point to see its configuration.")
