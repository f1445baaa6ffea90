"""Container and cluster files, checked without a container engine or a cluster (docs/deploy.md).

No cluster runs where these tests run, and a container engine only sometimes (tests/test_container.py
builds and runs the image where one does), so they hold the files to what they depend on:
config.properties' ports and loopback defaults, files that must exist, TorchServe 0.12's token rules,
the conventions of KServe's TorchServe wrapper and the Kubernetes API schema. The health probe,
which runs inside the containers, is exercised for real against a stand-in server.
"""

import json
import os
import re
import shlex
import subprocess
import sys
import threading
from fnmatch import fnmatch
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from asl_serve.handler import ts_config
from asl_serve.handler.archive import VARIANTS, shipped_settings
from asl_serve.layout import CONFIG_PROPERTIES, MODEL_STORE, REPO, allocator_env
from asl_serve.model.config import MODEL_NAME

DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "docker-compose.yml"
K8S = REPO / "deploy" / "k8s"
KSERVE = REPO / "deploy" / "kserve"
PROBE = REPO / "deploy" / "probe.py"
LOOPBACK = {"127.0.0.1", "localhost"}
# KServe's TorchServe wrapper (torchserve-kfs 0.12.0) serves REST on 8080 and gRPC on 8081.
WRAPPER_PORTS = {8080, 8081}


CONFIG = ts_config.read()
KSERVE_CONFIG = ts_config.read(KSERVE / "config.properties")
PORTS = {
    "inference": urlsplit(CONFIG["inference_address"]).port,
    "management": urlsplit(CONFIG["management_address"]).port,
    "metrics": urlsplit(CONFIG["metrics_address"]).port,
    "grpc_inference": int(CONFIG["grpc_inference_port"]),
    "grpc_management": int(CONFIG["grpc_management_port"]),
}


def yaml_docs(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def k8s_objects() -> dict[str, dict]:
    """Every object under deploy/k8s by kind (one of each kind there)."""
    return {doc["kind"]: doc for path in sorted(K8S.glob("*.yaml")) for doc in yaml_docs(path)}


def container(name: str) -> dict:
    pod = k8s_objects()["Deployment"]["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == name)


def env_of(spec: dict) -> dict[str, dict]:
    return {item["name"]: item for item in spec.get("env", [])}


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """(INSTRUCTION, arguments) per named stage, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in (raw.strip() for raw in text.splitlines()):
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.partition(" ")
        if keyword.upper() == "FROM":
            current = re.search(r"\sAS\s+(\S+)", line, flags=re.I).group(1)
            stages[current] = []
        if current:
            stages[current].append((keyword.upper(), arguments.strip()))
    return stages


def lineage(stage: str) -> list[tuple[str, str]]:
    """A stage's instructions preceded by those of the stages it is built FROM."""
    stages = dockerfile_stages()
    instructions = stages[stage]
    parent = instructions[0][1].split()[0]
    return (lineage(parent) if parent in stages else []) + instructions


def last(stage: str, keyword: str) -> str:
    return [arguments for kw, arguments in lineage(stage) if kw == keyword][-1]


def env_instructions(stage: str) -> dict[str, str]:
    settings = [arguments for kw, arguments in lineage(stage) if kw == "ENV"]
    return dict(item.split("=", 1) for arguments in settings for item in shlex.split(arguments))


def runtime_command() -> list[str]:
    return json.loads(last("runtime", "CMD"))


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def copied_to(source: str) -> str:
    """Where the server stage puts a file of the build context."""
    for kw, arguments in lineage("runtime"):
        parts = arguments.split()
        if kw == "COPY" and parts[0] == source:
            return parts[1]
    raise AssertionError(f"{source} is not copied into the image")


# --- config.properties ------------------------------------------------------------------------


def test_config_properties_binds_every_listener_to_loopback():
    addresses = {key: value for key, value in CONFIG.items() if key.endswith("_address")}
    assert len(addresses) == 5
    for key, value in addresses.items():
        host = urlsplit(value).hostname if "://" in value else value
        assert host in LOOPBACK, f"{key}={value}: containers open listeners through TS_* variables instead"


# --- every file parses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", [COMPOSE, *sorted(K8S.glob("*.yaml")), *sorted(KSERVE.glob("*.yaml"))], ids=lambda p: p.name
)
def test_yaml_parses_to_mappings(path):
    docs = yaml_docs(path)
    assert docs and all(isinstance(doc, dict) for doc in docs)


@pytest.mark.parametrize("version", ["1.30.0", "1.37.0"])  # ContainerResource metrics are GA from 1.30
def test_k8s_manifests_match_the_kubernetes_schema(version):
    objects = k8s_objects()
    assert set(objects) == {"ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Service"}
    for doc in objects.values():
        kubernetes_validate.validate(doc, version, strict=True)  # strict: unknown fields are errors


# --- Dockerfile and .dockerignore -------------------------------------------------------------


def test_default_target_is_the_runtime_running_torchserve_in_the_foreground():
    assert list(dockerfile_stages())[-1] == "runtime"
    command = runtime_command()
    assert command[:2] == ["torchserve", "--start"] and "--foreground" in command
    assert Path(option(command, "--ts-config")).name == "config.properties"


@pytest.mark.parametrize("stage", ["runtime", "kserve", "open-inference", "loadtest"])
def test_images_run_as_a_numeric_non_root_user(stage):
    uid = last(stage, "USER").split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric, so Kubernetes' runAsNonRoot can verify it


def test_runtime_opens_the_config_ports_on_all_interfaces():
    env = env_instructions("runtime")
    for name in ("inference", "management", "metrics"):
        url = urlsplit(env[f"TS_{name.upper()}_ADDRESS"])
        assert (url.hostname, url.port) == ("0.0.0.0", PORTS[name])
    assert env["TS_GRPC_INFERENCE_ADDRESS"] == env["TS_GRPC_MANAGEMENT_ADDRESS"] == "0.0.0.0"
    exposed = {int(port) for kw, args in lineage("runtime") if kw == "EXPOSE" for port in args.split()}
    assert exposed == set(PORTS.values())


def test_the_kserve_image_keeps_torchserve_addresses_to_its_config():
    assert not [key for key in env_instructions("kserve") if key.endswith("_ADDRESS")]


def test_runtime_healthcheck_runs_the_copied_probe():
    healthcheck = last("runtime", "HEALTHCHECK")
    command = json.loads(healthcheck.split("CMD", 1)[1])
    assert command[1:] == [copied_to("deploy/probe.py"), "ready"]


def dockerignored(path: str) -> bool:
    """.dockerignore's verdict on a path: the last pattern matching it or a folder above it wins."""
    patterns = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    parents = [str(Path(*Path(path).parts[:n])) for n in range(1, len(Path(path).parts) + 1)]
    ignored = False
    for pattern in patterns:
        if any(fnmatch(part, pattern.lstrip("!")) for part in parents):
            ignored = not pattern.startswith("!")
    return ignored


def test_dockerfile_copies_only_context_files_that_exist_and_are_not_ignored():
    instructions = [instruction for stage in dockerfile_stages().values() for instruction in stage]
    copies = [arguments.split() for kw, arguments in instructions if kw == "COPY"]
    from_context = [parts for parts in copies if not parts[0].startswith("--from=")]
    sources = [part for parts in from_context for part in parts[:-1] if not part.startswith("--")]
    assert "deploy/probe.py" in sources and "config.properties" in sources
    for source in sources:
        if source != ".":
            assert (REPO / source).exists(), source
            assert not dockerignored(source), f"{source} is in .dockerignore"


def served_archives() -> set[str]:
    return {spec["marName"] for spec in json.loads(CONFIG["models"])[MODEL_NAME].values()}


def test_dockerignore_keeps_sources_and_the_served_archives_and_drops_local_state():
    needed = ["pyproject.toml", "README.md", "asl_serve", "model", "model/weights/hand_landmark_full.tflite", "handler",
              "training", "client", "demo", "harness", "loadtests", "drills", "samples"]  # what the wheel packs
    archives = [f"model_store/{name}" for name in served_archives()]
    assert not [path for path in needed + archives if dockerignored(path)]
    dropped = ["key_file.json", ".venv", "build/export", "model_store/asl-1.1-int8.mar",
               "training/weights/asl_lite0.pt"]
    assert all(dockerignored(path) for path in dropped)


def test_runtime_serves_only_the_archives_config_properties_loads():
    store = option(runtime_command(), "--model-store")
    copies = [arguments.split() for kw, arguments in lineage("runtime") if kw == "COPY"]
    [archives] = [parts[:-1] for parts in copies if parts[-1].rstrip("/") == store]
    assert {Path(source).name for source in archives} == served_archives()


def test_dockerfile_torch_pin_is_the_pyproject_pin_and_never_pypis_cuda_build():
    pinned = re.search(r'"torch==([^"]+)"', (REPO / "pyproject.toml").read_text()).group(1)
    installs = [line for line in DOCKERFILE.read_text().splitlines() if re.search(r"pip install .*torch==", line)]
    assert installs and all(re.search(r"torch==([\w.+]+)", line).group(1) == pinned for line in installs)
    assert all("--no-index" in line or "download.pytorch.org/whl/cpu" in line for line in installs)


def test_pip_steps_take_index_settings_and_ca_from_build_secrets_never_from_layers():
    text = DOCKERFILE.read_text()
    runs = [arguments for stage in dockerfile_stages().values() for kw, arguments in stage if kw == "RUN"]
    for run in (run for run in runs if re.search(r"\bpip (install|wheel)\b", run)):
        if "--index-url" in run or "--no-index" not in run:
            for mount in ("type=secret,id=pip.conf", "type=secret,id=ca.crt", "type=bind,from=wheels,target=/wheels",
                          "type=bind,source=deploy/container/pip-secrets.sh,target=/tmp/pip-secrets.sh"):
                assert f"--mount={mount}" in run, (mount, run)
            assert re.search(r"\. /tmp/pip-secrets\.sh\s+&&", run), run
    assert (REPO / "deploy/container/pip-secrets.sh").is_file() and not dockerignored("deploy/container/pip-secrets.sh")
    assert not re.search(r"^(COPY|ADD)\b.*(pip\.conf|\.crt|\.pem)", text, flags=re.M)
    assert not re.search(r"PIP_(INDEX_URL|EXTRA_INDEX_URL|TRUSTED_HOST)", text)


@pytest.mark.parametrize("stage", ["runtime", "kserve"])
def test_the_image_starts_torchserve_with_the_allocator_settings_of_make_serve(stage):
    """Both read deploy/allocator.env: the Makefile includes it, the image copies it and its entry point
    sources it before the command."""
    assert allocator_env() and "deploy/allocator.env" in (REPO / "Makefile").read_text()
    assert ("COPY", "deploy/allocator.env /srv/asl/allocator.env") in lineage(stage)
    assert '"/srv/asl/with-allocator.sh"' in last(stage, "ENTRYPOINT")
    assert ". /srv/asl/allocator.env" in (REPO / "deploy" / "container" / "with-allocator.sh").read_text()


def test_kserve_entrypoint_is_executable():
    assert os.access(KSERVE / "entrypoint.sh", os.X_OK)


# --- docker-compose.yml -----------------------------------------------------------------------


def compose() -> dict:
    return yaml_docs(COMPOSE)[0]


def published(service: str) -> list[tuple[str, str, str]]:
    """(host address, host port with the environment unset, container port) of a Compose service."""
    entries = compose()["services"][service]["ports"]
    return [re.fullmatch(r"([\d.]+):\$\{ASL_\w+_PORT:-(\d+)\}:(\d+)", entry).groups() for entry in entries]


def test_compose_publishes_the_config_ports_on_host_loopback():
    ports = published("torchserve")
    assert {host for host, _, _ in ports} == {"127.0.0.1"} == {host for host, _, _ in published("demo")}
    assert all(outside == inside for _, outside, inside in ports)  # by default
    assert {int(inside) for _, _, inside in ports} == set(PORTS.values())


def test_compose_builds_targets_of_the_dockerfile():
    stages = dockerfile_stages()
    for name, service in compose()["services"].items():
        assert (REPO / service["build"]["context"] / "Dockerfile") == DOCKERFILE
        assert service["build"]["target"] in stages, name


def test_compose_mounts_existing_files_where_the_image_reads_them():
    torchserve = compose()["services"]["torchserve"]
    mounts = dict(volume.split(":")[:2] for volume in torchserve["volumes"])
    command = runtime_command()
    assert CONFIG_PROPERTIES.is_file() and MODEL_STORE.is_dir()
    assert mounts["./config.properties"] == option(command, "--ts-config")
    assert mounts["./model_store"] == option(command, "--model-store")
    assert mounts["torchserve-state"] == last("runtime", "WORKDIR")  # where key_file.json is written
    assert "torchserve-state" in compose()["volumes"]


def test_compose_health_checks_survive_podman_compose_1_0_quoting():
    """podman-compose 1.0 (Debian 12) joins an exec-form test with broken quoting: keep words plain."""
    checks = {name: service["healthcheck"]["test"] for name, service in compose()["services"].items()
              if "healthcheck" in service}
    assert {"torchserve", "demo"} <= set(checks)
    for name, test in checks.items():
        if test[0] == "CMD":
            assert all(re.fullmatch(r"[\w./-]+", word) for word in test[1:]), name
        else:
            assert test[0] == "CMD-SHELL" and len(test) == 2, name


def test_compose_torchserve_restarts_is_bounded_and_checks_readiness():
    torchserve = compose()["services"]["torchserve"]
    assert torchserve["restart"] in {"always", "unless-stopped", "on-failure"}
    assert re.fullmatch(r"\d+[mg]", torchserve["mem_limit"])
    assert torchserve["healthcheck"]["test"][-2:] == [copied_to("deploy/probe.py"), "ready"]


def test_compose_locust_loads_the_locustfile_against_torchserve_with_its_key():
    services = compose()["services"]
    locust = services["locust"]
    command = locust["command"]
    assert locust["profiles"] == ["loadtest"]
    assert (REPO / option(command, "-f")).is_file()
    assert "--headless" in command
    assert option(command, "--host") == f"http://torchserve:{PORTS['inference']}"
    assert locust["depends_on"]["torchserve"]["condition"] == "service_healthy"
    key_dir = dict(volume.split(":")[:2] for volume in locust["volumes"])["torchserve-state"]
    assert locust["environment"]["ASL_KEY_FILE"] == f"{key_dir}/key_file.json"
    assert locust["environment"]["ASL_GRPC_INFERENCE"] == f"torchserve:{PORTS['grpc_inference']}"


# --- Kubernetes -------------------------------------------------------------------------------


def test_deployment_keeps_torchserve_on_loopback_while_its_token_check_is_off():
    env = {name: item["value"] for name, item in env_of(container("torchserve")).items()}
    assert env["TS_DISABLE_TOKEN_AUTHORIZATION"] == "true"
    for name in ("inference", "management"):
        url = urlsplit(env[f"TS_{name.upper()}_ADDRESS"])
        assert (url.hostname, url.port) == ("127.0.0.1", PORTS[name])
    assert env["TS_GRPC_INFERENCE_ADDRESS"] == env["TS_GRPC_MANAGEMENT_ADDRESS"] == "127.0.0.1"


def test_deployment_exposes_metrics_on_the_config_port_for_prometheus():
    torchserve = container("torchserve")
    metrics = urlsplit(env_of(torchserve)["TS_METRICS_ADDRESS"]["value"]).port
    annotations = k8s_objects()["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert metrics == PORTS["metrics"] == int(annotations["prometheus.io/port"])
    assert {p["containerPort"] for p in torchserve["ports"]} == {PORTS["metrics"]}


def test_deployment_probes_readiness_and_liveness_with_the_image_probe():
    torchserve = container("torchserve")
    probe = copied_to("deploy/probe.py")
    assert torchserve["readinessProbe"]["exec"]["command"][1:] == [probe, "ready"]
    assert torchserve["livenessProbe"]["exec"]["command"][1:] == [probe, "live"]
    assert torchserve["resources"]["requests"]["cpu"] and torchserve["resources"]["limits"]["memory"]


def test_auth_proxy_takes_the_token_from_a_secret_and_forwards_to_the_inference_port():
    proxy = container("auth-proxy")
    template = k8s_objects()["ConfigMap"]["data"]["default.conf.template"]
    token = env_of(proxy)["ASL_API_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert token["name"] and token["key"]
    assert '"Bearer ${ASL_API_TOKEN}"' in template
    assert re.search(env_of(proxy)["NGINX_ENVSUBST_FILTER"]["value"], "ASL_API_TOKEN")
    assert {int(port) for port in re.findall(r"proxy_pass http://127\.0\.0\.1:(\d+);", template)} == {
        PORTS["inference"]
    }
    listen = int(re.search(r"listen (\d+);", template).group(1))
    assert [listen] == [p["containerPort"] for p in proxy["ports"]]
    megabytes = int(re.search(r"client_max_body_size (\d+)m;", template).group(1))
    assert megabytes * 1024 * 1024 == int(CONFIG["max_request_size"])


def test_no_secret_is_committed():
    kinds = [doc.get("kind") for path in (REPO / "deploy").rglob("*.yaml") for doc in yaml_docs(path)]
    assert "Secret" not in kinds


def test_service_selects_the_pods_and_targets_the_proxy_port():
    objects = k8s_objects()
    pod = objects["Deployment"]["spec"]["template"]
    service = objects["Service"]["spec"]
    assert service["selector"].items() <= pod["metadata"]["labels"].items()
    proxy_ports = {p["name"] for p in container("auth-proxy")["ports"]}
    assert {p["targetPort"] for p in service["ports"]} == proxy_ports
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["auth-proxy-config"]["configMap"]["name"] == objects["ConfigMap"]["metadata"]["name"]


def test_hpa_scales_the_deployment_on_the_torchserve_container_cpu():
    objects = k8s_objects()
    hpa = objects["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == objects["Deployment"]["metadata"]["name"]
    assert "replicas" not in objects["Deployment"]["spec"]  # the HPA owns the count
    [metric] = hpa["metrics"]
    assert metric["containerResource"]["name"] == "cpu"
    assert container(metric["containerResource"]["container"])["resources"]["requests"]["cpu"]
    assert 1 <= hpa["minReplicas"] < hpa["maxReplicas"]


# --- KServe -----------------------------------------------------------------------------------


def test_kserve_config_fits_the_torchserve_wrapper():
    for key in ("inference_address", "management_address"):
        url = urlsplit(KSERVE_CONFIG[key])
        assert url.hostname in LOOPBACK and url.port not in WRAPPER_PORTS, key
    assert KSERVE_CONFIG["disable_token_authorization"] == "true"  # the wrapper sends no token
    assert KSERVE_CONFIG["model_store"] == "/mnt/models/model-store"
    snapshot_lines = [line for line in (KSERVE / "config.properties").read_text().splitlines()
                      if line.startswith("model_snapshot=")]
    assert len(snapshot_lines) == 1 and json.loads(snapshot_lines[0].split("=", 1)[1])


def test_kserve_serves_the_default_version_from_its_archive_batched_as_the_project():
    snapshot = json.loads(KSERVE_CONFIG["model_snapshot"])
    default_version, default = ts_config.default_version(MODEL_NAME, CONFIG)
    [(version, spec)] = snapshot["models"][MODEL_NAME].items()
    assert (version, spec["marName"], spec["defaultVersion"]) == (default_version, default["marName"], True)
    assert spec["marName"] in {f"{MODEL_NAME}-{variant}.mar" for variant in VARIANTS}
    archive = shipped_settings()
    assert (spec["batchSize"], spec["maxBatchDelay"]) == (archive["batchSize"], archive["maxBatchDelay"])
    assert snapshot["modelCount"] == 1


def test_inference_service_uses_the_torchserve_runtime_without_an_envelope():
    """The handler reads KServe v1 itself; TorchServe's kserve envelope would answer only a batch's first request."""
    [isvc] = yaml_docs(KSERVE / "inferenceservice.yaml")
    model = isvc["spec"]["predictor"]["model"]
    assert isvc["kind"] == "InferenceService" and model["modelFormat"]["name"] == "pytorch"
    assert model["runtime"] == "kserve-torchserve" and model["storageUri"] and model["image"]
    assert "serviceEnvelope" not in isvc["metadata"].get("labels", {}) and "service_envelope" not in KSERVE_CONFIG
    assert str(model["securityContext"]["runAsUser"]) == last("kserve", "USER").split(":")[0]


def test_the_transformer_speaks_v2_and_asks_the_predictor_in_v1():
    [isvc] = yaml_docs(KSERVE / "inferenceservice.yaml")
    [container] = isvc["spec"]["transformer"]["containers"]
    assert container["name"] == "kserve-container"  # the name KServe passes its arguments to
    assert container["args"] == ["--predictor_protocol", "v1"]
    assert str(container["securityContext"]["runAsUser"]) == last("open-inference", "USER").split(":")[0]
    assert "open_inference.py" in last("open-inference", "ENTRYPOINT")


def run_bundle(model_store: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(KSERVE / "bundle.py"), "--model-store", str(model_store), "--out", str(out)],
        capture_output=True, text=True, timeout=30,
    )


def test_bundle_lays_out_what_kserve_mounts_and_nothing_stale(tmp_path):
    store = tmp_path / "model_store"
    store.mkdir()
    for name in ("asl-int8.mar", "asl-fp32.mar", "asl-old.mar"):
        (store / name).write_bytes(name.encode())
    out = tmp_path / "kserve"
    (out / "model-store").mkdir(parents=True)
    (out / "model-store" / "stale.mar").write_bytes(b"old")
    result = run_bundle(store, out)
    assert result.returncode == 0, result.stderr
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["config/config.properties", "model-store/asl-int8.mar"]
    assert (out / "config" / "config.properties").read_text() == (KSERVE / "config.properties").read_text()
    assert (out / "model-store" / "asl-int8.mar").read_bytes() == b"asl-int8.mar"


def test_bundle_refuses_to_build_without_the_archives(tmp_path):
    result = run_bundle(tmp_path / "empty", tmp_path / "kserve")
    assert result.returncode == 1
    assert "asl-int8.mar" in result.stderr and "make archive" in result.stderr
    assert not (tmp_path / "kserve").exists()


# --- the health probe, against a stand-in TorchServe ------------------------------------------


class FakeTorchServe(BaseHTTPRequestHandler):
    """Answers /ping and the management API like TorchServe 0.12; records the tokens it was sent."""

    versions: ClassVar[list[dict]] = []
    tokens: ClassVar[list[tuple[str, str | None]]] = []
    status = 200

    def do_GET(self):
        self.tokens.append((self.path, self.headers.get("Authorization")))
        body = {"/ping": {"status": "Healthy"}, "/models": {"models": []}}.get(self.path, self.versions)
        payload = json.dumps(body).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_server():
    FakeTorchServe.versions, FakeTorchServe.tokens, FakeTorchServe.status = [], [], 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeTorchServe)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def run_probe(mode: str, url: str, key_file: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "ASL_INFERENCE_URL": url, "ASL_MANAGEMENT_URL": url, "ASL_KEY_FILE": str(key_file)}
    command = [sys.executable, str(PROBE), mode]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)


def version(name: str, *statuses: str) -> dict:
    return {"modelVersion": name, "workers": [{"status": s} for s in statuses]}


def write_keys(path: Path) -> Path:
    path.write_text(json.dumps({"inference": {"key": "inf-key"}, "management": {"key": "mgmt-key"}}))
    return path


def test_probe_ready_sends_each_api_its_key_and_passes_when_every_version_is_ready(fake_server, tmp_path):
    FakeTorchServe.versions = [version("1.0-int8", "READY"), version("1.0-fp32", "UNLOADING", "READY")]
    result = run_probe("ready", fake_server, write_keys(tmp_path / "key_file.json"))
    assert result.returncode == 0, result.stderr
    assert FakeTorchServe.tokens == [("/ping", "Bearer inf-key"), ("/models/asl/all", "Bearer mgmt-key")]


def test_probe_ready_fails_naming_the_version_without_a_ready_worker(fake_server, tmp_path):
    FakeTorchServe.versions = [version("1.0-int8", "READY"), version("1.0-fp32", "UNLOADING")]
    result = run_probe("ready", fake_server, write_keys(tmp_path / "key_file.json"))
    assert result.returncode == 1 and "1.0-fp32" in result.stderr and "1.0-int8" not in result.stderr


def test_probe_live_fails_on_a_refused_token_and_sends_none_without_a_key_file(fake_server, tmp_path):
    FakeTorchServe.status = 400  # what TorchServe answers to a missing or wrong token
    result = run_probe("live", fake_server, tmp_path / "absent.json")
    assert result.returncode == 1 and "400" in result.stderr
    assert FakeTorchServe.tokens == [("/models", None)]


def test_probe_fails_when_nothing_listens(tmp_path):
    result = run_probe("live", "http://127.0.0.1:9", tmp_path / "absent.json")  # discard port: closed
    assert result.returncode == 1 and "live:" in result.stderr


def test_probe_defaults_are_the_config_addresses():
    source = PROBE.read_text()
    for name in ("inference", "management"):
        default = re.search(rf'"ASL_{name.upper()}_URL", "([^"]+)"', source).group(1)
        assert default == CONFIG[f"{name}_address"]
