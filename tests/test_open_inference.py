"""The Open Inference Protocol (KServe v2): KServe's own model server (`make serve-kserve`) in front of a real
TorchServe, asked with Triton's official client and with plain JSON."""

import base64
import subprocess
import time
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from asl_serve.harness.server import free_ports
from asl_serve.layout import REPO, sample_photos

KSERVE_PYTHON = REPO / "build" / "kserve-venv" / "bin" / "python"
START_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def open_inference(torchserve):
    """`deploy/kserve/open_inference.py` as `make serve-kserve` runs it, on a free loopback port."""
    if not KSERVE_PYTHON.exists():
        pytest.fail(f"{KSERVE_PYTHON} is missing: run `make kserve-venv` (make test does it for you)")
    [port] = free_ports(1)
    predictor = urlsplit(torchserve.server.inference_url).netloc
    command = [str(KSERVE_PYTHON), str(REPO / "deploy" / "kserve" / "open_inference.py"), "--model_name", "asl",
               "--http_port", str(port), "--predictor_host", predictor, "--predictor_protocol", "v1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/v2/health/ready", timeout=2).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.3)
    else:
        process.kill()
        pytest.fail(f"KServe's model server did not come up at {url}: {process.communicate()[1][-2000:]}")
    yield url
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture
def auth(torchserve) -> dict:
    """TorchServe's inference key, which KServe's server forwards (it holds no secret itself)."""
    return {"Authorization": f"Bearer {torchserve.server.key('inference')}"}


def photos(count: int) -> list[tuple[bytes, str]]:
    return [(path.read_bytes(), label) for path, label in sample_photos()[::7][:count]]


def image_tensor(images: list[bytes]) -> triton.InferInput:
    """The `image` input as Triton's client sends it (binary-tensor extension): each image's base64 text."""
    tensor = triton.InferInput("image", [len(images)], "BYTES")
    tensor.set_data_from_numpy(np.array([base64.b64encode(image) for image in images], dtype=np.object_))
    return tensor


def test_health_and_metadata_follow_the_protocol(open_inference):
    client = triton.InferenceServerClient(urlsplit(open_inference).netloc)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("asl")
    metadata = client.get_model_metadata("asl")
    assert metadata["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": [-1]}]
    assert {(o["name"], o["datatype"]) for o in metadata["outputs"]} == {("label", "BYTES"), ("probability", "FP32")}
    assert requests.get(f"{open_inference}/v2/models/asl/ready", timeout=10).json()["ready"] is True


def test_tritons_client_gets_every_images_label_as_torchserve_answers_it(open_inference, auth, torchserve):
    sent = photos(4)
    client = triton.InferenceServerClient(urlsplit(open_inference).netloc)
    result = client.infer("asl", [image_tensor([image for image, _ in sent])], headers=dict(auth))  # it adds to them
    labels = list(result.as_numpy("label"))  # outputs come as JSON, so text
    assert labels == [label for _, label in sent]
    direct = [requests.post(torchserve.server.inference_url + "/predictions/asl", data=image, headers=auth,
                            timeout=60).json()["probability"] for image, _ in sent]
    assert result.as_numpy("probability") == pytest.approx(direct, abs=1e-6)
    assert result.get_response()["model_version"] == "1.0-int8"


def test_plain_json_with_base64_elements(open_inference, auth):
    sent = photos(2)
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2],
                        "data": [base64.b64encode(image).decode() for image, _ in sent]}]}
    response = requests.post(f"{open_inference}/v2/models/asl/infer", json=body, headers=auth, timeout=60)
    assert response.status_code == 200, response.text
    outputs = {output["name"]: output for output in response.json()["outputs"]}
    assert outputs["label"]["data"] == [label for _, label in sent] and outputs["label"]["shape"] == [2]
    assert all(0 < p <= 1 for p in outputs["probability"]["data"])


def triton_error(url: str, headers: dict, tensor: triton.InferInput) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as raised:
        triton.InferenceServerClient(urlsplit(url).netloc).infer("asl", [tensor], headers=dict(headers))
    return raised.value


def test_errors_keep_their_4xx_meaning(open_inference, auth):
    image, _ = photos(1)[0]
    truncated = triton_error(open_inference, auth, image_tensor([image, image[:2000]]))
    assert truncated.status() == "422" and "CorruptImage: instance 1:" in truncated.message()
    raw = triton.InferInput("image", [1], "BYTES")
    raw.set_data_from_numpy(np.array([image], dtype=np.object_))  # the bytes themselves, not base64 text
    assert triton_error(open_inference, auth, raw).status() == "400"
    no_token = triton_error(open_inference, {}, image_tensor([image]))
    assert no_token.status() == "400" and "InvalidKeyException" in no_token.message()  # TorchServe's own answer
    for inputs, reason in [
        ([{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["not base64!"]}], "base64"),
        ([{"name": "image", "datatype": "FP32", "shape": [1], "data": [1.0]}], "one BYTES input"),
        ([{"name": "image", "datatype": "BYTES", "shape": [17], "data": ["eA=="] * 17}], "1 to 16 images"),
    ]:
        response = requests.post(f"{open_inference}/v2/models/asl/infer", json={"inputs": inputs}, headers=auth,
                                 timeout=60)
        assert response.status_code == 400 and reason in response.json()["error"], response.text
