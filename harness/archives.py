"""Reading built archives (handler.archive makes them) and deriving copies with other settings.

TorchServe takes batchSize, maxBatchDelay and the worker counts from the archive's model-config.yaml before
anything in config.properties, so a server that needs other settings serves a derived copy (`derive`).
"""

import json
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch
import yaml

from asl_serve.handler.archive import CONFIG, LABELS, MANIFEST
from asl_serve.model import runtime


def read_member(mar: Path, name: str) -> bytes:
    with zipfile.ZipFile(mar) as archive:
        return archive.read(name)


def manifest(mar: Path) -> dict:
    return json.loads(read_member(mar, MANIFEST))


def model_config(mar: Path) -> dict:
    return yaml.safe_load(read_member(mar, CONFIG)) or {}


def labels(mar: Path) -> dict[str, str]:
    """index_to_name.json of the archive: class index (as a string) to class name."""
    return json.loads(read_member(mar, LABELS))


def load_model(mar: Path, threads: int = 1) -> Callable[[torch.Tensor], torch.Tensor]:
    """The archive's model, loaded as the handler loads it (`model.runtime.load_model`)."""
    serialized = manifest(mar)["model"]["serializedFile"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / serialized
        path.write_bytes(read_member(mar, serialized))
        return runtime.load_model(path, threads)


def derive(source: Path, target: Path, version: str | None = None, **settings) -> Path:
    """A copy of `source` with `settings` merged into its model-config.yaml, served as `version` if given.

    Top-level keys replace the archive's; a `handler` dict is merged into its handler section. A key set
    to None is removed (TorchServe, or the handler, then uses its own default).
    """
    merged = {**model_config(source), **{k: v for k, v in settings.items() if k != "handler"}}
    handler = {**merged.get("handler", {}), **settings.get("handler", {})}
    config = {k: v for k, v in merged.items() if v is not None}
    config["handler"] = {k: v for k, v in handler.items() if v is not None}
    replaced = {CONFIG: yaml.safe_dump(config, sort_keys=False).encode()}
    if version:
        described = manifest(source)
        described["model"]["modelVersion"] = version
        replaced[MANIFEST] = json.dumps(described, indent=2).encode()
    written = target.with_name(target.name + ".partial")  # source and target may be the same file
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(written, "w", zipfile.ZIP_DEFLATED) as copy:
        for item in original.infolist():
            copy.writestr(item, replaced.get(item.filename) or original.read(item))
    return written.replace(target)
