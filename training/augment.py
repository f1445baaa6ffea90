"""Batch augmentation on tensors with kornia.augmentation, built from `AugmentConfig`."""

import kornia
import kornia.augmentation as K
import torch
from kornia.augmentation import IntensityAugmentationBase2D

from asl_serve.model.config import PREPROCESS
from asl_serve.training.config import AugmentConfig


def build_augmentation(config: AugmentConfig, backgrounds: torch.Tensor | None = None,
                       image_size: int = PREPROCESS.image_size) -> K.AugmentationSequential:
    """Float [0, 1] (N, 3, S, S) in, same shape out; one random draw per image. With `backgrounds` (uint8 room
    photos without a hand), cut-out hands are first pasted onto them."""
    paste = [RandomBackgroundPaste(backgrounds, config.cutout_threshold, p=config.background_p)]
    return K.AugmentationSequential(
        *(paste if backgrounds is not None and len(backgrounds) else []),
        K.RandomResizedCrop((image_size, image_size), scale=config.crop_scale, ratio=config.crop_ratio),
        K.RandomHorizontalFlip(p=config.horizontal_flip),
        K.RandomAffine(
            degrees=config.rotation_degrees,
            translate=(config.translate, config.translate),
            scale=(config.zoom_out, 1.0),
            shear=config.shear_degrees,
            padding_mode="reflection",
            p=0.8,
        ),
        K.RandomPerspective(distortion_scale=config.perspective, p=0.3),
        K.ColorJitter(
            config.brightness, config.contrast, config.saturation, config.hue, p=config.color_jitter_p
        ),
        K.RandomGrayscale(p=config.grayscale_p),
        K.RandomChannelShuffle(p=config.channel_shuffle_p),
        K.RandomGaussianBlur((5, 5), (0.1, 1.5), p=config.blur_p),
        K.RandomGaussianNoise(std=0.03, p=config.noise_p),
        K.RandomErasing(scale=(0.02, 0.12), p=config.erase_p),
    )


def is_cutout(images: torch.Tensor, threshold: float, border: int = 4) -> torch.Tensor:
    """(N,) bool for float [0, 1] images whose border is almost all dark: a hand cut out onto black (massey)."""
    dark = images.amax(1) < threshold
    edges = torch.cat([dark[:, :border].flatten(1), dark[:, -border:].flatten(1),
                       dark[:, :, :border].flatten(1), dark[:, :, -border:].flatten(1)], 1)
    return edges.float().mean(1) > 0.9


class RandomBackgroundPaste(IntensityAugmentationBase2D):
    r"""Paste cut-out hands onto room photos, so that a black surround stops standing for a letter.

    An image is a cut-out when its border is almost all darker than ``threshold`` (`is_cutout`). With
    probability ``p`` such an image gets a random room behind the hand: every pixel brighter than the
    threshold is hand, its edge softened by a Gaussian blur; the room is mirrored half the time. Other images
    pass unchanged.

    Args:
        backgrounds: uint8 room photos without a hand, :math:`(M, 3, H, W)` at the images' size.
        threshold: pixels darker than this (maximum over RGB, in [0, 1]) are surround.
        p: probability of pasting a cut-out image.

    Shape:
        - Input: :math:`(B, 3, H, W)`, float in [0, 1]
        - Output: :math:`(B, 3, H, W)`

    Examples:
        >>> hand = torch.zeros(1, 3, 16, 16)
        >>> hand[..., 6:10, 6:10] = 1.0
        >>> rooms = torch.full((2, 3, 16, 16), 128, dtype=torch.uint8)
        >>> out = RandomBackgroundPaste(rooms, threshold=0.08, p=1.0)(hand)
        >>> out.shape
        torch.Size([1, 3, 16, 16])
        >>> round(float(out[0, 0, 0, 0]), 2)  # the black corner became the room
        0.5
    """

    def __init__(self, backgrounds: torch.Tensor, threshold: float, p: float = 0.5) -> None:
        super().__init__(p=p)
        self.backgrounds = backgrounds
        self.threshold = threshold

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
        return {"room": torch.randint(len(self.backgrounds), (batch_shape[0],)),
                "mirror": torch.rand(batch_shape[0]) < 0.5}

    def apply_transform(self, input: torch.Tensor, params: dict[str, torch.Tensor], flags: dict,
                        transform: torch.Tensor | None = None) -> torch.Tensor:
        rooms = self.backgrounds[params["room"]].to(input).div(255.0)
        rooms = torch.where(params["mirror"].view(-1, 1, 1, 1).to(input.device), rooms.flip(-1), rooms)
        hand = (input.amax(1, keepdim=True) > self.threshold).to(input)
        hand = kornia.filters.gaussian_blur2d(hand, (5, 5), (1.0, 1.0))
        pasted = hand * input + (1 - hand) * rooms
        return torch.where(is_cutout(input, self.threshold).view(-1, 1, 1, 1), pasted, input)
