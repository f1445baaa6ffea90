"""The shared preprocessing: known inputs give known tensors, and it matches independent resizes."""

from pathlib import Path

import kornia
import numpy as np
import pytest
import torch
from PIL import Image

from asl_serve.layout import SAMPLE_SETS, WEIGHTS, sample_photos
from asl_serve.model.config import PREPROCESS
from asl_serve.model.decode import decode_image
from asl_serve.model.hands import HandLandmarker
from asl_serve.model.preprocess import cnn_input, load_image, normalize_batch, resize_image
from asl_serve.training.export import load_trained

SIZE = PREPROCESS.image_size
HANDS = sorted(SAMPLE_SETS[-1].glob("*/*.jpg"))  # 416x416 roboflow photos: the largest factor in the data, 2.6


def kornia_float_resize(image: torch.Tensor) -> torch.Tensor:
    """The definition kornia-rs replaced: Kornia's float antialiased bilinear resize of the whole frame."""
    pixels = kornia.geometry.transform.resize(image.unsqueeze(0).float(), (SIZE, SIZE), "bilinear", antialias=True)
    return pixels.round().clamp(0, 255).to(torch.uint8)[0]


def grey_level_differences(image: torch.Tensor) -> torch.Tensor:
    return (resize_image(image).float() - kornia_float_resize(image).float()).abs()


def upscaled(path: Path, size: tuple[int, int]) -> torch.Tensor:
    """A committed photo blown up to a phone camera's size (width, height), as an upload would be."""
    with Image.open(path) as image:
        return torch.from_numpy(np.array(image.convert("RGB").resize(size, Image.Resampling.BICUBIC))).permute(2, 0, 1)


def preprocess_images(images: list[torch.Tensor]) -> torch.Tensor:
    """What the pipeline feeds the CNN for frames without a hand."""
    return normalize_batch(torch.stack([cnn_input(image, None) for image in images]))


def test_solid_colour_gives_the_normalised_constants():
    red = torch.zeros(3, 300, 200, dtype=torch.uint8)
    red[0] = 255
    batch = preprocess_images([red])
    size = PREPROCESS.image_size
    assert batch.shape == (1, 3, size, size) and batch.dtype == torch.float32
    expected = [(v - m) / s for v, m, s in zip((1.0, 0.0, 0.0), PREPROCESS.mean, PREPROCESS.std, strict=True)]
    for channel, value in enumerate(expected):
        assert torch.allclose(batch[0, channel], torch.full((size, size), value), atol=1e-5)


def test_real_photo_statistics_and_layout():
    path = sample_photos()[0][0]
    batch = preprocess_images([decode_image(path.read_bytes())])
    assert batch.is_contiguous(memory_format=torch.channels_last)
    assert float(batch.min()) > -2.2 and float(batch.max()) < 2.7  # inside the normalised [0, 1] range
    assert 0.2 < float(batch.std()) < 2.0  # a real photo, not a flat or saturated frame


def test_resize_agrees_with_pillow_antialiased_resize():
    size = PREPROCESS.image_size
    for path, _ in sample_photos()[:6]:
        ours = resize_image(decode_image(path.read_bytes())).float()
        with Image.open(path) as image:
            pillow = np.array(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
        theirs = torch.from_numpy(pillow).permute(2, 0, 1).float()
        assert float((ours - theirs).abs().mean()) < 2.5  # antialias filters differ by a few levels


def test_training_cache_form_feeds_the_same_tensor_as_serving():
    landmarker = HandLandmarker()
    boxes = 0
    for path in HANDS[:3] + [p for p, _ in sample_photos()[:3]]:
        data = path.read_bytes()
        image = decode_image(data)
        hand = landmarker(image)
        box = hand.box if hand else None
        boxes += box is not None
        served = normalize_batch(cnn_input(image, box).unsqueeze(0))
        trained = normalize_batch(load_image(data, box).unsqueeze(0))
        assert float((served - trained).abs().max()) <= 1e-5
    assert boxes >= 3  # hand squares and whole frames both checked


def test_resize_is_kornia_float_resize_below_a_factor_of_two():
    # 224 -> 160: Kornia's Gaussian (sigma 0.2) leaves bilinear's taps as they were; only rounding may differ
    for path, _ in sample_photos():
        assert float(grey_level_differences(decode_image(path.read_bytes())).max()) <= 1


@pytest.mark.parametrize("source", ["photo", "upload"])
def test_resize_stays_close_to_kornia_float_resize_on_larger_images(source):
    """Beyond a factor of 2 kornia-rs's antialiased bicubic stands in for Kornia's Gaussian: on these photos the
    mean differs by under a grey level (0.66 at worst), a few edge pixels by up to 14, bicubic being sharper."""
    images = ([decode_image(path.read_bytes()) for path in HANDS] if source == "photo"
              else [upscaled(HANDS[0], (1600, 1200))])  # two halvings across, one down, then bicubic
    for image in images:
        differences = grey_level_differences(image)
        assert float(differences.mean()) < 1 and float(differences.max()) <= 24


def test_single_pixel_rows_and_columns_resize():
    colour = torch.tensor([200, 30, 90], dtype=torch.uint8)
    for height, width in [(1, 1), (1, 700), (700, 1), (2, 2)]:
        resized = resize_image(colour.view(3, 1, 1).expand(3, height, width))
        assert torch.equal(resized, colour.view(3, 1, 1).expand(3, SIZE, SIZE))


def test_the_model_answers_the_same_as_with_kornia_float_resize():
    """On the photos whose input changed at all (the 224x224 ones are identical): the committed fp32 weights."""
    model = load_trained(WEIGHTS).eval()
    images = [decode_image(path.read_bytes()) for path in HANDS]
    with torch.inference_mode():
        ours, theirs = (model(normalize_batch(torch.stack([resize(image) for image in images]))).argmax(1)
                        for resize in (resize_image, kornia_float_resize))
    assert torch.equal(ours, theirs)
