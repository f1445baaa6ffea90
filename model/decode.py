"""Image bytes to an RGB uint8 tensor (3, H, W): kornia-rs for plain JPEG/PNG, Pillow for the rest.

The header is read first (no pixels decoded) so oversized images are refused before they cost
memory. Failures raise an `ImageError` subclass named for what went wrong; adapters map them to
their protocol's statuses.
"""

import io
import warnings

import kornia_rs
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from asl_serve.model.config import PREPROCESS

EXIF_ORIENTATION = 0x0112
JPEG_END = b"\xff\xd9"
SIXTEEN_BIT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}
# JPEGs twice this size or more are decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling), each side kept
# >= this: `resize_image` would halve them down that far anyway, and the full decode costs several times more.
DCT_MIN_SIDE = 2 * PREPROCESS.image_size



class ImageError(ValueError):
    """Bytes that cannot become an image for the model."""


class EmptyImage(ImageError):
    """No bytes at all."""


class NotAnImage(ImageError):
    """Bytes of no image format we decode (text, SVG, an unknown format)."""


class CorruptImage(ImageError):
    """A known image format whose data is damaged or truncated."""


class ImageTooLarge(ImageError):
    """More pixels than `PreprocessConfig.max_pixels`, found from the header before decoding."""


def decode_image(data: bytes, max_pixels: int = PREPROCESS.max_pixels) -> torch.Tensor:
    """Decode encoded image bytes to an RGB uint8 tensor of shape (3, H, W), EXIF orientation applied.

    The tensor is a view of HxWx3 memory, the layout `resize_image` reads; large JPEGs come out DCT-scaled.
    """
    if not data:
        raise EmptyImage("the request carried no image bytes")
    image = _open_header(data, max_pixels)
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge(f"image is {width}x{height} pixels; the limit is {max_pixels} pixels")
    try:
        array = _decode_pixels(data, image)
    except ImageError:
        raise
    except Exception as error:  # decoders raise many types on damaged data
        raise CorruptImage(f"could not decode the {image.format} image: {error}") from error
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)


def _open_header(data: bytes, max_pixels: int) -> Image.Image:
    """The image's header. Our limit is checked on its size; Pillow's own (larger, left global as Pillow sets
    it) stays as a backstop for what it refuses while opening."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageTooLarge(f"image has more than {max_pixels} pixels, the limit") from error
    except UnidentifiedImageError as error:
        raise NotAnImage("the body is not an image in a supported format") from error
    except Exception as error:
        raise CorruptImage(f"unreadable image header: {error}") from error


def _decode_pixels(data: bytes, image: Image.Image) -> np.ndarray:
    """HxWx3 uint8 pixels, by the fast kornia-rs path where the image allows it."""
    upright = image.getexif().get(EXIF_ORIENTATION, 1) == 1
    if image.format == "JPEG" and min(image.size) >= 2 * DCT_MIN_SIDE:
        image.draft("RGB", (DCT_MIN_SIDE, DCT_MIN_SIDE))  # then decoded by Pillow below
    elif image.format == "JPEG" and image.mode == "RGB" and upright:
        if not data.rstrip(b"\0").endswith(JPEG_END):
            raise CorruptImage("the JPEG data is truncated")
        return kornia_rs.io.decode_image_jpeg(data)
    if image.format == "PNG" and image.mode == "RGB" and upright:
        width, height = image.size
        return kornia_rs.io.decode_image_png_u8(data, (height, width), "rgb")
    image.seek(0)  # first frame of an animation
    image = ImageOps.exif_transpose(image)
    if image.mode in SIXTEEN_BIT_MODES:
        wide = np.asarray(image, dtype=np.float32)
        gray = np.clip(wide / 257.0, 0, 255).round().astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    return np.array(image.convert("RGB"))
