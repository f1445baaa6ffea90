"""Roll a freshly built version out and back while predictions flow, and count the requests that failed.

    python -m asl_serve.drills.rollout [--version 1.1-int8] [--threads 4] [--dwell 3] [--report reports/rollout.md]

It starts its own TorchServe (harness.server: free ports, a temporary copy of model_store/), so a
`make serve` server is never touched. While client threads (half REST, half gRPC) send predictions to
the default version of `asl`, it builds and registers the new version, makes it the default, rolls
back to the previous default, lets the new version drain and unregisters it.
"""

import re
import sys
import textwrap
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from asl_serve.client.rest import RestClient
from asl_serve.client.settings import ClientError, Server
from asl_serve.handler import ts_config
from asl_serve.handler.archive import VARIANTS, build
from asl_serve.harness.reports import drill_parser, publish
from asl_serve.harness.server import private_torchserve
from asl_serve.harness.traffic import Traffic, wait_drained
from asl_serve.layout import EXPORT_DIR
from asl_serve.model.config import MODEL_NAME


@dataclass
class Rollout:
    version: str
    previous: str
    traffic: Traffic


def roll_out(server: Server, archive: str, version: str, threads: int = 4, dwell_s: float = 3) -> Rollout:
    """Register `archive` (in the server's model store) as `version`, switch to it, roll back, retire it."""
    rest = RestClient(server)
    previous = rest.default_version()
    with Traffic(server, threads) as traffic:
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
    return Rollout(version, previous, traffic)


def batches_per_version(model_log: str) -> Counter:
    """Batches each version's workers answered, from the worker lines of model_log.log."""
    pattern = rf"W-\d+-{MODEL_NAME}_(\S+?)-stdout MODEL_LOG - Backend received inference"
    return Counter(re.findall(pattern, model_log))


def report(result: Rollout, batches: Counter) -> str:
    traffic = result.traffic
    seconds = sum(s.seconds for s in traffic.steps)
    verdict = "PASS: no request failed" if traffic.failed == 0 else f"FAIL: {traffic.failed} requests failed"
    lines = [
        "# Roll-out under load",
        "",
        textwrap.fill(
            f"`make rollout-demo` (`python -m asl_serve.drills.rollout`), {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, on a "
            f"private {ts_config.torchserve()} (own ports, a temporary copy of model_store/). "
            f"{traffic.threads} client threads (half REST, half gRPC) sent predictions for the default "
            f"version of `{MODEL_NAME}` throughout, while a freshly built {result.version} was registered, made "
            f"the default, rolled back to {result.previous}, drained and unregistered.",
            width=100,
        ),
        "",
        "| step | default version | seconds | requests sent | failed |",
        "|---|---|---:|---:|---:|",
        *(f"| {s.name} | {s.default} | {s.seconds:.1f} | {s.sent} | {s.failed} |" for s in traffic.steps),
        f"| **total** | | {seconds:.1f} | **{traffic.sent}** | **{traffic.failed}** |",
        "",
        "Batches answered per version (worker lines of model_log.log): "
        + ", ".join(f"{version}: {count}" for version, count in sorted(batches.items())),
        "",
        f"**{verdict}.**",
    ]
    if traffic.errors:
        lines += ["", "First failures:", "", *(f"- {e}" for e in traffic.errors[:10])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = drill_parser("asl_serve.drills.rollout", __doc__, "rollout.md")
    parser.add_argument("--export-dir", type=Path, default=EXPORT_DIR, help="exported models")
    parser.add_argument("--version", default="1.1-int8", help="version of the freshly built int8 archive")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--dwell", type=float, default=3, help="seconds of traffic on each steady state")
    args = parser.parse_args(argv)
    exported = args.export_dir / VARIANTS["int8"][0]
    if not exported.exists():
        print(f"error: no {exported}: run `make export` first", file=sys.stderr)
        return 1
    try:
        with private_torchserve(args.model_store) as torchserve:
            archive = build(exported, "int8", torchserve.store / f"{MODEL_NAME}-{args.version}.mar", args.version)
            result = roll_out(torchserve.server, archive.name, args.version, args.threads, args.dwell)
            batches = batches_per_version(torchserve.log())
    except (ClientError, RuntimeError, TimeoutError) as error:  # RuntimeError: TorchServe did not start
        print(f"error: {error}", file=sys.stderr)
        return 1
    return publish(report(result, batches), args.report, result.traffic.failed)


if __name__ == "__main__":
    sys.exit(main())
