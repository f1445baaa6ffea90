"""Soak: Locust against a private TorchServe for a long run, watching failures, restarts and memory.

    python -m asl_serve.drills.soak [--duration 10m] [--users 8] [--warm-up 60] [--report reports/soak.md]

It starts its own TorchServe from config.properties (harness.server: free ports, a
temporary copy of model_store/) and runs the users of loadtests/locustfile.py (half REST, half gRPC)
headless against the default version, sampling the resident memory of the
frontend and of every worker every `--sample-every` seconds. Locust's CSVs and HTML report go to
`--out`; the summary to `--report`. Passing means: no failed request, no worker restarted, and no
process's memory grown by 10% or more from the first sample after `--warm-up` seconds of load (buffer
pools and the workers' allocators size themselves to the load first) to the end. The JVM runs a fixed heap,
committed and touched (FIXED_HEAP, drills/processes.py), so that its resident memory shows
growth. Exits with status 1 otherwise.
"""

import csv
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from asl_serve.client.rest import RestClient
from asl_serve.client.settings import Server
from asl_serve.drills.processes import FIXED_HEAP, HEAP_MB, MAX_GROWTH, growth, resident_mb, worker_pids
from asl_serve.handler import ts_config
from asl_serve.harness.reports import drill_parser, publish, verdict
from asl_serve.harness.server import private_torchserve
from asl_serve.layout import REPORTS
from asl_serve.loadtests.run import run_locust
from asl_serve.model.config import MODEL_NAME


@dataclass
class Sample:
    seconds: float  # since the load started
    memory: dict[str, float]
    pids: dict[str, list[int]]


class MemoryWatch:
    """Samples memory and worker PIDs in a thread until the `with` block ends."""

    def __init__(self, server: Server, every_s: float):
        self.rest, self.every_s = RestClient(server), every_s
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> "MemoryWatch":
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()  # the end

    def _sample(self) -> None:
        self.samples.append(Sample(time.monotonic() - self._started, resident_mb(self.rest), worker_pids(self.rest)))

    def _watch(self) -> None:
        self._sample()
        while not self._stop.wait(self.every_s):
            self._sample()


@dataclass
class Soak:
    users: int
    duration: str
    warm_up_s: float
    idle: dict[str, float]  # memory before any load
    samples: list[Sample]
    stats: dict[str, str]  # Locust's aggregated row
    failures: list[dict[str, str]]

    @property
    def start(self) -> Sample:
        """The first sample after the warm-up."""
        return next((s for s in self.samples if s.seconds >= self.warm_up_s), self.samples[-1])

    @property
    def growth(self) -> dict[str, float]:
        return growth(self.start.memory, self.samples[-1].memory)

    @property
    def restarts(self) -> int:
        """Worker PIDs that appeared after the first sample: each replaced a worker that died."""
        first = {pid for pids in self.samples[0].pids.values() for pid in pids}
        later = {pid for sample in self.samples[1:] for pids in sample.pids.values() for pid in pids}
        return len(later - first)

    @property
    def problems(self) -> list[str]:
        problems = [f"{self.stats['Failure Count']} requests failed"] if int(self.stats["Failure Count"]) else []
        if self.restarts:
            problems.append(f"{self.restarts} worker restart(s)")
        return problems + [f"{name} grew {g:.1%}" for name, g in self.growth.items() if g >= MAX_GROWTH]


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def soak(server: Server, users: int, duration: str, warm_up_s: float, every_s: float, out: Path) -> Soak:
    idle = resident_mb(RestClient(server))
    with MemoryWatch(server, every_s) as watch:
        run_locust(server, users, duration, out)  # exits 1 when a request failed: the report says so
    aggregated = next(row for row in read_rows(out / "locust_stats.csv") if row["Name"] == "Aggregated")
    return Soak(users, duration, warm_up_s, idle, watch.samples, aggregated, read_rows(out / "locust_failures.csv"))


def report(result: Soak) -> str:
    names = list(result.samples[-1].memory)
    start, end = result.start, result.samples[-1]
    stats = result.stats
    lines = [
        "# Soak",
        "",
        f"`python -m asl_serve.drills.soak --duration {result.duration} --users {result.users} "
        f"--warm-up {result.warm_up_s:.0f}`, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, on a private {ts_config.torchserve()} "
        "started from config.properties "
        f"(every version; the load goes to the default, {ts_config.default_version(MODEL_NAME)[0]}; "
        f"the JVM runs a fixed {HEAP_MB} MB heap, "
        "committed and touched: drills/processes.py; the allocator variables are make serve's). "
        "Locust users of loadtests/locustfile.py, half REST and half gRPC, each sending its next photo as soon "
        "as the last is answered.",
        "",
        "| requests | failures | requests/s | p50 ms | p95 ms | p99 ms | worker restarts |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {stats['Request Count']} | {stats['Failure Count']} | {float(stats['Requests/s']):.1f} | {stats['50%']} "
        f"| {stats['95%']} | {stats['99%']} | {result.restarts} |",
        "",
        f"Resident memory (MB): idle is before the load, start is {start.seconds:.0f} s into it (after the "
        f"{result.warm_up_s:.0f} s warm-up), end is when it stopped ({end.seconds:.0f} s); the bar (< 10%) applies "
        "to start -> end.",
        "",
        "| process | idle | start | end | growth | max |",
        "|---|---:|---:|---:|---:|---:|",
        *(f"| {name} | {result.idle[name]:.0f} | {start.memory[name]:.0f} | {end.memory[name]:.0f} "
          f"| {result.growth[name]:+.1%} | {max(s.memory.get(name, 0) for s in result.samples):.0f} |"
          for name in names),
        "",
        "Samples (MB): " + "; ".join(
            f"{s.seconds:.0f} s: " + ", ".join(f"{s.memory[n]:.0f}" for n in names) for s in result.samples
        ) + f" ({', '.join(names)})",
        "",
        verdict(result.problems),
    ]
    if result.failures:
        lines += ["", "| endpoint | error | occurrences |", "|---|---|---:|"]
        lines += [f"| {r['Method']} {r['Name']} | {r['Error']} | {r['Occurrences']} |" for r in result.failures]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = drill_parser("asl_serve.drills.soak", __doc__, "soak.md")
    parser.add_argument("--duration", default="10m", help="Locust run time, e.g. 60s or 10m")
    parser.add_argument("--users", type=int, default=8, help="concurrent users, half REST and half gRPC")
    parser.add_argument("--warm-up", type=float, default=60, help="seconds of load before memory is compared")
    parser.add_argument("--sample-every", type=float, default=30, help="seconds between memory samples")
    parser.add_argument("--out", type=Path, default=REPORTS / "loadtest" / "soak", help="Locust's files")
    args = parser.parse_args(argv)
    with private_torchserve(args.model_store, properties=FIXED_HEAP) as torchserve:
        result = soak(torchserve.server, args.users, args.duration, args.warm_up, args.sample_every, args.out)
    return publish(report(result), args.report, result.problems)


if __name__ == "__main__":
    sys.exit(main())
