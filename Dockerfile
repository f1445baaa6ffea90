# syntax=docker/dockerfile:1
# asl-serve on TorchServe 0.12.0, CPU only. Targets (docs/deploy.md):
#   runtime (default)  TorchServe in the foreground, addresses on 0.0.0.0, token auth on
#   loadtest           Locust with the project's dev dependencies (docker-compose.yml, profile loadtest)
#   kserve             the runtime for KServe's TorchServe predictor (deploy/kserve/)
# Needs BuildKit (cache mounts). Nothing here has been built on the machine it was written on.

# bookworm, not the newer Debian the plain tag follows: its main archive has openjdk-17-jre-headless.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG KFS_IMAGE=pytorch/torchserve-kfs:0.12.0

# --- deps: the project and its pinned dependencies in /opt/venv --------------------------------
FROM ${PYTHON_IMAGE} AS deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
# The CPU wheel first (same version as the pin in pyproject.toml), so the pin never pulls CUDA.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/root/.cache/pip pip install .

# --- archives: export TorchScript fp32/int8 from the committed weights and pack the .mar files --
# Calibration uses the committed samples (../shared is outside the build context), as `make archive`
# does on a clone without the shared data.
FROM deps AS archives
RUN --mount=type=cache,target=/root/.cache/pip pip install ".[train]"
RUN python -m training.export --out-dir build/export \
 && python -m handler.archive --export-dir build/export --model-store model_store

# --- loadtest: Locust from the source tree (editable, so client/proto is generated beside it) ----
FROM archives AS loadtest
RUN --mount=type=cache,target=/root/.cache/pip pip install -e ".[dev]" \
 && python -m client.protos \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /src asl \
 && chown -R asl:asl /src \
 && install -d -o asl -g asl /reports
USER 10001:10001
ENTRYPOINT ["locust"]

# --- server: Java 17, the venv, the archives and the config; no addresses, no command yet -------
FROM ${PYTHON_IMAGE} AS server
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless tini \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --uid 10001 --user-group --create-home asl \
 && install -d -o asl -g asl /var/lib/asl
COPY --from=deps /opt/venv /opt/venv
COPY --from=archives /src/model_store/asl-fp32.mar /src/model_store/asl-int8.mar /srv/asl/model_store/
COPY config.properties /srv/asl/config.properties
COPY log4j2.xml /srv/asl/log4j2.xml
COPY deploy/probe.py /srv/asl/deploy/probe.py
# TorchServe writes key_file.json into its working directory and its logs under LOG_LOCATION.
WORKDIR /var/lib/asl
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LOG_LOCATION=/var/lib/asl/logs \
    METRICS_LOCATION=/var/lib/asl/logs \
    TEMP=/tmp \
    ASL_KEY_FILE=/var/lib/asl/key_file.json
USER 10001:10001

# --- kserve: KServe's TorchServe wrapper on :8080 in front of TorchServe on loopback :8085 ------
# The wrapper comes from the official torchserve-kfs image of the same TorchServe release; its kserve
# release pins protobuf<4, numpy<2 and psutil<6, which clash with the project's pins, so it gets its own venv.
FROM ${KFS_IMAGE} AS kfs

FROM server AS kserve
USER root
RUN --mount=type=cache,target=/root/.cache/pip \
    /usr/local/bin/python -m venv /opt/kserve && /opt/kserve/bin/pip install "kserve[storage]==0.13.1"
COPY --from=kfs /home/model-server/kserve_wrapper /opt/kserve-wrapper
COPY --chmod=755 deploy/kserve/entrypoint.sh /usr/local/bin/kserve-entrypoint
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "-g", "--", "/usr/local/bin/kserve-entrypoint"]
# KServe's runtime passes these itself; the default only documents them.
CMD ["torchserve", "--start", "--model-store=/mnt/models/model-store", \
     "--ts-config=/mnt/models/config/config.properties"]

# --- runtime (default): TorchServe in the foreground, reachable from outside the container -------
# config.properties keeps its loopback defaults; these TS_* variables (enable_envvars_config=true)
# open the listeners inside the container only. Publish the ports deliberately (docker-compose.yml).
FROM server AS runtime
ENV TS_INFERENCE_ADDRESS=http://0.0.0.0:8080 \
    TS_MANAGEMENT_ADDRESS=http://0.0.0.0:8081 \
    TS_METRICS_ADDRESS=http://0.0.0.0:8082 \
    TS_GRPC_INFERENCE_ADDRESS=0.0.0.0 \
    TS_GRPC_MANAGEMENT_ADDRESS=0.0.0.0
EXPOSE 8080 8081 8082 7070 7071
HEALTHCHECK --interval=15s --timeout=10s --start-period=180s --retries=3 \
    CMD ["python", "/srv/asl/deploy/probe.py", "ready"]
# tini -g passes SIGTERM to the whole group, so the Java frontend and its workers stop cleanly.
ENTRYPOINT ["/usr/bin/tini", "-g", "--"]
CMD ["torchserve", "--start", "--foreground", "--ncs", \
     "--ts-config", "/srv/asl/config.properties", "--model-store", "/srv/asl/model_store", \
     "--log-config", "/srv/asl/log4j2.xml"]
