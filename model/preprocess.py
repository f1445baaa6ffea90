"""The one definition of inference preprocessing: the hand's square, a kornia-rs uint8 resize, then Kornia.

Two stages so training can cache the first: `cnn_input` turns any decoded RGB uint8 image into a
uint8 square of the network's size (the square around the hand `model.hands` found, or the whole
frame); `normalize_batch` turns a uint8 batch into the network's input. Training, evaluation, int8
calibration and the TorchServe handler all go through both, so the served model sees exactly what it
was validated on.
"""

import kornia
import kornia_rs
import torch

from asl_serve.model.config import PREPROCESS, PreprocessConfig
from asl_serve.model.decode import decode_image


def resize_image(image: torch.Tensor, config: PreprocessConfig = PREPROCESS) -> torch.Tensor:
    """RGB uint8 (3, H, W) to RGB uint8 (3, S, S): antialiased resize of the whole image, on uint8 with kornia-rs.

    It stands in for Kornia's float antialiased bilinear (a Gaussian of sigma (factor - 1) / 2, then bilinear)
    at a fraction of the cost. Below a factor of 2 that Gaussian is nearly the identity, so plain bilinear
    matches it to a grey level; from 2 up, kornia-rs's antialiased bicubic takes its place. Huge images are
    first halved while a side is at least 4 S (a bilinear resize to exactly half is a 2x2 box filter), as
    the antialiased kernels widen with the factor. Works on HxWx3 memory, free when `image` is a view of it.
    """
    size = config.image_size
    # kornia-rs needs two pixels a side; repeating a single row or column changes nothing bilinear
    height, width = (max(side, 2) for side in image.shape[-2:])
    pixels = image.expand(3, height, width).permute(1, 2, 0).contiguous().numpy()
    while max(height, width) >= 4 * size:
        height, width = (side // 2 if side >= 4 * size else side for side in (height, width))
        pixels = kornia_rs.imgproc.resize(pixels, (height, width), "bilinear")
    if (height, width) != (size, size):
        interpolation = "bicubic" if max(height, width) >= 2 * size else "bilinear"
        pixels = kornia_rs.imgproc.resize(pixels, (size, size), interpolation, antialias=True)
    return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()


def hand_square(box: tuple[float, float, float, float], width: int, height: int,
                config: PreprocessConfig = PREPROCESS) -> tuple[int, int, int]:
    """(left, top, side) of the square the CNN reads around a hand's box (pixels), kept inside the image.

    The square is `hand_crop` times the box's longer side, centred on it, then shrunk to the image's
    shorter side and shifted inside: a hand that fills the photo gives (nearly) the whole photo.
    """
    left, top, right, bottom = box
    side = min(max(right - left, bottom - top) * config.hand_crop, width, height)
    side = max(round(side), 1)
    x = round((left + right) / 2 - side / 2)
    y = round((top + bottom) / 2 - side / 2)
    return min(max(x, 0), width - side), min(max(y, 0), height - side), side


def crop_to_hand(image: torch.Tensor, box: tuple[float, float, float, float] | None,
                 config: PreprocessConfig = PREPROCESS) -> torch.Tensor:
    """The view of RGB (3, H, W) `image` that the CNN reads: the square around the hand, or the whole frame."""
    if box is None:
        return image
    left, top, side = hand_square(box, image.shape[2], image.shape[1], config)
    return image[:, top : top + side, left : left + side]


def to_unit_range(batch: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, S, S) to float in [0, 1], the range Kornia's augmentations expect."""
    return batch.float().div(255.0)


def normalize(batch: torch.Tensor, config: PreprocessConfig = PREPROCESS) -> torch.Tensor:
    """Float [0, 1] (N, 3, S, S) to the network's input, standardised with the backbone's statistics."""
    mean = torch.tensor(config.mean)
    std = torch.tensor(config.std)
    return kornia.enhance.normalize(batch, mean, std).contiguous(memory_format=torch.channels_last)


def normalize_batch(batch: torch.Tensor, config: PreprocessConfig = PREPROCESS) -> torch.Tensor:
    """uint8 (N, 3, S, S) to the network's input."""
    return normalize(to_unit_range(batch), config)


def cnn_input(image: torch.Tensor, box: tuple[float, float, float, float] | None,
              config: PreprocessConfig = PREPROCESS) -> torch.Tensor:
    """Decoded RGB uint8 (3, H, W) to the uint8 square the CNN reads: the hand's square if `box`, else the frame."""
    return resize_image(crop_to_hand(image, box, config), config)


def load_image(data: bytes, box: tuple[float, float, float, float] | None = None,
               config: PreprocessConfig = PREPROCESS) -> torch.Tensor:
    """Encoded bytes to the cached training form: RGB uint8 (3, S, S), around the hand `box` if given."""
    return cnn_input(decode_image(data, config.max_pixels), box, config)
