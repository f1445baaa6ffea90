"""Roll a freshly built version out and back while predictions flow, and count the requests that failed.

    python -m client.rollout [--version 1.1-int8] [--threads 4] [--dwell 3] [--report reports/rollout.md]

It starts its own TorchServe (client.launcher.LocalTorchServe: free ports, a temporary copy of
model_store/), so a `make serve` server is never touched. While client threads (half REST, half gRPC)
send predictions to the default version of `asl`, it builds and registers the new version, makes it
the default, rolls back to the previous default, lets the new version drain and unregisters it.
"""

import argparse
import itertools
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from client.grpc_client import GrpcClient
from client.launcher import LocalTorchServe
from client.rest import RestClient
from client.settings import MODEL, REPO, ClientError, Server

SAMPLES = REPO / "samples" / "asl2text"
DRAIN_TIMEOUT_S = 30


@dataclass
class Step:
    name: str
    default: str
    seconds: float = 0.0
    sent: int = 0
    failed: int = 0


class Traffic:
    """Predictions for the default version from several threads (half REST, half gRPC), counted per step.

    The threads start with the first step and stop when the `with Traffic(...)` block ends.
    """

    def __init__(self, server: Server, images: list[Path], threads: int):
        self.images = images
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


@dataclass
class Rollout:
    version: str
    previous: str
    threads: int
    steps: list[Step]
    errors: list[str]

    @property
    def sent(self) -> int:
        return sum(s.sent for s in self.steps)

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.steps)


def wait_drained(rest: RestClient, version: str, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
    """Wait until no request is queued for `version`, so unregistering it cuts nothing off."""
    deadline = time.monotonic() + timeout_s
    while rest.describe(version=version)[0]["jobQueueStatus"]["pendingRequests"]:
        if time.monotonic() > deadline:
            raise ClientError(f"{version} still has queued requests after {timeout_s:.0f}s")
        time.sleep(0.2)


def roll_out(server: Server, archive: str, version: str, threads: int = 4, dwell_s: float = 3) -> Rollout:
    """Register `archive` (in the server's model store) as `version`, switch to it, roll back, retire it."""
    rest = RestClient(server)
    previous = rest.default_version()
    images = sorted(SAMPLES.glob("*/*.jpg"))
    with Traffic(server, images, threads) as traffic:
        with traffic.step("baseline", previous):
            time.sleep(dwell_s)
        with traffic.step(f"register {version}", previous):
            rest.register(archive)
        with traffic.step(f"set-default {version}", version):
            rest.set_default(version)
            time.sleep(dwell_s)
        with traffic.step(f"roll back to {previous}", previous):
            rest.set_default(previous)
            time.sleep(dwell_s)
        with traffic.step(f"drain, unregister {version}", previous):
            wait_drained(rest, version)
            rest.unregister(version)
        with traffic.step("after", previous):
            time.sleep(dwell_s)
    return Rollout(version, previous, threads, traffic.steps, traffic.errors)


def build_archive(export_dir: Path, store: Path, version: str) -> Path:
    """A fresh int8 archive of `version`, built by the project's archiver (`python -m handler.archive`)."""
    name = f"{MODEL}-{version}"
    subprocess.run(
        [sys.executable, "-m", "handler.archive", "--export-dir", str(export_dir), "--model-store", str(store),
         "--variant", "int8", "--version", version, "--archive-name", name],
        check=True, stdout=subprocess.DEVNULL,
    )
    return store / f"{name}.mar"


def batches_per_version(model_log: str) -> Counter:
    """Batches each version's workers answered, from the worker lines of model_log.log."""
    pattern = rf"W-\d+-{MODEL}_(\S+?)-stdout MODEL_LOG - Backend received inference"
    return Counter(re.findall(pattern, model_log))


def report(result: Rollout, batches: Counter) -> str:
    seconds = sum(s.seconds for s in result.steps)
    verdict = "PASS: no request failed" if result.failed == 0 else f"FAIL: {result.failed} requests failed"
    lines = [
        "# Roll-out under load",
        "",
        textwrap.fill(
            f"`make rollout-demo` (`python -m client.rollout`), {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, on a "
            "private TorchServe 0.12.0 (own ports, a temporary copy of model_store/). "
            f"{result.threads} client threads (half REST, half gRPC) sent predictions for the default "
            f"version of `{MODEL}` throughout, while a freshly built {result.version} was registered, made "
            f"the default, rolled back to {result.previous}, drained and unregistered.",
            width=100,
        ),
        "",
        "| step | default version | seconds | requests sent | failed |",
        "|---|---|---:|---:|---:|",
        *(f"| {s.name} | {s.default} | {s.seconds:.1f} | {s.sent} | {s.failed} |" for s in result.steps),
        f"| **total** | | {seconds:.1f} | **{result.sent}** | **{result.failed}** |",
        "",
        "Batches answered per version (worker lines of model_log.log): "
        + ", ".join(f"{version}: {count}" for version, count in sorted(batches.items())),
        "",
        f"**{verdict}.**",
    ]
    if result.errors:
        lines += ["", "First failures:", "", *(f"- {e}" for e in result.errors[:10])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m client.rollout", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--export-dir", type=Path, default=REPO / "build" / "export", help="exported models")
    parser.add_argument("--model-store", type=Path, default=REPO / "model_store", help="archives to serve")
    parser.add_argument("--version", default="1.1-int8", help="version of the freshly built int8 archive")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--dwell", type=float, default=3, help="seconds of traffic on each steady state")
    parser.add_argument("--report", type=Path, default=REPO / "reports" / "rollout.md")
    args = parser.parse_args(argv)
    exported = args.export_dir / "asl_int8.pt"
    if not exported.exists():
        print(f"error: no {exported}: run `make export` first", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="rollout-") as tmp:
        store = Path(tmp) / "model_store"
        shutil.copytree(args.model_store, store, ignore=shutil.ignore_patterns(".*"))
        archive = build_archive(args.export_dir, store, args.version)
        torchserve = LocalTorchServe(Path(tmp) / "torchserve", store)
        try:
            result = roll_out(torchserve.start(), archive.name, args.version, args.threads, args.dwell)
        except (ClientError, RuntimeError) as error:  # RuntimeError: TorchServe did not start
            print(f"error: {error}", file=sys.stderr)
            return 1
        finally:
            torchserve.stop()
        text = report(result, batches_per_version(torchserve.log()))
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text)
    print(text + f"\nwritten to {args.report}")
    return 0 if result.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
