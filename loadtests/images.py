"""The photos every load test, benchmark and profile sends: real ones, from a folder."""

from pathlib import Path

from asl_serve.layout import SAMPLES
from asl_serve.model.classes import IMAGE_SUFFIXES

DEFAULT_IMAGES = SAMPLES


def image_paths(folder: Path) -> list[Path]:
    """Every photo under `folder` (recursively), in a stable order."""
    paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {folder}")
    return paths
