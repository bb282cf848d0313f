"""ljvae: learn Lennard-Jones configurations with variational autoencoders.

Run with ``streamlit run app.py``. This file declares the navigation; each page lives in pages/.
"""

import streamlit as st

st.set_page_config(page_title="ljvae", page_icon="⚛️", layout="wide")

pages = {
    "": [st.Page("pages/home.py", title="Home", icon="🏠", default=True)],
    "Data": [
        st.Page("pages/simulate.py", title="Simulate", icon="🎲"),
        st.Page("pages/dataset.py", title="Dataset", icon="📊"),
    ],
    "Learning": [
        st.Page("pages/train.py", title="Train", icon="🧠"),
        st.Page("pages/reconstruct.py", title="Reconstruct", icon="🔁"),
        st.Page("pages/latent.py", title="Latent & Anomaly", icon="🗺️"),
    ],
}
st.navigation(pages).run()
