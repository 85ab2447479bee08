# Kallos: one image for the daily job, the dashboard and Dask workers (docs/operations.md#containers).
# Build:  docker build -t kallos:latest .
# Run:    docker run --rm -e KALLOS_DATABASE_URL=postgresql://... kallos:latest run
ARG PYTHON_VERSION=3.11
ARG TALIB_VERSION=0.6.4

# ---- build: the TA-Lib C library and the Python wheels ------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ARG TALIB_VERSION
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /build
RUN curl -fsSL -o ta-lib.tar.gz \
      "https://github.com/ta-lib/ta-lib/releases/download/v${TALIB_VERSION}/ta-lib-${TALIB_VERSION}-src.tar.gz" \
 && tar xzf ta-lib.tar.gz \
 && cd "ta-lib-${TALIB_VERSION}" \
 && ./configure --prefix=/opt/ta-lib \
 && make -j"$(nproc)" \
 && make install
ENV TA_INCLUDE_PATH=/opt/ta-lib/include \
    TA_LIBRARY_PATH=/opt/ta-lib/lib
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --upgrade pip wheel \
 && /opt/venv/bin/pip install --no-cache-dir ".[scale]"

# ---- runtime: the library, the virtual environment, an unprivileged user ---------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
COPY --from=build /opt/ta-lib/lib/ /usr/local/lib/
RUN ldconfig \
 && groupadd --system --gid 10001 kallos \
 && useradd --system --uid 10001 --gid kallos --home-dir /home/kallos --create-home kallos \
 && mkdir -p /data /metrics \
 && chown kallos:kallos /data /metrics
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    KALLOS_LOG_FORMAT=json \
    KALLOS_DATABASE_URL=duckdb:////data/kallos.duckdb \
    KALLOS_RATE_LIMIT_DIR=/data/ratelimit
USER 10001:10001
WORKDIR /home/kallos
VOLUME ["/data"]
EXPOSE 8050
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8050/healthz', timeout=4)"]
ENTRYPOINT ["kallos"]
CMD ["serve", "--host", "127.0.0.1", "--port", "8050"]
