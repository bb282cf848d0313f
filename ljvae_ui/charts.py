"""Altair charts of datasets: energy traces, autocorrelation, histograms, density profiles,
radial distribution functions."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from ljvae_core.analysis import density_profile
from ljvae_core.sampling import autocorrelation

GAMMA_TITLE = "γ"


def energy_trace_chart(trace, equilibration_sweep: int, n_particles: int) -> alt.Chart:
    step = max(1, len(trace) // 4000)  # thin long traces for the browser
    frame = pd.DataFrame({"sweep": np.arange(len(trace))[::step],
                          "U / N": np.asarray(trace)[::step] / n_particles})
    line = alt.Chart(frame).mark_line().encode(x="sweep:Q", y=alt.Y("U / N:Q", scale=alt.Scale(
        zero=False)))
    rule = alt.Chart(pd.DataFrame({"sweep": [equilibration_sweep]})).mark_rule(
        color="firebrick", strokeDash=[6, 3]).encode(x="sweep:Q", tooltip=["sweep:Q"])
    return (line + rule).properties(title="Energy trace (dashed: equilibrated from here)")


def autocorrelation_chart(series, tau: float, lag: int, threshold: float) -> alt.Chart:
    acf = autocorrelation(series)
    n_lags = int(min(acf.size, max(5 * lag, 20)))
    frame = pd.DataFrame({"lag (sweeps)": np.arange(n_lags), "autocorrelation": acf[:n_lags]})
    line = alt.Chart(frame).mark_line().encode(x="lag (sweeps):Q", y="autocorrelation:Q")
    marks = pd.DataFrame({"lag (sweeps)": [tau, lag],
                          "what": [f"τ = {tau:.1f}", f"first below {threshold:g}: {lag}"]})
    rules = alt.Chart(marks).mark_rule(strokeDash=[6, 3]).encode(
        x="lag (sweeps):Q", color=alt.Color("what:N", title=None))
    level = alt.Chart(pd.DataFrame({"y": [threshold]})).mark_rule(color="gray").encode(y="y:Q")
    return (line + rules + level).properties(title="Energy autocorrelation")


def energy_histogram_chart(energy, gamma, n_particles: int) -> alt.Chart:
    frame = pd.DataFrame({"U / N": np.asarray(energy) / n_particles, GAMMA_TITLE: gamma})
    return alt.Chart(frame).mark_bar(opacity=0.55, binSpacing=0).encode(
        x=alt.X("U / N:Q", bin=alt.Bin(maxbins=50)),
        y=alt.Y("count():Q", stack=None),
        color=alt.Color(f"{GAMMA_TITLE}:N"),
    ).properties(title="Energy per particle")


def density_profile_chart(coords, gamma, temperature, box: float, bins: int = 30) -> alt.Chart:
    """rho(z) per (gamma, T) from the samples, with the barometric prediction dashed."""
    rows = []
    for g, t in sorted(set(zip(gamma, temperature, strict=True))):
        sel = (gamma == g) & (temperature == t)
        prof = density_profile(coords[sel], box, bins)
        label = f"{g:g}" if len(set(temperature)) == 1 else f"{g:g} (T={t:g})"
        for source, values in (("Monte Carlo", prof.density),
                               ("barometric law", prof.barometric(g, t))):
            rows.append(pd.DataFrame({"height": prof.z, "ρ": values, GAMMA_TITLE: label,
                                      "source": source}))
    frame = pd.concat(rows)
    return alt.Chart(frame).mark_line().encode(
        x="height:Q", y="ρ:Q", color=f"{GAMMA_TITLE}:N",
        strokeDash=alt.StrokeDash("source:N", title=None),
    ).properties(title="Density profile ρ(z) and the barometric law ρ ∝ exp(−4γz/T)")


def radial_distribution_chart(curves: pd.DataFrame) -> alt.Chart:
    """g(r) per condition from a frame with columns r, g and condition."""
    line = alt.Chart(curves).mark_line().encode(
        x=alt.X("r:Q", title="r (σ)"), y=alt.Y("g:Q", title="g(r)"),
        color=alt.Color("condition:N", title=GAMMA_TITLE),
        tooltip=["condition:N", alt.Tooltip("r:Q", format=".2f"), alt.Tooltip("g:Q", format=".3f")],
    )
    ideal = alt.Chart(pd.DataFrame({"g": [1.0]})).mark_rule(color="gray", strokeDash=[4, 4]) \
        .encode(y="g:Q")
    return (line + ideal).properties(title="Radial distribution g(r) (dashed: ideal gas)")


def training_chart(epoch_log: list[dict]) -> alt.Chart:
    """Loss curves from the per-epoch logs: total loss (train and validation; the negative ELBO
    plus the weighted coordinate, physics and state terms) and its terms."""
    frame = pd.DataFrame(epoch_log)
    names = {"loss": "total (train)", "val_loss": "total (validation)",
             "reconstruction": "reconstruction", "kl": "KL", "physics": "physics",
             "coordinates": "coordinates (weighted)", "state": "state head (weighted)"}
    long = frame.melt(id_vars="epoch", value_vars=[k for k in names if k in frame],
                      var_name="term", value_name="value")
    long["term"] = long["term"].map(names)
    long["panel"] = np.where(long["term"].str.startswith("total"), "total", "terms")
    base = alt.Chart(long).mark_line(point=True).encode(
        x=alt.X("epoch:Q"), y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
        color=alt.Color("term:N", title=None), tooltip=["epoch:Q", "term:N",
                                                        alt.Tooltip("value:Q", format=".4g")])
    total = base.transform_filter(alt.datum.panel == "total").properties(
        title="Training loss per configuration", width=320, height=220)
    terms = base.transform_filter(alt.datum.panel == "terms").properties(
        title="Terms of the training loss", width=320, height=220)
    return alt.hconcat(total, terms)


def distance_heatmap(distances, title: str, vmax: float) -> alt.Chart:
    """A distance matrix as a heatmap (particles in the given order)."""
    n = distances.shape[0]
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    frame = pd.DataFrame({"i": i.ravel(), "j": j.ravel(), "r": np.asarray(distances).ravel()})
    return alt.Chart(frame).mark_rect().encode(
        x=alt.X("j:O", axis=None), y=alt.Y("i:O", axis=None),
        color=alt.Color("r:Q", scale=alt.Scale(scheme="viridis", domain=[0, vmax]),
                        title="r (σ)"),
        tooltip=["i:O", "j:O", alt.Tooltip("r:Q", format=".3f")],
    ).properties(title=title, width=230, height=230)


def sample_comparison_charts(sets: dict, box: float, periodic: str = "") -> alt.Chart:
    """Energy per particle, g(r) and rho(z) of several sets of configurations ({label: coords})
    side by side (LJ energy only: gravity shows in rho(z))."""
    from ljvae_core.analysis import energies_per_particle, radial_distribution

    energy, rdf, rho = [], [], []
    for label, coords in sets.items():
        e = energies_per_particle(coords, box, 0.0, periodic)
        energy.append(pd.DataFrame({"U_LJ / N": np.clip(e, None, 5.0), "set": label}))
        g = radial_distribution(coords, box, periodic)
        rdf.append(pd.DataFrame({"r": g.r, "g": g.g, "set": label}))
        prof = density_profile(coords, box, 30)
        rho.append(pd.DataFrame({"height": prof.z, "ρ": prof.density, "set": label}))
    colour = alt.Color("set:N", title=None)
    hist = alt.Chart(pd.concat(energy)).transform_density(
        "U_LJ / N", groupby=["set"], as_=["U_LJ / N", "density"]).mark_line().encode(
        x="U_LJ / N:Q", y="density:Q", color=colour).properties(
        title="LJ energy per particle (clipped at 5)", width=250, height=200)
    g_chart = alt.Chart(pd.concat(rdf)).mark_line().encode(
        x=alt.X("r:Q", title="r (σ)"), y="g:Q", color=colour).properties(
        title="g(r)", width=250, height=200)
    rho_chart = alt.Chart(pd.concat(rho)).mark_line().encode(
        x="height:Q", y="ρ:Q", color=colour).properties(title="ρ(z)", width=250, height=200)
    return alt.hconcat(hist, g_chart, rho_chart)


def latent_scatter(frame: pd.DataFrame, colour: str, emap=None,
                   uploaded: pd.DataFrame | None = None) -> alt.Chart:
    """Encoded configurations in the 2D latent view (columns u, v, index and the colour field),
    over the decoded energy map if given, with uploaded configurations (u, v, name, verdict)
    as large diamonds. Points ("picked", by index) and map cells ("cell") are selectable."""
    pick = alt.selection_point(name="picked", fields=["index"], on="click")
    layers = []
    if emap is not None:
        layers.append(_energy_map_layer(emap))
    kind = "N" if colour == "γ" and frame[colour].nunique() <= 10 else "Q"
    layers.append(alt.Chart(frame).mark_circle(size=28, opacity=0.8, stroke="black",
                                                strokeWidth=0.3).encode(
        x=alt.X("u:Q", title="latent 1"), y=alt.Y("v:Q", title="latent 2"),
        color=alt.Color(f"{colour}:{kind}", scale=alt.Scale(scheme="viridis"))
        if emap is None else alt.value("white"),
        tooltip=["index:Q", "γ:Q", "T:Q", alt.Tooltip("U/N:Q", format=".3f")],
    ).add_params(pick))
    if uploaded is not None and len(uploaded):
        layers.append(alt.Chart(uploaded).mark_point(
            shape="diamond", size=220, filled=True, stroke="black", strokeWidth=1.2).encode(
            x="u:Q", y="v:Q",
            fill=alt.Fill("verdict:N", scale=alt.Scale(domain=["normal", "anomalous"],
                                                       range=["#1a9850", "#d73027"]),
                          title="uploaded"),
            tooltip=["name:N", "verdict:N", alt.Tooltip("score:Q", format=".2f")]))
    return alt.layer(*layers).properties(height=480)


def _energy_map_layer(emap) -> alt.Chart:
    gx, gy = np.meshgrid(emap.xs, emap.ys)
    dx, dy = np.diff(emap.xs).mean(), np.diff(emap.ys).mean()
    grid = pd.DataFrame({"u": gx.ravel() - dx / 2, "u2": gx.ravel() + dx / 2,
                         "v": gy.ravel() - dy / 2, "v2": gy.ravel() + dy / 2,
                         "decoded U/N": np.clip(emap.energy.ravel(), None, 5.0),
                         "cell": np.arange(gx.size)})
    cell = alt.selection_point(name="cell", fields=["cell"], on="click")
    return alt.Chart(grid).mark_rect(opacity=0.75).encode(
        x="u:Q", x2="u2", y="v:Q", y2="v2",
        color=alt.Color("decoded U/N:Q", scale=alt.Scale(scheme="magma", reverse=True),
                        title="decoded U/N (≤ 5)"),
        tooltip=["cell:Q", alt.Tooltip("decoded U/N:Q", format=".3f")]).add_params(cell)
