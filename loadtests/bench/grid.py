"""What the bench measures: the grid of configurations, the shipped one as `make serve` starts it, and the
command line that chooses among them."""

import argparse
import dataclasses
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch

from asl_serve.handler import ts_config
from asl_serve.handler.archive import VARIANTS, shipped_archive, shipped_settings
from asl_serve.layout import REPO, REPORTS, allocator_env
from asl_serve.loadtests import bench
from asl_serve.loadtests.images import DEFAULT_IMAGES
from asl_serve.model.config import MODEL_NAME

CORES = os.cpu_count() or 1
REST, GRPC = "REST", "gRPC"
SHIPPED = "as shipped"  # the allocator environment `make serve` gives TorchServe


@dataclass(frozen=True)
class Grid:
    """What to measure; every list is one axis of the grid."""

    variants: list[str]
    batches: list[tuple[int, int]]  # (batchSize, maxBatchDelay ms) for our handler
    workers: list[int]
    threads: list[int]
    baseline: list[tuple[int, int | None]]  # (workers, threads; None: torch's default) for the baseline handler
    concurrency: list[int]
    seconds: float
    warmup: float
    limit_batches: list[int]
    limit_processes: list[int]  # in-process limit: processes running the pipeline at once
    limit_threads: list[int]  # PyTorch threads in each of them
    client_processes: list[int]  # Locust processes sharing the users, for the shipped configuration
    tuned_malloc: bool  # also serve the shipped and baseline configurations with the other malloc setting
    rounds: int  # passes over the served configurations; measurements of the same one are pooled


FULL = Grid(
    variants=["int8", "onnx-int8", "fp32"], batches=[(1, 1), (8, 2)], workers=[1, 2], threads=[1],
    baseline=[(1, None), (1, 1), (2, 1)], concurrency=[1, 4, 16], seconds=5, warmup=2, limit_batches=[1, 4, 8, 16],
    limit_processes=[1, CORES], limit_threads=[1], client_processes=[1, 2], tuned_malloc=True, rounds=1,
)
QUICK = Grid(
    variants=["int8"], batches=[(1, 1), (8, 10)], workers=[1], threads=[1], baseline=[(1, 1)], concurrency=[2],
    seconds=2, warmup=1, limit_batches=[1, 8], limit_processes=[1, CORES], limit_threads=[1], client_processes=[1, 2],
    tuned_malloc=True, rounds=1,
)


@dataclass(frozen=True)
class Served:
    """One TorchServe configuration of one handler on one model variant."""

    handler: str  # "ours" or "baseline"
    variant: str
    batch_size: int
    max_batch_delay: int  # ms
    workers: int
    threads: int | None  # PyTorch threads per worker; None: torch's default
    allocator: str = SHIPPED  # a key of allocators(): the environment the server's processes start with

    @property
    def version(self) -> str:
        return (f"{self.handler}-{self.variant}-b{self.batch_size}-d{self.max_batch_delay}-w{self.workers}"
                f"-t{self.threads or 'default'}")

    @property
    def label(self) -> str:
        threads = self.threads or f"default ({torch.get_num_threads()})"
        return (f"{self.handler} {self.variant}, batch {self.batch_size}/{self.max_batch_delay} ms, "
                f"{self.workers} worker(s) x {threads} thread(s)"
                + (f", {self.allocator}" if self.allocator != SHIPPED else ""))

    def settings(self) -> dict:
        """The model-config.yaml keys that make an archive serve this configuration.

        TorchServe starts minWorkers workers and never scales on its own (maxWorkers bounds scale
        requests), so both are set to `workers`.
        """
        return {"minWorkers": self.workers, "maxWorkers": self.workers, "batchSize": self.batch_size,
                "maxBatchDelay": self.max_batch_delay, "handler": {"threads": self.threads}}


@cache
def shipped_config() -> Served:
    """What `make serve` starts for the default version of config.properties: handler/model-config.yaml's
    batching and threads, and the workers TorchServe gives that version (the archive's minWorkers, else the
    version's in config.properties' models=, else default_workers_per_model, where 0 means one per core)."""
    config = shipped_settings()
    server = ts_config.read()
    _, spec = ts_config.default_version(MODEL_NAME, server)
    variant = next(variant for variant in VARIANTS if shipped_archive(variant).name == spec["marName"])
    workers = config.get("minWorkers") or spec.get("minWorkers") or int(server.get("default_workers_per_model", 0))
    return Served("ours", variant, config["batchSize"], config["maxBatchDelay"], workers or CORES,
                  (config.get("handler") or {}).get("threads"))


def other_allocator() -> tuple[str, dict[str, str]]:
    """The malloc setting compared with the shipped one: glibc's defaults (compared only when `make serve` sets
    allocator variables, such as the fixed malloc thresholds of deploy/allocator.env)."""
    return "glibc's default malloc", {}


def allocators() -> dict[str, dict[str, str]]:
    """The server environments by name: as shipped, and the other."""
    return dict([(SHIPPED, allocator_env()), other_allocator()])


def served_configs(grid: Grid) -> list[Served]:
    """Our handler's grid, the shipped configuration, the baseline's, and those again with the other allocator."""
    shipped = shipped_config()
    ours = [
        Served("ours", variant, batch, delay, workers, threads)
        for variant in grid.variants for batch, delay in grid.batches for workers in grid.workers
        for threads in grid.threads
    ]
    if shipped not in ours:
        ours.append(shipped)
    baseline = [Served("baseline", shipped.variant, 1, 1, w, t) for w, t in grid.baseline]
    compared = grid.tuned_malloc and bool(allocator_env())
    again = [dataclasses.replace(s, allocator=other_allocator()[0]) for s in (shipped, *baseline)] * compared
    return ours + baseline + again


def loads(served: Served, grid: Grid) -> list[tuple[str, int, int]]:
    """(transport, concurrency, client processes) at which `served` is measured: every transport and client
    count for the shipped configuration, one Locust process over REST for the others."""
    shipped = served == shipped_config()
    return [
        (transport, concurrency, clients)
        for concurrency in grid.concurrency for clients in (grid.client_processes if shipped else [1])
        for transport in ([REST, GRPC] if shipped else [REST]) if clients <= concurrency
    ]


def pairs(text: str) -> tuple[int, int | None]:
    """'8:10' -> (8, 10); 'default' as the second number -> None."""
    first, second = text.split(":")
    return int(first), None if second == "default" else int(second)


def parse_grid(argv: list[str] | None) -> tuple[argparse.Namespace, Grid]:
    parser = argparse.ArgumentParser(prog="python -m asl_serve.loadtests.bench", description=bench.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tiny grid (seconds, not minutes); options override it")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS))
    parser.add_argument("--batches", nargs="+", type=pairs, metavar="SIZE:DELAY_MS", help="our handler's batching")
    parser.add_argument("--workers", nargs="+", type=int, help="workers per configuration of our handler")
    parser.add_argument("--threads", nargs="+", type=int, help="PyTorch threads per worker of our handler")
    parser.add_argument("--baseline", nargs="*", type=pairs, metavar="WORKERS:THREADS",
                        help="baseline configurations; THREADS may be 'default'; none when empty")
    parser.add_argument("--concurrency", nargs="+", type=int, help="concurrent users")
    parser.add_argument("--seconds", type=float, help="measured seconds per concurrency level")
    parser.add_argument("--warmup", type=float, help="seconds of load before measuring")
    parser.add_argument("--limit-batches", nargs="*", type=int, help="in-process batch sizes; none when empty")
    parser.add_argument("--limit-processes", nargs="+", type=int,
                        help=f"in-process: processes running the pipeline at once (default 1 and {CORES}, the cores)")
    parser.add_argument("--limit-threads", nargs="+", type=int, help="in-process PyTorch threads per process")
    parser.add_argument("--client-processes", nargs="+", type=int,
                        help="Locust processes sharing the users for the shipped configuration")
    parser.add_argument("--rounds", type=int, help="passes over the served configurations, pooled (against drift)")
    parser.add_argument("--tuned-malloc", action=argparse.BooleanOptionalAction,
                        help="also serve the shipped and baseline configurations with glibc's default malloc "
                             "settings, when `make serve` sets others")
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="photos, in folders named by class")
    parser.add_argument("--out", type=Path, help="where the report and figures/ go (default: reports/, or "
                        "build/bench/quick/ with --quick so a smoke run never replaces the committed report)")
    args = parser.parse_args(argv)
    args.images = args.images.resolve()
    args.out = args.out or (REPO / "build" / "bench" / "quick" if args.quick else REPORTS)
    grid = QUICK if args.quick else FULL
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(Grid) if getattr(args, f.name) is not None}
    return args, dataclasses.replace(grid, **given)
