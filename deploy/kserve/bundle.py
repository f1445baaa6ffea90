"""Lay out the storage KServe's TorchServe runtime mounts at /mnt/models, ready to upload.

    python deploy/kserve/bundle.py [--model-store model_store] [--out build/kserve]

writes OUT/config/config.properties (this directory's KServe config) and OUT/model-store/ with the
archives that config's model_snapshot names, and nothing else, so a stale archive never ships.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

CONFIG = Path(__file__).resolve().parent / "config.properties"


def snapshot_archives(config: Path) -> list[str]:
    """The .mar names in the config's one-line model_snapshot (the line KServe's wrapper parses too)."""
    for line in config.read_text().splitlines():
        if line.startswith("model_snapshot="):
            models = json.loads(line.split("=", 1)[1])["models"]
            return [v["marName"] for versions in models.values() for v in versions.values()]
    raise ValueError(f"{config} has no model_snapshot line")


def bundle(model_store: Path, out: Path, config: Path = CONFIG) -> list[Path]:
    archives = [model_store / name for name in snapshot_archives(config)]
    missing = [str(path) for path in archives if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"missing {', '.join(missing)}: run `make archive` first")
    shutil.rmtree(out, ignore_errors=True)
    (out / "config").mkdir(parents=True)
    (out / "model-store").mkdir()
    shutil.copy2(config, out / "config" / "config.properties")
    return [Path(shutil.copy2(path, out / "model-store" / path.name)) for path in archives]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-store", type=Path, default=Path("model_store"))
    parser.add_argument("--out", type=Path, default=Path("build/kserve"))
    args = parser.parse_args()
    try:
        copied = bundle(args.model_store, args.out)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{args.out}: config/config.properties, model-store/{', '.join(p.name for p in copied)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
