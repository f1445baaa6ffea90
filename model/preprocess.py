"""The one definition of inference preprocessing, as Kornia tensor operations.

Two stages so training can cache the first: `resize_image` turns any decoded RGB uint8 image into a
uint8 square of the network's size; `normalize_batch` turns a uint8 batch into the network's input.
Training evaluation, int8 calibration and the TorchServe handler all go through both, so the
served model sees exactly what it was validated on.
"""

import kornia
import torch

from model.config import PREPROCESS, PreprocessConfig
from model.decode import decode_image


def resize_image(image: torch.Tensor, config: PreprocessConfig = PREPROCESS) -> torch.Tensor:
    """RGB uint8 (3, H, W) to RGB uint8 (3, S, S): antialiased bilinear resize of the whole frame."""
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
