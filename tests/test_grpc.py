"""gRPC against a real TorchServe: Ping, Predictions that match REST for every photo and version, errors."""

import dataclasses
import json
import os
import subprocess
import sys

import grpc
import pytest
from client.proto import inference_pb2, inference_pb2_grpc
from google.protobuf import empty_pb2

from client.grpc_client import GrpcClient
from client.launcher import free_ports
from client.settings import REPO, ClientError
from tests.conftest import VERSIONS, sample_images

IMAGE, LABEL = sample_images()[0]


@pytest.fixture(scope="module")
def grpc_client(torchserve) -> GrpcClient:
    return GrpcClient(torchserve.server)


def test_ping_reports_healthy(grpc_client):
    assert grpc_client.ping() == "Healthy"


@pytest.mark.parametrize("version", VERSIONS)
def test_predictions_match_rest_for_every_photo(grpc_client, rest, version):
    correct = 0
    for image, label in sample_images():
        answer = grpc_client.predict(image, version)
        assert answer == rest.predict(image, version), image
        correct += answer["label"] == label
    assert correct >= 0.8 * len(sample_images())  # real answers, not merely equal ones


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
        [sys.executable, "-m", "client", *command], cwd=REPO, env={**os.environ, **torchserve.server.env()},
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert (answer["image"], answer["label"], len(answer["top_k"])) == (str(IMAGE), LABEL, 2)
