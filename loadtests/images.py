"""The photos every load test, benchmark and profile sends: real ones, from a folder."""

from pathlib import Path

from training.config import SAMPLES

DEFAULT_IMAGES = SAMPLES
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def image_paths(folder: Path) -> list[Path]:
    """Every photo under `folder` (recursively), in a stable order."""
    paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"no .jpg, .jpeg or .png images under {folder}")
    return paths
