"""Bytes in, answers out: decode, preprocess and classify a batch, failing only the bad images.

Framework-independent: the TorchServe handler is a thin adapter around `Classifier.classify`.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from model.config import PREPROCESS, PreprocessConfig
from model.decode import ImageError, decode_image
from model.postprocess import top_k_answers
from model.preprocess import preprocess_images


@dataclass
class BatchResult:
    """One answer dict or one `ImageError` per input, plus stage timings in milliseconds."""

    outputs: list[dict | ImageError]
    timings_ms: dict[str, float] = field(default_factory=dict)


class Classifier:
    def __init__(self, model: Callable[[torch.Tensor], torch.Tensor], config: PreprocessConfig = PREPROCESS):
        self.model = model
        self.config = config

    def decode(self, inputs: list[bytes | ImageError]) -> list[torch.Tensor | ImageError]:
        """Each input decoded to RGB uint8, or its `ImageError` (already failed, or failing now) in its slot."""
        decoded: list[torch.Tensor | ImageError] = []
        for item in inputs:
            try:
                decoded.append(item if isinstance(item, ImageError) else decode_image(item, self.config.max_pixels))
            except ImageError as error:
                decoded.append(error)
        return decoded

    def classify(self, inputs: list[bytes | ImageError], top_k: list[int]) -> BatchResult:
        """Classify every decodable image in one forward pass; errors stay in their slots."""
        started = time.perf_counter()
        decoded = self.decode(inputs)
        good = [i for i, item in enumerate(decoded) if isinstance(item, torch.Tensor)]
        timings = {"decode": elapsed_ms(started)}
        outputs: list[dict | ImageError] = list(decoded)
        if good:
            started = time.perf_counter()
            batch = preprocess_images([decoded[i] for i in good], self.config)
            timings["preprocess"] = elapsed_ms(started)
            started = time.perf_counter()
            with torch.inference_mode():
                logits = self.model(batch)
            timings["inference"] = elapsed_ms(started)
            started = time.perf_counter()
            answers = top_k_answers(logits, [top_k[i] for i in good])
            timings["postprocess"] = elapsed_ms(started)
            for i, answer in zip(good, answers, strict=True):
                outputs[i] = answer
        return BatchResult(outputs, timings)


def elapsed_ms(started: float) -> float:
    """Milliseconds since a `time.perf_counter()` reading."""
    return (time.perf_counter() - started) * 1000.0
