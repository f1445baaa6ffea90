"""The typed configuration of the model and its input: the one place its sizes and constants live."""

from dataclasses import dataclass


@dataclass(frozen=True)
class PreprocessConfig:
    """How an image becomes the network's input; shared by training, export and serving."""

    image_size: int = 160
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # ImageNet statistics: the backbone's
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    max_pixels: int = 40_000_000  # larger images are refused before decoding (decompression bombs)
    hand_crop: float = 1.6  # the CNN reads a square this many times the hand's longer side (model/preprocess.py)


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


@dataclass(frozen=True)
class HandsConfig:
    """MediaPipe's palm detector and hand-landmark models (`model/hands.py`) and how their outputs are read.

    The anchor, score, NMS and ROI values are those of MediaPipe's palm_detection_cpu and
    palm_detection_detection_to_roi graphs for the full models.
    """

    palm_model: str = "palm_detection_full.tflite"
    landmark_model: str = "hand_landmark_full.tflite"
    palm_size: int = 192  # square input of the palm detector, letterboxed
    landmark_size: int = 224  # square input of the landmark model, a rotated crop around the palm
    anchor_strides: tuple[int, ...] = (8, 16, 16, 16)
    min_palm_score: float = 0.5
    nms_iou: float = 0.3
    roi_scale: float = 2.6  # palm box to hand ROI: enlarged and shifted towards the fingers
    roi_shift_y: float = -0.5
    min_hand_score: float = 0.5  # the landmark model's hand-presence score below which no hand is reported
    max_hands: int = 2  # palms given to the landmark model; the most confident hand is read
    retry_padding: float = 0.25  # a hand that fills or leaves the frame: detect again with this margin added
    tile: float = 2 / 3  # then four overlapping tiles of this fraction of each side, for small hands
    min_side: int = 16  # pixels: a smaller image holds no readable hand and is not looked at
    # Tracking (MediaPipe's hand_landmark_landmarks_to_roi graph): the next frame's ROI is the rotated box of
    # the palm's and knuckles' landmarks, enlarged and shifted so the hand stays inside it as it moves.
    track_landmarks: tuple[int, ...] = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)
    track_scale: float = 2.0
    track_shift_y: float = -0.1
    max_hint_size: float = 4.0  # a ROI hint's side, in image widths, above which the hint is refused


HANDS = HandsConfig()
