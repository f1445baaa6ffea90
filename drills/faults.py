"""Worker faults under load: kill -9 a worker, freeze one past responseTimeout, and time the recovery.

    python -m asl_serve.drills.faults [--kills 5] [--threads 4] [--response-timeout S] [--report reports/faults.md]

It starts its own TorchServe from config.properties (harness.server: free ports, a temporary copy
of model_store/ with one worker per version, so each fault hits a version's only worker). While
client threads (half REST, half gRPC) send predictions to the default version, it kills that
version's worker with SIGKILL `--kills` times, each time measuring how long until a new worker
answers and how many requests failed. Then it freezes the worker (SIGSTOP) and sends one request:
TorchServe should give up on it after responseTimeout (30 s as archived, or `--response-timeout`)
and start a new worker. Passing means: at most one failed request per client thread at each kill
(those in flight), none once the new worker answers, service back within 10 s, and the frozen
worker replaced. Exits with status 1 otherwise.
"""

import os
import signal
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import psutil
import requests

from asl_serve.client.rest import RestClient
from asl_serve.client.settings import ClientError, Server
from asl_serve.drills.processes import ONE_WORKER, worker_pids
from asl_serve.handler import ts_config
from asl_serve.harness.poll import poll
from asl_serve.harness.reports import drill_parser, publish, verdict
from asl_serve.harness.server import private_torchserve
from asl_serve.harness.traffic import Traffic
from asl_serve.layout import sample_photos
from asl_serve.model.config import MODEL_NAME

RECOVERY_LIMIT_S = 10  # the script's pass mark; the tests check losses, not time
REPLACEMENT_TIMEOUT_S = 60


def wait_replaced(rest: RestClient, version: str, old_pid: int, timeout_s: float = REPLACEMENT_TIMEOUT_S) -> int:
    """Wait until `version` has a READY worker other than `old_pid`, and return its PID."""
    def new_worker() -> int | None:
        workers = rest.describe(version=version)[0]["workers"]
        return next((w["pid"] for w in workers if w["status"] == "READY" and w["pid"] != old_pid), None)

    return poll(new_worker, timeout_s, f"a new READY worker for {version}", ignore=(ClientError,))


@dataclass
class Kill:
    recovery_s: float  # from SIGKILL until the new worker answered a request
    traffic: Traffic

    @property
    def losses(self) -> list[str]:
        """Requests lost beyond those in flight at the kill."""
        traffic = self.traffic
        problems = []
        if traffic.failed > traffic.threads:
            problems.append(f"{traffic.failed} requests failed, more than the {traffic.threads} that can be in flight")
        if traffic.steps[-1].failed:
            problems.append(f"{traffic.steps[-1].failed} requests failed after the new worker answered")
        problems += [f"not an in-flight failure: {e}" for e in traffic.errors if "Worker died" not in e]
        return problems


def kill_under_load(server: Server, threads: int = 4, dwell_s: float = 2) -> Kill:
    """SIGKILL the default version's worker while `threads` clients send it predictions."""
    rest = RestClient(server)
    version = rest.default_version()
    photo = sample_photos()[0][0]  # asked once a new worker is up
    with Traffic(server, threads) as traffic:
        with traffic.step("before", version):
            time.sleep(dwell_s)
        with traffic.step("kill -9, until a new worker answers", version):
            (old_pid,) = worker_pids(rest)[version]
            killed = time.monotonic()
            os.kill(old_pid, signal.SIGKILL)
            wait_replaced(rest, version, old_pid)
            rest.predict(photo, version)
            recovery_s = time.monotonic() - killed
        with traffic.step("after", version):
            time.sleep(dwell_s)
    return Kill(recovery_s, traffic)


@dataclass
class Stuck:
    status: int  # of the request sent to the frozen worker
    message: str
    answered_s: float  # until that request was answered
    recovery_s: float  # until a new worker answered a request
    old_worker_gone: bool


def freeze_worker(server: Server, version: str) -> Stuck:
    """SIGSTOP `version`'s worker, send it a request, and wait for TorchServe to replace the worker."""
    rest = RestClient(server)
    photo = sample_photos()[0][0]
    (old_pid,) = worker_pids(rest)[version]
    os.kill(old_pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        response = requests.post(
            f"{server.inference_url}/predictions/{MODEL_NAME}/{version}", data=photo.read_bytes(),
            timeout=120,
            headers={"Authorization": f"Bearer {server.key('inference')}", "Content-Type": "application/octet-stream"},
        )
        answered_s = time.monotonic() - started
        wait_replaced(rest, version, old_pid)
        rest.predict(photo, version)
        recovery_s = time.monotonic() - started
    finally:
        if psutil.pid_exists(old_pid):  # never leave a frozen process behind, whatever happened
            os.kill(old_pid, signal.SIGCONT)
    gone = not psutil.pid_exists(old_pid) or psutil.Process(old_pid).status() == psutil.STATUS_ZOMBIE
    return Stuck(response.status_code, response.json().get("message", ""), answered_s, recovery_s, gone)


def report(kills: list[Kill], stuck: Stuck, response_timeout: int, problems: list[str]) -> str:
    lines = [
        "# Worker faults under load",
        "",
        f"`python -m asl_serve.drills.faults --kills {len(kills)} --threads {kills[0].traffic.threads}`, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, on a private {ts_config.torchserve()} "
        "started from config.properties. "
        f"{kills[0].traffic.threads} client threads (half REST, half gRPC) sent predictions to the default version "
        "while its worker was killed with SIGKILL; recovery is the time from the kill until the new worker answered. "
        "Each failure is listed under the step in which its request was sent.",
        "",
        "| kill | recovery s | requests sent | failed | failures |",
        "|---:|---:|---:|---:|---|",
        *(f"| {n} | {k.recovery_s:.1f} | {k.traffic.sent} | {k.traffic.failed} | "
          f"{'; '.join(sorted(set(k.traffic.errors)))[:200]} |" for n, k in enumerate(kills, 1)),
        "",
        f"Frozen worker (SIGSTOP, responseTimeout {response_timeout} s): the request sent to it was answered "
        f"{stuck.status} \"{stuck.message}\" after {stuck.answered_s:.1f} s; a new worker answered after "
        f"{stuck.recovery_s:.1f} s; the frozen process {'was' if stuck.old_worker_gone else 'was NOT'} removed.",
        "",
        verdict(problems),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = drill_parser("asl_serve.drills.faults", __doc__, "faults.md")
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--response-timeout", type=int, help="seconds, instead of the archive's (30)")
    args = parser.parse_args(argv)
    settings = {**ONE_WORKER, **({"responseTimeout": args.response_timeout} if args.response_timeout else {})}
    with private_torchserve(args.model_store, settings=settings) as torchserve:
        server = torchserve.server
        kills = [kill_under_load(server, args.threads) for _ in range(args.kills)]
        version = RestClient(server).default_version()
        response_timeout = RestClient(server).describe(version=version)[0]["responseTimeout"]
        stuck = freeze_worker(server, version)
    problems = [p for kill in kills for p in kill.losses]
    problems += [f"service back only after {k.recovery_s:.1f}s" for k in kills if k.recovery_s >= RECOVERY_LIMIT_S]
    if stuck.status < 500 or not stuck.old_worker_gone or stuck.recovery_s >= response_timeout + RECOVERY_LIMIT_S:
        problems.append(f"the frozen worker was not replaced as expected: {stuck}")
    return publish(report(kills, stuck, response_timeout, problems), args.report, problems)


if __name__ == "__main__":
    sys.exit(main())
