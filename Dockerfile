# The hosted demo: the app with LJVAE_DEMO limits on, as a non-root user.
#   docker build -t ljvae .
#   docker run -p 8501:8501 -v ljvae-cache:/data/cache ljvae
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LJVAE_DEMO=1 \
    LJVAE_CACHE=/data/cache \
    LJVAE_PORT=8501 \
    LJVAE_KEY_FILE=/data/cache/.ljvae-key \
    NUMBA_CACHE_DIR=/tmp/numba-cache \
    STREAMLIT_SERVER_MAX_UPLOAD_SIZE=2 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false

RUN useradd --create-home --uid 10001 ljvae \
    && mkdir -p /data/cache \
    && chown ljvae:ljvae /data/cache

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY --chown=ljvae:ljvae app.py ./
COPY --chown=ljvae:ljvae .streamlit/config.toml .streamlit/config.toml
COPY --chown=ljvae:ljvae app_pages app_pages
COPY --chown=ljvae:ljvae ljvae_core ljvae_core
COPY --chown=ljvae:ljvae ljvae_ui ljvae_ui
COPY --chown=ljvae:ljvae static static
COPY --chown=ljvae:ljvae scripts/healthcheck.py scripts/healthcheck.py

USER ljvae
VOLUME /data/cache
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "scripts/healthcheck.py"]
CMD ["sh", "-c", "exec streamlit run app.py --server.address=0.0.0.0 --server.port=${LJVAE_PORT} --server.headless=true --server.fileWatcherType=none"]
