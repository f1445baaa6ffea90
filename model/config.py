"""The typed configuration of the model and its input: the one place its sizes and constants live."""

from dataclasses import dataclass


@dataclass(frozen=True)
class PreprocessConfig:
    """How an image becomes the network's input; shared by training, export and serving."""

    image_size: int = 160
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # ImageNet statistics: the backbone's
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    max_pixels: int = 40_000_000  # larger images are refused before decoding (decompression bombs)


@dataclass(frozen=True)
class NetworkConfig:
    """Shape of the classifier; `max_parameters` is the budget the tests hold it to."""

    num_classes: int = 29
    head_channels: int = 1280
    dropout: float = 0.2
    max_parameters: int = 3_600_000


PREPROCESS = PreprocessConfig()
NETWORK = NetworkConfig()
MODEL_NAME = "asl"  # every variant is archived and served as a version of this one model
DEFAULT_TOP_K = 5  # classes in an answer when the request asks for no other number
