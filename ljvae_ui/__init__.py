"""Streamlit-side helpers shared by the pages: charts, 3D views, job panels, dataset choice."""
