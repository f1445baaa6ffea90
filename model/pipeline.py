"""Bytes in, answers out: decode, preprocess and classify a batch, failing only the bad images.

Framework-independent: the TorchServe handler is a thin adapter around `Classifier.classify`.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch.profiler import record_function

from model.config import DEFAULT_TOP_K, PREPROCESS, PreprocessConfig
from model.decode import ImageError, decode_image
from model.postprocess import top_k_answers
from model.preprocess import preprocess_images


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


class Classifier:
    def __init__(self, model: Callable[[torch.Tensor], torch.Tensor], config: PreprocessConfig = PREPROCESS):
        self.model = model
        self.config = config

    def decode(self, inputs: list[bytes]) -> list[torch.Tensor | ImageError]:
        """Each input decoded to RGB uint8, or the `ImageError` it raised, in its slot."""
        decoded: list[torch.Tensor | ImageError] = []
        for data in inputs:
            try:
                decoded.append(decode_image(data, self.config.max_pixels))
            except ImageError as error:
                decoded.append(error)
        return decoded

    def classify(self, inputs: list[bytes], top_k: int | list[int] = DEFAULT_TOP_K) -> BatchResult:
        """Classify every decodable image in one forward pass; errors stay in their slots.

        `top_k` is one value for every input or one per input.
        """
        ks = [top_k] * len(inputs) if isinstance(top_k, int) else top_k
        timings: dict[str, float] = {}
        with timed("decode", timings):
            decoded = self.decode(inputs)
        good = [i for i, item in enumerate(decoded) if isinstance(item, torch.Tensor)]
        outputs: list[dict | ImageError] = list(decoded)
        if good:
            with timed("preprocess", timings):
                batch = preprocess_images([decoded[i] for i in good], self.config)
            with timed("inference", timings), torch.inference_mode():
                logits = self.model(batch)
            with timed("postprocess", timings):
                answers = top_k_answers(logits, [ks[i] for i in good])
            for i, answer in zip(good, answers, strict=True):
                outputs[i] = answer
        return BatchResult(outputs, timings)


def elapsed_ms(started: float) -> float:
    """Milliseconds since a `time.perf_counter()` reading."""
    return (time.perf_counter() - started) * 1000.0
