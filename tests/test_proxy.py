"""The Kubernetes auth proxy's nginx config (deploy/k8s/auth-proxy.yaml), run by a real nginx in front of
a real TorchServe: it must pass a `top_k` header through (nginx drops underscored names by default)."""

import os
import shutil
import subprocess

import pytest
import requests
import yaml

from asl_serve.harness.poll import poll
from asl_serve.harness.server import free_ports
from asl_serve.layout import REPO, sample_photos

AUTH_PROXY = REPO / "deploy" / "k8s" / "auth-proxy.yaml"
TOKEN = "0123456789abcdef" * 4  # as long as docs/deploy.md's `openssl rand -hex 32`


def template() -> str:
    return yaml.safe_load(AUTH_PROXY.read_text())["data"]["default.conf.template"]


def test_proxy_config_forwards_underscored_headers():
    assert "underscores_in_headers on;" in template()


@pytest.fixture(scope="module")
def proxy(torchserve, tmp_path_factory):
    """nginx with the ConfigMap's server block: its token rendered as the image's envsubst would, its port and
    upstream moved to this test's TorchServe, which (unlike the pod's) checks its own token, so the proxy
    sends that instead of stripping the header."""
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if nginx is None:
        pytest.skip("needs nginx on PATH (apt install nginx-light) to run the proxy config")
    server = torchserve.server
    (port,) = free_ports(1)
    upstream = server.inference_url.removeprefix("http://")
    site = (template().replace("${ASL_API_TOKEN}", TOKEN).replace("listen 8000;", f"listen 127.0.0.1:{port};")
            .replace("http://127.0.0.1:8080", f"http://{upstream}")
            .replace('proxy_set_header Authorization "";',
                     f'proxy_set_header Authorization "Bearer {server.key("inference")}";'))
    root = tmp_path_factory.mktemp("nginx")
    (root / "logs").mkdir()
    workers_as = "user root;\n" if os.geteuid() == 0 else ""  # as root, nginx's workers would be nobody: no tmp access
    (root / "nginx.conf").write_text(
        f"{workers_as}pid {root}/nginx.pid;\nerror_log {root}/logs/error.log;\nevents {{}}\n"
        f"http {{\n access_log {root}/logs/access.log;\n client_body_temp_path {root};\n"
        f" proxy_temp_path {root};\n{site}\n}}\n"
    )
    process = subprocess.Popen([nginx, "-p", str(root), "-c", str(root / "nginx.conf"), "-g", "daemon off;"],
                               stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    # until nginx listens (any answer), or has exited
    poll(lambda: process.poll() is not None or requests.get(url + "/none", timeout=1) is not None, 10,
         "nginx listens", ignore=(requests.ConnectionError,))
    assert process.poll() is None, process.stderr.read().decode()
    yield url
    process.terminate()
    process.wait(timeout=10)


def test_top_k_header_survives_the_proxy(proxy):
    image = sample_photos()[0][0].read_bytes()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/octet-stream", "top_k": "2"}
    answer = requests.post(proxy + "/predictions/asl", data=image, headers=headers, timeout=60)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["top_k"]) == 2
    refused = requests.post(proxy + "/predictions/asl", data=image, headers={**headers, "Authorization": "x"},
                            timeout=60)
    assert refused.status_code == 401
