"""Arm's-length versions of labelled photo sets: each photo shrunk into a larger room frame at a random place.

At a laptop webcam the hand is small in a room; the photo sets mostly show a hand that fills the frame.
Each photo is scaled so that its longer side is 130-190 pixels and pasted at a random place in a
400x300 frame of a room without a hand (the `nothing` photos of the validation blocks), then saved
as JPEG in a folder-per-class tree that every evaluation reads like any other set. Seeded: the same
inputs give the same files.

    python -m asl_serve.training.arms_length            # every test/ split and the validation blocks, under build/
"""

import argparse
import io
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from asl_serve.model.classes import CLASS_NAMES, NOTHING
from asl_serve.model.decode import ImageError, decode_image
from asl_serve.model.preprocess import cnn_input
from asl_serve.training.config import TrainConfig, test_sets
from asl_serve.training.dataset import ImageSet, Sample, scan, split_by_blocks
from asl_serve.training.landmarks import HandSet

OUT_DIR = Path("build/arms-length")
SUFFIX = "-arms-length"  # massey/test -> build/arms-length/massey/test-arms-length/<CLASS>/...


@dataclass(frozen=True)
class Framing:
    frame: tuple[int, int] = (400, 300)  # width, height of the room frame
    photo_side: tuple[int, int] = (130, 190)  # the photo's longer side once shrunk, pixels
    jpeg_quality: int = 92
    seed: int = 0


def to_pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray(image.permute(1, 2, 0).contiguous().numpy())


def place(photo: Image.Image, room: Image.Image, rng: random.Random,
          framing: Framing) -> tuple[Image.Image, float, tuple[int, int]]:
    """`photo` shrunk to a random size and pasted at a random place on `room`, scaled to the frame; also the
    scale and offset that take the photo's pixels to the frame's."""
    frame = room.resize(framing.frame, Image.Resampling.BILINEAR)
    side = rng.randint(*framing.photo_side)
    scale = side / max(photo.size)
    small = photo.resize((max(1, round(photo.width * scale)), max(1, round(photo.height * scale))),
                         Image.Resampling.LANCZOS)
    x = rng.randint(0, frame.width - small.width)
    y = rng.randint(0, frame.height - small.height)
    frame.paste(small, (x, y))
    return frame, small.width / photo.width, (x, y)


def write_set(samples: list[Sample], rooms: list[Path], out: Path, framing: Framing) -> int:
    """Every sample placed in a room (chosen by the seeded generator) under `out/<CLASS>/`; returns the count.

    A file whose bytes come out the same is left as it is, so a rerun keeps the hands cached for it
    (`training.landmarks` keys them by size and time); files of an earlier run that this one does not
    write are removed.
    """
    rng = random.Random(framing.seed)
    written = set()
    for sample in tqdm(samples, desc=str(out), leave=False):
        room = to_pil(decode_image(rng.choice(rooms).read_bytes()))
        framed, _, _ = place(to_pil(decode_image(sample.path.read_bytes())), room, rng, framing)
        target = out / CLASS_NAMES[sample.label] / f"{sample.path.stem}.jpg"
        buffer = io.BytesIO()
        framed.save(buffer, "JPEG", quality=framing.jpeg_quality)
        if not target.exists() or target.read_bytes() != buffer.getvalue():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(buffer.getvalue())
        written.add(target)
    for stale in set(out.glob("*/*")) - written:
        stale.unlink()
    return len(written)


def training_images(samples: list[Sample], hands: HandSet, rooms: list[torch.Tensor], whole_frame_p: float,
                    seed: int, framing: Framing = Framing()) -> ImageSet:
    """Arm's-length versions of training photos as the CNN reads them, in memory.

    The hand's box moves with the photo, so no hand is looked for again; with probability `whole_frame_p`
    the CNN reads the whole frame instead, as it does where a small hand goes unseen.
    """
    rng = random.Random(seed)
    images, kept = [], []
    for i, sample in enumerate(tqdm(samples, desc="arm's length", leave=False)):
        room = to_pil(rooms[rng.randrange(len(rooms))])
        try:
            photo = to_pil(decode_image(sample.path.read_bytes()))
        except (ImageError, OSError):
            continue  # counted where the photos themselves are loaded
        framed, scale, (x, y) = place(photo, room, rng, framing)
        box = hands.box(i)
        if box is not None and rng.random() >= whole_frame_p:
            box = (box[0] * scale + x, box[1] * scale + y, box[2] * scale + x, box[3] * scale + y)
        else:
            box = None
        images.append(cnn_input(torch.from_numpy(np.array(framed)).permute(2, 0, 1), box))
        kept.append(sample)
    return ImageSet(torch.stack(images), torch.tensor([s.label for s in kept]),
                    [f"{s.source}{SUFFIX}" for s in kept], [])


def arms_length_dir(source: str, split: str, out_dir: Path = OUT_DIR) -> Path:
    """Where the arm's-length version of a source's split (`massey`, `test`) goes."""
    return out_dir / source / f"{split}{SUFFIX}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, action="append", help="training trees (default: every shared "
                        "train/ split): their validation blocks are framed too, in their `nothing` photos")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    parser.add_argument("--seed", type=int, default=Framing.seed)
    args = parser.parse_args()
    config = TrainConfig(**({"data": tuple(args.data)} if args.data else {}))
    if not any(d.is_dir() for d in config.data):
        raise SystemExit("no training data: pass --data DIR or place the data at ../shared/data/asl")
    framing = Framing(seed=args.seed)
    _, validation = split_by_blocks(scan(list(config.data)), config.split, config.seed)
    rooms = [s.path for s in validation if s.label == NOTHING]
    if not rooms:
        raise SystemExit("the validation blocks hold no `nothing` photos to use as rooms")
    sets = {arms_length_dir(d.parent.name, d.name, args.out_dir): scan([d]) for d in test_sets()}
    for source in sorted({s.source for s in validation}):
        sets[arms_length_dir(source, "validation", args.out_dir)] = [
            s for s in validation if s.source == source and s.label != NOTHING
        ]
    for out, samples in sets.items():
        print(f"{out}: {write_set(samples, rooms, out, framing)} photos")


if __name__ == "__main__":
    main()
