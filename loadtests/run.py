"""Load-test a running TorchServe with the Locust users (REST and gRPC) and summarise the run.

    python -m asl_serve.loadtests.run [--users 4] [--duration 20s] [--images DIR] [--model-version V] [--out DIR]

The server is `make serve`'s (key_file.json in the repo root) unless the ASL_* environment variables
point elsewhere. Users are split evenly between REST and gRPC. Writes Locust's CSVs (locust_*.csv)
and HTML report (report.html) to --out (default reports/loadtest/), then summary.md from Locust's final
statistics (locust.json): requests/s and p50/p95/p99 per endpoint, and the failures. Exits non-zero
when a request failed.
"""

import argparse
import csv
import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from asl_serve.client.rest import RestClient
from asl_serve.client.settings import ClientError, Server
from asl_serve.layout import REPORTS
from asl_serve.loadtests.images import DEFAULT_IMAGES, image_paths

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
PREFIX = "locust"  # locust_stats.csv, locust_failures.csv, ..., locust.json


def server_options(server: Server) -> list[str]:
    """The locustfile's options that point its users at `server`."""
    return ["--host", server.inference_url, "--grpc-target", server.grpc_inference, "--key-file", str(server.key_file)]


def run_locust(server: Server, users: int, duration: str, out: Path, images: Path = DEFAULT_IMAGES,
               version: str = "") -> int:
    """Run Locust headless in its own process (it monkey-patches everything it imports into); files to `out`.

    Exits non-zero when a request failed.
    """
    out.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", *server_options(server),
        "--users", str(users), "--spawn-rate", str(users), "--run-time", duration, "--stop-timeout", "10s",
        "--csv", str(out / PREFIX), "--json-file", str(out / PREFIX), "--html", str(out / "report.html"),
        "--only-summary", "--images", str(images), "--model-version", version,
    ]
    return subprocess.run(command).returncode


@dataclass
class Endpoint:
    """One row of the summary, from Locust's final statistics for one endpoint (or all of them)."""

    name: str
    requests: int
    failures: int
    started: float  # Unix times: statistics started, last request
    ended: float
    response_times: Counter  # milliseconds as Locust rounds them -> count

    @classmethod
    def from_locust(cls, entry: dict) -> "Endpoint":
        started = entry["start_time"]
        times = Counter({int(ms): count for ms, count in entry["response_times"].items()})
        return cls(
            f"{entry['method']} {entry['name']}", entry["num_requests"], entry["num_failures"], started,
            entry["last_request_timestamp"] or started, times,
        )

    def percentile(self, fraction: float) -> int:
        """The response time that `fraction` of the requests finished within (Locust's definition)."""
        needed, seen = fraction * self.requests, 0
        for ms in sorted(self.response_times):
            seen += self.response_times[ms]
            if seen >= needed:
                return ms
        return 0

    def row(self) -> str:
        seconds = self.ended - self.started
        rate = self.requests / seconds if seconds > 0 else 0.0
        p50, p95, p99 = (self.percentile(f) for f in (0.5, 0.95, 0.99))
        return f"| {self.name} | {self.requests} | {self.failures} | {rate:.1f} | {p50} | {p95} | {p99} |"


def endpoints(out: Path) -> list[Endpoint]:
    """Each endpoint, then all of them together."""
    rows = [Endpoint.from_locust(entry) for entry in json.loads((out / f"{PREFIX}.json").read_text())]
    total = Endpoint(
        "**all**", sum(r.requests for r in rows), sum(r.failures for r in rows), min(r.started for r in rows),
        max(r.ended for r in rows), sum((r.response_times for r in rows), Counter()),
    )
    return [*rows, total]


def summary(out: Path, server: Server, users: int, duration: str, images: Path, version: str) -> str:
    rows = endpoints(out)
    with (out / f"{PREFIX}_failures.csv").open(newline="") as handle:
        failures = list(csv.DictReader(handle))
    failed = rows[-1].failures
    lines = [
        "# Load test",
        "",
        f"`python -m asl_serve.loadtests.run --users {users} --duration {duration}`, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC,",
        f"against {server.inference_url} (REST) and {server.grpc_inference} (gRPC), model version "
        f"{version or 'default'}, {len(image_paths(images))} photos from {images}. Each user sends its next "
        "photo as soon as the last is answered; users are split evenly between REST and gRPC.",
        "",
        "| endpoint | requests | failures | requests/s | p50 ms | p95 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(row.row() for row in rows),
        "",
        f"**{'PASS: no request failed' if failed == 0 else f'FAIL: {failed} requests failed'}.**",
    ]
    if failures:
        lines += ["", "Failures by kind:", ""]
        lines += [f"- {r['Method']} {r['Name']}: {' '.join(r['Error'].split())}" for r in failures]
    lines += ["", "Locust's own report: report.html and locust_*.csv beside this file."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asl_serve.loadtests.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=4, help="concurrent users, half REST and half gRPC")
    parser.add_argument("--duration", default="20s", help="Locust run time, e.g. 20s or 2m")
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="folder of photos to post")
    parser.add_argument("--model-version", default="", help="version of asl to call (default: the server's)")
    parser.add_argument("--out", type=Path, default=REPORTS / "loadtest")
    args = parser.parse_args(argv)
    server = Server.from_env()
    for stale in [args.out / "summary.md", args.out / "report.html", *args.out.glob(f"{PREFIX}*")]:
        stale.unlink(missing_ok=True)  # a failed run must not leave another run's report behind
    try:
        RestClient(server).ping()
    except ClientError as error:
        return fail(args.out, f"TorchServe does not answer at {server.inference_url}: {error}")
    code = run_locust(server, args.users, args.duration, args.out, args.images, args.model_version)
    if not (args.out / f"{PREFIX}.json").exists():
        return fail(args.out, f"Locust wrote no statistics (exit status {code})")
    if not json.loads((args.out / f"{PREFIX}.json").read_text()):
        return fail(args.out, "no request completed: is TorchServe still up?")
    text = summary(args.out, server, args.users, args.duration, args.images, args.model_version)
    (args.out / "summary.md").write_text(text)
    print(text)
    return code


def fail(out: Path, reason: str) -> int:
    """A run that measured nothing: say so on stderr and in summary.md; exit status 1."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(f"# Load test\n\n**FAIL: {reason}**\n")
    print(f"error: {reason}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
