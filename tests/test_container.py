"""The runtime image for real: built from this checkout, started, asked, stopped and started again.

Runs where deploy/container/engine.sh finds a container engine (a Docker daemon, or podman) and skips
saying why elsewhere. The build goes through the engine's layer cache: an unchanged checkout rebuilds
in seconds and a changed one is rebuilt, so the image under test is always this checkout's. Build,
cold-start and stop times are printed, not asserted: they measure the machine as much as the image.
"""

import json
import os
import shutil
import subprocess
import time
import uuid

import pytest
import requests
import yaml

from asl_serve.handler import ts_config
from asl_serve.harness.server import free_ports
from asl_serve.layout import REPO, SAMPLES
from asl_serve.model.config import MODEL_NAME

ENGINE_SH = REPO / "deploy" / "container" / "engine.sh"
IMAGE = "asl-serve:0.1.0"
KEY_FILE = "/var/lib/asl/key_file.json"  # the image's WORKDIR: TorchServe writes its keys there
SIGKILLED = 128 + 9  # the exit status of a container still running when its grace period ran out


def engine(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(ENGINE_SH), *args], capture_output=True, text=True, timeout=timeout, check=check)


def find_engine() -> str | None:
    """Why no container can run here, or None when one can."""
    found = engine("name", timeout=60, check=False)
    return None if found.returncode == 0 else found.stderr.strip() or "deploy/container/engine.sh name failed"


NO_ENGINE = find_engine()
pytestmark = [
    pytest.mark.skipif(NO_ENGINE is not None, reason=str(NO_ENGINE)),
    pytest.mark.timeout(2400),  # a cold build makes the base image and installs torch first
]


def configured_versions() -> set[str]:
    """The versions of the model that config.properties (baked into the image) loads at start-up."""
    return set(json.loads(ts_config.read()["models"])[MODEL_NAME])


GRACE_S = int(yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["torchserve"]
              ["stop_grace_period"].rstrip("s"))


def report(request, line: str) -> None:
    """Print a figure past pytest's output capture."""
    with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
        print(f"\n[container] {line}", end="")


@pytest.fixture(scope="module")
def image(request, model_store, tmp_path_factory) -> str:
    """`make image`: the runtime image of this checkout, with its archives (model_store/)."""
    log = tmp_path_factory.mktemp("image") / "build.log"
    started = time.monotonic()
    with log.open("w") as out:
        built = subprocess.run([str(ENGINE_SH), "image"], stdout=out, stderr=subprocess.STDOUT, timeout=2100,
                               env={**os.environ, "IMAGE": IMAGE})
    if built.returncode != 0:
        pytest.fail("the image did not build:\n" + "\n".join(log.read_text().splitlines()[-40:]))
    report(request, f"image built in {time.monotonic() - started:.0f} s (layer cache included)")
    return IMAGE


class Container:
    """One container of the image, its published REST ports found through the engine."""

    def __init__(self, name: str):
        self.name = name

    def url(self, port: int) -> str:
        published = engine("port", self.name, f"{port}/tcp").stdout.split()[0]  # 127.0.0.1:HOSTPORT
        return f"http://{published}"

    def key(self, kind: str) -> str:
        return json.loads(engine("exec", self.name, "cat", KEY_FILE).stdout)[kind]["key"]

    def healthy(self) -> float:
        """Seconds until the image's health check (deploy/probe.py ready) passes."""
        started = time.monotonic()
        result = engine("healthy", self.name, "300", timeout=330, check=False)
        assert result.returncode == 0, result.stderr
        return time.monotonic() - started

    def versions(self) -> dict[str, list[str]]:
        """Worker states per version of the model, from the management API."""
        answer = requests.get(f"{self.url(8081)}/models/{MODEL_NAME}/all", timeout=10,
                              headers={"Authorization": f"Bearer {self.key('management')}"})
        answer.raise_for_status()
        return {v["modelVersion"]: [w["status"] for w in v["workers"]] for v in answer.json()}

    def predict(self, body: bytes) -> requests.Response:
        return requests.post(f"{self.url(8080)}/predictions/{MODEL_NAME}", data=body, timeout=30, headers={
            "Authorization": f"Bearer {self.key('inference')}", "Content-Type": "application/octet-stream"})

    def state(self, field: str) -> str:
        return engine("inspect", "--format", f"{{{{.State.{field}}}}}", self.name).stdout.strip()


@pytest.fixture(scope="module")
def container(request, image):
    """The image started as `make compose-up` starts it, its ports on free loopback ports of the host."""
    name = f"asl-serve-test-{uuid.uuid4().hex[:8]}"
    ports = [arg for port in (8080, 8081) for arg in ("--publish", f"127.0.0.1::{port}")]
    engine("run", "--detach", "--name", name, *ports, image)
    server = Container(name)
    try:
        report(request, f"cold start, container start to every version READY: {server.healthy():.1f} s")
        yield server
    finally:
        engine("rm", "--force", name, check=False)


def ready(versions: dict[str, list[str]]) -> bool:
    return all("READY" in states for states in versions.values())


def test_a_photo_gets_its_letter_and_a_corrupt_one_a_json_4xx(container):
    photo = sorted((SAMPLES / "B").glob("*.jpg"))[0].read_bytes()
    answer = container.predict(photo)
    assert answer.status_code == 200, answer.text
    assert answer.json()["label"] == "B"
    corrupt = container.predict(photo[:2000])  # a truncated JPEG
    assert 400 <= corrupt.status_code < 500
    assert corrupt.json()["type"] == "CorruptImage" and corrupt.json()["code"] == corrupt.status_code


def test_requests_without_the_token_are_refused(container):
    answer = requests.post(f"{container.url(8080)}/predictions/{MODEL_NAME}", data=b"x", timeout=10)
    assert answer.status_code == 400 and answer.json()["type"] == "InvalidKeyException"


def test_every_process_runs_as_a_non_root_user(container):
    listing = (  # a process may end while it is listed (a health check's, say)
        "import pathlib, contextlib\n"
        "for status in pathlib.Path('/proc').glob('[0-9]*/status'):\n"
        "    with contextlib.suppress(OSError):\n"
        "        fields = dict(line.split(':', 1) for line in status.read_text().splitlines())\n"
        "        print(fields['Name'].strip(), fields['Uid'].split()[0])\n"
    )
    processes = [line.split() for line in engine("exec", container.name, "python", "-c", listing).stdout.splitlines()]
    names = {name for name, _ in processes}
    assert {"java", "tini"} <= names and any(name.startswith("python") for name in names)  # frontend, workers
    assert all(uid != "0" for _, uid in processes), processes


def test_stops_within_its_grace_period_and_restarts_with_the_configured_versions(request, container):
    assert set(container.versions()) == configured_versions() and ready(container.versions())
    old_key = container.key("inference")
    started = time.monotonic()
    engine("stop", "-t", str(GRACE_S), container.name, timeout=GRACE_S + 60)
    report(request, f"stopped in {time.monotonic() - started:.1f} s (grace period {GRACE_S} s), "
                    f"exit status {container.state('ExitCode')}")
    assert container.state("Running") == "false"
    assert int(container.state("ExitCode")) != SIGKILLED  # it stopped on SIGTERM, before the SIGKILL

    engine("start", container.name)
    report(request, f"restart to every version READY: {container.healthy():.1f} s")
    versions = container.versions()
    assert set(versions) == configured_versions() and ready(versions), versions
    assert container.key("inference") != old_key  # new keys at every start
    assert container.predict(sorted((SAMPLES / "A").glob("*.jpg"))[0].read_bytes()).json()["label"] == "A"


COMPOSE_PORTS = ("ASL_INFERENCE_PORT", "ASL_MANAGEMENT_PORT", "ASL_METRICS_PORT", "ASL_GRPC_INFERENCE_PORT",
                 "ASL_GRPC_MANAGEMENT_PORT", "ASL_DEMO_PORT")  # docker-compose.yml's host ports


def make(target: str, env: dict, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", target], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_compose_up_serves_through_torchserve_and_the_demo_then_compose_down_removes_it(request, image):
    """`make compose-up` as a second stack beside any of yours (its own project name and free host ports):
    a prediction straight from TorchServe, and one through the demo container, which reaches TorchServe
    by its service name (Compose's DNS); then `make compose-down`."""
    if engine("name").stdout.strip() == "podman" and shutil.which("podman-compose") is None:
        pytest.skip("podman-compose is not installed (apt-get install podman-compose aardvark-dns)")
    project = f"asl-serve-test-{uuid.uuid4().hex[:8]}"
    ports = dict(zip(COMPOSE_PORTS, map(str, free_ports(len(COMPOSE_PORTS))), strict=True))
    env = {**os.environ, "COMPOSE_PROJECT": project, **ports}
    key_file = REPO / "build" / "compose" / project / "key_file.json"
    started = time.monotonic()
    try:
        up = make("compose-up", env, timeout=900)
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-3000:]
        report(request, f"make compose-up (image cached) to both services healthy: {time.monotonic() - started:.0f} s")
        photo = sorted((SAMPLES / "C").glob("*.jpg"))[0].read_bytes()
        token = json.loads(key_file.read_text())["inference"]["key"]
        direct = requests.post(f"http://127.0.0.1:{ports['ASL_INFERENCE_PORT']}/predictions/{MODEL_NAME}",
                               data=photo, timeout=30, headers={"Authorization": f"Bearer {token}",
                                                                "Content-Type": "application/octet-stream"})
        assert direct.status_code == 200 and direct.json()["label"] == "C", direct.text
        demo = requests.post(f"http://127.0.0.1:{ports['ASL_DEMO_PORT']}/api/predict", data=photo, timeout=30)
        assert demo.status_code == 200 and demo.json()["label"] == "C", demo.text
    finally:
        down = make("compose-down", env, timeout=300)
        for volume in engine("volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={project}",
                             check=False).stdout.split():
            engine("volume", "rm", volume, check=False)
        shutil.rmtree(key_file.parent, ignore_errors=True)
    assert down.returncode == 0, down.stderr[-2000:]
    left = engine("ps", "-a", "-q", "--filter", f"label=com.docker.compose.project={project}").stdout.split()
    assert left == []


KUBE = REPO / "build" / "kube"
POD = "asl-serve-pod-0"  # podman's name for the Deployment's one pod


def test_kube_play_runs_the_manifests_until_ready_and_predicting_then_kube_down_removes_them(request, image):
    """`make kube-play`: deploy/k8s (Deployment with the sidecar, ConfigMap, the Secret) in a local pod, its
    readiness probes passing and a photo predicted through the sidecar; then `make kube-down`."""
    if engine("name").stdout.strip() != "podman":
        pytest.skip("podman kube play needs podman")
    if shutil.which("catatonit") is None:
        pytest.skip("podman's pod infrastructure needs catatonit where no registry answers (apt-get install catatonit)")
    if engine("pod", "exists", POD, check=False).returncode == 0:
        pytest.skip(f"your make kube-play is running ({POD}): the test would replace it")
    started = time.monotonic()
    try:
        up = make("kube-play", os.environ, timeout=900)
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-3000:]
        report(request, f"make kube-play (image cached) to ready and predicting: {time.monotonic() - started:.0f} s")
        assert "200 B" in up.stdout and "without the token: 401" in up.stdout
        rendered = yaml.safe_load((KUBE / "deployment.yaml").read_text())
        ports = [p for c in rendered["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])]
        assert ports and {p["hostIP"] for p in ports} == {"127.0.0.1"}  # podman would publish on every address
        answer = requests.post((KUBE / "url").read_text(), data=sorted((SAMPLES / "D").glob("*.jpg"))[0].read_bytes(),
                               headers={"Authorization": f"Bearer {(KUBE / 'token').read_text()}",
                                        "Content-Type": "application/octet-stream", "top_k": "2"}, timeout=60)
        assert answer.status_code == 200 and answer.json()["label"] == "D" and len(answer.json()["top_k"]) == 2
    finally:
        down = make("kube-down", os.environ, timeout=300)
    assert down.returncode == 0, down.stderr[-2000:]
    assert engine("pod", "exists", POD, check=False).returncode != 0
    assert engine("secret", "inspect", "asl-serve-api-token", check=False).returncode != 0
