"""gRPC against a real TorchServe: Ping, Predictions that match REST for every photo and version, streams,
errors."""

import dataclasses
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.protobuf import empty_pb2

from asl_serve.client.grpc_client import GrpcClient
from asl_serve.client.proto import inference_pb2, inference_pb2_grpc
from asl_serve.client.settings import ClientError, ImageRejected
from asl_serve.harness.server import free_ports
from asl_serve.layout import REPO, sample_photos
from tests.conftest import VERSIONS

IMAGE, LABEL = sample_photos()[0]


@pytest.fixture(scope="module")
def grpc_client(torchserve) -> GrpcClient:
    return GrpcClient(torchserve.server)


@pytest.fixture(scope="module")
def stub(torchserve) -> inference_pb2_grpc.InferenceAPIsServiceStub:
    return inference_pb2_grpc.InferenceAPIsServiceStub(grpc.insecure_channel(torchserve.server.grpc_inference))


def inference_key(torchserve) -> tuple:
    return (("authorization", f"Bearer {torchserve.server.key('inference')}"),)


def worker_pids(rest) -> dict[str, list[int]]:
    return {v["modelVersion"]: [w["pid"] for w in v["workers"]] for v in rest.describe()}


def request(image, **inputs) -> inference_pb2.PredictionsRequest:
    return inference_pb2.PredictionsRequest(model_name="asl", input={"data": image.read_bytes(), **inputs})


def test_stream_predictions_answers_in_one_message_and_keeps_the_worker(torchserve, stub, rest):
    before = worker_pids(rest)
    messages = list(stub.StreamPredictions(request(IMAGE), metadata=inference_key(torchserve), timeout=60))
    assert len(messages) == 1
    answer = json.loads(messages[0].prediction)
    assert answer["label"] == LABEL and answer["model_version"] == rest.default_version()
    assert worker_pids(rest) == before


def test_many_concurrent_streams_each_get_one_answer_and_keep_the_worker(torchserve, stub, rest):
    before = worker_pids(rest)
    images = sample_photos()[::4][:12]

    def stream(item):
        return list(stub.StreamPredictions(request(item[0]), metadata=inference_key(torchserve), timeout=60))

    with ThreadPoolExecutor(len(images)) as pool:
        streams = list(pool.map(stream, images))
    assert [len(messages) for messages in streams] == [1] * len(images)
    labels = [json.loads(messages[0].prediction)["label"] for messages in streams]
    assert sum(label == truth for label, (_, truth) in zip(labels, images, strict=True)) >= 0.8 * len(images)
    assert worker_pids(rest) == before


def test_bidirectional_stream_answers_every_message_and_keeps_the_worker(torchserve, stub, rest):
    """StreamPredictions2 is TorchServe's stateful-model (sequence batching) API: asl is stateless, so the
    frontend answers each message of the stream with an error status and never reaches a worker."""
    before = worker_pids(rest)
    messages = [request(path) for path, _ in sample_photos()[:5]]
    answers = list(stub.StreamPredictions2(iter(messages), metadata=inference_key(torchserve), timeout=60))
    assert len(answers) == len(messages)
    assert all(a.status.code == grpc.StatusCode.INTERNAL.value[0] and "sequenceId" in a.status.message
               for a in answers)
    assert worker_pids(rest) == before
    assert GrpcClient(torchserve.server).predict(IMAGE)["label"] == LABEL


def test_a_corrupt_image_is_an_ok_status_with_the_error_json(torchserve, stub, grpc_client, tmp_path):
    """TorchServe 0.12's gRPC frontend drops the handler's per-request status (docs/versions.md): the
    answer is OK and carries the same JSON error as REST's 422; the client turns it into a failure."""
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(IMAGE.read_bytes()[:2000])
    answer = stub.Predictions(request(corrupt), metadata=inference_key(torchserve), timeout=60)
    error = json.loads(answer.prediction)
    assert (error["code"], error["type"], error["model_version"]) == (422, "CorruptImage", "1.0-int8")
    with pytest.raises(ImageRejected, match="422 CorruptImage"):
        grpc_client.predict(corrupt)
    done = subprocess.run(
        [sys.executable, "-m", "asl_serve.client", "--grpc", "predict", str(corrupt)], cwd=REPO,
        env={**os.environ, **torchserve.server.env()}, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1
    assert f"error: {corrupt}: Predictions -> 422 CorruptImage" in done.stderr


def test_ping_reports_healthy(grpc_client):
    assert grpc_client.ping() == "Healthy"


@pytest.mark.parametrize("version", VERSIONS)
def test_predictions_match_rest_for_every_photo(grpc_client, rest, version):
    correct = 0
    for image, label in sample_photos():
        answer = grpc_client.predict(image, version)
        assert answer == rest.predict(image, version), image
        correct += answer["label"] == label
    assert correct >= 0.8 * len(sample_photos())  # real answers, not merely equal ones


def test_default_version_and_top_k_match_rest(grpc_client, rest):
    answer = grpc_client.predict(IMAGE, top_k=3)
    assert answer == rest.predict(IMAGE, rest.default_version(), top_k=3)
    assert len(answer["top_k"]) == 3 and answer["top_k"][0]["label"] == answer["label"]


def test_handler_errors_come_back_as_client_errors(grpc_client, tmp_path):
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_bytes(b"plain text, not a photo")
    with pytest.raises(ClientError, match="415 UnsupportedMediaType"):
        grpc_client.predict(not_an_image)
    with pytest.raises(ClientError, match="400 BadRequest: top_k must be"):
        grpc_client.predict(IMAGE, top_k=99)


def test_unknown_version_is_refused(grpc_client):
    with pytest.raises(ClientError, match=r"Model version: 9\.9 does not exist"):
        grpc_client.predict(IMAGE, "9.9")


def test_calls_without_or_with_a_wrong_token_are_refused(torchserve):
    channel = grpc.insecure_channel(torchserve.server.grpc_inference)
    stub = inference_pb2_grpc.InferenceAPIsServiceStub(channel)
    request = inference_pb2.PredictionsRequest(model_name="asl", input={"data": IMAGE.read_bytes()})
    for metadata in ((), (("authorization", "Bearer not-the-key"),)):
        with pytest.raises(grpc.RpcError) as refused:
            stub.Predictions(request, metadata=metadata, timeout=10)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    management_key = (("authorization", f"Bearer {torchserve.server.key('management')}"),)
    with pytest.raises(grpc.RpcError) as refused:  # the two keys are not interchangeable
        stub.Ping(empty_pb2.Empty(), metadata=management_key, timeout=10)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_server_down_is_one_clear_error(torchserve):
    (port,) = free_ports(1)
    down = dataclasses.replace(torchserve.server, grpc_inference=f"127.0.0.1:{port}")
    with pytest.raises(ClientError, match=f"cannot reach gRPC inference at 127.0.0.1:{port}"):
        GrpcClient(down).ping()


def test_cli_predicts_over_grpc(torchserve):
    command = ["predict", str(IMAGE), "--grpc", "--version", "1.0-fp32", "--top-k", "2"]
    done = subprocess.run(
        [sys.executable, "-m", "asl_serve.client", *command], cwd=REPO, env={**os.environ, **torchserve.server.env()},
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert (answer["image"], answer["label"], len(answer["top_k"])) == (str(IMAGE), LABEL, 2)
