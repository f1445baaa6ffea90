"""Hand landmarks of every photo, found once with `model.hands` and cached under build/landmarks/.

One worker process per core, each with its own interpreters; a progress bar counts the photos.
"""

import hashlib
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from asl_serve.model import hands as hands_module
from asl_serve.model.config import HANDS, PREPROCESS
from asl_serve.model.decode import ImageError, decode_image
from asl_serve.model.hands import Hand, HandLandmarker
from asl_serve.model.runtime import use_threads

CACHE_DIR = Path("build/landmarks")
NO_HAND = np.full((21, 3), np.nan, dtype=np.float32)


@dataclass
class HandSet:
    """Per photo: landmarks (N, 21, 3) in pixels (NaN where no hand), hand is right, presence score, image size."""

    landmarks: torch.Tensor
    right: torch.Tensor
    scores: torch.Tensor
    sizes: torch.Tensor  # (N, 2): width, height of the decoded photo

    def __len__(self) -> int:
        return len(self.scores)

    def subset(self, rows: list[int] | torch.Tensor) -> "HandSet":
        return HandSet(self.landmarks[rows], self.right[rows], self.scores[rows], self.sizes[rows])

    def without_hands(self) -> "HandSet":
        """The same photos as if no hand had been found: the CNN then reads every whole frame."""
        return HandSet(torch.full_like(self.landmarks, float("nan")), self.right, self.scores, self.sizes)

    def box(self, i: int) -> tuple[float, float, float, float] | None:
        """Photo i's hand box in pixels, as `model.hands.Hand.box`, or None."""
        hand = self.hand(i)
        return hand.box if hand else None

    @property
    def found(self) -> torch.Tensor:
        return ~self.landmarks[:, 0, 0].isnan()

    def hand(self, i: int) -> Hand | None:
        """Photo i's hand as `model.hands` returns it (its ROI is not kept), or None."""
        if self.landmarks[i, 0, 0].isnan():
            return None
        return Hand(self.landmarks[i].numpy(), "Right" if self.right[i] else "Left", float(self.scores[i]), None)


_landmarker: HandLandmarker | None = None


def _start_worker() -> None:
    global _landmarker
    use_threads(1)
    _landmarker = HandLandmarker(threads=1)


def _find(path: Path) -> tuple[np.ndarray, bool, float, tuple[int, int]]:
    try:
        image = decode_image(path.read_bytes(), PREPROCESS.max_pixels)
    except (ImageError, OSError):
        return NO_HAND, False, 0.0, (0, 0)
    hand = _landmarker(image)
    size = (image.shape[2], image.shape[1])
    if hand is None:
        return NO_HAND, False, 0.0, size
    return hand.landmarks, hand.handedness == "Right", hand.score, size


def _cache_file(cache_dir: Path) -> Path:
    """One file per version of the landmarker: its code and settings name it."""
    digest = hashlib.sha256(f"{HANDS}".encode())
    digest.update(Path(hands_module.__file__).read_bytes())
    return cache_dir / f"{digest.hexdigest()[:20]}.pt"


def _file_key(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def find_hands(paths: list[Path], cache_dir: Path = CACHE_DIR, workers: int = 2, desc: str = "hands") -> HandSet:
    """The hand in every photo; photos already seen by this landmarker (same file, same size and time) come
    from the cache, the others are looked at and added to it."""
    cache = _cache_file(cache_dir)
    known: dict[str, tuple] = torch.load(cache, weights_only=False) if cache.exists() else {}
    keys = [_file_key(path) for path in paths]
    new = [(key, path) for key, path in dict(zip(keys, paths, strict=True)).items() if key not in known]
    if new:
        # spawned, not forked: a fork of a process whose torch and LiteRT threads are running can deadlock
        with ProcessPoolExecutor(workers, multiprocessing.get_context("spawn"), _start_worker) as pool:
            found = pool.map(_find, [path for _, path in new], chunksize=16)
            known.update(zip([key for key, _ in new], tqdm(found, total=len(new), desc=desc), strict=True))
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(known, cache.with_suffix(".partial"))
        cache.with_suffix(".partial").replace(cache)  # an interrupted run leaves the old cache whole
    found = [known[key] for key in keys]
    return HandSet(
        landmarks=torch.from_numpy(np.stack([f[0] for f in found])) if found else torch.empty(0, 21, 3),
        right=torch.tensor([f[1] for f in found], dtype=torch.bool),
        scores=torch.tensor([f[2] for f in found], dtype=torch.float32),
        sizes=torch.tensor([f[3] for f in found], dtype=torch.long).reshape(-1, 2),
    )
