"""Decoding: every supported form of a real photo gives the same RGB pixels; bad bytes get typed errors."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from asl_serve.harness.images import decompression_bomb, encode, photo, rotated_jpeg, sixteen_bit_png
from asl_serve.layout import sample_photos
from asl_serve.model.decode import DCT_MIN_SIDE, CorruptImage, EmptyImage, ImageTooLarge, NotAnImage, decode_image
from asl_serve.model.preprocess import resize_image

PATH = sample_photos()[0][0]


def reference() -> torch.Tensor:
    return torch.from_numpy(np.array(photo(PATH))).permute(2, 0, 1)


def mean_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().mean())


def test_jpeg_through_kornia_rs_matches_pillow():
    decoded = decode_image(PATH.read_bytes())
    assert decoded.dtype == torch.uint8 and decoded.shape == (3, 224, 224)
    assert mean_abs_diff(decoded, reference()) < 1.0  # decoders differ only in IDCT rounding


@pytest.mark.parametrize(
    "fmt, mode",
    [("PNG", "RGB"), ("PNG", "RGBA"), ("PNG", "P"), ("PNG", "L"), ("WEBP", "RGB"), ("BMP", "RGB"),
     ("TIFF", "RGB"), ("GIF", "P"), ("JPEG", "CMYK"), ("JPEG", "L")],
)
def test_other_formats_and_modes_decode_to_the_same_rgb_as_pillow(fmt, mode):
    data = encode(photo(PATH).convert(mode), fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    decoded = decode_image(data)
    assert decoded.shape == (3, 224, 224) and decoded.dtype == torch.uint8
    with Image.open(io.BytesIO(data)) as image:
        expected = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)
    assert mean_abs_diff(decoded, expected) == 0


def test_sixteen_bit_png_is_scaled_not_clipped():
    decoded = decode_image(sixteen_bit_png(photo(PATH)))
    gray = torch.from_numpy(np.array(photo(PATH).convert("L")))
    assert mean_abs_diff(decoded[0], gray) < 1.0


def test_animated_gif_uses_first_frame():
    first, second = photo(PATH), Image.new("RGB", (224, 224), (255, 0, 0))
    data = encode(first, "GIF", save_all=True, append_images=[second])
    assert mean_abs_diff(decode_image(data), reference()) < 12


def test_exif_orientation_is_applied():
    upright = decode_image(rotated_jpeg(photo(PATH)))
    assert upright.shape == (3, 224, 224)
    assert mean_abs_diff(upright, reference()) < 3.0


def test_errors_are_typed_by_what_went_wrong():
    data = PATH.read_bytes()
    cases = [
        (b"", EmptyImage),
        (b"hello, this is text", NotAnImage),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", NotAnImage),
        (data[: len(data) // 2], CorruptImage),
        (decompression_bomb(), ImageTooLarge),
    ]
    for payload, error in cases:
        with pytest.raises(error) as raised:
            decode_image(payload)
        assert type(raised.value) is error  # the exact kind, which the handler maps to its HTTP status


def test_pixel_limit_is_checked_before_decoding():
    with pytest.raises(ImageTooLarge, match="224x224"):
        decode_image(PATH.read_bytes(), max_pixels=224 * 224 - 1)


def test_large_jpegs_decode_at_a_reduced_scale_that_barely_changes_the_input():
    large = photo(PATH).resize((1600, 1200), Image.Resampling.BICUBIC)
    data = encode(large, "JPEG", quality=90)
    scaled = decode_image(data)
    assert tuple(scaled.shape) == (3, 600, 800)  # libjpeg's 1/2 scale: 1/4 would go below DCT_MIN_SIDE
    assert min(scaled.shape[1:]) >= DCT_MIN_SIDE
    full = torch.from_numpy(np.array(Image.open(io.BytesIO(data)).convert("RGB"))).permute(2, 0, 1)
    assert mean_abs_diff(resize_image(scaled), resize_image(full)) < 1.0  # grey levels of the network's input
    with pytest.raises(CorruptImage):
        decode_image(data[: len(data) // 2])
