"""Throughput and latency side by side on this machine: the in-process limit, TorchServe with our
handler (fp32/int8, batch sizes, workers) and with a baseline handler, over REST and gRPC.

    python -m loadtests.bench [--quick] [--variants int8 fp32] [--batches 1:1 4:3 8:2] [--workers 1 2]
        [--threads 1] [--baseline 1:default 1:1 2:1] [--concurrency 1 4 16] [--seconds 5] [--warmup 2]
        [--limit-batches 1 4 8 16] [--limit-threads 1 2] [--rounds 1] [--no-tuned-malloc]
        [--images DIR] [--out reports]

The limit is the handler's own pipeline (model.pipeline.Classifier: decode, Kornia preprocessing,
TorchScript forward, top-k) called in this process with no server. Then a private TorchServe
(client.launcher: free ports, the repo's config.properties) serves one configuration at a time: a
copy of the built archive with its own model-config.yaml (loadtests/archives.py) is registered,
answers every photo once (accuracy, warm-up), is loaded at each concurrency level by the Locust
users of loadtests/locustfile.py (warm-up, then measurement) and is unregistered. The shipped
configuration (handler/model-config.yaml, int8) is measured over REST and gRPC, the rest over REST;
a second server, started with fixed malloc thresholds, serves the shipped and baseline configurations
again. Writes benchmarks.md and figures/throughput_latency.png under --out.
"""

import argparse
import contextlib
import dataclasses
import itertools
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import gevent
import locust
import matplotlib
import numpy as np
import psutil
import torch
import ts
import yaml
from locust.argument_parser import get_parser
from locust.env import Environment
from matplotlib.figure import Figure

from client.launcher import LocalTorchServe
from client.rest import RestClient
from client.rollout import wait_drained
from client.settings import REPO, ClientError
from loadtests.archives import build_baseline_archive, derive_archive, load_model
from loadtests.images import DEFAULT_IMAGES, image_paths
from loadtests.locustfile import GrpcUser, RestUser
from model.config import PREPROCESS
from model.pipeline import Classifier

TRANSPORTS = {"REST": RestUser, "gRPC": GrpcUser}


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
    limit_threads: list[int]
    tuned_malloc: bool  # also serve the shipped and baseline configurations with fixed malloc thresholds
    rounds: int  # passes over the served configurations; measurements of the same one are pooled


FULL = Grid(
    variants=["int8", "fp32"], batches=[(1, 1), (4, 3), (8, 2)], workers=[1, 2], threads=[1],
    baseline=[(1, None), (1, 1), (2, 1)], concurrency=[1, 4, 16], seconds=5, warmup=2,
    limit_batches=[1, 4, 8, 16], limit_threads=[1, os.cpu_count() or 1], tuned_malloc=True, rounds=1,
)
QUICK = Grid(
    variants=["int8"], batches=[(1, 1), (8, 10)], workers=[1], threads=[1], baseline=[(1, 1)], concurrency=[2],
    seconds=2, warmup=1, limit_batches=[1, 8], limit_threads=[1], tuned_malloc=True, rounds=1,
)
# glibc serves allocations above an adaptive threshold (128 KiB at start) with fresh mmap()ed, zeroed pages and
# trims freed heap memory eagerly; fixed thresholds keep the preprocessing's image-sized buffers on the heap.
ALLOCATORS = {
    "glibc": {},
    "tuned": {"MALLOC_MMAP_THRESHOLD_": str(64 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(128 * 2**20)},
}


@dataclass(frozen=True)
class Served:
    """One TorchServe configuration of one handler on one model variant."""

    handler: str  # "ours" or "baseline"
    variant: str
    batch_size: int
    max_batch_delay: int  # ms
    workers: int
    threads: int | None  # PyTorch threads per worker; None: torch's default
    allocator: str = "glibc"  # a key of ALLOCATORS: the malloc settings the server's processes start with

    @property
    def version(self) -> str:
        return (f"{self.handler}-{self.variant}-b{self.batch_size}-d{self.max_batch_delay}-w{self.workers}"
                f"-t{self.threads or 'default'}")

    @property
    def label(self) -> str:
        threads = self.threads or f"default ({torch.get_num_threads()})"
        return (f"{self.handler} {self.variant}, batch {self.batch_size}/{self.max_batch_delay} ms, "
                f"{self.workers} worker(s) x {threads} thread(s)" + (", fixed malloc thresholds" * self.tuned))

    @property
    def tuned(self) -> bool:
        return self.allocator == "tuned"

    def settings(self) -> dict:
        """The model-config.yaml keys that make an archive serve this configuration."""
        return {"minWorkers": self.workers, "maxWorkers": self.workers, "batchSize": self.batch_size,
                "maxBatchDelay": self.max_batch_delay, "handler": {"threads": self.threads}}


def shipped_config() -> Served:
    """The configuration handler/model-config.yaml ships, on the default (int8) version."""
    config = yaml.safe_load((REPO / "handler" / "model-config.yaml").read_text())
    return Served("ours", "int8", config["batchSize"], config["maxBatchDelay"], config["minWorkers"],
                  config["handler"]["threads"])


@dataclass
class Measurement:
    served: Served
    transport: str
    concurrency: int
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0
    accuracy: float = float("nan")  # share of the photos answered with their folder's name, before the load

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


@dataclass
class Limit:
    variant: str
    threads: int
    batch: int
    images_per_s: float


def measure_limit(mar: Path, variant: str, images: list[bytes], batch: int, threads: int, seconds: float) -> Limit:
    """Images/s of the handler's pipeline in this process, on batches of `batch` photos."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        classifier = Classifier(load_model(mar), PREPROCESS)
        batches = [images[i:i + batch] for i in range(0, len(images) - batch + 1, batch)] or [images[:batch]]
        for chunk in batches[:2]:  # warm-up
            classifier.classify(chunk, [5] * len(chunk))
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            chunk = batches[done // batch % len(batches)]
            classifier.classify(chunk, [5] * len(chunk))
            done += len(chunk)
        return Limit(variant, threads, batch, done / (time.perf_counter() - started))
    finally:
        torch.set_num_threads(previous)


def measure_load(result: Measurement, host: str, images: Path, warmup: float, seconds: float) -> Measurement:
    """Add one measurement to `result`: its concurrency of Locust users calling its version without pause."""
    served = result.served
    options = get_parser().parse_args(["--headless", "--images", str(images), "--model-version", served.version])
    environment = Environment(user_classes=[TRANSPORTS[result.transport]], host=host, parsed_options=options)
    recording = False

    def record(response_time: float, exception: Exception | None, **_) -> None:
        if recording:
            if exception is None:
                result.latencies_ms.append(response_time)
            else:
                result.failures += 1

    environment.events.request.add_listener(record)
    runner = environment.create_local_runner()
    runner.start(result.concurrency, spawn_rate=result.concurrency)
    gevent.sleep(warmup)
    recording, started = True, time.perf_counter()
    gevent.sleep(seconds)
    recording = False
    result.seconds += time.perf_counter() - started
    runner.quit()
    return result


def accuracy(rest: RestClient, paths: list[Path], version: str) -> float:
    """Share of photos whose answer is their folder's name: the served configuration answers right."""
    return sum(rest.predict(path, version)["label"] == path.parent.name for path in paths) / len(paths)


def served_configs(grid: Grid) -> list[Served]:
    ours = [
        Served("ours", variant, batch, delay, workers, threads)
        for variant in grid.variants for batch, delay in grid.batches for workers in grid.workers
        for threads in grid.threads
    ]
    if shipped_config() not in ours:
        ours.append(shipped_config())
    baseline = [Served("baseline", grid.variants[0], 1, 1, w, t) for w, t in grid.baseline]
    tuned = [dataclasses.replace(s, allocator="tuned") for s in (shipped_config(), *baseline)] * grid.tuned_malloc
    return ours + baseline + tuned


@contextlib.contextmanager
def environment(extra: dict[str, str]):
    """os.environ with `extra` added, for a child process that must start with it."""
    saved = dict(os.environ)
    os.environ.update(extra)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def model_store(grid: Grid, store: Path) -> Path:
    """The built archives the grid needs, and the baseline handler's archive of the same model."""
    store.mkdir()
    for variant in {*grid.variants, "int8"}:
        shutil.copy2(REPO / "model_store" / f"asl-{variant}.mar", store)
    build_baseline_archive(store / f"asl-{grid.variants[0]}.mar", store / "baseline.mar", "baseline")
    return store


def serve(configs: list[Served], store: Path, workdir: Path, grid: Grid, images: Path) -> list[Measurement]:
    """Measure `configs` one at a time on one private TorchServe, started with their allocator's settings.

    With several rounds, each round registers and measures every configuration again, so slow drifts in
    the machine's load spread over all of them instead of favouring whichever ran first.
    """
    server = LocalTorchServe(workdir, store, {"load_models": "asl-int8.mar"})
    results: dict[tuple[Served, str, int], Measurement] = {}
    jvm = None
    try:
        with environment(ALLOCATORS[configs[0].allocator]):
            server.start()
        jvm = psutil.Process(int((workdir / "tmp" / ".model_server.pid").read_text()))  # TMPDIR of LocalTorchServe
        os.environ.update(server.server.env())  # the Locust users find the server there
        rest = RestClient(server.server)
        for round_number in range(1, grid.rounds + 1):
            for served in configs:
                source = store / ("baseline.mar" if served.handler == "baseline" else f"asl-{served.variant}.mar")
                archive = derive_archive(source, store / f"{served.version}.mar", served.version, served.settings())
                rest.register(archive.name)
                right = accuracy(rest, image_paths(images), served.version) if round_number == 1 else None
                transports = ["REST", "gRPC"] if served == shipped_config() else ["REST"]
                for concurrency, transport in itertools.product(grid.concurrency, transports):
                    m = results.setdefault((served, transport, concurrency),
                                           Measurement(served, transport, concurrency, accuracy=right))
                    measure_load(m, server.server.inference_url, images, grid.warmup, grid.seconds)
                    print(f"round {round_number}: {served.label}, {transport} x{concurrency}: {m.throughput:.1f}/s, "
                          f"p50 {m.percentile(50):.0f} ms, p99 {m.percentile(99):.0f} ms, {m.failures} failed",
                          flush=True)
                retire(rest, served.version)
    finally:
        stop(server, jvm)
    return list(results.values())


def stop(server: LocalTorchServe, jvm: psutil.Process | None) -> None:
    """Stop the server and wait for its JVM to exit: after long multi-round runs `torchserve --stop` has been
    seen to leave it (and its workers) running, so it is then terminated directly."""
    server.stop()
    if jvm is None:
        return
    try:
        jvm.wait(timeout=30)
    except psutil.TimeoutExpired:
        print(f"warning: torchserve --stop left JVM {jvm.pid} running; terminating it", file=sys.stderr)
        jvm.terminate()
        jvm.wait(timeout=60)


def retire(rest: RestClient, version: str, attempts: int = 3) -> None:
    """Unregister `version` once its queue has drained; TorchServe 0.12 sometimes answers an unregister that
    races its worker threads with a 500 (ConcurrentModificationException), so that is retried."""
    wait_drained(rest, version)
    for attempt in range(1, attempts + 1):
        try:
            rest.unregister(version)
            return
        except ClientError:
            if attempt == attempts:
                raise
            time.sleep(1)


def run_served(grid: Grid, images: Path, workdir: Path) -> list[Measurement]:
    """Every served configuration of the grid: one private TorchServe per allocator setting."""
    store = model_store(grid, workdir / "model_store")
    configs = served_configs(grid)
    measurements = []
    for allocator in ALLOCATORS:
        group = [c for c in configs if c.allocator == allocator]
        if group:
            measurements += serve(group, store, workdir / f"torchserve-{allocator}", grid, images)
    return measurements


def run_limits(grid: Grid, images: Path) -> list[Limit]:
    photos = [path.read_bytes() for path in image_paths(images)]
    limits = []
    for variant in grid.variants:
        mar = REPO / "model_store" / f"asl-{variant}.mar"
        for threads in grid.limit_threads:
            for batch in grid.limit_batches:
                limits.append(measure_limit(mar, variant, photos, batch, threads, grid.seconds / 2))
                print(f"limit {variant} x{threads} threads, batch {batch}: {limits[-1].images_per_s:.1f} images/s",
                      flush=True)
    return limits


# --- report -------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """What the figures were measured on, and what else was busy at the time."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    return {
        "CPU": f"{cpu}, {os.cpu_count()} logical cores, {psutil.virtual_memory().total / 2**30:.0f} GiB memory",
        "software": f"Python {platform.python_version()}, torch {torch.__version__}, TorchServe {ts.__version__}, "
                    f"Locust {locust.__version__}",
        "commit": (commit.stdout.strip() or "unknown") + (" with uncommitted changes" if dirty else ""),
        "load": "load average {:.2f} / {:.2f} / {:.2f} (1/5/15 min)".format(*os.getloadavg()),
        "busy": busy_processes(),
    }


def busy_processes(threshold: float = 20.0) -> str:
    """Other processes using more than `threshold` % of a core over one second."""
    ours = {os.getpid(), *(p.pid for p in psutil.Process().children(recursive=True))}
    candidates = [p for p in psutil.process_iter(["name", "cmdline"]) if p.pid not in ours]
    for process in candidates:
        with contextlib.suppress(psutil.Error):
            process.cpu_percent(None)
    time.sleep(1)
    busy = []
    for process in candidates:
        try:
            usage = process.cpu_percent(None)
        except psutil.Error:
            continue
        if usage > threshold:
            command = " ".join(process.info["cmdline"] or [process.info["name"]])[:80]
            busy.append(f"`{command}` ({usage:.0f} % of a core)")
    return ", ".join(busy) or "none"


def ms(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def measurement_rows(measurements: list[Measurement]) -> list[str]:
    return [
        "| configuration | transport | concurrency | requests/s | p50 ms | p95 ms | p99 ms | failures | right |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        *(f"| {m.served.label} | {m.transport} | {m.concurrency} | {m.throughput:.1f} | {ms(m.percentile(50))} "
          f"| {ms(m.percentile(95))} | {ms(m.percentile(99))} | {m.failures} | {m.accuracy:.0%} |"
          for m in measurements),
    ]


def target_rows(limits: list[Limit], measurements: list[Measurement]) -> list[str]:
    """The issue's targets, each with the figures it was judged on (glibc's default allocator, as shipped)."""
    rest = [m for m in measurements if m.transport == "REST" and m.latencies_ms and not m.served.tuned]
    ours = [m for m in rest if m.served.handler == "ours"]
    rows = []

    def add(target: str, figures: str, met: bool) -> None:
        rows.append(f"| {target} | {figures} | {'yes' if met else '**no**'} |")

    if ours and limits:
        best = max(ours, key=lambda m: m.throughput)
        limit = max((x for x in limits if x.variant == best.served.variant), key=lambda x: x.images_per_s)
        ratio = best.throughput / limit.images_per_s
        add("best served ≥ 70 % of the in-process limit",
            f"{best.throughput:.1f} req/s ({best.served.label}, concurrency {best.concurrency}) = {ratio:.0%} of "
            f"{limit.images_per_s:.1f} images/s ({limit.threads} thread(s), batch {limit.batch})", ratio >= 0.7)
        p50, p99 = best.percentile(50), best.percentile(99)
        add("p99 ≤ 3 x p50 at that configuration", f"p99 {ms(p99)} ms, p50 {ms(p50)} ms ({p99 / p50:.1f} x)",
            p99 <= 3 * p50)
    best = {v: max((m.throughput for m in ours if m.served.variant == v), default=0) for v in ("int8", "fp32")}
    if all(best.values()):
        ratio = best["int8"] / best["fp32"]
        add("int8 ≥ 1.5 x fp32 served throughput", f"{best['int8']:.1f} vs {best['fp32']:.1f} req/s ({ratio:.2f} x)",
            ratio >= 1.5)
    baseline = [m for m in rest if m.served.handler == "baseline"]
    top = max((m.concurrency for m in baseline), default=None)
    rivals = [m for m in ours if m.concurrency == top and baseline and m.served.variant == baseline[0].served.variant]
    if rivals:
        mine = max(rivals, key=lambda m: m.throughput)
        theirs = max((m for m in baseline if m.concurrency == top), key=lambda m: m.throughput)
        add(f"ours ≥ baseline throughput, ≤ its p99 (best of each, concurrency {top})",
            f"{mine.throughput:.1f} vs {theirs.throughput:.1f} req/s, p99 {ms(mine.percentile(99))} vs "
            f"{ms(theirs.percentile(99))} ms",
            mine.throughput >= theirs.throughput and mine.percentile(99) <= theirs.percentile(99))
    pairs = [(r, g) for r, g in itertools.pairwise(measurements)
             if (r.transport, g.transport) == ("REST", "gRPC") and r.latencies_ms and g.latencies_ms]
    if pairs:
        figures = ", ".join(f"x{r.concurrency}: {ms(g.percentile(50))} vs {ms(r.percentile(50))} ms" for r, g in pairs)
        add("gRPC p50 ≤ REST p50 (shipped configuration, each concurrency)", figures,
            all(g.percentile(50) <= r.percentile(50) for r, g in pairs))
    return rows


def report(command: str, grid: Grid, images: Path, limits: list[Limit], measurements: list[Measurement],
           before: dict[str, str], after: dict[str, str], minutes: float) -> str:
    shown = images.relative_to(REPO) if images.is_relative_to(REPO) else images
    lines = [
        "# Benchmarks",
        "",
        f"`{command}`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {minutes:.1f} minutes, "
        f"{len(image_paths(images))} photos from {shown}.",
        "",
        f"- **Machine**: {before['CPU']}; {before['software']}.",
        f"- **Commit**: {before['commit']}.",
        f"- **Load**: before, {before['load']}; after, {after['load']}.",
        f"- **Also busy**: before, {before['busy']}; after, {after['busy']}.",
        "",
        "Clients (Locust, this process) and server share the machine. Each concurrency level is "
        f"{grid.warmup:g} s of warm-up, then {grid.seconds:g} s measured, in each of {grid.rounds} round(s) over all "
        "configurations (pooled); every user sends its next photo as "
        "soon as the last is answered. Latencies are exact (not Locust's rounded buckets). \"right\" is the "
        "share of photos the configuration classified as their folder's name, asked once before the load. "
        "Unless marked \"fixed malloc thresholds\", the server runs with glibc's default allocator settings.",
        "",
        "## Targets (issue 5)",
        "",
        "| target | figures | met |",
        "|---|---|---|",
        *target_rows(limits, measurements),
        "",
        "## In-process limit: the handler's pipeline, no server",
        "",
        "model.pipeline.Classifier (decode, Kornia resize and normalise, TorchScript forward, top-k) in one "
        "Python process on the same photos.",
        "",
        "| variant | PyTorch threads | batch | images/s |",
        "|---|---:|---:|---:|",
        *(f"| {x.variant} | {x.threads} | {x.batch} | {x.images_per_s:.1f} |" for x in limits),
        "",
        "## TorchServe: our handler and the baseline handler, over REST",
        "",
        "The baseline (loadtests/baseline_handler.py) is what a user would write from TorchServe's examples: "
        "Pillow and NumPy preprocessing, one image per request, on the same TorchScript model.",
        "",
        *measurement_rows([m for m in measurements if m.transport == "REST" and not m.served.tuned]),
        "",
        "## REST vs gRPC: the shipped configuration",
        "",
        *measurement_rows([m for m in measurements if m.served == shipped_config()]),
    ]
    tuned = [m for m in measurements if m.served.tuned]
    if tuned:
        twins = [m for m in measurements if m.transport == "REST" and not m.served.tuned
                 and dataclasses.replace(m.served, allocator="tuned") in {t.served for t in tuned}]
        lines += [
            "",
            "## Allocator: glibc's adaptive malloc thresholds vs fixed ones",
            "",
            "The same configurations on a second server started with "
            + ", ".join(f"`{k}={v}`" for k, v in ALLOCATORS["tuned"].items())
            + ": glibc then keeps image-sized buffers on the heap instead of mapping fresh zeroed pages for each.",
            "",
            *measurement_rows(sorted([*twins, *tuned], key=lambda m: (m.served.handler, m.served.workers,
                                                                   str(m.served.threads), m.concurrency))),
        ]
    lines += ["", "![throughput vs p99](figures/throughput_latency.png)"]
    return "\n".join(lines) + "\n"


def figure(measurements: list[Measurement], path: Path) -> None:
    """Throughput against p99, one line per configuration and transport through its concurrency levels.

    Left: our handler's grid. Right: the shipped configuration (REST and gRPC) against the baseline handler,
    with glibc's default and fixed malloc thresholds.
    """
    series: dict[tuple[Served, str], list[Measurement]] = {}
    for m in measurements:
        if m.latencies_ms:
            series.setdefault((m.served, m.transport), []).append(m)
    fig = Figure(figsize=(16, 7))
    grid_axes, rivals_axes = fig.subplots(1, 2, sharey=True)
    colors = matplotlib.colormaps["tab20"]
    for index, ((served, transport), points) in enumerate(series.items()):
        rival = served.handler == "baseline" or served.tuned or served == shipped_config()
        style = "--" if served.handler == "baseline" else (":" if transport == "gRPC" else "-")
        in_grid = served.handler == "ours" and not served.tuned and transport == "REST"
        for axes in [rivals_axes] * rival + [grid_axes] * in_grid:
            axes.plot([p.throughput for p in points], [p.percentile(99) for p in points], style, marker="o",
                      color=colors(index % 20), label=f"{served.label}, {transport}")
            for p in points:
                axes.annotate(f"x{p.concurrency}", (p.throughput, p.percentile(99)), fontsize=7,
                              textcoords="offset points", xytext=(3, 3))
    for axes, title in ((grid_axes, "our handler: variant, batch size/delay, workers"),
                        (rivals_axes, "shipped configuration vs baseline handler")):
        axes.set_title(title)
        axes.set_xlabel("throughput (requests/s)")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=1)
    grid_axes.set_ylabel("p99 latency (ms); point labels: concurrency")
    fig.suptitle("TorchServe on this machine: throughput vs p99 latency")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


# --- command line -------------------------------------------------------------------------------


def pairs(text: str) -> tuple[int, int | None]:
    """'8:10' -> (8, 10); 'default' as the second number -> None."""
    first, second = text.split(":")
    return int(first), None if second == "default" else int(second)


def parse_grid(argv: list[str] | None) -> tuple[argparse.Namespace, Grid]:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a tiny grid (seconds, not minutes); options override it")
    parser.add_argument("--variants", nargs="+", choices=["int8", "fp32"])
    parser.add_argument("--batches", nargs="+", type=pairs, metavar="SIZE:DELAY_MS", help="our handler's batching")
    parser.add_argument("--workers", nargs="+", type=int, help="workers per configuration of our handler")
    parser.add_argument("--threads", nargs="+", type=int, help="PyTorch threads per worker of our handler")
    parser.add_argument("--baseline", nargs="*", type=pairs, metavar="WORKERS:THREADS",
                        help="baseline configurations; THREADS may be 'default'; none when empty")
    parser.add_argument("--concurrency", nargs="+", type=int, help="concurrent users")
    parser.add_argument("--seconds", type=float, help="measured seconds per concurrency level")
    parser.add_argument("--warmup", type=float, help="seconds of load before measuring")
    parser.add_argument("--limit-batches", nargs="*", type=int, help="in-process batch sizes; none when empty")
    parser.add_argument("--limit-threads", nargs="+", type=int, help="in-process PyTorch threads")
    parser.add_argument("--rounds", type=int, help="passes over the served configurations, pooled (against drift)")
    parser.add_argument("--tuned-malloc", action=argparse.BooleanOptionalAction,
                        help="also serve the shipped and baseline configurations with fixed malloc thresholds")
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="photos, in folders named by class")
    parser.add_argument("--out", type=Path, help="where benchmarks.md and figures/ go (default: reports/, or "
                        "build/bench/quick/ with --quick so a smoke run never replaces the committed report)")
    args = parser.parse_args(argv)
    args.images = args.images.resolve()
    args.out = args.out or (REPO / "build" / "bench" / "quick" if args.quick else REPO / "reports")
    grid = QUICK if args.quick else FULL
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(Grid) if getattr(args, f.name) is not None}
    return args, dataclasses.replace(grid, **given)


def main(argv: list[str] | None = None) -> int:
    args, grid = parse_grid(argv)
    started = time.monotonic()
    before = machine()
    limits = run_limits(grid, args.images)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        measurements = run_served(grid, args.images, Path(tmp))
    after = machine()
    command = " ".join(["python -m loadtests.bench", *(argv if argv is not None else sys.argv[1:])])
    text = report(command, grid, args.images, limits, measurements, before, after,
                  (time.monotonic() - started) / 60)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmarks.md").write_text(text)
    figure(measurements, args.out / "figures" / "throughput_latency.png")
    print(f"wrote {args.out / 'benchmarks.md'} and {args.out / 'figures' / 'throughput_latency.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
