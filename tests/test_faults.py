"""Faults, against a real TorchServe of this module's own: a killed worker, a frozen one, a restart.

The default version's archive is a copy whose responseTimeout is 2 s instead of 30, so a frozen worker
is given up on quickly; `python -m hardening.faults` runs the same checks longer, with the real timeout.
"""

import time

import psutil
import pytest

from client.launcher import LocalTorchServe, archive_with_settings
from client.rest import RestClient
from hardening.faults import RECOVERY_LIMIT_S, freeze_worker, kill_under_load
from hardening.processes import frontend, worker_pids
from tests.conftest import VERSIONS, sample_images

RESPONSE_TIMEOUT_S = 2


@pytest.fixture(scope="module")
def private_server(model_store, tmp_path_factory):
    """TorchServe from the repo's config.properties; its default version, 1.0-int8, times out after 2 s."""
    store = tmp_path_factory.mktemp("faults_store")
    archive_with_settings(model_store / "asl-int8.mar", store / "asl-int8.mar", responseTimeout=RESPONSE_TIMEOUT_S)
    (store / "asl-fp32.mar").symlink_to(model_store / "asl-fp32.mar")
    server = LocalTorchServe(tmp_path_factory.mktemp("faults"), store)
    server.start()
    yield server
    server.stop()


def test_a_killed_worker_loses_only_its_in_flight_requests(private_server):
    started = time.monotonic()
    kill = kill_under_load(private_server.server, threads=4, dwell_s=2)
    print(f"\nkill -9: service back after {kill.recovery_s:.1f}s; {kill.failed} of {kill.sent} requests failed")
    assert kill.problems == [], kill.errors
    assert kill.recovery_s < RECOVERY_LIMIT_S and all(step.sent > 0 for step in kill.steps)
    assert time.monotonic() - started < 60


def test_a_frozen_worker_hits_the_response_timeout_and_is_replaced(private_server):
    rest = RestClient(private_server.server)
    assert rest.describe(version="1.0-int8")[0]["responseTimeout"] == RESPONSE_TIMEOUT_S
    stuck = freeze_worker(private_server.server, "1.0-int8")
    print(f"\nfrozen worker: {stuck.status} after {stuck.answered_s:.1f}s, new worker answered after "
          f"{stuck.recovery_s:.1f}s")
    assert (stuck.status, stuck.message) == (500, "Worker died.")
    assert RESPONSE_TIMEOUT_S <= stuck.answered_s < RESPONSE_TIMEOUT_S + 5
    assert stuck.old_worker_gone and stuck.recovery_s < RESPONSE_TIMEOUT_S + RECOVERY_LIMIT_S


def test_a_restart_brings_back_the_configured_versions_and_default(private_server):
    rest = RestClient(private_server.server)
    rest.set_default("1.0-fp32")
    rest.unregister("1.0-int8")
    deadline = time.monotonic() + 30
    while "1.0-int8" in worker_pids(rest):  # TorchServe finishes unregistering after answering
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert rest.default_version() == "1.0-fp32"
    java = frontend(rest)
    private_server.stop()
    java.wait(timeout=30)  # `torchserve --stop` returns before the frontend has exited
    private_server.start()
    rest = RestClient(private_server.server)
    assert rest.default_version() == "1.0-int8"
    assert sorted(worker_pids(rest)) == sorted(VERSIONS)
    assert all(len(pids) == 1 and psutil.pid_exists(pids[0]) for pids in worker_pids(rest).values())
    path, label = sample_images()[0]
    assert rest.predict(path)["label"] == label
