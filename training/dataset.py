"""Folder-per-class image trees to the CNN's uint8 inputs: scanning, block-wise validation split, decode cache.

Each photo becomes what the served CNN reads: the square around its hand (`training.landmarks` finds
the hands once), or the whole frame where no hand is found.
"""

import hashlib
import random
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import kornia_rs
import torch
from tqdm import tqdm

from asl_serve.model import decode, preprocess
from asl_serve.model.classes import CLASS_NAMES, IMAGE_SUFFIXES, class_from_folder
from asl_serve.model.config import PREPROCESS
from asl_serve.model.decode import ImageError
from asl_serve.model.preprocess import load_image
from asl_serve.training.config import SplitConfig
from asl_serve.training.landmarks import HandSet, find_hands

GENERIC_DIR_NAMES = {"train", "training", "val", "test", "images", "asl_alphabet_train"}
TRAILING_NUMBER = re.compile(r"(\d+)$")


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int
    source: str
    frame: int


def class_dirs(root: Path) -> list[tuple[str, Path]]:
    """The (class, folder) pairs under `root`, descending through single wrapper folders
    (the Kaggle zip nests `asl_alphabet_train/asl_alphabet_train/A/...`)."""
    subdirs = sorted(p for p in root.iterdir() if p.is_dir())
    found = [(name, p) for p in subdirs if (name := class_from_folder(p.name))]
    if not found and len(subdirs) == 1:
        return class_dirs(subdirs[0])
    return found


def source_name(root: Path) -> str:
    """A readable name for a data root: `.../grassknoted/train` is `grassknoted`."""
    root = root.resolve()
    return root.parent.name if root.name.lower() in GENERIC_DIR_NAMES else root.name


def frame_number(path: Path) -> int:
    match = TRAILING_NUMBER.search(path.stem)
    return int(match.group(1)) if match else -1


def image_files(folder: Path) -> list[Path]:
    """The images in one folder, in frame order."""
    files = (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return sorted(files, key=lambda p: (frame_number(p), p.name))


def labelled_groups(root: Path) -> list[tuple[str, list[Path]]]:
    """(class, files) pairs: class folders, or else a flat folder of `<CLASS>_anything.jpg` files
    (the Kaggle set's own test folder holds `A_test.jpg` ... `space_test.jpg`)."""
    found = [(name, image_files(folder)) for name, folder in class_dirs(root)]
    if found:
        return found
    groups: dict[str, list[Path]] = {}
    for path in image_files(root):
        if name := class_from_folder(path.stem.split("_")[0]):
            groups.setdefault(name, []).append(path)
    return sorted(groups.items())


def scan(roots: list[Path], limit_per_class: int | None = None) -> list[Sample]:
    """Every image file under the roots, labelled by its folder or name; anything else is ignored."""
    samples = []
    for root in roots:
        source = source_name(root)
        for class_name, files in labelled_groups(root):
            if limit_per_class:
                files = files[:: max(1, len(files) // limit_per_class)][:limit_per_class]
            label = CLASS_NAMES.index(class_name)
            samples += [Sample(p, label, source, frame_number(p)) for p in files]
    if not samples:
        raise FileNotFoundError(f"no class folders with images under {[str(r) for r in roots]}")
    return samples


def split_by_blocks(samples: list[Sample], config: SplitConfig, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Cut each (source, class) run of frames into contiguous blocks and hold whole blocks out.

    Neighbouring video frames are near-duplicates; holding out single frames would let the model
    be validated on copies of its training data.
    """
    groups: dict[tuple[str, int], list[Sample]] = {}
    for sample in samples:
        groups.setdefault((sample.source, sample.label), []).append(sample)
    rng = random.Random(seed)
    train, validation = [], []
    for key in sorted(groups):
        group = sorted(groups[key], key=lambda s: (s.frame, s.path.name))
        held = set(rng.sample(range(config.blocks_per_class), config.validation_blocks))
        for i, sample in enumerate(group):
            block = i * config.blocks_per_class // len(group)
            (validation if block in held else train).append(sample)
    return train, validation


@dataclass
class ImageSet:
    """Decoded images as one uint8 tensor, with labels and sources; unreadable files are counted."""

    images: torch.Tensor
    labels: torch.Tensor
    sources: list[str]
    skipped: list[Path]

    def __len__(self) -> int:
        return len(self.labels)

    def __add__(self, other: "ImageSet") -> "ImageSet":
        return ImageSet(torch.cat([self.images, other.images]), torch.cat([self.labels, other.labels]),
                        self.sources + other.sources, self.skipped + other.skipped)


def _cache_path(samples: list[Sample], hands: HandSet, cache_dir: Path) -> Path:
    """Keyed by the files, their hands and the code that decodes, crops and resizes them, so an edit there
    never reads stale images."""
    digest = hashlib.sha256(f"{PREPROCESS}|kornia-rs {kornia_rs.__version__}".encode())
    for module in (decode, preprocess):
        digest.update(Path(module.__file__).read_bytes())
    digest.update(hands.landmarks.numpy().tobytes())
    for s in samples:
        stat = s.path.stat()
        digest.update(f"{s.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{s.label}".encode())
    return cache_dir / f"{digest.hexdigest()[:20]}.pt"


def _read(path: Path, box: tuple[float, float, float, float] | None) -> torch.Tensor | None:
    try:
        return load_image(path.read_bytes(), box)
    except (ImageError, OSError):
        return None


def load_images(samples: list[Sample], cache_dir: Path | None = None, desc: str = "decode",
                hands: HandSet | None = None) -> ImageSet:
    """Every sample as the CNN reads it, decoded once; reuse the cache when files and hands are unchanged.

    `hands` are the samples' hands if already found; otherwise they are found (and cached) here.
    """
    hands = hands if hands is not None else find_hands([s.path for s in samples], desc=f"{desc}: hands")
    cache = _cache_path(samples, hands, cache_dir) if cache_dir else None
    if cache and cache.exists():
        return ImageSet(**torch.load(cache, weights_only=False))
    boxes = [hands.box(i) for i in range(len(samples))]
    with ThreadPoolExecutor(max_workers=2) as pool:
        decoded = list(tqdm(pool.map(_read, [s.path for s in samples], boxes), total=len(samples), desc=desc))
    kept = [(s, img) for s, img in zip(samples, decoded, strict=True) if img is not None]
    size = PREPROCESS.image_size
    image_set = ImageSet(
        images=torch.stack([img for _, img in kept]) if kept else torch.empty(0, 3, size, size, dtype=torch.uint8),
        labels=torch.tensor([s.label for s, _ in kept], dtype=torch.long),
        sources=[s.source for s, _ in kept],
        skipped=[s.path for s, img in zip(samples, decoded, strict=True) if img is None],
    )
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(vars(image_set), cache)
    return image_set
