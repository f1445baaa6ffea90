"""TorchServe archives (.mar): build them from the exports, read them, and derive copies with other settings.

    python -m harness.archives [--export-dir build/export] [--model-store model_store]    # `make archive`
    python -m harness.archives --variant int8 --version 1.1-int8     # a roll-out: model_store/asl-1.1-int8.mar

Each archive holds the serialised model, the handler, the framework-independent core it needs
(`model/` without training code, with the hand models), index_to_name.json, model-config.yaml, metadata.json
(variant, build time and commit, training sources) and, when present, reports/evaluation.json: what
the handler adds to `describe ?customized=true`. TorchServe takes batchSize, maxBatchDelay and the
worker counts from the archive's model-config.yaml before anything in config.properties, so a server
that needs other settings serves a derived copy (`derive`).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import torch
import yaml

from handler.asl_handler import EVALUATION, METADATA
from model import runtime
from model.classes import CLASS_NAMES
from model.config import MODEL_NAME
from training.config import EXPORT_FILES, REPO

HANDLER = REPO / "handler" / "asl_handler.py"
HANDLER_CONFIG = REPO / "handler" / "model-config.yaml"
CORE_DIR = REPO / "model"
# The core's files an archive carries, relative to model/: the code the handler imports, the hand models and
# the landmark classifier (the CNN itself goes as the serialised file).
CORE_FILES = (
    "__init__.py", "config.py", "classes.py", "decode.py", "preprocess.py", "postprocess.py", "pipeline.py",
    "explain.py", "runtime.py", "hands.py", "hand_shape.py",
    "weights/palm_detection_full.tflite", "weights/hand_landmark_full.tflite", "weights/MEDIAPIPE_LICENSE",
    "weights/asl_hand_shape.pt",
)
# The variants that are served, each as a version of `asl`: variant -> (exported file, version)
VARIANTS = {variant: (EXPORT_FILES[variant], version)
            for variant, version in {"fp32": "1.0-fp32", "int8": "1.0-int8", "onnx-int8": "1.0-onnx"}.items()}
MODEL_STORE = REPO / "model_store"
EVALUATION_REPORT = REPO / "reports" / EVALUATION  # variant -> set -> {"images", "accuracy"} (training.evaluate)
TRAINING_METRICS = REPO / "reports" / "training_metrics.json"  # validation accuracy per source (training.train)
AGGREGATES = {"all", "mean"}  # keys of training_metrics.json's "validation" that are not sources
CONFIG = "model-config.yaml"
MANIFEST = "MAR-INF/MANIFEST.json"
LABELS = "index_to_name.json"


def shipped_settings() -> dict:
    """handler/model-config.yaml: the batching and handler settings every built archive carries."""
    return yaml.safe_load(HANDLER_CONFIG.read_text())


def shipped_archive(variant: str) -> Path:
    """The archive `make archive` builds for `variant`."""
    return MODEL_STORE / f"{MODEL_NAME}-{variant}.mar"


# --- building ------------------------------------------------------------------------------------


def git_commit() -> dict:
    """The commit the archive was built from, and whether tracked files differed from it."""
    def git(*args: str) -> str | None:
        try:  # read-only: GIT_OPTIONAL_LOCKS=0 keeps git from refreshing the index
            done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True,
                                  env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
        except (OSError, subprocess.CalledProcessError):  # no git, or not a clone (a container build)
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    changes = git("diff", "--name-only", "HEAD")
    return {"git_commit": commit, "git_dirty": bool(changes) if commit else None}


def build_metadata(variant: str, training: Path = TRAINING_METRICS) -> dict:
    """Build-time facts for the model-metadata API; a missing report is named rather than failing the build."""
    trained = json.loads(training.read_text()) if training.exists() else None
    sources = {name: round(accuracy, 4) for name, accuracy in (trained or {}).get("validation", {}).items()
               if name not in AGGREGATES}
    return {
        "variant": variant,
        "archive": {"built_at": datetime.now(UTC).isoformat(timespec="seconds"), **git_commit()},
        "training_sources": {"validation_accuracy": sources} if trained else {
            "missing": f"{training.name} was absent when the archive was built"
        },
    }


def write_labels(directory: Path) -> Path:
    """index_to_name.json: class index (as a string) to class name, as TorchServe's handlers expect it."""
    path = directory / LABELS
    path.write_text(json.dumps({str(i): name for i, name in enumerate(CLASS_NAMES)}, indent=1))
    return path


def package(serialized: Path, handler: Path, extra: list[Path], config: Path, version: str, target: Path) -> Path:
    """Run torch-model-archiver: the model under the name `asl` (every variant is a version of it) as `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                str(Path(sys.executable).with_name("torch-model-archiver")),
                "--model-name", MODEL_NAME, "--version", version, "--serialized-file", str(serialized),
                "--handler", str(handler), "--extra-files", ",".join(str(p) for p in extra),
                "--config-file", str(config), "--export-path", tmp,
            ],
            check=True, stdout=subprocess.DEVNULL,
        )
        shutil.move(Path(tmp) / f"{MODEL_NAME}.mar", target)
    return target


def build(serialized: Path, variant: str, target: Path, version: str | None = None,
          evaluation: Path = EVALUATION_REPORT) -> Path:
    """The archive of one exported variant with our handler and core, served as `version` (default: the variant's)."""
    with tempfile.TemporaryDirectory() as tmp:
        extra = Path(tmp) / "extra"
        for name in CORE_FILES:
            (extra / "model" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(CORE_DIR / name, extra / "model" / name)
        write_labels(extra)
        (extra / METADATA).write_text(json.dumps(build_metadata(variant), indent=1))
        if evaluation.exists():  # the handler serves this variant's entry, or says the file was missing
            shutil.copy2(evaluation, extra / EVALUATION)
        return package(serialized, HANDLER, [extra], HANDLER_CONFIG, version or VARIANTS[variant][1], target)


# --- reading and deriving -------------------------------------------------------------------------


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export-dir", type=Path, default=REPO / "build" / "export")
    parser.add_argument("--model-store", type=Path, default=MODEL_STORE)
    parser.add_argument("--variant", choices=sorted(VARIANTS), action="append", help="default: all")
    parser.add_argument("--version", help="serve as this version, in asl-VERSION.mar (one --variant only)")
    parser.add_argument("--evaluation", type=Path, default=EVALUATION_REPORT,
                        help="accuracy per set and variant (training.evaluate) to pack, if it exists")
    args = parser.parse_args()
    variants = args.variant or sorted(VARIANTS)
    if args.version and len(variants) != 1:
        parser.error("--version needs exactly one --variant")
    for variant in variants:
        filename, version = VARIANTS[variant]
        target = args.model_store / f"{MODEL_NAME}-{args.version or variant}.mar"
        build(args.export_dir / filename, variant, target, args.version, args.evaluation)
        print(f"built {target} (model {MODEL_NAME}, version {args.version or version})")


if __name__ == "__main__":
    main()
