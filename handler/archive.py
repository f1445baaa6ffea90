"""Pack each exported TorchScript variant into a self-contained .mar with torch-model-archiver.

    python -m handler.archive --export-dir build/export --model-store model_store

Each archive holds the TorchScript file, this handler, the framework-independent core it needs
(`model/` without training code or weights), index_to_name.json and model-config.yaml.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from model.classes import CLASS_NAMES

MODEL_NAME = "asl"
HANDLER_DIR = Path(__file__).resolve().parent
CORE_DIR = HANDLER_DIR.parent / "model"
CORE_MODULES = ("__init__.py", "config.py", "classes.py", "decode.py", "preprocess.py", "postprocess.py", "pipeline.py")
VARIANTS = {"fp32": ("asl_fp32.pt", "1.0-fp32"), "int8": ("asl_int8.pt", "1.0-int8")}


def stage_extra_files(directory: Path) -> Path:
    """The files every archive carries beside the model, laid out as the worker will import them."""
    core = directory / "model"
    core.mkdir(parents=True)
    for name in CORE_MODULES:
        shutil.copy2(CORE_DIR / name, core / name)
    mapping = {str(i): name for i, name in enumerate(CLASS_NAMES)}
    (directory / "index_to_name.json").write_text(json.dumps(mapping, indent=1))
    return directory


def build_archive(serialized: Path, version: str, model_store: Path, archive_name: str) -> Path:
    """Archive the model under the name `asl` (so every variant is a version of it) as `archive_name`.mar."""
    model_store.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        extra = stage_extra_files(Path(tmp) / "extra")
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
    args = parser.parse_args()
    variants = args.variant or sorted(VARIANTS)
    if args.archive_name and len(variants) != 1:
        parser.error("--archive-name needs exactly one --variant")
    for variant in variants:
        filename, version = VARIANTS[variant]
        version = args.version or version
        name = args.archive_name or f"{MODEL_NAME}-{variant}"
        mar = build_archive(args.export_dir / filename, version, args.model_store, name)
        print(f"built {mar} (model {MODEL_NAME}, version {version})")


if __name__ == "__main__":
    main()
