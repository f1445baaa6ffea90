"""The archives the benchmark serves: the built ones under other serving settings, and the baseline's.

TorchServe takes batchSize, maxBatchDelay and the worker counts from the archive's model-config.yaml
before anything in config.properties or the register call, so each benchmarked configuration is a
copy of a built archive (same TorchScript model, same handler) with its own model-config.yaml and
version.
"""

import io
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch
import yaml

from client.settings import MODEL

CONFIG = "model-config.yaml"
MANIFEST = "MAR-INF/MANIFEST.json"
LABELS = "index_to_name.json"
BASELINE_HANDLER = Path(__file__).resolve().with_name("baseline_handler.py")
BASELINE_CONFIG = {"minWorkers": 1, "maxWorkers": 1, "batchSize": 1, "maxBatchDelay": 1, "responseTimeout": 30}


def manifest(mar: Path) -> dict:
    with zipfile.ZipFile(mar) as archive:
        return json.loads(archive.read(MANIFEST))


def model_config(mar: Path) -> dict:
    with zipfile.ZipFile(mar) as archive:
        return yaml.safe_load(archive.read(CONFIG)) or {}


def labels(mar: Path) -> dict[str, str]:
    """index_to_name.json of the archive: class index (as a string) to class name."""
    with zipfile.ZipFile(mar) as archive:
        return json.loads(archive.read(LABELS))


def serialized_model(mar: Path) -> bytes:
    with zipfile.ZipFile(mar) as archive:
        return archive.read(manifest(mar)["model"]["serializedFile"])


def load_model(mar: Path) -> torch.jit.ScriptModule:
    """The archive's TorchScript model, frozen for inference exactly as the handler loads it."""
    model = torch.jit.load(io.BytesIO(serialized_model(mar)), map_location="cpu")
    return torch.jit.freeze(model.eval())


def derive_archive(source: Path, target: Path, version: str, settings: dict) -> Path:
    """A copy of `source` served as `version` with `settings` merged into its model-config.yaml.

    Top-level keys replace the archive's; `handler` keys are merged into its handler section, and a
    handler key set to None is removed (the handler then uses its own default).
    """
    config = {**model_config(source), **{k: v for k, v in settings.items() if k != "handler"}}
    handler = {**config.get("handler", {}), **settings.get("handler", {})}
    config["handler"] = {k: v for k, v in handler.items() if v is not None}
    described = manifest(source)
    described["model"]["modelVersion"] = version
    replaced = {CONFIG: yaml.safe_dump(config, sort_keys=False), MANIFEST: json.dumps(described, indent=2)}
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as copy:
        for item in original.infolist():
            copy.writestr(item, replaced.get(item.filename) or original.read(item))
    return target


def build_baseline_archive(shipped: Path, target: Path, version: str) -> Path:
    """loadtests/baseline_handler.py archived by torch-model-archiver with the shipped archive's model and labels."""
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(shipped) as archive:
        work = Path(tmp)
        model_file = work / manifest(shipped)["model"]["serializedFile"]
        model_file.write_bytes(archive.read(model_file.name))
        (work / LABELS).write_bytes(archive.read(LABELS))
        (work / CONFIG).write_text(yaml.safe_dump(BASELINE_CONFIG, sort_keys=False))
        subprocess.run(
            [
                sys.executable, "-m", "model_archiver.model_packaging",  # torch-model-archiver
                "--model-name", MODEL, "--version", version, "--serialized-file", str(model_file),
                "--handler", str(BASELINE_HANDLER), "--extra-files", str(work / LABELS),
                "--config-file", str(work / CONFIG), "--export-path", tmp,
            ],
            check=True,
        )
        shutil.move(work / f"{MODEL}.mar", target)
    return target
