"""Batch augmentation on tensors with kornia.augmentation, built from `AugmentConfig`."""

import kornia.augmentation as K
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
