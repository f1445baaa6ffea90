"""Real photos and images made from them in memory: other formats, rotations, broken and hostile files."""

import io
from pathlib import Path

import numpy as np
from PIL import Image

EXIF_ORIENTATION = 0x0112


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def photo(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def rotated_jpeg(image: Image.Image) -> bytes:
    """The photo stored turned 90 degrees, with the EXIF tag that tells viewers to turn it back."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6  # display rotated 90 degrees clockwise
    return encode(image.transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif, quality=95)


def sixteen_bit_png(image: Image.Image) -> bytes:
    gray = np.asarray(image.convert("L"), dtype=np.uint16) * 257
    return encode(Image.fromarray(gray), "PNG")


def decompression_bomb(side: int = 20000) -> bytes:
    """A few hundred bytes that claim side x side pixels."""
    return encode(Image.new("1", (side, side)), "PNG")
