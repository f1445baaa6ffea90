"""The one definition of inference preprocessing, as Kornia tensor operations.

Two stages so training can cache the first: `resize_image` turns any decoded RGB uint8 image into a
uint8 square of the network's size; `normalize_batch` turns a uint8 batch into the network's input.
Training evaluation, int8 calibration and the TorchServe handler all go through both, so the
served model sees exactly what it was validated on.
"""

import kornia
import numpy as np
import torch
from PIL import Image

from model.config import PREPROCESS, PreprocessConfig
from model.decode import decode_image

# Huge uploads are box-filtered by whole factors while each side stays >= this multiple of the input size.
SHRINK_TO_SIZES = 4


def shrink(image: torch.Tensor, min_side: int) -> torch.Tensor:
    """Box-filter a large RGB uint8 (3, H, W) image down by whole factors, keeping each side >= `min_side`.

    The float antialiased resize of a 40-megapixel upload takes ~9 s and ~2.5 GB, enough for a few such
    uploads to push a batch past responseTimeout; shrunk first on uint8, it costs well under a second
    and the network's input differs by a fraction of a grey level. Training images are far smaller.
    """
    height, width = image.shape[-2:]
    factors = (max(1, width // min_side), max(1, height // min_side))
    if factors == (1, 1):
        return image
    reduced = Image.fromarray(image.permute(1, 2, 0).numpy()).reduce(factors)
    return torch.from_numpy(np.array(reduced)).permute(2, 0, 1).contiguous()


def resize_image(image: torch.Tensor, config: PreprocessConfig = PREPROCESS) -> torch.Tensor:
    """RGB uint8 (3, H, W) to RGB uint8 (3, S, S): antialiased bilinear resize of the whole frame."""
    return resize_exact(shrink(image, SHRINK_TO_SIZES * config.image_size), config)


def resize_exact(image: torch.Tensor, config: PreprocessConfig = PREPROCESS) -> torch.Tensor:
    """The Kornia resize itself, without the shrink step for huge images."""
    size = (config.image_size, config.image_size)
    pixels = image.unsqueeze(0).float()
    if tuple(pixels.shape[-2:]) != size:
        pixels = kornia.geometry.transform.resize(pixels, size, interpolation="bilinear", antialias=True)
    return pixels.round().clamp(0, 255).to(torch.uint8)[0]


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


def preprocess_images(images: list[torch.Tensor], config: PreprocessConfig = PREPROCESS) -> torch.Tensor:
    """Decoded RGB uint8 images of any sizes to one network-input batch."""
    return normalize_batch(torch.stack([resize_image(image, config) for image in images]), config)


def load_image(data: bytes, config: PreprocessConfig = PREPROCESS) -> torch.Tensor:
    """Encoded bytes to the cached training form: RGB uint8 (3, S, S)."""
    return resize_image(decode_image(data, config.max_pixels), config)
