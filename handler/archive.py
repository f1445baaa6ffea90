"""The product's TorchServe archives (.mar), built from the exports: what `make archive` ships.

    python -m asl_serve.handler.archive [--export-dir build/export] [--model-store model_store]    # `make archive`
    python -m asl_serve.handler.archive --variant int8 --version 1.1-int8     # a roll-out: model_store/asl-1.1-int8.mar

Each archive holds the serialised model, the handler, the framework-independent core it needs (all of
`model/`: code, hand models, landmark classifier, model card, as `asl_serve/model/` with the namespace's
`__init__.py`), index_to_name.json, model-config.yaml, metadata.json (variant, build time and commit, training
sources) and, when present, reports/evaluation.json: what the handler adds to `describe ?customized=true`.
Reading archives and deriving copies with other settings is tooling's (`harness.archives`).
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import yaml

from asl_serve.handler.asl_handler import EVALUATION, METADATA
from asl_serve.layout import EXPORT_DIR, EXPORT_FILES, MODEL_STORE, REPO, REPORTS, git_commit, git_dirty
from asl_serve.model.classes import CLASS_NAMES
from asl_serve.model.config import MODEL_NAME

HANDLER = REPO / "handler" / "asl_handler.py"
HANDLER_CONFIG = REPO / "handler" / "model-config.yaml"
CORE_DIR = REPO / "model"  # shipped whole: it holds only what serving needs (training's code and weights: training/)
NAMESPACE = REPO / "asl_serve" / "__init__.py"  # shipped beside it: the worker imports asl_serve.model from the archive
# The variants that are served, each as a version of `asl`: variant -> (exported file, version)
VARIANTS = {variant: (EXPORT_FILES[variant], version)
            for variant, version in {"fp32": "1.0-fp32", "int8": "1.0-int8", "onnx-int8": "1.0-onnx"}.items()}
EVALUATION_REPORT = REPORTS / EVALUATION  # variant -> set -> {"images", "accuracy"} (training.evaluate)
TRAINING_METRICS = REPORTS / "training_metrics.json"  # validation accuracy per source (training.train)
AGGREGATES = {"all", "mean"}  # keys of training_metrics.json's "validation" that are not sources
CONFIG = "model-config.yaml"
MANIFEST = "MAR-INF/MANIFEST.json"  # torch-model-archiver's
LABELS = "index_to_name.json"


def shipped_settings() -> dict:
    """handler/model-config.yaml: the batching and handler settings every built archive carries."""
    return yaml.safe_load(HANDLER_CONFIG.read_text())


def shipped_archive(variant: str) -> Path:
    """The archive `make archive` builds for `variant`."""
    return MODEL_STORE / f"{MODEL_NAME}-{variant}.mar"



def build_metadata(variant: str, training: Path = TRAINING_METRICS) -> dict:
    """Build-time facts for the model-metadata API; a missing report is named rather than failing the build."""
    trained = json.loads(training.read_text()) if training.exists() else None
    sources = {name: round(accuracy, 4) for name, accuracy in (trained or {}).get("validation", {}).items()
               if name not in AGGREGATES}
    return {
        "variant": variant,
        "archive": {"built_at": datetime.now(UTC).isoformat(timespec="seconds"), "git_commit": git_commit(),
                    "git_dirty": git_dirty()},
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
        shutil.copytree(CORE_DIR, extra / "asl_serve" / "model", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy2(NAMESPACE, extra / "asl_serve")
        write_labels(extra)
        (extra / METADATA).write_text(json.dumps(build_metadata(variant), indent=1))
        if evaluation.exists():  # the handler serves this variant's entry, or says the file was missing
            shutil.copy2(evaluation, extra / EVALUATION)
        return package(serialized, HANDLER, [extra], HANDLER_CONFIG, version or VARIANTS[variant][1], target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export-dir", type=Path, default=EXPORT_DIR)
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
