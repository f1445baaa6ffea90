# syntax=docker/dockerfile:1
# asl-serve on TorchServe 0.12.0, CPU only. Targets (docs/deploy.md):
#   runtime (default)  TorchServe in the foreground, addresses on 0.0.0.0, token auth on
#   loadtest           Locust with the project's dev dependencies (docker-compose.yml, profile loadtest)
#   kserve             the runtime for KServe's TorchServe predictor (deploy/kserve/)
#   open-inference     KServe's model server with the Open Inference Protocol (v2), the InferenceService's transformer
# Build it with `make image` (deploy/container/engine.sh: Docker with BuildKit, or Podman). The image
# serves the archives `make archive` built in this checkout (model_store/), the ones the tests ran.
# Every pip step mounts, for that step only and never into a layer: the build secrets `pip.conf` (a pip
# config file: index settings) and `ca.crt` (a CA bundle), when given (deploy/container/pip-secrets.sh),
# and the build context `wheels` (a folder of wheels) at /wheels.

# Any Debian 12 with Python 3.11 as python3.11, its venv module and apt: the official image, or
# `make base-image` (Debian's own Python) where no registry answers. Debian 12, not the newer Debian
# the plain tag follows: its main archive has openjdk-17-jre-headless.
ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm
ARG KFS_IMAGE=docker.io/pytorch/torchserve-kfs:0.12.0

# Empty unless the build is given a folder as build context `wheels` (make image: WHEELS=DIR).
FROM scratch AS wheels

# --- deps: pyproject's pinned core, serve and demo groups in /opt/venv (what serving needs); only a change
# of pyproject.toml rebuilds this -----------------------------------------------------------------------
FROM ${BASE_IMAGE} AS deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_FIND_LINKS=/wheels \
    PATH=/opt/venv/bin:$PATH
RUN python3.11 -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml .
# torch first, the CPU build: from /wheels, else PyTorch's CPU index (PyPI's build pulls GBs of CUDA).
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=bind,from=wheels,target=/wheels \
    --mount=type=secret,id=pip.conf --mount=type=secret,id=ca.crt \
    --mount=type=bind,source=deploy/container/pip-secrets.sh,target=/tmp/pip-secrets.sh \
    . /tmp/pip-secrets.sh \
 && { pip install --no-deps --no-index torch==2.13.0 \
      || pip install --no-deps --index-url https://download.pytorch.org/whl/cpu torch==2.13.0; } \
 && python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
      print(*p["dependencies"], *p["optional-dependencies"]["serve"], *p["optional-dependencies"]["demo"], sep="\n")' \
    > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# --- project: the sources, and the project's wheel in /dist --------------------------------------
FROM deps AS project
COPY . .
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=bind,from=wheels,target=/wheels \
    --mount=type=secret,id=pip.conf --mount=type=secret,id=ca.crt \
    --mount=type=bind,source=deploy/container/pip-secrets.sh,target=/tmp/pip-secrets.sh \
    . /tmp/pip-secrets.sh \
 && pip wheel --no-deps --wheel-dir /dist .

# --- loadtest: Locust from the source tree (editable, so client/proto is generated beside it) ----
FROM project AS loadtest
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=bind,from=wheels,target=/wheels \
    --mount=type=secret,id=pip.conf --mount=type=secret,id=ca.crt \
    --mount=type=bind,source=deploy/container/pip-secrets.sh,target=/tmp/pip-secrets.sh \
    . /tmp/pip-secrets.sh \
 && pip install -e ".[dev]" \
 && python -m asl_serve.client.protos \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /src asl \
 && chown -R asl:asl /src \
 && install -d -o asl -g asl /reports
USER 10001:10001
ENTRYPOINT ["locust"]

# --- server: Java 17, the venv, the archives and the config; no addresses, no command yet -------
FROM ${BASE_IMAGE} AS server
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openjdk-17-jre-headless tini \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --uid 10001 --user-group --create-home asl \
 && install -d -o asl -g asl /var/lib/asl
# TorchServe writes key_file.json into its working directory and its logs under LOG_LOCATION.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LOG_LOCATION=/var/lib/asl/logs \
    METRICS_LOCATION=/var/lib/asl/logs \
    TEMP=/tmp \
    ASL_KEY_FILE=/var/lib/asl/key_file.json
# The dependencies, then the project (the demo service runs from it) in layers of its own. The wheel
# is copied, not mounted: a mount's content does not key podman's layer cache, a copy's does.
COPY --from=deps /opt/venv /opt/venv
COPY --from=project /dist/ /tmp/dist/
RUN pip install --no-cache-dir --disable-pip-version-check --no-deps --no-index /tmp/dist/*.whl \
 && rm -r /tmp/dist
# Only the archives that config.properties loads (models=).
COPY model_store/asl-fp32.mar model_store/asl-int8.mar model_store/asl-onnx-int8.mar /srv/asl/model_store/
COPY config.properties /srv/asl/config.properties
COPY log4j2.xml /srv/asl/log4j2.xml
COPY deploy/probe.py /srv/asl/deploy/probe.py
# The allocator settings of make serve (deploy/allocator.env), sourced by the entry point before TorchServe
# starts: image-sized buffers stay on the heap (docs/performance.md).
COPY deploy/allocator.env /srv/asl/allocator.env
COPY --chmod=755 deploy/container/with-allocator.sh /srv/asl/with-allocator.sh
WORKDIR /var/lib/asl
USER 10001:10001

# --- kserve: KServe's TorchServe wrapper on :8080 in front of TorchServe on loopback :8085 ------
# The wrapper comes from the official torchserve-kfs image of the same TorchServe release; its kserve
# release pins protobuf<4, numpy<2 and psutil<6, which clash with the project's pins, so it gets its own venv.
FROM ${KFS_IMAGE} AS kfs

FROM server AS kserve
USER root
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=bind,from=wheels,target=/wheels \
    --mount=type=secret,id=pip.conf --mount=type=secret,id=ca.crt \
    --mount=type=bind,source=deploy/container/pip-secrets.sh,target=/tmp/pip-secrets.sh \
    . /tmp/pip-secrets.sh \
 && python3.11 -m venv /opt/kserve \
 && PIP_FIND_LINKS=/wheels /opt/kserve/bin/pip install "kserve[storage]==0.13.1"
COPY --from=kfs /home/model-server/kserve_wrapper /opt/kserve-wrapper
COPY --chmod=755 deploy/kserve/entrypoint.sh /usr/local/bin/kserve-entrypoint
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "-g", "--", "/srv/asl/with-allocator.sh", "/usr/local/bin/kserve-entrypoint"]
# KServe's runtime passes these itself; the default only documents them.
CMD ["torchserve", "--start", "--model-store=/mnt/models/model-store", \
     "--ts-config=/mnt/models/config/config.properties"]

# --- open-inference: KServe's Python model server speaking the Open Inference Protocol (KServe v2) ---
# The InferenceService's transformer (deploy/kserve/inferenceservice.yaml): v2 in, KServe v1 to the
# TorchServe predictor. Its own venv with deploy/kserve/requirements.txt (kserve's pins clash with the
# project's); it imports nothing of the project. KServe passes --model_name, --predictor_host, --http_port.
FROM ${BASE_IMAGE} AS open-inference
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=bind,from=wheels,target=/wheels \
    --mount=type=secret,id=pip.conf --mount=type=secret,id=ca.crt \
    --mount=type=bind,source=deploy/container/pip-secrets.sh,target=/tmp/pip-secrets.sh \
    --mount=type=bind,source=deploy/kserve/requirements.txt,target=/tmp/requirements.txt \
    . /tmp/pip-secrets.sh \
 && python3.11 -m venv /opt/kserve \
 && PIP_FIND_LINKS=/wheels /opt/kserve/bin/pip install -r /tmp/requirements.txt
COPY deploy/kserve/open_inference.py /srv/asl/open_inference.py
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/opt/kserve/bin/python", "/srv/asl/open_inference.py", "--http_host", "0.0.0.0"]

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
ENTRYPOINT ["/usr/bin/tini", "-g", "--", "/srv/asl/with-allocator.sh"]
CMD ["torchserve", "--start", "--foreground", "--ncs", \
     "--ts-config", "/srv/asl/config.properties", "--model-store", "/srv/asl/model_store", \
     "--log-config", "/srv/asl/log4j2.xml"]
