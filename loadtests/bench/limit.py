"""The in-process limit: the handler's pipeline with no server, in 1 and N processes running at once.

Each process loads the archive's model as the handler does and calls model.pipeline.Classifier on
the same photos with its own PyTorch thread count; their images/s over the same window add up to
what the machine can do without TorchServe. The 1-process, 1-thread, batch-1 run also gives the
single-image latency a served request is compared with.
"""

import itertools
import statistics
import time
from functools import cache
from pathlib import Path
from threading import Barrier

from asl_serve.handler.archive import shipped_archive
from asl_serve.harness.archives import load_model
from asl_serve.loadtests.bench.grid import Grid
from asl_serve.loadtests.bench.results import Limit
from asl_serve.loadtests.bench.together import processes
from asl_serve.loadtests.images import image_paths
from asl_serve.model.pipeline import Classifier, HandReader, elapsed_ms
from asl_serve.model.runtime import use_threads

CLASSIFY = "asl_serve.loadtests.bench.limit:classify_for"


@cache
def classifier(mar: Path, threads: int) -> Classifier:
    """The archive's CNN with the hand-aware stages, as the handler builds it."""
    return Classifier(load_model(mar, threads), hands=HandReader.load(threads))


@cache
def photos(folder: Path) -> list[bytes]:
    return [path.read_bytes() for path in image_paths(folder)]


def classify_for(start: Barrier, mar: Path, folder: Path, batch: int, threads: int,
                 seconds: float) -> tuple[float, list[float]]:
    """Images/s and the time of each call (ms) of this process classifying batches of `batch` photos."""
    use_threads(threads)  # as the handler does
    pipeline, images = classifier(mar, threads), photos(folder)
    batches = [images[i:i + batch] for i in range(0, len(images) - batch + 1, batch)] or [images[:batch]]
    for chunk in batches[:2]:  # warm-up
        pipeline.classify(chunk)
    start.wait()
    calls_ms, done, started = [], 0, time.perf_counter()
    while (now := time.perf_counter()) - started < seconds:
        chunk = batches[len(calls_ms) % len(batches)]
        pipeline.classify(chunk)
        calls_ms.append(elapsed_ms(now))
        done += len(chunk)
    return done / (time.perf_counter() - started), calls_ms


def run_limits(grid: Grid, images: Path) -> list[Limit]:
    limits = []
    with processes(max(grid.limit_processes)) as together:
        for variant, count, threads, batch in itertools.product(grid.variants, grid.limit_processes,
                                                                grid.limit_threads, grid.limit_batches):
            call = (shipped_archive(variant), images, batch, threads, grid.seconds / 2)
            results = together(CLASSIFY, [call] * count)
            calls_ms = [ms for _, times in results for ms in times]
            limits.append(Limit(variant, count, threads, batch, sum(rate for rate, _ in results),
                                statistics.median(calls_ms) / batch))
            print(f"limit {variant}, {count} process(es) x {threads} thread(s), batch {batch}: "
                  f"{limits[-1].images_per_s:.1f} images/s, {limits[-1].ms_per_image:.1f} ms per image", flush=True)
    return limits
