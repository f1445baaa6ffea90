"""deploy/k8s run on this machine with `podman kube play` (`make kube-play`, `make kube-down`).

    up    the Deployment with its ConfigMap (auth-proxy.yaml) and the Secret asl-serve-api-token (a fresh
          random token, in build/kube/token), ports published on 127.0.0.1 only; waits for readiness, then
          predicts a committed photo through the sidecar with the token (200) and without it (401)
    down  removes the pod and the secret (nothing to remove is fine)

Podman runs Deployments, ConfigMaps and secretKeyRef, not Services or HorizontalPodAutoscalers, and no
readiness probe, so `up` runs the manifest's readiness probes itself. Where the sidecar's image cannot be
pulled (no registry), a local stand-in is built (auth-proxy-standin/). What this does and does not prove
about a cluster: docs/deploy.md, "Kubernetes".
"""

import argparse
import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time

import requests
import yaml

from asl_serve.harness.server import free_ports
from asl_serve.layout import REPO, sample_photos

K8S = REPO / "deploy" / "k8s"
ENGINE = REPO / "deploy" / "container" / "engine.sh"
OUT = REPO / "build" / "kube"
RENDERED = OUT / "deployment.yaml"
SECRET = "asl-serve-api-token"
STANDIN = "localhost/asl-auth-proxy:stand-in"


def engine(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(ENGINE), *args], capture_output=True, text=True, check=check, **kwargs)


def sidecar_image(image: str) -> str:
    """The sidecar's image if it is here or can be pulled, else the local stand-in (built once)."""
    if engine("inspect", "--type", "image", image, check=False).returncode == 0:
        return image
    if engine("pull", "-q", image, check=False, timeout=120).returncode == 0:
        return image
    if engine("inspect", "--type", "image", STANDIN, check=False).returncode != 0:
        print(f"{image} cannot be pulled: building the stand-in {STANDIN}", flush=True)
        subprocess.run([str(ENGINE), "image", "-f", str(K8S / "auth-proxy-standin" / "Containerfile")],
                       check=True, env={**os.environ, "IMAGE": STANDIN})
    return STANDIN


def render() -> tuple[dict, dict[str, int]]:
    """deployment.yaml with every container port published on a free 127.0.0.1 port (podman would publish
    them on every address) and the sidecar's image as `sidecar_image` finds it."""
    deployment = yaml.safe_load((K8S / "deployment.yaml").read_text())
    containers = deployment["spec"]["template"]["spec"]["containers"]
    for container in containers:
        if container["name"] == "auth-proxy":
            container["image"] = sidecar_image(container["image"])
    ports = [port for container in containers for port in container.get("ports", [])]
    for port, host_port in zip(ports, free_ports(len(ports)), strict=True):
        port.update(hostIP="127.0.0.1", hostPort=host_port)
    published = {port["name"]: port["hostPort"] for port in ports}
    OUT.mkdir(parents=True, exist_ok=True)
    RENDERED.write_text(yaml.safe_dump(deployment, sort_keys=False))
    return deployment, published


def create_secret() -> str:
    """A fresh token as the podman secret that secretKeyRef reads: JSON of base64 values, as a Secret's data."""
    token = secrets.token_hex(32)
    engine("secret", "rm", SECRET, check=False)
    with tempfile.NamedTemporaryFile("w", suffix=".json") as data:
        json.dump({"token": base64.b64encode(token.encode()).decode()}, data)
        data.flush()
        engine("secret", "create", SECRET, data.name)
    token_file = OUT / "token"
    token_file.touch(mode=0o600)
    token_file.write_text(token)
    return token


def wait_ready(deployment: dict, pod: str, published: dict[str, int]) -> float:
    """Seconds until every container's readinessProbe passes, run as the kubelet would (exec in the
    container, or HTTP to its published port), within the startup probe's allowance."""
    spec = deployment["spec"]["template"]["spec"]
    startup = next(c["startupProbe"] for c in spec["containers"] if "startupProbe" in c)
    deadline = time.monotonic() + startup["periodSeconds"] * startup["failureThreshold"]
    started = time.monotonic()
    for container in spec["containers"]:
        probe = container["readinessProbe"]
        while not probe_passes(probe, f"{pod}-{container['name']}", published):
            if time.monotonic() > deadline:
                logs = engine("logs", "--tail", "20", f"{pod}-{container['name']}", check=False)
                sys.exit(f"error: {container['name']} is not ready:\n{logs.stdout}{logs.stderr}")
            time.sleep(2)
    return time.monotonic() - started


def probe_passes(probe: dict, container: str, published: dict[str, int]) -> bool:
    if "exec" in probe:
        return engine("exec", container, *probe["exec"]["command"], check=False, timeout=30).returncode == 0
    url = f"http://127.0.0.1:{published[probe['httpGet']['port']]}{probe['httpGet']['path']}"
    try:
        return requests.get(url, timeout=5).ok
    except requests.RequestException:
        return False


def up() -> int:
    deployment, published = render()
    token = create_secret()
    played = engine("kube", "play", "--replace", "--configmap", str(K8S / "auth-proxy.yaml"), str(RENDERED),
                    check=False, timeout=600)
    if played.returncode != 0:
        sys.exit(f"error: podman kube play failed:\n{played.stdout[-2000:]}{played.stderr[-2000:]}")
    pod = f"{deployment['metadata']['name']}-pod-0"  # podman names a Deployment's one pod so
    print(f"pod {pod} ready in {wait_ready(deployment, pod, published):.0f} s", flush=True)
    url = f"http://127.0.0.1:{published['http']}/predictions/asl"
    (OUT / "url").write_text(url)
    sample = next(path for path, label in sample_photos() if label == "B")
    answer = requests.post(url, data=sample.read_bytes(), timeout=60,
                           headers={"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"})
    refused = requests.post(url, data=sample.read_bytes(), timeout=60)
    print(f"{sample.relative_to(REPO)} through the sidecar: {answer.status_code} {answer.json().get('label')}; "
          f"without the token: {refused.status_code}")
    if answer.status_code != 200 or refused.status_code != 401:
        return 1
    print(f"asl on {url} (token in {OUT / 'token'}); metrics on 127.0.0.1:{published['metrics']}; "
          "remove it with: make kube-down")
    return 0


def down() -> int:
    if not RENDERED.exists():
        print("nothing to remove: make kube-play has not run here")
        return 0
    removed = engine("kube", "down", str(RENDERED), check=False, timeout=300)
    engine("secret", "rm", SECRET, check=False)
    for name in ("url", "token", "deployment.yaml"):
        (OUT / name).unlink(missing_ok=True)
    print(removed.stdout.strip() or removed.stderr.strip() or "removed")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("up", "down"))
    return up() if parser.parse_args().command == "up" else down()


if __name__ == "__main__":
    sys.exit(main())
