"""py3Dmol views of configurations, with 3Dmol.js served locally (works offline)."""

from __future__ import annotations

import numpy as np
import py3Dmol

from ljvae_core.io import extxyz_text

# Served by Streamlit's static file serving (.streamlit/config.toml), not by a CDN.
LOCAL_3DMOL = "/app/static/3Dmol-min.js"


def _colour(fraction: float) -> str:
    """Blue (0) through white (0.5) to red (1), as a hex colour."""
    f = min(1.0, max(0.0, float(fraction)))
    low, mid, high = np.array([49, 54, 149]), np.array([247, 247, 247]), np.array([165, 0, 38])
    rgb = low + (mid - low) * 2 * f if f < 0.5 else mid + (high - mid) * (2 * f - 1)
    return "#" + "".join(f"{int(round(c)):02x}" for c in rgb)


def configuration_html(coords, box: float | None, width: int | str = "100%", height: int = 420,
                       radius: float = 0.5, values=None, value_range=None) -> str:
    """HTML page with a 3D view of one configuration, particles coloured by height, or by
    per-particle ``values`` (blue low, red high, over ``value_range`` or their own range).
    ``width`` in pixels or as CSS (the default fills the frame it is shown in).

    2D configurations are drawn in the z = 0 plane, seen from above. A free cluster (``box``
    None) is drawn without a box, coloured over its own range of heights.
    """
    coords = np.asarray(coords, dtype=np.float64)
    dim = coords.shape[1]
    text = extxyz_text(coords, box)
    view = py3Dmol.view(width=width, height=height, js=LOCAL_3DMOL)
    view.addModel(text, "xyz")
    up = "z" if dim == 3 else "y"
    low, high = (0.0, box) if box is not None else (coords[:, -1].min(), coords[:, -1].max())
    if values is None:
        view.setStyle({"sphere": {"radius": radius, "colorscheme": {
            "prop": up, "gradient": "roygb", "min": float(high), "max": float(low)}}})
    else:
        values = np.asarray(values, dtype=np.float64)
        lo, hi = value_range if value_range is not None else (values.min(), values.max())
        span = hi - lo if hi > lo else 1.0
        for i, v in enumerate(values):
            view.setStyle({"index": i}, {"sphere": {"radius": radius,
                                                    "color": _colour((v - lo) / span)}})
    if box is not None:
        depth = box if dim == 3 else 0.01
        view.addBox({
            "center": {"x": box / 2, "y": box / 2, "z": depth / 2},
            "dimensions": {"w": box, "h": box, "d": depth},
            "wireframe": True, "color": "gray",
        })
    view.zoomTo()
    if box is None:
        # After zoomTo, zoom(0.7) showed a cluster of 13 about a fifth of a 460-pixel view
        # across and zoom(1.5) about half, with room to turn it without losing spheres past
        # the edges.
        view.zoom(1.5)
    if dim == 3:
        view.rotate(-70, "x")
    return view.write_html()
