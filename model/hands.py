"""Where the hand is: MediaPipe's palm detector, then its hand-landmark model on the rotated hand ROI.

Both are Apache-2.0 `.tflite` files from the `mediapipe==0.10.14` wheel (`model/weights/README.md`),
run with LiteRT (`ai-edge-litert`) without the `mediapipe` package. This module re-implements the
graph around them, as MediaPipe's hand-landmark tracking does on the CPU: letterbox, SSD anchor
decoding, weighted non-maximum suppression, palm to rotated ROI, crop, landmarks back to the image.
Coordinates are pixels of the decoded image; `Hand.as_json` gives fractions of its width and height.

Video: each answer carries the ROI where the hand should be in the next frame (`Hand.as_json`'s `roi`).
Sent back with that frame as a hint (`parse_hint`), the landmark model reads that ROI and the palm detector
is skipped while the hand-presence score holds, as MediaPipe's video mode does; otherwise it detects again.
"""

import dataclasses
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import kornia_rs
import numpy as np
import torch
from ai_edge_litert.interpreter import Interpreter

from asl_serve.model.config import HANDS, HandsConfig

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
# Landmark indices: the hand's up direction runs from the wrist towards the knuckles.
WRIST, INDEX_MCP, MIDDLE_MCP, RING_MCP = 0, 5, 9, 13
PALM_WRIST, PALM_MIDDLE = 0, 2  # palm-detector keypoints for the same direction


@dataclass(frozen=True)
class Roi:
    """A rotated square in pixels: centre, side and angle (radians, clockwise on screen, 0 = fingers up)."""

    x: float
    y: float
    size: float
    angle: float

    def to_crop(self, side: int) -> np.ndarray:
        """The 2x3 affine from image pixels to a `side` x `side` crop of this square, fingers up."""
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        scale = side / self.size
        # inverse of: image = centre + size * R(angle) @ (crop / side - 1/2), pixel centres at +0.5
        rotation = np.array([[cos, sin], [-sin, cos]]) * scale
        offset = side / 2 - 0.5 - rotation @ np.array([self.x, self.y])
        return np.hstack([rotation, offset[:, None]])

    def as_json(self, width: int, height: int) -> dict:
        """Centre as fractions of width and height, side as a fraction of the width, angle in radians."""
        return {"x": round(self.x / width, 4), "y": round(self.y / height, 4), "size": round(self.size / width, 4),
                "angle": round(self.angle, 4)}

    @classmethod
    def from_json(cls, hint: dict, width: int, height: int) -> "Roi":
        """The inverse of `as_json` for an image of `width` x `height` (a hint from `parse_hint`)."""
        return cls(hint["x"] * width, hint["y"] * height, hint["size"] * width, hint["angle"])

    def from_crop(self, points: np.ndarray, side: int) -> np.ndarray:
        """Crop pixels (N, 2) back to image pixels."""
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        rotation = np.array([[cos, -sin], [sin, cos]])
        unit = (points + 0.5) / side - 0.5
        return unit @ rotation.T * self.size + np.array([self.x, self.y])


@dataclass(frozen=True)
class Hand:
    """One hand: 21 landmarks (x, y in pixels; z relative depth, in pixels of x), the signer's hand, scores."""

    landmarks: np.ndarray  # (21, 3) float32
    handedness: str  # "Right" or "Left": the signer's hand in a photo as a camera takes it (not mirrored)
    score: float  # the landmark model's hand-presence probability
    roi: Roi | None = None  # the square the landmarks were read in (not kept in the training cache)
    tracked: bool = False  # read in a hinted ROI, without the palm detector

    @property
    def box(self) -> tuple[float, float, float, float]:
        """Left, top, right, bottom of the landmarks, in pixels."""
        (left, top), (right, bottom) = self.landmarks[:, :2].min(0), self.landmarks[:, :2].max(0)
        return float(left), float(top), float(right), float(bottom)

    def as_json(self, width: int, height: int, config: HandsConfig = HANDS) -> dict:
        """The answer's `hand` field: box and landmarks as fractions of the image's width and height, and the
        ROI to send back with the next frame (`roi`, see `Roi.as_json`)."""
        scale = np.array([width, height, width], dtype=np.float64)
        left, top, right, bottom = self.box
        return {
            "box": [round(v, 4) for v in (left / width, top / height, right / width, bottom / height)],
            "landmarks": np.round(self.landmarks / scale, 4).tolist(),
            "handedness": self.handedness,
            "score": round(self.score, 4),
            "tracked": self.tracked,
            "roi": tracking_roi(self.landmarks, config).as_json(width, height),
        }


class BadHint(ValueError):
    """A ROI hint that is not `{"x", "y", "size", "angle"}` of finite numbers with its centre in the image."""


def parse_hint(value: object, config: HandsConfig = HANDS) -> dict[str, float]:
    """A ROI hint as a request carries it (a JSON object, or its text) checked and as floats; `BadHint` says why not."""
    if isinstance(value, bytes | bytearray):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as error:
            raise BadHint(f"roi is not JSON: {error}") from None
    keys = ("x", "y", "size", "angle")
    if not isinstance(value, dict) or sorted(value) != sorted(keys):
        raise BadHint(f'roi must be an object with exactly the numbers {", ".join(keys)} (an answer\'s hand.roi)')
    if not all(isinstance(value[key], int | float) and not isinstance(value[key], bool) for key in keys):
        raise BadHint("roi's x, y, size and angle must be numbers")
    hint = {key: float(value[key]) for key in keys}
    if not all(math.isfinite(number) for number in hint.values()):
        raise BadHint("roi's numbers must be finite")
    if not (0 <= hint["x"] <= 1 and 0 <= hint["y"] <= 1):
        raise BadHint("roi's centre (x, y) must lie in the image: fractions from 0 to 1")
    if not 0 < hint["size"] <= config.max_hint_size:
        raise BadHint(f"roi's size must be above 0 and at most {config.max_hint_size} image widths")
    return hint


def tracking_roi(landmarks: np.ndarray, config: HandsConfig = HANDS) -> Roi:
    """Where to read the hand in the next frame: MediaPipe's HandLandmarksToRectCalculator and
    RectTransformation on the palm's and knuckles' landmarks (pixels)."""
    points = landmarks[list(config.track_landmarks), :2].astype(np.float64)
    wrist = landmarks[WRIST, :2]
    knuckles = (landmarks[INDEX_MCP, :2] + landmarks[RING_MCP, :2]) / 2
    angle = up_angle(wrist, (knuckles + landmarks[MIDDLE_MCP, :2]) / 2)
    centre = (points.min(0) + points.max(0)) / 2
    cos, sin = math.cos(angle), math.sin(angle)
    to_hand = np.array([[cos, sin], [-sin, cos]])  # image offsets to the hand's frame (fingers up)
    upright = (points - centre) @ to_hand.T
    low, high = upright.min(0), upright.max(0)
    width, height = high - low
    middle = (low + high) / 2 + np.array([0.0, config.track_shift_y * height])
    x, y = centre + middle @ to_hand  # back to image offsets
    return Roi(float(x), float(y), float(max(width, height) * config.track_scale), angle)


def ssd_anchors(config: HandsConfig = HANDS) -> np.ndarray:
    """(N, 2) anchor centres as fractions of the palm input: MediaPipe's SsdAnchorsCalculator with
    fixed-size anchors, two per cell and layer, layers of one stride sharing a grid."""
    centres = []
    strides = list(config.anchor_strides)
    while strides:
        stride, per_cell = strides[0], 2 * strides.count(strides[0])
        strides = [s for s in strides if s != stride]
        cells = math.ceil(config.palm_size / stride)
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's weighted NMS: each kept detection is the score-weighted mean of those overlapping it.

    `boxes` rows are (x_min, y_min, x_max, y_max, then keypoints); returns (row, best score) pairs.
    """
    order = list(np.argsort(-scores))
    kept = []
    while order:
        best = order[0]
        rest = np.array(order)
        overlap = _iou(boxes[best, :4], boxes[rest, :4]) > iou
        group = rest[overlap]
        weights = scores[group][:, None]
        kept.append(((boxes[group] * weights).sum(0) / weights.sum(), float(scores[best])))
        order = list(rest[~overlap])
    return kept


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    top_left = np.maximum(box[:2], others[:, :2])
    bottom_right = np.minimum(box[2:], others[:, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(1)
    area = (box[2:] - box[:2]).prod()
    areas = (others[:, 2:] - others[:, :2]).prod(1)
    return inter / np.maximum(area + areas - inter, 1e-9)


def _normalize_angle(angle: float) -> float:
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def up_angle(start: np.ndarray, end: np.ndarray) -> float:
    """Rotation that turns the direction start -> end (pixels) to point up the screen."""
    return _normalize_angle(math.pi / 2 - math.atan2(-(end[1] - start[1]), end[0] - start[0]))


class HandLandmarker:
    """Palm detection and hand landmarks on RGB uint8 images (3, H, W), one interpreter per model."""

    def __init__(self, threads: int = 1, config: HandsConfig = HANDS, weights_dir: Path = WEIGHTS_DIR):
        self.config = config
        self.palm = _Model(weights_dir / config.palm_model, threads)
        self.landmark = _Model(weights_dir / config.landmark_model, threads)
        self.anchors = ssd_anchors(config)

    def __call__(self, image: torch.Tensor, hint: Roi | None = None) -> Hand | None:
        """The most confident hand in `image`, or None.

        With a `hint` (the previous frame's `tracking_roi`), the landmark model reads it first, and the hand
        found there is the answer while its score holds. Otherwise the palm detector looks at the whole frame;
        where it shows no palm, it is looked at again with a margin (a hand that fills or leaves the frame),
        then in four overlapping tiles (a hand small in a room: each tile enlarges it by 1.5).
        """
        if min(image.shape[1:]) < self.config.min_side:
            return None
        pixels = image.permute(1, 2, 0).numpy()
        if hint is not None:
            hand = self.landmarks(pixels, hint)
            if hand.score >= self.config.min_hand_score:
                return dataclasses.replace(hand, tracked=True)
        for rois in self.search(pixels):
            hands = [self.landmarks(pixels, roi) for roi in rois]
            hands = [hand for hand in hands if hand.score >= self.config.min_hand_score]
            if hands:
                return max(hands, key=lambda hand: hand.score)
        return None

    def search(self, pixels: np.ndarray) -> Iterator[list[Roi]]:
        """The palms' ROIs (image pixels) of each look at the frame, in order, until one finds a hand."""
        yield self.palm_rois(pixels)
        yield self.palm_rois(pixels, self.config.retry_padding)
        height, width = pixels.shape[:2]
        tile_height, tile_width = round(height * self.config.tile), round(width * self.config.tile)
        for top in (0, height - tile_height):
            for left in (0, width - tile_width):
                tile = pixels[top : top + tile_height, left : left + tile_width]
                yield [dataclasses.replace(roi, x=roi.x + left, y=roi.y + top) for roi in self.palm_rois(tile)]

    def palm_rois(self, pixels: np.ndarray, padding: float = 0.0) -> list[Roi]:
        """Hand ROIs of the palms found in HxWx3 uint8 `pixels`, most confident first.

        The image is letterboxed into the palm input with `padding` (a fraction of its long side) on every side.
        """
        size = self.config.palm_size
        height, width = pixels.shape[:2]
        scale = size / (max(height, width) * (1 + 2 * padding))
        inner = (max(1, round(height * scale)), max(1, round(width * scale)))
        canvas = np.zeros((size, size, 3), dtype=np.uint8)
        top, left = (size - inner[0]) // 2, (size - inner[1]) // 2
        canvas[top : top + inner[0], left : left + inner[1]] = kornia_rs.imgproc.resize(
            np.ascontiguousarray(pixels), inner, "bilinear", antialias=True
        )
        raw_boxes, raw_scores = self.palm(canvas)
        scores = 1 / (1 + np.exp(-np.clip(raw_scores[:, 0], -100, 100)))
        found = scores >= self.config.min_palm_score
        if not found.any():
            return []
        raw, anchors = raw_boxes[found] / size, self.anchors[found]
        centre = raw[:, :2] + anchors
        corners = np.hstack([centre - raw[:, 2:4] / 2, centre + raw[:, 2:4] / 2])
        keypoints = raw[:, 4:].reshape(len(raw), -1, 2) + anchors[:, None]
        detections = weighted_nms(np.hstack([corners, keypoints.reshape(len(raw), -1)]), scores[found],
                                  self.config.nms_iou)
        # letterbox fractions to image pixels: canvas pixel / scale, less the offset of the image in it
        offset = np.array([left, top]) / scale
        rois = []
        for row, _ in detections[: self.config.max_hands]:
            points = row.reshape(-1, 2) * size / scale - offset  # box corners, then the 7 keypoints
            (x0, y0), (x1, y1), keypoints_px = points[0], points[1], points[2:]
            angle = up_angle(keypoints_px[PALM_WRIST], keypoints_px[PALM_MIDDLE])
            rois.append(self._hand_roi((x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0), angle))
        return rois

    def _hand_roi(self, x: float, y: float, side: float, angle: float) -> Roi:
        """MediaPipe's RectTransformation of the palm box: shifted along the hand's up direction, enlarged."""
        shift = side * self.config.roi_shift_y
        return Roi(x - shift * math.sin(angle), y + shift * math.cos(angle), side * self.config.roi_scale, angle)

    def landmarks(self, pixels: np.ndarray, roi: Roi) -> Hand:
        """The landmark model on `roi` of HxWx3 uint8 `pixels`."""
        side = self.config.landmark_size
        matrix = tuple(roi.to_crop(side).ravel().tolist())
        crop = kornia_rs.imgproc.warp_affine(np.ascontiguousarray(pixels), matrix, (side, side), "bilinear")
        points, presence, left_in_mirror, _world = self.landmark(np.asarray(crop))
        points = points.reshape(21, 3)
        xy = roi.from_crop(points[:, :2], side)
        z = points[:, 2:] * roi.size / side
        # The model names the hand as in a mirrored (selfie) view; photos come unmirrored, so it is the other one.
        handedness = "Right" if float(left_in_mirror[0]) >= 0.5 else "Left"
        return Hand(np.hstack([xy, z]).astype(np.float32), handedness, float(presence[0]), roi)


class _Model:
    """One LiteRT interpreter: uint8 HxWx3 in, [0, 1] float input, every output as a flat array."""

    def __init__(self, path: Path, threads: int):
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        details = sorted(self.interpreter.get_output_details(), key=lambda detail: detail["name"])
        self.outputs = [detail["index"] for detail in details]  # Identity, Identity_1, ...: the graph's order

    def __call__(self, pixels: np.ndarray) -> list[np.ndarray]:
        self.interpreter.set_tensor(self.input, (pixels[None].astype(np.float32) / 255.0))
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(index)[0] for index in self.outputs]
