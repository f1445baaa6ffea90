"""Bytes in, answers out: decode, find the hand, preprocess and classify a batch, failing only the bad images.

With a `HandReader`, each image's hand is found first (`model.hands`); the CNN reads the square around
it (`model.preprocess.crop_to_hand`) and the landmark classifier's answer is fused with the CNN's
(`model.hand_shape.fuse`). Where no hand is found, the CNN reads the whole frame and answers alone.
Framework-independent: the TorchServe handler is a thin adapter around `Classifier.classify`.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.profiler import record_function

from asl_serve.model.config import DEFAULT_TOP_K, PREPROCESS, PreprocessConfig
from asl_serve.model.decode import ImageError, decode_image
from asl_serve.model.hand_shape import HandShapeNet, fuse_where_found, hand_features, load_hand_shape
from asl_serve.model.hands import Hand, HandLandmarker, Roi
from asl_serve.model.postprocess import top_k_answers
from asl_serve.model.preprocess import cnn_input, normalize_batch

STAGES = ("decode", "hands", "preprocess", "inference", "postprocess")  # what `Classifier.classify` times, in order


@dataclass
class BatchResult:
    """One answer dict or one `ImageError` per input, plus stage timings in milliseconds."""

    outputs: list[dict | ImageError]
    timings_ms: dict[str, float] = field(default_factory=dict)


@contextmanager
def timed(stage: str, timings_ms: dict[str, float]) -> Iterator[None]:
    """Time a stage into `timings_ms` and mark it for torch.profiler traces: the one place stages are timed."""
    started = time.perf_counter()
    with record_function(stage):
        yield
    timings_ms[stage] = elapsed_ms(started)


@dataclass
class HandReader:
    """The hand-aware stages: the landmarker, the landmark classifier and the fusion weight chosen with it."""

    landmarker: HandLandmarker
    shape: HandShapeNet
    fusion_weight: float

    @classmethod
    def load(cls, threads: int = 1) -> "HandReader":
        """The committed hand models and landmark classifier, as every server and benchmark runs them."""
        shape, fusion_weight = load_hand_shape()
        return cls(HandLandmarker(threads), shape, fusion_weight)

    def shape_logits(self, hands: list[Hand]) -> torch.Tensor:
        """The landmark classifier's logits for found hands (rows in order)."""
        landmarks = torch.from_numpy(np.stack([hand.landmarks for hand in hands]))
        right = torch.tensor([hand.handedness == "Right" for hand in hands])
        return self.shape(hand_features(landmarks, right))


class Classifier:
    def __init__(self, model: Callable[[torch.Tensor], torch.Tensor], config: PreprocessConfig = PREPROCESS,
                 hands: HandReader | None = None):
        self.model = model
        self.config = config
        self.hands = hands

    def decode(self, inputs: list[bytes]) -> list[torch.Tensor | ImageError]:
        """Each input decoded to RGB uint8, or the `ImageError` it raised, in its slot."""
        decoded: list[torch.Tensor | ImageError] = []
        for data in inputs:
            try:
                decoded.append(decode_image(data, self.config.max_pixels))
            except ImageError as error:
                decoded.append(error)
        return decoded

    def classify(self, inputs: list[bytes], top_k: int | list[int] = DEFAULT_TOP_K,
                 hints: list[dict | None] | None = None) -> BatchResult:
        """Classify every decodable image in one forward pass; errors stay in their slots.

        `top_k` is one value for every input or one per input. `hints`: per input, the previous frame's
        `hand.roi` (checked by `model.hands.parse_hint`) or None: where the hand is tracked, the palm
        detector is skipped.
        """
        ks = [top_k] * len(inputs) if isinstance(top_k, int) else top_k
        hints = hints or [None] * len(inputs)
        timings: dict[str, float] = {}
        with timed("decode", timings):
            decoded = self.decode(inputs)
        good = [i for i, item in enumerate(decoded) if isinstance(item, torch.Tensor)]
        outputs: list[dict | ImageError] = list(decoded)
        if not good:
            return BatchResult(outputs, timings)
        images = [decoded[i] for i in good]
        hands: list[Hand | None] = [None] * len(images)
        if self.hands:
            with timed("hands", timings):
                hands = [self.hands.landmarker(decoded[i], hint_roi(decoded[i], hints[i])) for i in good]
        with timed("preprocess", timings):
            boxes = [hand.box if hand else None for hand in hands]
            squares = [cnn_input(image, box, self.config) for image, box in zip(images, boxes, strict=True)]
            batch = normalize_batch(torch.stack(squares), self.config)
        with timed("inference", timings), torch.inference_mode():
            logits = self.model(batch)
            found = torch.tensor([hand is not None for hand in hands])
            if found.any():
                shape_logits = torch.zeros(len(hands), logits.shape[1])
                shape_logits[found] = self.hands.shape_logits([hand for hand in hands if hand is not None])
                logits = fuse_where_found(logits, shape_logits, found, self.hands.fusion_weight)
        with timed("postprocess", timings):
            answers = top_k_answers(logits, [ks[i] for i in good])
        for i, image, hand, answer in zip(good, images, hands, answers, strict=True):
            height, width = image.shape[1:]
            outputs[i] = {**answer, "hand": hand.as_json(width, height) if hand else None}
        return BatchResult(outputs, timings)


def hint_roi(image: torch.Tensor, hint: dict | None) -> Roi | None:
    """A checked hint in the pixels of this image."""
    return None if hint is None else Roi.from_json(hint, image.shape[2], image.shape[1])


def elapsed_ms(started: float) -> float:
    """Milliseconds since a `time.perf_counter()` reading."""
    return (time.perf_counter() - started) * 1000.0
