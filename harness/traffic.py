"""Prediction traffic from several client threads (half REST, half gRPC), counted per named step.

The roll-out demo, the fault injection and the tests use it to show that management actions and
worker faults lose no request (or only those in flight).
"""

import itertools
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from asl_serve.client.grpc_client import GrpcClient
from asl_serve.client.rest import RestClient
from asl_serve.client.settings import Server
from asl_serve.harness.poll import poll
from asl_serve.layout import sample_photos

DRAIN_TIMEOUT_S = 30


@dataclass
class Step:
    name: str
    default: str
    seconds: float = 0.0
    sent: int = 0
    failed: int = 0


class Traffic:
    """Predictions for the default version from `threads` threads, counted per step.

    The threads start with the first step and stop when the `with Traffic(...)` block ends.
    """

    def __init__(self, server: Server, threads: int, images: list[Path] | None = None):
        self.images = images or [path for path, _ in sample_photos()]
        self.threads = threads
        self.steps: list[Step] = []
        self.errors: list[str] = []
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._threads = []
        for offset in range(threads):
            client = GrpcClient(server) if offset % 2 else RestClient(server)
            self._threads.append(threading.Thread(target=self._send, args=(client, offset), daemon=True))

    def __enter__(self) -> "Traffic":
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join()

    @property
    def sent(self) -> int:
        return sum(s.sent for s in self.steps)

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.steps)

    @contextmanager
    def step(self, name: str, default: str):
        """Requests sent from here to the end of the block count towards step `name`."""
        step, started = Step(name, default), time.monotonic()
        self.steps.append(step)
        if len(self.steps) == 1:
            for thread in self._threads:
                thread.start()
        yield
        step.seconds = time.monotonic() - started

    def _send(self, client: RestClient | GrpcClient, offset: int) -> None:
        for image in itertools.islice(itertools.cycle(self.images), offset, None):
            if self._stop.is_set():
                return
            step = self.steps[-1]
            try:
                client.predict(image)
                error = None
            except Exception as failure:  # every failure counts, whatever its kind
                error = f"{step.name}: {type(client).__name__}: {failure}"
            with self._lock:
                step.sent += 1
                if error:
                    step.failed += 1
                    self.errors.append(error)


def wait_drained(rest: RestClient, version: str, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
    """Wait until no request is queued for `version`, so unregistering it cuts nothing off."""
    poll(lambda: not rest.describe(version=version)[0]["jobQueueStatus"]["pendingRequests"], timeout_s,
         f"{version} has no queued requests", interval=0.2)
