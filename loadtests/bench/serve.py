"""The served configurations: each registered on a private TorchServe in turn, loaded by Locust client
processes at every concurrency level, and unregistered."""

import tempfile
import time
from pathlib import Path

import yaml

from asl_serve.client.rest import RestClient
from asl_serve.client.settings import ClientError
from asl_serve.handler.archive import CONFIG, package, shipped_archive, write_labels
from asl_serve.harness.archives import derive, manifest, model_config, read_member
from asl_serve.harness.server import PrivateTorchServe, private_torchserve
from asl_serve.harness.traffic import wait_drained
from asl_serve.loadtests.bench.grid import Grid, Served, allocators, loads, served_configs, shipped_config
from asl_serve.loadtests.bench.results import Measurement
from asl_serve.loadtests.bench.together import Together, processes
from asl_serve.loadtests.images import image_paths

LOAD = "asl_serve.loadtests.bench.load:load"
BASELINE_HANDLER = Path(__file__).resolve().parent.parent / "baseline_handler.py"


def build_baseline_archive(shipped: Path, target: Path) -> Path:
    """loadtests/baseline_handler.py archived with the shipped archive's model, labels and model-config.yaml,
    one image per batch."""
    config = {**model_config(shipped), "minWorkers": 1, "maxWorkers": 1, "batchSize": 1, "maxBatchDelay": 1}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = work / manifest(shipped)["model"]["serializedFile"]
        model.write_bytes(read_member(shipped, model.name))
        (work / CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
        return package(model, BASELINE_HANDLER, [write_labels(work)], work / CONFIG, "baseline", target)


def accuracy(rest: RestClient, paths: list[Path], version: str) -> float:
    """Share of photos whose answer is their folder's name: the served configuration answers right."""
    return sum(rest.predict(path, version)["label"] == path.parent.name for path in paths) / len(paths)


def retire(rest: RestClient, version: str, attempts: int = 3) -> None:
    """Unregister `version` once its queue has drained; TorchServe 0.12 sometimes answers an unregister that
    races its worker threads with a 500 (ConcurrentModificationException), so that is retried, and such an
    answer can come after the version was removed after all, so a version already gone counts as retired."""
    wait_drained(rest, version)
    for attempt in range(1, attempts + 1):
        try:
            rest.unregister(version)
            return
        except ClientError:
            if version not in {v["modelVersion"] for v in rest.describe()}:
                return
            if attempt == attempts:
                raise
            time.sleep(1)


def split(users: int, parts: int) -> list[int]:
    """`users` shared as evenly as possible between `parts` client processes."""
    return [users // parts + (i < users % parts) for i in range(parts)]


def serve(configs: list[Served], torchserve: PrivateTorchServe, baseline: Path, grid: Grid, images: Path,
          together: Together) -> list[Measurement]:
    """Measure `configs` one at a time on one server.

    With several rounds, each round registers and measures every configuration again, so slow drifts in
    the machine's load spread over all of them instead of favouring whichever ran first.
    """
    rest = RestClient(torchserve.server)
    results: dict[tuple, Measurement] = {}
    for round_number in range(1, grid.rounds + 1):
        for served in configs:
            ours = torchserve.store / shipped_archive(served.variant).name
            source = baseline if served.handler == "baseline" else ours
            archive = derive(source, torchserve.store / f"{served.version}.mar", served.version, **served.settings())
            rest.register(archive.name, served.workers)
            right = accuracy(rest, image_paths(images), served.version) if round_number == 1 else float("nan")
            for transport, concurrency, clients in loads(served, grid):
                m = results.setdefault((served, transport, concurrency, clients),
                                       Measurement(served, transport, concurrency, clients, accuracy=right))
                m.add(together(LOAD, [
                    (torchserve.server, transport, served.version, users, images, grid.warmup, grid.seconds,
                     torchserve.jvm.pid if i == 0 else None)
                    for i, users in enumerate(split(concurrency, clients))
                ]))
                print(f"round {round_number}: {served.label}, {transport} x{concurrency} from {clients} client(s): "
                      f"{m.throughput:.1f}/s, p50 {m.percentile(50):.0f} ms, p99 {m.percentile(99):.0f} ms, "
                      f"{m.failures} failed, client CPU {m.cpu_percent('client'):.0f} %", flush=True)
            retire(rest, served.version)
    return list(results.values())


def run_served(grid: Grid, images: Path) -> list[Measurement]:
    """Every served configuration of the grid: one private TorchServe per allocator setting, each loading the
    default version at start as `make serve` does."""
    configs, default = served_configs(grid), shipped_archive(shipped_config().variant)
    measurements = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, processes(max(grid.client_processes)) as together:
        baseline = build_baseline_archive(default, Path(tmp) / "baseline.mar")
        for allocator, env in allocators().items():
            group = [c for c in configs if c.allocator == allocator]
            archives = sorted({default.name, *(shipped_archive(c.variant).name for c in group)})
            if group:
                with private_torchserve(archives=archives, properties={"load_models": default.name}, env=env) as server:
                    measurements += serve(group, server, baseline, grid, images, together)
    return measurements
