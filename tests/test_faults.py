"""Faults, against a real TorchServe of this module's own: a killed worker, a frozen one, a restart.

The default version's archive is a copy whose responseTimeout is 2 s instead of 30, so a frozen worker
is given up on quickly; `python -m asl_serve.drills.faults` runs the same checks longer, with the real timeout.
"""

import psutil
import pytest

from asl_serve.client.rest import RestClient
from asl_serve.drills.faults import freeze_worker, kill_under_load
from asl_serve.drills.processes import ONE_WORKER, worker_pids
from asl_serve.harness.poll import poll
from asl_serve.harness.server import private_torchserve
from asl_serve.layout import sample_photos
from tests.conftest import VERSIONS

RESPONSE_TIMEOUT_S = 2


@pytest.fixture
def private_server(model_store):
    """TorchServe from the repo's config.properties, one worker per version timing out after 2 s; one server per
    test, so no test depends on what another did to its workers."""
    settings = {**ONE_WORKER, "responseTimeout": RESPONSE_TIMEOUT_S}
    with private_torchserve(model_store, settings=settings) as server:
        yield server


def test_a_killed_worker_loses_only_its_in_flight_requests(private_server):
    kill = kill_under_load(private_server.server, threads=4, dwell_s=2)
    traffic = kill.traffic
    print(f"\nkill -9: service back after {kill.recovery_s:.1f}s; {traffic.failed} of {traffic.sent} requests failed")
    assert kill.losses == [], traffic.errors
    assert all(step.sent > 0 for step in traffic.steps)


def test_a_frozen_worker_hits_the_response_timeout_and_is_replaced(private_server):
    rest = RestClient(private_server.server)
    assert rest.describe(version="1.0-int8")[0]["responseTimeout"] == RESPONSE_TIMEOUT_S
    stuck = freeze_worker(private_server.server, "1.0-int8")
    print(f"\nfrozen worker: {stuck.status} after {stuck.answered_s:.1f}s, new worker answered after "
          f"{stuck.recovery_s:.1f}s")
    assert (stuck.status, stuck.message) == (500, "Worker died.")  # TorchServe gave up on it: the timeout fired
    assert stuck.old_worker_gone


def test_a_restart_brings_back_the_configured_versions_and_default(private_server):
    rest = RestClient(private_server.server)
    workers = {version: len(pids) for version, pids in worker_pids(rest).items()}
    rest.set_default("1.0-fp32")
    rest.unregister("1.0-int8")
    # TorchServe finishes unregistering after answering
    poll(lambda: "1.0-int8" not in worker_pids(rest), 30, "1.0-int8 unregistered", interval=0.2)
    assert rest.default_version() == "1.0-fp32"
    private_server.stop()
    private_server.start()
    rest = RestClient(private_server.server)
    assert rest.default_version() == "1.0-int8"
    assert sorted(worker_pids(rest)) == sorted(VERSIONS)
    assert {version: len(pids) for version, pids in worker_pids(rest).items()} == workers
    assert all(psutil.pid_exists(pid) for pids in worker_pids(rest).values() for pid in pids)
    path, label = sample_photos()[0]
    assert rest.predict(path)["label"] == label
