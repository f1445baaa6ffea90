"""Batch augmentation on tensors with kornia.augmentation, built from `AugmentConfig`."""

import kornia
import kornia.augmentation as K
import torch
from torch import nn

from model.config import PREPROCESS
from training.config import AugmentConfig


def build_augmentation(config: AugmentConfig, image_size: int = PREPROCESS.image_size) -> nn.Module:
    """Float [0, 1] (N, 3, S, S) in, same shape out; one random draw per image."""
    return K.AugmentationSequential(
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
    """(N,) bool: images whose border is almost all dark, i.e. a hand cut out onto black (massey)."""
    dark = images.float().amax(1) / 255.0 < threshold
    edges = torch.cat([dark[:, :border].flatten(1), dark[:, -border:].flatten(1),
                       dark[:, :, :border].flatten(1), dark[:, :, -border:].flatten(1)], 1)
    return edges.float().mean(1) > 0.9


class BackgroundPaste(nn.Module):
    """Paste cut-out hands onto room photos, so that a black surround stops standing for a letter.

    The hand is every pixel brighter than the threshold, its edge softened by a Gaussian blur; the
    backgrounds are uint8 (M, 3, S, S) photos without a hand, such as the `nothing` class.
    """

    def __init__(self, backgrounds: torch.Tensor, config: AugmentConfig):
        super().__init__()
        self.backgrounds = backgrounds
        self.p = config.background_p
        self.threshold = config.cutout_threshold

    def forward(self, unit: torch.Tensor, cutout: torch.Tensor) -> torch.Tensor:
        """Float [0, 1] (N, 3, S, S) and the (N,) cut-out flags in; the flagged images pasted with chance p."""
        chosen = cutout & (torch.rand(len(unit)) < self.p)
        if not chosen.any() or not len(self.backgrounds):
            return unit
        picked = torch.randint(len(self.backgrounds), (int(chosen.sum()),))
        background = self.backgrounds[picked].float() / 255.0
        flip = torch.rand(len(background)) < 0.5
        background[flip] = background[flip].flip(-1)
        hand = (unit[chosen].amax(1, keepdim=True) > self.threshold).float()
        hand = kornia.filters.gaussian_blur2d(hand, (5, 5), (1.0, 1.0))
        out = unit.clone()
        out[chosen] = hand * unit[chosen] + (1 - hand) * background
        return out
