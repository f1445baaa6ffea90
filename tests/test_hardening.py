"""Bad inputs, limits and secure defaults, against a real TorchServe of this module's own.

The corpus (drills/corpus.py) is sent four times; a private server keeps the session's server out
of it. Refusing http(s):// registrations and a missing or wrong management token is tested in
test_management.py.
"""

import ipaddress
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests

from asl_serve.client.rest import RestClient
from asl_serve.client.settings import ClientError
from asl_serve.drills.bad_inputs import run_corpus
from asl_serve.drills.corpus import NO_JSON, table
from asl_serve.drills.processes import FIXED_HEAP, MAX_GROWTH, ONE_WORKER, frontend, worker_pids
from asl_serve.drills.soak import Sample, Soak
from asl_serve.harness.images import encode, photo
from asl_serve.harness.server import private_torchserve
from asl_serve.layout import REPO, allocator_env, sample_photos
from tests.conftest import VERSIONS, tracked

# Answered by TorchServe's frontend before our handler sees the request; docs/security.md says so.
FRONTEND_ANSWERS = {
    "body 1 byte over max_request_size": (413, NO_JSON),
    "form-encoded JPEG (bare curl --data-binary)": (500, "ErrorDataDecoderException"),
}


@pytest.fixture(scope="module")
def private_server(model_store):
    """TorchServe from the repo's config.properties, every version with one worker, used by this module alone;
    its JVM runs a fixed heap, committed at start, so that resident memory shows native growth
    (drills/processes.py)."""
    with private_torchserve(model_store, settings=ONE_WORKER, properties=FIXED_HEAP) as server:
        yield server


@pytest.fixture(scope="module")
def corpus_run(private_server):
    return run_corpus(private_server.server, warm_up=3, rounds=2)  # buffers and allocator settle over the warm-up


def test_every_bad_input_gets_its_documented_answer(corpus_run):
    print("\n" + table(corpus_run.answers))
    documented = {a.case.name: (a.case.status, a.case.kind) for a in corpus_run.answers}
    invalid = {name: answer for name, answer in documented.items() if answer[0] != 200}
    assert len(documented) >= 25 and len(invalid) >= 20
    beside_the_bar = {name: answer for name, answer in invalid.items() if answer[0] >= 500 or answer[1] == NO_JSON}
    assert beside_the_bar == FRONTEND_ANSWERS  # every other invalid input: a 4xx with our JSON body
    wrong = [(a.case.name, a.status, a.kind) for answers in corpus_run.rounds for a in answers if not a.as_documented]
    assert wrong == []


def test_no_worker_restarted_during_the_corpus(corpus_run):
    assert corpus_run.pids_after == corpus_run.pids_before


def test_memory_stays_flat_over_the_corpus(corpus_run):
    for name, growth in corpus_run.growth.items():
        print(f"\n{name}: {corpus_run.memory_cold[name]:.0f} MB cold, {corpus_run.memory_before[name]:.0f} after the "
              f"warm-up, {corpus_run.memory_after[name]:.0f} at the end ({growth:+.1%})", end="")
    assert set(corpus_run.growth) == {"frontend", *(f"worker {version}#0" for version in VERSIONS)}
    assert {name: g for name, g in corpus_run.growth.items() if g >= MAX_GROWTH} == {}


def test_the_measured_processes_run_make_serves_allocator_variables(private_server):
    """What is measured is what ships: the frontend and every worker run with deploy/allocator.env's settings."""
    rest = RestClient(private_server.server)
    pids = [frontend(rest).pid, *(pid for pids in worker_pids(rest).values() for pid in pids)]
    shipped = allocator_env()
    assert "MALLOC_MMAP_THRESHOLD_" in shipped and len(pids) == 1 + len(VERSIONS)
    for pid in pids:
        environ = psutil.Process(pid).environ()
        assert {key: environ.get(key) for key in shipped} == shipped


def test_a_good_photo_is_still_classified_right(corpus_run):
    assert corpus_run.label_after == corpus_run.label


def test_largest_uploads_do_not_fail_the_good_requests_batched_with_them(private_server):
    """Before uploads were shrunk, four of these took the batch past responseTimeout and the worker was killed."""
    server = private_server.server
    rest = RestClient(server)
    pids = worker_pids(rest)
    largest = encode(photo(sample_photos()[0][0]).resize((6300, 6300)), "PNG", compress_level=1)
    good = sample_photos()[1::9][:4]
    headers = {"Authorization": f"Bearer {server.key('inference')}", "Content-Type": "application/octet-stream"}

    def post(body: bytes) -> requests.Response:
        return requests.post(f"{server.inference_url}/predictions/asl", data=body, headers=headers, timeout=60)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, [largest] * 4 + [path.read_bytes() for path, _ in good]))
    assert [answer.status_code for answer in answers] == [200] * 8
    assert [answer.json()["label"] for answer in answers[4:]] == [label for _, label in good]
    assert worker_pids(rest) == pids


def test_registering_a_path_outside_the_model_store_is_refused(private_server, tmp_path):
    rest = RestClient(private_server.server)
    outside = shutil.copy2(private_server.store / "asl-int8.mar", tmp_path / "elsewhere.mar")
    with pytest.raises(ClientError, match="Model not found at"):
        rest.register(str(outside))
    with pytest.raises(ClientError, match="Relative path is not allowed"):
        rest.register(f"../{tmp_path.name}/elsewhere.mar")
    assert [model["modelName"] for model in rest.list_models()] == ["asl"]


def test_every_listener_is_on_loopback(private_server):
    server = private_server.server
    listening = [c.laddr for c in frontend(RestClient(server)).net_connections("inet") if c.status == "LISTEN"]
    ports = {int(url.rsplit(":", 1)[1]) for url in (server.inference_url, server.management_url, server.metrics_url,
                                                     server.grpc_inference, server.grpc_management)}
    assert {address.port for address in listening} == ports
    assert {ipv4(address.ip) for address in listening} == {"127.0.0.1"}


def ipv4(ip: str) -> str:
    """Java listens on IPv6 sockets: 127.0.0.1 shows as ::ffff:127.0.0.1."""
    address = ipaddress.ip_address(ip)
    return str(getattr(address, "ipv4_mapped", None) or address)


def test_no_secrets_are_tracked():
    paths = [REPO / path for path in tracked()]
    key_like = [p.name for p in paths if p.name == "key_file.json" or p.suffix in {".pem", ".key", ".jks", ".p12"}]
    assert key_like == []
    pem_marker = b"PRIVATE " + b"KEY-----"  # split so this file does not match itself
    assert [p.name for p in paths if p.is_file() and pem_marker in p.read_bytes()] == []
    ignored = subprocess.run(["git", "check-ignore", "-q", "key_file.json"], cwd=REPO)
    assert ignored.returncode == 0  # the key file TorchServe writes at start-up never gets committed


def test_keys_rotate_through_the_token_api(private_server):
    """POST /token on the management port, authorised by the API key of key_file.json (TorchServe 0.12)."""
    server = private_server.server
    before = json.loads(server.key_file.read_text())
    url = f"{server.management_url}/token"
    refused = requests.post(url, params={"type": "inference"}, timeout=10,
                            headers={"Authorization": f"Bearer {before['management']['key']}"})
    assert (refused.status_code, refused.json()["type"]) == (400, "InvalidKeyException")
    rotated = requests.post(url, params={"type": "inference"}, timeout=10,
                            headers={"Authorization": f"Bearer {before['API']['key']}"})
    assert rotated.status_code == 200
    after = json.loads(server.key_file.read_text())
    assert after["inference"]["key"] != before["inference"]["key"]
    assert after["management"]["key"] == before["management"]["key"]
    image = sample_photos()[0][0].read_bytes()
    for key, status in ((before["inference"]["key"], 400), (after["inference"]["key"], 200)):
        response = requests.post(f"{server.inference_url}/predictions/asl", data=image, timeout=30,
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/octet-stream"})
        assert response.status_code == status


def test_make_stop_stops_only_this_checkouts_server(private_server, tmp_path):
    """`make stop`'s TorchServe command, as a checkout in `tmp_path` renders it, run where the temp directory
    is another server's (as every checkout's was, before each got its build/tmp): that server keeps running.
    (Only that command runs: the whole target would also stop this checkout's demo.)"""
    other = private_server.workdir / "tmp"
    assert (other / ".model_server.pid").exists()
    recipe = subprocess.run(["make", "-s", "-n", "-C", str(tmp_path), "-f", str(REPO / "Makefile"),
                             f"VENV={REPO / '.venv'}", "stop"], capture_output=True, text=True, check=True).stdout
    (command,) = [line for line in recipe.splitlines() if "torchserve --stop" in line]
    assert f"TMPDIR={tmp_path}/build/tmp" in command
    subprocess.run(command, shell=True, env={**os.environ, "TMPDIR": str(other), "TEMP": str(other)},
                   capture_output=True, timeout=120)
    assert RestClient(private_server.server).ping() == "Healthy"
    assert (other / ".model_server.pid").exists()


def test_the_cli_rotates_a_key_and_says_where_it_went(private_server):
    server = private_server.server
    before = json.loads(server.key_file.read_text())
    done = subprocess.run([sys.executable, "-m", "asl_serve.client", "rotate-key", "management"], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **server.env()})
    assert done.returncode == 0, done.stderr
    assert f"new management key written to {server.key_file}" in done.stdout
    after = json.loads(server.key_file.read_text())
    assert after["management"]["key"] != before["management"]["key"]
    assert RestClient(server).default_version()  # the clients follow: they read the file at each call


def test_soak_counts_a_replaced_worker_as_a_restart_and_two_workers_as_none():
    def soak_over(*pids: dict[str, list[int]]) -> Soak:
        samples = [Sample(10.0 * n, {}, p) for n, p in enumerate(pids)]
        return Soak(8, "60s", 0, {}, samples, {"Failure Count": "0"}, [])

    two_workers = {"1.0-int8": [11, 12], "1.0-fp32": [13]}
    assert soak_over(two_workers, two_workers, two_workers).restarts == 0
    assert soak_over(two_workers, {"1.0-int8": [11, 14], "1.0-fp32": [13]}, two_workers).restarts == 1
