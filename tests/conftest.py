"""Shared fixtures: real images, the built archives, and one real TorchServe per test session."""

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import requests
import torch
from prometheus_client.parser import text_string_to_metric_families

from asl_serve.client.rest import RestClient
from asl_serve.client.settings import Server
from asl_serve.handler.archive import VARIANTS, shipped_archive
from asl_serve.harness.server import private_torchserve
from asl_serve.layout import EXPORT_DIR, EXPORT_FILES, MODEL_STORE, REPO, ROBOFLOW_SAMPLES, SAMPLES, SHARED_DATA
from asl_serve.model.decode import decode_image
from asl_serve.model.runtime import load_model

SHARED = SHARED_DATA
ARCHIVES = tuple(shipped_archive(variant).name for variant in sorted(VARIANTS))
VERSIONS = tuple(VARIANTS[variant][1] for variant in sorted(VARIANTS))


ROBOFLOW = ROBOFLOW_SAMPLES
MARKED = json.loads((ROBOFLOW / "hand_boxes.json").read_text())["boxes"]  # photo -> hand box marked by eye


def photo(name: str) -> torch.Tensor:
    """A marked roboflow photo, decoded."""
    return decode_image((ROBOFLOW / name).read_bytes())


def room_without_the_hand(name: str) -> torch.Tensor:
    """The widest strip of a marked photo beside or above its hand: the same room, no hand."""
    image = photo(name)
    height, width = image.shape[1:]
    left, top, right, _ = MARKED[name]
    strips = {"left": left * width, "right": (1 - right) * width, "top": top * height}
    side = max(strips, key=strips.get)
    if side == "left":
        return image[:, :, : int(left * width)]
    if side == "right":
        return image[:, :, int(right * width) :]
    return image[:, : int(top * height)]


def hottest_cells(answer: dict, count: int = 1) -> list[tuple[float, float]]:
    """Centres of an explanation's `count` highest-scoring cells, as (x, y) fractions of the image: the grid
    covers the answer's `region` of it."""
    scores = torch.tensor(answer["grid"])
    rows, cols = scores.shape
    left, top, right, bottom = answer["region"]
    order = scores.flatten().argsort(descending=True)[:count].tolist()
    return [(left + (i % cols + 0.5) / cols * (right - left), top + (i // cols + 0.5) / rows * (bottom - top))
            for i in order]


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data/asl, or a skip saying why when this clone has none beside it."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs the shared data set at {path} (present in CI, absent on this machine)")
    return path


def tracked(pattern: str = "*") -> list[Path]:
    """The files git tracks that match `pattern`, relative to the repository; a skip outside a git checkout."""
    if not (REPO / ".git").exists():
        pytest.skip("needs a git checkout (the tracked files)")
    listed = subprocess.run(["git", "ls-files", "-z", pattern], cwd=REPO, capture_output=True, check=True).stdout
    return [Path(name) for name in listed.decode().split("\0") if name]


def exported(variant: str):
    """An exported variant (`make export`; `make test` does it), loaded as the handler loads it."""
    path = EXPORT_DIR / EXPORT_FILES[variant]
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make export` (make test does it for you)")
    return load_model(path, torch.get_num_threads())  # TorchScript's threads are the process's: leave them


@pytest.fixture(scope="session")
def model_store() -> Path:
    """The built archives (`make test` builds them first); servers copy what they serve from here."""
    for name in ARCHIVES:
        if not (MODEL_STORE / name).exists():
            pytest.fail(f"{MODEL_STORE / name} is missing: run `make archive` (make test does it for you)")
    return MODEL_STORE


@pytest.fixture(scope="session")
def torchserve(model_store):
    """A real TorchServe from the repo's config.properties, on free ports, with both versions READY."""
    with private_torchserve(model_store) as server:
        yield server


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
