"""Altair charts of datasets: energy traces, autocorrelation, histograms, density profiles,
radial distribution functions."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from ljvae_core.analysis import density_profile
from ljvae_core.sampling import autocorrelation

GAMMA_TITLE = "γ"
ENERGY_TITLE = "U / N (ε)"
SWEEP_TITLE = "sweep"
LAG_TITLE = "lag (sweeps)"
ACF_TITLE = "energy autocorrelation"
# Legends under half-width charts, so that a narrow window leaves the plot its width: short
# labels (γ values) in a row, long ones one per line.
BELOW = alt.Legend(orient="bottom")
BELOW_LIST = alt.Legend(orient="bottom", direction="vertical")


def _titled(title: str, note: str) -> alt.TitleParams:
    """A chart title, with what a dashed mark means as its subtitle (one line each, so
    neither is cut short in half a page)."""
    return alt.TitleParams(title, subtitle=note, anchor="start")


def energy_trace_chart(trace, equilibration_sweep: int, n_particles: int) -> alt.Chart:
    """Energy per particle along a chain's tuning and preliminary sweeps, with the sweep it
    is equilibrated from dashed."""
    step = max(1, len(trace) // 4000)  # thin long traces for the browser
    frame = pd.DataFrame({"sweep": np.arange(len(trace))[::step],
                          "U / N": np.asarray(trace)[::step] / n_particles})
    x = alt.X("sweep:Q", title=SWEEP_TITLE)
    line = alt.Chart(frame).mark_line().encode(
        x=x, y=alt.Y("U / N:Q", title=ENERGY_TITLE, scale=alt.Scale(zero=False)))
    rule = alt.Chart(pd.DataFrame({"sweep": [equilibration_sweep]})).mark_rule(
        color="firebrick", strokeDash=[6, 3]).encode(
        x=x, tooltip=[alt.Tooltip("sweep:Q", title="equilibrated from sweep")])
    return (line + rule).properties(title=_titled("Energy trace",
                                                  "dashed: equilibrated from here"))


def autocorrelation_chart(series, tau: float, lag: int, threshold: float) -> alt.Chart:
    """Autocorrelation of the equilibrated energy against the lag, with τ and the first lag
    below the threshold marked."""
    acf = autocorrelation(series)
    n_lags = int(min(acf.size, max(5 * lag, 20)))
    frame = pd.DataFrame({"lag": np.arange(n_lags), "autocorrelation": acf[:n_lags]})
    x = alt.X("lag:Q", title=LAG_TITLE)
    # Every layer names the shared y axis alike, or Vega-Lite joins their field names.
    y = alt.Y("autocorrelation:Q", title=ACF_TITLE)
    line = alt.Chart(frame).mark_line().encode(x=x, y=y)
    what = [f"τ = {tau:.2f} sweeps", f"first below {threshold:g}: {lag} sweeps"]
    marks = pd.DataFrame({"lag": [tau, lag], "what": what})
    # Colours apart from the curve's blue and from the trace's red equilibration mark.
    rules = alt.Chart(marks).mark_rule(strokeDash=[6, 3], strokeWidth=1.5).encode(
        x=x, color=alt.Color("what:N", title="marked lags", sort=what, legend=BELOW_LIST,
                             scale=alt.Scale(domain=what, range=["#7b3294", "darkorange"])))
    level = alt.Chart(pd.DataFrame({"autocorrelation": [threshold]})).mark_rule(
        color="gray").encode(y=y)
    return (line + rules + level).properties(title="Energy autocorrelation")


def energy_histogram_chart(energy, gamma, n_particles: int) -> alt.Chart:
    """Histogram of the energy per particle of the configurations, one colour per γ."""
    frame = pd.DataFrame({"U / N": np.asarray(energy) / n_particles, GAMMA_TITLE: gamma})
    return alt.Chart(frame).mark_bar(opacity=0.55, binSpacing=0).encode(
        x=alt.X("U / N:Q", bin=alt.Bin(maxbins=50), title=ENERGY_TITLE),
        y=alt.Y("count():Q", stack=None, title="configurations"),
        color=alt.Color(f"{GAMMA_TITLE}:N", title=GAMMA_TITLE, legend=BELOW),
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
    # Number density per unit volume in 3D, per unit area in 2D (the up axis is the last).
    unit = "σ⁻³" if np.shape(coords)[-1] == 3 else "σ⁻²"
    return alt.Chart(frame).mark_line().encode(
        x=alt.X("height:Q", title="height z (σ)"), y=alt.Y("ρ:Q", title=f"ρ(z) ({unit})"),
        color=alt.Color(f"{GAMMA_TITLE}:N", title=GAMMA_TITLE, legend=BELOW),
        # The subtitle says what is dashed: a second legend would take the plot's height.
        strokeDash=alt.StrokeDash("source:N", title="curve", legend=None),
    ).properties(title=_titled("Density profile ρ(z)",
                               "dashed: the barometric law ρ ∝ exp(−4γz/T)"))


def centre_distance_chart(coords, system) -> alt.Chart:
    """Density of the particles' distances from the centre of mass (a free cluster's profile,
    where a box has ρ(z))."""
    frame = _height_frame(coords, system, bins=40)
    return alt.Chart(frame).mark_line().encode(
        x=alt.X("height:Q", title="distance from the centre of mass (σ)"),
        y=alt.Y("ρ:Q", title="probability density (σ⁻¹)"),
    ).properties(title="Distances from the centre of mass")


def radial_distribution_chart(curves: pd.DataFrame, free: bool = False) -> alt.Chart:
    """g(r) per condition from a frame with columns r, g and condition (for a free cluster,
    the density of its pair distances)."""
    y = alt.Y("g:Q", title="pair-distance density (per σ)" if free else "g(r)")
    line = alt.Chart(curves).mark_line().encode(
        x=alt.X("r:Q", title="r (σ)"), y=y,
        color=alt.Color("condition:N", title=GAMMA_TITLE, legend=BELOW),
        tooltip=[alt.Tooltip("condition:N", title=GAMMA_TITLE),
                 alt.Tooltip("r:Q", title="r (σ)", format=".2f"),
                 alt.Tooltip("g:Q", title="density" if free else "g(r)", format=".3f")],
    )
    if free:  # no box, so no ideal gas to compare with
        return line.properties(title="Pair distances")
    ideal = alt.Chart(pd.DataFrame({"g": [1.0]})).mark_rule(color="gray", strokeDash=[4, 4]) \
        .encode(y=y)
    return (line + ideal).properties(title=_titled("Radial distribution g(r)",
                                                   "dashed: ideal gas"))


def training_charts(epoch_log: list[dict]) -> tuple[alt.Chart, alt.Chart]:
    """Loss curves from the per-epoch logs, as two charts that fill their columns: the total
    loss (train and validation; the negative ELBO plus the weighted coordinate, physics and
    state terms) and its terms, each before its weight."""
    frame = pd.DataFrame(epoch_log)
    names = {"loss": "total (train)", "val_loss": "total (validation)",
             "reconstruction": "reconstruction", "kl": "KL", "physics": "physics",
             "coordinates": "coordinates", "state": "state head"}
    long = frame.melt(id_vars="epoch", value_vars=[k for k in names if k in frame],
                      var_name="term", value_name="value")
    long["term"] = long["term"].map(names)
    long["panel"] = np.where(long["term"].str.startswith("total"), "total", "terms")
    base = alt.Chart(long).mark_line(point=True).encode(
        x=alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1, format="d")),
        y=alt.Y("value:Q", title="loss per configuration", scale=alt.Scale(zero=False)),
        color=alt.Color("term:N", title=None, legend=alt.Legend(orient="bottom", columns=2)),
        tooltip=["epoch:Q", "term:N", alt.Tooltip("value:Q", format=".4g")])
    total = base.transform_filter(alt.datum.panel == "total").properties(
        title="Training loss per configuration", height=380)
    terms = base.transform_filter(alt.datum.panel == "terms").properties(
        title=_titled("Terms of the training loss", "each before its weight"), height=380)
    return total, terms


def distance_heatmap(distances, title: str, vmax: float) -> alt.Chart:
    """A distance matrix as a heatmap (particles in the given order)."""
    n = distances.shape[0]
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    frame = pd.DataFrame({"i": i.ravel(), "j": j.ravel(), "r": np.asarray(distances).ravel()})
    # As wide as its column, the legend below (inside the height, with the title): three
    # side by side fit a narrow window.
    return alt.Chart(frame).mark_rect().encode(
        x=alt.X("j:O", axis=None), y=alt.Y("i:O", axis=None),
        color=alt.Color("r:Q", scale=alt.Scale(scheme="viridis", domain=[0, vmax]),
                        title="r (σ)", legend=BELOW),
        tooltip=["i:O", "j:O", alt.Tooltip("r:Q", format=".3f")],
    ).properties(title=title, width="container", height=360)


# Line colours of the sets a comparison draws, in order (the first is the reference).
SET_COLOURS = ("#222222", "#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e")


def sample_comparison_charts(sets: dict, system) -> list[alt.Chart]:
    """Energy per particle, g(r) and rho(z) of several sets of configurations ({label: coords}),
    three charts to put side by side, each filling its column (LJ energy only: gravity shows
    in rho(z)). A free cluster has no up: its third chart is the density of the particles'
    distances from the centre of mass."""
    from ljvae_core.analysis import energies_per_particle, radial_distribution

    energy, rdf, rho = [], [], []
    for label, coords in sets.items():
        e = energies_per_particle(coords, system, 0.0)
        energy.append(pd.DataFrame({"U_LJ / N": np.clip(e, None, 5.0), "set": label}))
        g = radial_distribution(coords, system)
        rdf.append(pd.DataFrame({"r": g.r, "g": g.g, "set": label}))
        rho.append(_height_frame(coords, system).assign(set=label))
    # A chart filling its column is fitted to its height legend included: the heights leave
    # the plots about 260 px under a legend of three rows.
    # Colours in the sets' order, the reference first in near-black, then colours that stay
    # apart for colour-blind readers (ColorBrewer Dark2): the default scheme sorts the labels
    # and gave Monte Carlo and relaxed samples two blues.
    # A third of a 1024-pixel window leaves legend labels about 12 characters: "generated, raw"
    # reads "raw" and "generated + 5 sweeps" "+ 5 sweeps" there (the table below names them).
    legend = alt.Legend(orient="bottom", columns=1, labelExpr=(
        "replace(replace(datum.label, 'generated, ', ''), 'generated + ', '+ ')"))
    colour = alt.Color("set:N", title=None, legend=legend,
                       scale=alt.Scale(domain=list(sets),
                                       range=list(SET_COLOURS[:max(len(sets), 1)])),
                       sort=list(sets))
    # The gravity system's LJ part (gravity shows in ρ(z)); the LJ13 cluster's whole energy.
    energy_name, symbol = (("Energy", "U") if system.potential == "lj13"
                           else ("LJ energy", "U_LJ"))
    # Overlapping configurations' energies are astronomically large: drawn at 5 per particle.
    # Short axis titles and two-line chart titles: a third of a 1024-pixel window cuts axis
    # titles at about 22 characters and chart titles at about 18.
    hist = alt.Chart(pd.concat(energy)).transform_density(
        "U_LJ / N", groupby=["set"], as_=["U_LJ / N", "density"]).mark_line().encode(
        x=alt.X("U_LJ / N:Q", title=f"{symbol} / N (ε), cap 5"),
        y=alt.Y("density:Q", title="probability density"), color=colour).properties(
        title=[energy_name, "per particle"], height=400)
    free = system.free
    g_chart = alt.Chart(pd.concat(rdf)).mark_line().encode(
        x=alt.X("r:Q", title="r (σ)"),
        y=alt.Y("g:Q", title="pair-distance density (per σ)" if free else "g(r)"),
        color=colour).properties(
        title=["Pair-distance", "density"] if free else ["Pair correlation", "g(r)"],
        height=400)
    rho_chart = alt.Chart(pd.concat(rho)).mark_line().encode(
        x=alt.X("height:Q", title="distance from the centre of mass (σ)" if free
                else "height z (σ)"),
        y=alt.Y("ρ:Q", title="probability density" if free else "number density ρ(z)"),
        color=colour).properties(
        title=["Distances from", "the centre"] if free else ["Density profile", "ρ(z)"],
        height=400)
    return [hist, g_chart, rho_chart]


def _height_frame(coords, system, bins: int = 30) -> pd.DataFrame:
    """ρ(z) of configurations in a box; the density of distances from the centre of mass in a
    free cluster."""
    from ljvae_core.analysis import heights

    if not system.free:
        prof = density_profile(coords, system.box, bins)
        return pd.DataFrame({"height": prof.z, "ρ": prof.density})
    density, edges = np.histogram(heights(coords, system), bins=bins, density=True)
    return pd.DataFrame({"height": 0.5 * (edges[1:] + edges[:-1]), "ρ": density})


def latent_scatter(frame: pd.DataFrame, colour: str, emap=None,
                   uploaded: pd.DataFrame | None = None) -> alt.Chart:
    """Encoded configurations in the 2D latent view (columns u, v, index and the colour field),
    over the decoded energy map if given, with uploaded configurations (u, v, row, name,
    verdict, score) as hollow outlined markers. Points ("picked", by index), map cells
    ("cell") and uploaded configurations ("upload", by row) are selectable."""
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
        layers.extend(_upload_layers(uploaded))
    return alt.layer(*layers).properties(height=480)


UPLOAD_SHAPES = {"normal": "diamond", "anomalous": "triangle-up"}


def _upload_layers(uploaded: pd.DataFrame) -> list[alt.Chart]:
    """Uploaded configurations: hollow black marks on a white halo, whose colours belong to
    neither the viridis scale of the points nor the magma one of the energy map; the shape
    tells the verdict. Marks shrink as they grow many, so they never bury the dataset."""
    size = float(np.clip(150.0 * np.sqrt(20.0 / len(uploaded)), 30.0, 150.0))
    base = alt.Chart(uploaded).encode(x="u:Q", y="v:Q")
    # One halo layer per verdict with a fixed shape: a shape channel on the halos as well
    # would merge into the legend of the marks and hide it.
    halos = [base.transform_filter(alt.datum.verdict == verdict).mark_point(
        shape=shape, size=size, filled=False, color="white", strokeWidth=3.5, opacity=0.9)
        for verdict, shape in UPLOAD_SHAPES.items()]
    shapes = alt.Scale(domain=list(UPLOAD_SHAPES), range=list(UPLOAD_SHAPES.values()))
    choose = alt.selection_point(name="upload", fields=["row"], on="click")
    marks = base.mark_point(size=size, filled=False, color="black", strokeWidth=1.4,
                            opacity=1.0).encode(
        shape=alt.Shape("verdict:N", scale=shapes, title="uploaded"),
        tooltip=[alt.Tooltip("name:N", title="uploaded"), "verdict:N",
                 alt.Tooltip("score:Q", format=".2f")]).add_params(choose)
    return [*halos, marks]


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
