"""Pack each exported TorchScript variant into a self-contained .mar with torch-model-archiver.

    python -m handler.archive --export-dir build/export --model-store model_store

Each archive holds the TorchScript file, this handler, the framework-independent core it needs
(`model/` without training code or weights), index_to_name.json, model-config.yaml and
metadata.json (variant, build time and commit, training sources) and, when present,
reports/evaluation.json: what the handler adds to `describe ?customized=true`.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from handler.asl_handler import EVALUATION, METADATA
from model.classes import CLASS_NAMES

MODEL_NAME = "asl"
HANDLER_DIR = Path(__file__).resolve().parent
CORE_DIR = HANDLER_DIR.parent / "model"
CORE_MODULES = (
    "__init__.py", "config.py", "classes.py", "decode.py", "preprocess.py", "postprocess.py", "pipeline.py",
    "explain.py",
)
VARIANTS = {"fp32": ("asl_fp32.pt", "1.0-fp32"), "int8": ("asl_int8.pt", "1.0-int8")}
REPORTS = HANDLER_DIR.parent / "reports"
EVALUATION_REPORT = REPORTS / EVALUATION  # variant -> set -> {"images", "accuracy"} (training.evaluate)
TRAINING_METRICS = REPORTS / "training_metrics.json"  # validation accuracy per training source (training.train)
AGGREGATES = {"all", "mean"}  # keys of training_metrics.json's "validation" that are not sources


def git_commit() -> dict:
    """The commit the archive was built from, and whether tracked files differed from it."""
    def git(*args: str) -> str | None:
        try:  # read-only: GIT_OPTIONAL_LOCKS=0 keeps git from refreshing the index
            done = subprocess.run(["git", *args], cwd=HANDLER_DIR, capture_output=True, text=True, check=True,
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


def stage_extra_files(directory: Path, variant: str, evaluation: Path = EVALUATION_REPORT) -> Path:
    """The files every archive carries beside the model, laid out as the worker will import them."""
    core = directory / "model"
    core.mkdir(parents=True)
    for name in CORE_MODULES:
        shutil.copy2(CORE_DIR / name, core / name)
    mapping = {str(i): name for i, name in enumerate(CLASS_NAMES)}
    (directory / "index_to_name.json").write_text(json.dumps(mapping, indent=1))
    (directory / METADATA).write_text(json.dumps(build_metadata(variant), indent=1))
    if evaluation.exists():  # the handler serves this variant's entry, or says the file was missing
        shutil.copy2(evaluation, directory / EVALUATION)
    return directory


def build_archive(
    serialized: Path, version: str, model_store: Path, archive_name: str, variant: str,
    evaluation: Path = EVALUATION_REPORT,
) -> Path:
    """Archive the model under the name `asl` (so every variant is a version of it) as `archive_name`.mar."""
    model_store.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        extra = stage_extra_files(Path(tmp) / "extra", variant, evaluation)
        subprocess.run(
            [
                sys.executable, "-m", "model_archiver.model_packaging",  # torch-model-archiver
                "--model-name", MODEL_NAME,
                "--version", version,
                "--serialized-file", str(serialized),
                "--handler", str(HANDLER_DIR / "asl_handler.py"),
                "--extra-files", str(extra),
                "--config-file", str(HANDLER_DIR / "model-config.yaml"),
                "--export-path", tmp,
            ],
            check=True,
        )
        target = model_store / f"{archive_name}.mar"
        shutil.move(Path(tmp) / f"{MODEL_NAME}.mar", target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export-dir", type=Path, default=Path("build/export"))
    parser.add_argument("--model-store", type=Path, default=Path("model_store"))
    parser.add_argument("--variant", choices=sorted(VARIANTS), action="append", help="default: all")
    parser.add_argument("--version", help="override the version (for roll-outs of a new build)")
    parser.add_argument("--archive-name", help="file name without .mar (one --variant only); default asl-VARIANT")
    parser.add_argument("--evaluation", type=Path, default=EVALUATION_REPORT,
                        help="accuracy per set and variant (training.evaluate) to pack, if it exists")
    args = parser.parse_args()
    variants = args.variant or sorted(VARIANTS)
    if args.archive_name and len(variants) != 1:
        parser.error("--archive-name needs exactly one --variant")
    for variant in variants:
        filename, version = VARIANTS[variant]
        version = args.version or version
        name = args.archive_name or f"{MODEL_NAME}-{variant}"
        mar = build_archive(args.export_dir / filename, version, args.model_store, name, variant, args.evaluation)
        print(f"built {mar} (model {MODEL_NAME}, version {version})")


if __name__ == "__main__":
    main()
