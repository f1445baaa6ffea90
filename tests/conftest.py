"""Shared fixtures: real images, the built archives, and one real TorchServe per test session."""

import shutil
from collections import Counter
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from client.launcher import LocalTorchServe
from client.rest import RestClient
from client.settings import Server
from hardening.images import SAMPLES, sample_images  # noqa: F401  (re-exported for the tests)

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data" / "asl"
ARCHIVES = ("asl-fp32.mar", "asl-int8.mar")
VERSIONS = ("1.0-fp32", "1.0-int8")


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data/asl, or a skip saying why when this clone has none beside it."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs the shared data set at {path} (present in CI, absent on this machine)")
    return path


@pytest.fixture(scope="session")
def model_store(tmp_path_factory) -> Path:
    """A private copy of the built archives (`make test` builds them first)."""
    store = tmp_path_factory.mktemp("model_store")
    for name in ARCHIVES:
        built = REPO / "model_store" / name
        if not built.exists():
            pytest.fail(f"{built} is missing: run `make archive` (make test does it for you)")
        shutil.copy2(built, store / name)
    return store


@pytest.fixture(scope="session")
def torchserve(model_store, tmp_path_factory):
    """A real TorchServe from the repo's config.properties, on free ports, with both versions READY."""
    server = LocalTorchServe(tmp_path_factory.mktemp("torchserve"), model_store)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rest(torchserve) -> RestClient:
    return RestClient(torchserve.server)


def copy_sample(folder: Path, name: str, source_class: str = "A") -> None:
    """A committed photo of `source_class` copied into a test tree as `folder/name`."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(next((SAMPLES / source_class).glob("*.jpg")), folder / name)


def families(server: Server) -> dict:
    """Metric families by name from :8082/metrics (counters are named without `_total`, as the parser does)."""
    text = requests.get(server.metrics_url + "/metrics", timeout=10).text
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(server: Server, name: str) -> dict[str, float]:
    """Sample name -> value summed over label sets, for one family (e.g. asl_batch_size_count)."""
    totals: Counter = Counter()
    for sample in families(server)[name].samples:
        if "le" not in sample.labels:
            totals[sample.name] += sample.value
    return dict(totals)
