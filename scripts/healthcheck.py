"""Exit 0 when the Streamlit server on this machine answers its health check, 1 otherwise.
The Docker image's HEALTHCHECK runs it: python:3.11-slim has no curl."""

import os
import sys
import urllib.request

URL = f"http://127.0.0.1:{os.environ.get('LJVAE_PORT', '8501')}/_stcore/health"

try:
    with urllib.request.urlopen(URL, timeout=4) as reply:
        sys.exit(0 if reply.read().strip() == b"ok" else 1)
except OSError:
    sys.exit(1)
