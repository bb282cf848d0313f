"""ljvae: learn Lennard-Jones configurations with variational autoencoders.

Run with ``streamlit run app.py``. This file declares the navigation; each page lives in
app_pages/. Not pages/: a folder of that name next to this file makes a served Streamlit app
fall back to its legacy page discovery, which never runs this file.
"""

import streamlit as st

from ljvae_ui.hosting import apply_hosting
from ljvae_ui.runtime import keep_keras_session

keep_keras_session()

st.set_page_config(page_title="ljvae", page_icon=":material/blur_on:", layout="wide")
limits = apply_hosting()
if limits is not None:
    st.sidebar.caption(
        f"Hosted demo: up to {limits.max_particles} particles, {limits.max_samples} samples, "
        f"{limits.max_epochs} epochs, uploads of {limits.max_upload_bytes // 2**20} MB; one "
        f"job at a time per visitor, and {limits.job_slots} on the whole server (the others "
        "wait their turn). Your datasets and models are private to this link.")

pages = {
    "": [st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True)],
    "Data": [
        st.Page("app_pages/simulate.py", title="Simulate", icon=":material/casino:"),
        st.Page("app_pages/dataset.py", title="Dataset", icon=":material/bar_chart:"),
    ],
    "Learning": [
        st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("app_pages/reconstruct.py", title="Reconstruct", icon=":material/compare:"),
        st.Page("app_pages/latent.py", title="Latent & Anomaly", icon=":material/scatter_plot:"),
    ],
}
st.navigation(pages).run()
