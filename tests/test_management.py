"""Model-version management over REST and gRPC, and the CLI, against a real TorchServe of this module's own.

These tests register, unregister, scale and switch the default, so they never touch the shared session
server: the module starts its own, on a copy of the archives plus a freshly built version.
"""

import dataclasses
import json
import os
import subprocess
import sys
import time
import zipfile

import grpc
import pytest
import requests

from asl_serve.client.grpc_client import GrpcClient
from asl_serve.client.proto import management_pb2, management_pb2_grpc
from asl_serve.client.rest import RestClient
from asl_serve.client.settings import ClientError, Server
from asl_serve.drills.rollout import roll_out
from asl_serve.handler.archive import VARIANTS, build, shipped_archive
from asl_serve.handler.asl_handler import EVALUATION
from asl_serve.harness.poll import poll
from asl_serve.harness.server import free_ports, private_torchserve
from asl_serve.harness.traffic import Traffic, wait_drained
from asl_serve.layout import EXPORT_DIR, REPO, sample_photos
from asl_serve.model.classes import CLASS_NAMES
from asl_serve.model.config import PREPROCESS
from tests.conftest import VERSIONS

EXPORTED_INT8 = EXPORT_DIR / VARIANTS["int8"][0]
NEW_VERSION = "1.1-int8"
NEW_ARCHIVE = f"asl-{NEW_VERSION}.mar"
IMAGE = sample_photos()[0][0]


@pytest.fixture(scope="module")
def server(model_store) -> Server:
    """A TorchServe only this module changes: 1.0-int8 (default) and 1.0-fp32, NEW_ARCHIVE in its store."""
    if not EXPORTED_INT8.exists():
        pytest.fail(f"{EXPORTED_INT8} is missing: run `make export` (make test does it for you)")
    with private_torchserve(model_store) as torchserve:
        build(EXPORTED_INT8, "int8", torchserve.store / NEW_ARCHIVE, NEW_VERSION)
        yield torchserve.server


@pytest.fixture(autouse=True)
def restored(server):
    """Whatever a test changes (default, extra versions, worker counts) is put back, even when it fails."""
    rest = RestClient(server)
    started = worker_ranges(rest)
    yield
    if rest.default_version() != "1.0-int8":
        rest.set_default("1.0-int8")
    for version, workers in worker_ranges(rest).items():
        if version not in started:
            wait_drained(rest, version)
            rest.unregister(version)
        elif workers != started[version]:
            rest.scale(*started[version][:2], version=version)
    eventually(lambda: worker_ranges(rest) == started)


@pytest.fixture(params=["rest", "grpc"])
def client(request, server) -> RestClient | GrpcClient:
    return RestClient(server) if request.param == "rest" else GrpcClient(server)


def worker_ranges(rest: RestClient) -> dict[str, tuple[int, int, list[str]]]:
    """Each version's minWorkers, maxWorkers and its workers' states."""
    return {d["modelVersion"]: (d["minWorkers"], d["maxWorkers"], [w["status"] for w in d["workers"]])
            for d in rest.describe()}


def statuses(client, version: str) -> list[str]:
    return [worker["status"] for worker in client.describe(version=version)[0]["workers"]]


def eventually(check, timeout_s: float = 60) -> None:
    """Wait for `check()` to hold: TorchServe finishes some changes (unregistering) after answering."""
    poll(check, timeout_s, "the server reached the expected state", interval=0.2)


def test_list_and_describe(client):
    assert [model["modelName"] for model in client.list_models()] == ["asl"]
    versions = {v["modelVersion"]: v for v in client.describe()}
    assert set(versions) == set(VERSIONS)
    assert all(set(statuses(client, version)) == {"READY"} for version in versions)
    assert client.default_version() == "1.0-int8"
    assert versions["1.0-int8"]["modelUrl"] == "asl-int8.mar"


@pytest.mark.parametrize(("variant", "version"), [(variant, version) for variant, (_, version) in VARIANTS.items()])
def test_customized_describe_gives_the_handler_metadata(client, model_store, variant, version):
    metadata = client.metadata(version)
    assert (metadata["model_version"], metadata["variant"]) == (version, variant)
    assert metadata["classes"] == list(CLASS_NAMES)
    assert metadata["input"]["image_size"] == PREPROCESS.image_size and metadata["input"]["preprocessing"]
    assert metadata["archive"]["built_at"] and "git_commit" in metadata["archive"]
    assert metadata["training_sources"]
    with zipfile.ZipFile(shipped_archive(variant)) as archive:
        packed = json.loads(archive.read(EVALUATION)) if EVALUATION in archive.namelist() else {}
    if variant in packed:  # the lead's reports/evaluation.json, as packed when the archive was built
        assert metadata["evaluation"] == {"file": EVALUATION, "sets": packed[variant]}
    else:
        assert "missing" in metadata["evaluation"]
    assert client.metadata() == client.metadata(client.default_version())


def test_cli_describe_prints_the_metadata(server):
    for transport in ([], ["--grpc"]):
        done = run_cli(server, "describe", "--version", "1.0-fp32", *transport)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["variant"] == "fp32"


def test_503_is_retried_with_backoff_then_reported(server):
    """A version without workers answers 503; the client tries 1 + retries times (access log), then fails."""
    rest = RestClient(server)
    rest.scale(0, 0, version="1.0-fp32")  # the `restored` fixture scales it back
    access_log = server.key_file.parent / "logs" / "access_log.log"
    before = access_log.read_text().count("/predictions/asl/1.0-fp32")
    with pytest.raises(ClientError, match="503"):
        RestClient(server, retries=2).predict(IMAGE, "1.0-fp32")
    attempts = access_log.read_text().count("/predictions/asl/1.0-fp32") - before
    assert attempts == 3


def test_scale_up_and_down(client):
    assert "scaled to 2" in client.scale(2, 2, version="1.0-fp32")
    eventually(lambda: statuses(client, "1.0-fp32") == ["READY", "READY"])
    assert "scaled to 1" in client.scale(1, 1, version="1.0-fp32")
    eventually(lambda: statuses(client, "1.0-fp32") == ["READY"])
    described = client.describe(version="1.0-fp32")[0]
    assert (described["minWorkers"], described["maxWorkers"]) == (1, 1)


def test_scale_without_version_scales_the_default(client):
    fp32 = statuses(client, "1.0-fp32")
    int8 = len(statuses(client, "1.0-int8"))
    client.scale(int8 + 1, int8 + 1)
    eventually(lambda: statuses(client, "1.0-int8") == ["READY"] * (int8 + 1))
    assert statuses(client, "1.0-fp32") == fp32


def test_set_default_routes_unversioned_predictions(client):
    int8, fp32 = client.predict(IMAGE, "1.0-int8"), client.predict(IMAGE, "1.0-fp32")
    assert int8 != fp32  # the variants' probabilities differ, so the answer tells which one served
    assert "1.0-fp32" in client.set_default("1.0-fp32")
    assert client.default_version() == "1.0-fp32"
    assert client.predict(IMAGE) == fp32
    client.set_default("1.0-int8")
    assert client.predict(IMAGE) == int8


def test_register_and_unregister_an_archive_from_the_store(client):
    assert "registered with 1 initial workers" in client.register(NEW_ARCHIVE)
    assert statuses(client, NEW_VERSION) == ["READY"]
    new, old = client.predict(IMAGE, NEW_VERSION), client.predict(IMAGE, "1.0-int8")
    assert (new.pop("model_version"), old.pop("model_version")) == (NEW_VERSION, "1.0-int8")
    assert new == old  # same export, new version
    assert client.default_version() == "1.0-int8"
    assert "unregistered" in client.unregister(NEW_VERSION)
    eventually(lambda: {v["modelVersion"] for v in client.describe()} == set(VERSIONS))
    with pytest.raises(ClientError, match="does not exist"):
        client.predict(IMAGE, NEW_VERSION)


@pytest.mark.parametrize("url", ["https://example.com/asl.mar", "http://127.0.0.1:9/asl-int8.mar"])
def test_registering_from_a_url_is_refused(client, url):
    with pytest.raises(ClientError, match="does not match any allowed URL"):
        client.register(url)
    assert {v["modelVersion"] for v in client.describe()} == set(VERSIONS)


def test_unknown_versions_and_removing_the_default_are_refused(client):
    for call in (client.set_default, client.unregister, lambda v: client.scale(1, 1, version=v)):
        with pytest.raises(ClientError, match=r"9\.9 does not exist"):
            call("9.9")
    with pytest.raises(ClientError):
        client.unregister("1.0-int8")
    assert client.default_version() == "1.0-int8"


def test_management_without_or_with_a_wrong_token_is_refused(server, tmp_path):
    wrong_keys = tmp_path / "key_file.json"
    wrong_keys.write_text(json.dumps({"inference": {"key": "wrong"}, "management": {"key": "wrong"}}))
    for client in (RestClient, GrpcClient):
        with pytest.raises(ClientError, match="Token Authorization failed"):
            client(dataclasses.replace(server, key_file=wrong_keys)).set_default("1.0-fp32")
    inference_key = {"Authorization": f"Bearer {server.key('inference')}"}
    for headers in ({}, inference_key):  # no token at all, or the inference key
        url = f"{server.management_url}/models/asl/1.0-fp32/set-default"
        refused = requests.put(url, headers=headers, timeout=10)
        assert (refused.status_code, refused.json()["type"]) == (400, "InvalidKeyException")
    stub = management_pb2_grpc.ManagementAPIsServiceStub(grpc.insecure_channel(server.grpc_management))
    for metadata in ((), (("authorization", f"Bearer {server.key('inference')}"),)):
        with pytest.raises(grpc.RpcError) as refused:
            stub.SetDefault(management_pb2.SetDefaultRequest(model_name="asl", model_version="1.0-fp32"),
                            metadata=metadata, timeout=10)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert RestClient(server).default_version() == "1.0-int8"


def test_set_default_switches_under_load_lose_no_request(server):
    rest, grpc_client = RestClient(server), GrpcClient(server)
    with Traffic(server, threads=4) as traffic:
        for switch, version in enumerate(["1.0-fp32", "1.0-int8"] * 4):
            with traffic.step(f"switch {switch} to {version}", version):
                (rest if switch % 2 else grpc_client).set_default(version)
                time.sleep(0.75)
    assert rest.default_version() == "1.0-int8"
    assert [s.failed for s in traffic.steps] == [0] * 8, traffic.errors[:3]
    assert all(s.sent > 0 for s in traffic.steps) and traffic.sent >= 50


def test_roll_out_and_back_under_load_loses_no_request(server):
    traffic = roll_out(server, NEW_ARCHIVE, NEW_VERSION, threads=4, dwell_s=1).traffic
    assert traffic.failed == 0, traffic.errors[:3]
    assert traffic.sent >= 50 and all(step.sent > 0 for step in traffic.steps if step.seconds > 0.5)
    rest = RestClient(server)
    eventually(lambda: {v["modelVersion"] for v in rest.describe()} == set(VERSIONS))
    assert rest.default_version() == "1.0-int8"


def run_cli(server: Server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "asl_serve.client", *args], cwd=REPO, env={**os.environ, **server.env()},
        capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize("transport", [[], ["--grpc"]], ids=["rest", "grpc"])
def test_cli_manages_versions(server, transport):
    steps = [
        (["register", f"model_store/{NEW_ARCHIVE}"], "registered"),
        (["set-default", NEW_VERSION], "Default version successfully updated"),
        (["models"], f"asl {NEW_VERSION} (default): workers"),
        (["scale", "--version", NEW_VERSION, "--min-workers", "2", "--max-workers", "2"], "scaled to 2"),
        (["models"], "READY, "),
        (["set-default", "1.0-int8"], "Default version successfully updated"),
        (["unregister", NEW_VERSION], "unregistered"),
    ]
    for args, expected in steps:
        done = run_cli(server, *args, *transport)
        assert (done.returncode, done.stderr) == (0, "") and expected in done.stdout, (args, done)


@pytest.mark.parametrize("transport", [[], ["--grpc"]], ids=["rest", "grpc"])
def test_cli_failures_are_one_line_without_traceback(server, tmp_path, transport):
    wrong_keys = tmp_path / "key_file.json"
    wrong_keys.write_text(json.dumps({"inference": {"key": "wrong"}, "management": {"key": "wrong"}}))
    (port,) = free_ports(1)
    down = f"127.0.0.1:{port}"
    cases = [
        (server, ["set-default", "9.9"], "9.9 does not exist"),
        (dataclasses.replace(server, key_file=wrong_keys), ["models"], "Token Authorization failed"),
        (dataclasses.replace(server, management_url=f"http://{down}", grpc_management=down), ["models"],
         "cannot reach"),
    ]
    for target, args, expected in cases:
        done = run_cli(target, *args, *transport)
        assert done.returncode == 1 and done.stdout == "", (args, done)
        assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1 and expected in done.stderr
