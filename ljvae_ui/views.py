"""py3Dmol views of configurations, with 3Dmol.js served locally (works offline)."""

from __future__ import annotations

import numpy as np
import py3Dmol

from ljvae_core.io import extxyz_text

# Served by Streamlit's static file serving (.streamlit/config.toml), not by a CDN.
LOCAL_3DMOL = "/app/static/3Dmol-min.js"


def configuration_html(coords, box: float, width: int = 520, height: int = 420,
                       radius: float = 0.5) -> str:
    """HTML page with a 3D view of one configuration, particles coloured by height.

    2D configurations are drawn in the z = 0 plane, seen from above.
    """
    coords = np.asarray(coords, dtype=np.float64)
    dim = coords.shape[1]
    text = extxyz_text(coords, box)
    view = py3Dmol.view(width=width, height=height, js=LOCAL_3DMOL)
    view.addModel(text, "xyz")
    up = "z" if dim == 3 else "y"
    view.setStyle({"sphere": {"radius": radius, "colorscheme": {
        "prop": up, "gradient": "roygb", "min": box, "max": 0.0}}})
    depth = box if dim == 3 else 0.01
    view.addBox({
        "center": {"x": box / 2, "y": box / 2, "z": depth / 2},
        "dimensions": {"w": box, "h": box, "d": depth},
        "wireframe": True, "color": "gray",
    })
    view.zoomTo()
    if dim == 3:
        view.rotate(-70, "x")
    return view.write_html()
