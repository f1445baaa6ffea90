"""One Locust process's part of a measurement, run in a client process of its own (together.py).

Locust monkey-patches the process that imports it, so only client processes import this module.
Each records exact latencies (not Locust's rounded buckets) and its own CPU time over the window;
the first also reads TorchServe's, so the report can tell a busy client from a busy server.
"""

import time
from contextlib import suppress
from pathlib import Path
from threading import Barrier

import gevent
import psutil
from locust.argument_parser import get_parser
from locust.env import Environment

from asl_serve.client.settings import Server
from asl_serve.harness.poll import poll
from asl_serve.loadtests.bench.grid import GRPC, REST
from asl_serve.loadtests.bench.results import Share
from asl_serve.loadtests.locustfile import GrpcUser, RestUser
from asl_serve.loadtests.run import server_options

USERS = {REST: RestUser, GRPC: GrpcUser}
# the warm-up lasts until the users have had as many answers: a fresh server's first gRPC call has been seen to
# take seconds (the JVM loading its gRPC stack), which a fixed warm-up would count as a measured silence
FIRST_ANSWERS_TIMEOUT_S = 120


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def cpu_now(jvm_pid: int | None) -> dict[str, float]:
    """CPU seconds used so far by this process and, given its JVM, by TorchServe's frontend and workers."""
    used = {"client": cpu_seconds(psutil.Process())}
    if jvm_pid is not None:
        jvm = psutil.Process(jvm_pid)
        used["frontend"], used["workers"] = cpu_seconds(jvm), 0.0
        for worker in jvm.children(recursive=True):
            with suppress(psutil.Error):  # a worker being replaced
                used["workers"] += cpu_seconds(worker)
    return used


def load(start: Barrier, server: Server, transport: str, version: str, users: int, images: Path, warmup: float,
         seconds: float, jvm_pid: int | None) -> Share:
    """`users` Locust users calling `version` without pause: a warm-up of `warmup` s that lasts until they have had
    `users` answers, then, once every client process is that far, `seconds` s measured."""
    options = get_parser().parse_args(
        ["--headless", *server_options(server), "--images", str(images), "--model-version", version]
    )
    environment = Environment(user_classes=[USERS[transport]], host=options.host, parsed_options=options)
    share, recording, answered = Share(), False, 0

    def record(response_time: float, exception: Exception | None, **_) -> None:
        nonlocal answered
        answered += 1
        if recording:
            if exception is None:
                share.latencies_ms.append(response_time)
            else:
                share.failures += 1

    environment.events.request.add_listener(record)
    runner = environment.create_local_runner()
    start.wait()
    runner.start(users, spawn_rate=users)
    gevent.sleep(warmup)
    poll(lambda: answered >= users, FIRST_ANSWERS_TIMEOUT_S, f"{users} answers from {version or 'the default'}")
    gevent.get_hub().threadpool.apply(start.wait)  # in a thread, so the users keep going while the others warm up
    before, started, recording = cpu_now(jvm_pid), time.perf_counter(), True
    gevent.sleep(seconds)
    recording, share.seconds = False, time.perf_counter() - started
    share.cpu_s = {part: used - before[part] for part, used in cpu_now(jvm_pid).items()}
    runner.quit()
    return share
