"""The shared preprocessing: known inputs give known tensors, and it matches an independent resize."""

import numpy as np
import torch
from PIL import Image

from model.config import PREPROCESS
from model.decode import decode_image
from model.preprocess import load_image, normalize_batch, preprocess_images, resize_image
from tests.conftest import sample_images


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
    path = sample_images()[0][0]
    batch = preprocess_images([decode_image(path.read_bytes())])
    assert batch.is_contiguous(memory_format=torch.channels_last)
    assert float(batch.min()) > -2.2 and float(batch.max()) < 2.7  # inside the normalised [0, 1] range
    assert 0.2 < float(batch.std()) < 2.0  # a real photo, not a flat or saturated frame


def test_kornia_resize_agrees_with_pillow_antialiased_resize():
    size = PREPROCESS.image_size
    for path, _ in sample_images()[:6]:
        ours = resize_image(decode_image(path.read_bytes())).float()
        with Image.open(path) as image:
            pillow = np.array(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
        theirs = torch.from_numpy(pillow).permute(2, 0, 1).float()
        assert float((ours - theirs).abs().mean()) < 2.5  # antialias filters differ by a few levels


def test_training_cache_form_feeds_the_same_tensor_as_serving():
    for path, _ in sample_images()[:6]:
        data = path.read_bytes()
        served = preprocess_images([decode_image(data)])
        trained = normalize_batch(load_image(data).unsqueeze(0))
        assert float((served - trained).abs().max()) <= 1e-5
