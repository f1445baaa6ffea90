"""The served model over REST, against a real TorchServe started from the repo's config.properties."""

import base64
import json
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from asl_serve.client.rest import RestClient
from asl_serve.handler.asl_handler import EVALUATION, METADATA
from asl_serve.harness.archives import model_config
from asl_serve.harness.images import encode
from asl_serve.harness.server import private_torchserve
from asl_serve.layout import MODEL_STORE, REPO, sample_photos
from asl_serve.model.classes import CLASS_NAMES
from asl_serve.training.arms_length import to_pil
from tests.conftest import ARCHIVES, MARKED, ROBOFLOW, VERSIONS, room_without_the_hand, samples, shared_path


def post(server, body: bytes | None = None, version: str | None = None, headers: dict | None = None, **kw):
    path = "/predictions/asl" + (f"/{version}" if version else "")
    auth = {"Authorization": f"Bearer {server.key('inference')}"}
    if body is not None:
        auth["Content-Type"] = "application/octet-stream"
    return requests.post(server.inference_url + path, data=body, headers={**auth, **(headers or {})}, timeout=60, **kw)


def test_ping_needs_the_inference_token(torchserve):
    server = torchserve.server
    url = server.inference_url + "/ping"
    response = requests.get(url, headers={"Authorization": f"Bearer {server.key('inference')}"}, timeout=10)
    assert response.status_code == 200 and response.json()["status"] == "Healthy"
    assert requests.get(url, timeout=10).status_code == 400  # TorchServe 0.12 guards /ping too


@pytest.mark.parametrize("version", VERSIONS)
def test_official_test_images_are_all_right(torchserve, version):
    images = sorted(shared_path("grassknoted", "test").glob("*.jpg"))
    assert len(images) == 28
    wrong = []
    for path in images:
        answer = post(torchserve.server, path.read_bytes(), version).json()
        if answer["label"] != path.stem.removesuffix("_test"):
            wrong.append((path.name, answer["label"]))
    assert wrong == []


@pytest.mark.parametrize("version", VERSIONS)
def test_committed_samples_are_recognised(torchserve, version):
    """Held-out photos of other signers than the Kaggle set, committed with the repo."""
    samples = sample_photos()
    right = sum(post(torchserve.server, p.read_bytes(), version).json()["label"] == label for p, label in samples)
    assert right / len(samples) >= 0.9


def test_three_input_forms_agree(torchserve):
    path, label = sample_photos()[4]
    data = path.read_bytes()
    server = torchserve.server
    raw = post(server, data).json()
    multipart = post(server, files={"data": (path.name, data, "image/jpeg")}).json()
    as_json = post(server, json={"data": base64.b64encode(data).decode()}).json()
    assert raw == multipart == as_json
    assert raw["label"] == label and len(raw["top_k"]) == 5
    assert raw["top_k"][0] == {"label": raw["label"], "probability": raw["probability"]}
    assert sorted(raw["top_k"], key=lambda t: -t["probability"]) == raw["top_k"]


def test_top_k_from_header_form_field_and_json(torchserve):
    data = sample_photos()[0][0].read_bytes()
    server = torchserve.server
    assert len(post(server, data, headers={"top_k": "3"}).json()["top_k"]) == 3
    assert len(post(server, files={"data": data, "top_k": (None, "1")}).json()["top_k"]) == 1
    everything = post(server, json={"data": base64.b64encode(data).decode(), "top_k": 29}).json()["top_k"]
    assert sorted(t["label"] for t in everything) == sorted(CLASS_NAMES)


@pytest.mark.parametrize("bad", ["0", "30", "abc", "-1"])
def test_bad_top_k_is_a_400(torchserve, bad):
    response = post(torchserve.server, sample_photos()[0][0].read_bytes(), headers={"top_k": bad})
    assert response.status_code == 400
    assert response.json()["type"] == "BadRequest" and "top_k" in response.json()["message"]


@pytest.mark.parametrize(
    "kwargs, status, kind",
    [
        ({"body": b"hello"}, 415, "UnsupportedMediaType"),
        ({"json": {"image": "no data field"}}, 400, "BadRequest"),
        ({"json": {"data": "***not base64***"}}, 400, "BadRequest"),
        ({"files": {"other": b"x"}}, 400, "BadRequest"),
    ],
)
def test_bad_sentget_json_errors(torchserve, kwargs, status, kind):
    response = post(torchserve.server, **kwargs)
    assert response.status_code == status
    body = response.json()
    assert body["code"] == status and body["type"] == kind and body["message"]


@pytest.mark.parametrize("version", [None, *VERSIONS])
def test_every_answer_names_its_version(torchserve, version):
    served = version or RestClient(torchserve.server).default_version()
    good = post(torchserve.server, sample_photos()[0][0].read_bytes(), version)
    bad = post(torchserve.server, b"not an image", version)
    assert (good.status_code, bad.status_code) == (200, 415)
    for response in (good, bad):
        assert response.headers["X-Model-Version"] == served
        assert response.json()["model_version"] == served
        assert "ts_stream_next" not in response.headers  # gRPC streams only


def test_shipped_workers_are_one_int8_per_core_and_one_of_each_other_version(rest):
    """config.properties: int8 (the default) takes every core, the others one worker, each one PyTorch thread."""
    workers = {v["modelVersion"]: [w["status"] for w in v["workers"]] for v in rest.describe()}
    assert workers == {"1.0-int8": ["READY"] * len(os.sched_getaffinity(0)), "1.0-fp32": ["READY"],
                       "1.0-onnx": ["READY"]}
    assert all(model_config(MODEL_STORE / name)["handler"]["threads"] == 1 for name in ARCHIVES)


def test_archives_carry_the_same_core_and_nothing_else():
    """All of model/ (it holds what serving needs and nothing of training), byte for byte, as asl_serve.model."""
    core = {f"asl_serve/{p.relative_to(REPO).as_posix()}": p for p in sorted((REPO / "model").rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}
    core["asl_serve/__init__.py"] = REPO / "asl_serve" / "__init__.py"
    assert "asl_serve/model/hands.py" in core and not any("network" in name or "asl_lite0" in name for name in core)
    for name in ARCHIVES:
        with zipfile.ZipFile(MODEL_STORE / name) as archive:
            names = set(archive.namelist())
            for member, source in core.items():
                assert archive.read(member) == source.read_bytes()
            manifest = json.loads(archive.read("MAR-INF/MANIFEST.json"))
            metadata = json.loads(archive.read(METADATA))
        assert manifest["model"]["modelName"] == "asl"
        expected = set(core) | {
            "MAR-INF/MANIFEST.json", "asl_handler.py", "index_to_name.json", "model-config.yaml", METADATA,
            manifest["model"]["serializedFile"],
        }
        assert names - {EVALUATION} == expected  # evaluation.json when reports/ had one at build time
        assert metadata["variant"] == name.removeprefix("asl-").removesuffix(".mar")


@pytest.fixture(scope="module")
def batching_server(model_store):
    """A server whose one int8 worker waits long enough to gather 8 concurrent requests into one batch."""
    models = {"asl": {"1.0-int8": {"marName": "asl-int8.mar", "defaultVersion": True}}}
    settings = {"maxBatchDelay": 3000, "minWorkers": 1, "maxWorkers": 1}
    with private_torchserve(model_store, ["asl-int8.mar"], settings,
                            {"load_models": "asl-int8.mar", "models": json.dumps(models)}) as server:
        yield server


def batch_sizes(server) -> tuple[float, float]:
    """How many batches the server has run, and how many requests they held, so far."""
    try:
        batches = samples(server, "asl_batch_size")
    except KeyError:  # no batch yet
        return 0.0, 0.0
    return batches["asl_batch_size_count"], batches["asl_batch_size_sum"]


def test_one_bad_image_fails_alone_in_its_batch(batching_server):
    server = batching_server.server
    rest = RestClient(server)
    description = rest.describe()[0]
    assert (description["maxBatchDelay"], len(description["workers"])) == (3000, 1)
    pids_before = [w["pid"] for w in description["workers"]]
    before = batch_sizes(server)
    good = sample_photos()[::8][:6]
    corrupt = good[0][0].read_bytes()[:2000]  # a truncated JPEG
    bad_hint = {"roi": '{"x": 7, "y": 0.5, "size": 0.2, "angle": 0}'}  # a tracking hint outside the image
    sent = [(p.read_bytes(), {}) for p, _ in good] + [(corrupt, {}), (good[1][0].read_bytes(), bad_hint)]
    with ThreadPoolExecutor(len(sent)) as pool:
        responses = list(pool.map(lambda request: post(server, request[0], headers=request[1]), sent))
    assert [r.status_code for r in responses] == [200] * 6 + [422, 400]
    assert [r.json()["label"] for r in responses[:6]] == [label for _, label in good]
    assert [r.json()["type"] for r in responses[6:]] == ["CorruptImage", "BadRequest"]
    count, total = (now - then for now, then in zip(batch_sizes(server), before, strict=True))
    assert (count, total) == (1, 8)  # all eight in one batch
    assert [w["pid"] for w in rest.describe()[0]["workers"]] == pids_before


def test_a_describe_header_is_answered_alone_and_fails_no_one_else(batching_server):
    """10 rounds of 8 concurrent requests, the first of each carrying `describe: True`: that one gets the
    metadata, the seven batched with it their predictions."""
    server = batching_server.server
    before = batch_sizes(server)
    good = sample_photos()[::8][:7]
    sent = [(good[0][0].read_bytes(), {"describe": "True"})] + [(p.read_bytes(), {}) for p, _ in good]
    for _ in range(10):
        with ThreadPoolExecutor(len(sent)) as pool:
            responses = list(pool.map(lambda request: post(server, request[0], headers=request[1]), sent))
        assert [r.status_code for r in responses] == [200] * 8
        assert responses[0].json()["classes"] == list(CLASS_NAMES)
        assert [r.json()["label"] for r in responses[1:]] == [label for _, label in good]
    count, total = (now - then for now, then in zip(batch_sizes(server), before, strict=True))
    assert total == 80 and count < 80  # the requests were batched


def test_answers_carry_the_hand_or_null(torchserve):
    """A marked photo's answer places the hand on the marked one; a photo of the same room without the hand
    is answered as usual, with `hand` null."""
    name = sorted(MARKED)[0]
    answer = post(torchserve.server, (ROBOFLOW / name).read_bytes()).json()
    hand = answer["hand"]
    assert set(hand) == {"box", "landmarks", "handedness", "score", "tracked", "roi"}
    assert len(hand["landmarks"]) == 21 and not hand["tracked"]
    left, top, right, bottom = hand["box"]
    marked = MARKED[name]
    assert marked[0] - 0.05 <= left < right <= marked[2] + 0.05
    assert marked[1] - 0.05 <= top < bottom <= marked[3] + 0.05
    room = post(torchserve.server, encode(to_pil(room_without_the_hand(name).contiguous()), "PNG"))
    assert room.status_code == 200 and room.json()["hand"] is None and room.json()["label"] in CLASS_NAMES


def test_the_roi_hint_tracks_the_hand_in_every_input_form(torchserve):
    """The answer's `hand.roi`, sent back with the same photo as a header, a multipart field or a JSON field:
    each answer comes from the tracked hand (no palm detection) and agrees with the others."""
    name = sorted(MARKED)[0]
    data = (ROBOFLOW / name).read_bytes()
    server = torchserve.server
    detected = post(server, data).json()
    roi = detected["hand"]["roi"]
    header = post(server, data, headers={"roi": json.dumps(roi)}).json()
    multipart = post(server, files={"data": (name, data, "image/jpeg"), "roi": (None, json.dumps(roi))}).json()
    as_json = post(server, json={"data": base64.b64encode(data).decode(), "roi": roi}).json()
    assert header == multipart == as_json
    assert header["hand"]["tracked"] and header["label"] == detected["label"]


BAD_ROI = {
    "centre outside": '{"x": 1.5, "y": 0.5, "size": 0.2, "angle": 0}',
    "NaN": '{"x": NaN, "y": 0.5, "size": 0.2, "angle": 0}',
    "wrong shape": "[0.5, 0.5, 0.2, 0]",
    "not JSON": "roi please",
}


@pytest.mark.parametrize("roi", BAD_ROI.values(), ids=BAD_ROI.keys())
def test_a_bad_roi_hint_is_a_400_with_a_reason(torchserve, roi):
    data = (ROBOFLOW / sorted(MARKED)[0]).read_bytes()
    for response in (post(torchserve.server, data, headers={"roi": roi}),
                     post(torchserve.server, files={"data": ("photo.jpg", data), "roi": (None, roi)})):
        assert response.status_code == 400
        assert response.json()["type"] == "BadRequest" and "roi" in response.json()["message"]


def kserve_v1(server, instances, path: str = "/v1/models/asl:predict") -> requests.Response:
    """A KServe v1 request as KServe's TorchServe wrapper forwards it (`/predictions/asl`) or a client sends
    it to TorchServe's own v1 route."""
    return requests.post(server.inference_url + path, json={"instances": instances}, timeout=60,
                         headers={"Authorization": f"Bearer {server.key('inference')}"})


@pytest.mark.parametrize("path", ["/v1/models/asl:predict", "/predictions/asl"])
def test_kserve_v1_answers_every_instance_with_an_object(torchserve, path):
    server = torchserve.server
    photos = sample_photos()[::9][:3]
    alone = [post(server, p.read_bytes()).json() for p, _ in photos]
    response = kserve_v1(server, [{"data": base64.b64encode(p.read_bytes()).decode()} for p, _ in photos], path)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["label"] for p in predictions] == [label for _, label in photos]
    assert predictions == alone  # objects, not JSON strings, and each as a request of its own gets it
    one = kserve_v1(server, [{"data": base64.b64encode(photos[0][0].read_bytes()).decode(), "top_k": 2}], path)
    assert len(one.json()["predictions"][0]["top_k"]) == 2


@pytest.mark.parametrize(
    "instances, status, kind, message",
    [
        ("not a list", 400, "BadRequest", '"instances" must be a list'),
        ([], 400, "BadRequest", '"instances" must be a list'),
        ([{"data": "eA=="}] * 17, 400, "BadRequest", "1 to 16"),
        ([{"image": "x"}], 400, "BadRequest", "instance 0: "),
        ([None, {"data": "***"}], 400, "BadRequest", "instance 0: "),
    ],
)
def test_a_bad_kserve_v1_request_is_a_4xx_naming_the_instance(torchserve, instances, status, kind, message):
    response = kserve_v1(torchserve.server, instances)
    assert response.status_code == status
    assert response.json()["type"] == kind and message in response.json()["message"]


def test_a_bad_kserve_v1_instance_fails_its_request_alone_in_its_batch(batching_server):
    """A v1 request whose second instance is a truncated JPEG gets that instance's 422; the requests and the
    v1 request batched with it are answered."""
    server = batching_server.server
    good = sample_photos()[::8][:6]
    encoded = [base64.b64encode(p.read_bytes()).decode() for p, _ in good]
    corrupt = base64.b64encode(good[0][0].read_bytes()[:2000]).decode()
    sent = [[{"data": encoded[0]}, {"data": corrupt}], [{"data": data} for data in encoded[:3]]]
    with ThreadPoolExecutor(8) as pool:
        v1 = [pool.submit(kserve_v1, server, instances) for instances in sent]
        plain = list(pool.map(lambda p: post(server, p.read_bytes()), [p for p, _ in good]))
    assert [r.status_code for r in plain] == [200] * 6
    failed, answered = (future.result() for future in v1)
    assert failed.status_code == 422 and failed.json()["type"] == "CorruptImage"
    assert failed.json()["message"].startswith("instance 1: ")
    assert [p["label"] for p in answered.json()["predictions"]] == [label for _, label in good[:3]]
