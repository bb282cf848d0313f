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
