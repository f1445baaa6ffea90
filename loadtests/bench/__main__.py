"""`python -m asl_serve.loadtests.bench`: measure the grid, then write the report, its data and its figure."""

import json
import sys
import time

from asl_serve.loadtests.bench.figure import figure
from asl_serve.loadtests.bench.grid import parse_grid
from asl_serve.loadtests.bench.limit import run_limits
from asl_serve.loadtests.bench.report import machine, report
from asl_serve.loadtests.bench.results import data
from asl_serve.loadtests.bench.serve import run_served


def main(argv: list[str] | None = None) -> int:
    args, grid = parse_grid(argv)
    started = time.monotonic()
    before = machine()
    limits = run_limits(grid, args.images)
    measurements = run_served(grid, args.images)
    after = machine()
    command = " ".join(["python -m asl_serve.loadtests.bench", *(argv if argv is not None else sys.argv[1:])])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmarks.md").write_text(report(command, grid, args.images, limits, measurements, before, after,
                                                   (time.monotonic() - started) / 60))
    (args.out / "benchmarks.json").write_text(json.dumps(data(limits, measurements), indent=1))
    figure(measurements, args.out / "figures" / "throughput_latency.png")
    print(f"wrote benchmarks.md, benchmarks.json and figures/throughput_latency.png in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
