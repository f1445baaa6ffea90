"""Occlusion sensitivity: which parts of the input the predicted class depends on, from forward passes only.

A grey square (the normalisation mean, zero once normalised) slides over the preprocessed input, and
each placement measures how much the predicted class's probability drops without those pixels.
Only the model's outputs are used, no gradients or hooks, so the TorchScript fp32 and int8 models
are explained alike. Cost: `forward_passes()` images per explanation, 1 + 9 x 9 = 82 with the
defaults, run `chunk` at a time; about as much compute as 82 predictions.
"""

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from asl_serve.model.classes import CLASS_NAMES
from asl_serve.model.config import PREPROCESS, PreprocessConfig
from asl_serve.model.decode import ImageError
from asl_serve.model.pipeline import BatchResult, Classifier, timed
from asl_serve.model.preprocess import cnn_input, hand_square, normalize_batch

HEATMAP_MAX_ALPHA = 190  # the hottest pixel of the overlay still lets the photo show through


@dataclass(frozen=True)
class OcclusionConfig:
    """Patch and stride in input pixels; `stride` also sets the grid's cell size."""

    patch: int = 32
    stride: int = 16
    chunk: int = 16  # occluded images per forward pass: bounds a worker's memory, not its work

    def positions(self, size: int) -> int:
        """Patch placements along one side of a `size` x `size` input."""
        if size % self.stride or self.patch % self.stride or self.patch > size:
            raise ValueError(f"patch {self.patch} and input {size} must be multiples of stride {self.stride}")
        return (size - self.patch) // self.stride + 1

    def forward_passes(self, size: int = PREPROCESS.image_size) -> int:
        """Images the model sees per explanation: the unoccluded one and one per placement."""
        return 1 + self.positions(size) ** 2


OCCLUSION = OcclusionConfig()


def occluded_batch(image: torch.Tensor, config: OcclusionConfig, fill: torch.Tensor) -> torch.Tensor:
    """Every placement of the grey patch over a uint8 (3, S, S) image, row by row: (P*P, 3, S, S)."""
    count = config.positions(image.shape[-1])
    batch = image.unsqueeze(0).repeat(count * count, 1, 1, 1)
    for index in range(count * count):
        top, left = (index // count) * config.stride, (index % count) * config.stride
        batch[index, :, top : top + config.patch, left : left + config.patch] = fill
    return batch


def cell_scores(drops: torch.Tensor, config: OcclusionConfig) -> torch.Tensor:
    """Per-placement drops (P, P) to per-cell scores (C, C): the mean drop of the placements covering a cell."""
    count = drops.shape[0]
    span = config.patch // config.stride
    cells = count + span - 1
    total = torch.zeros(cells, cells)
    covered = torch.zeros(cells, cells)
    for row in range(count):
        for col in range(count):
            total[row : row + span, col : col + span] += drops[row, col]
            covered[row : row + span, col : col + span] += 1
    return total / covered


def occlusion_scores(
    model: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    config: OcclusionConfig = OCCLUSION,
    preprocess: PreprocessConfig = PREPROCESS,
) -> tuple[int, float, torch.Tensor]:
    """The predicted class, its probability and the (C, C) grid of probability drops for a uint8 (3, S, S) image."""
    fill = torch.tensor([round(m * 255) for m in preprocess.mean], dtype=torch.uint8).view(3, 1, 1)
    occluded = occluded_batch(image, config, fill)
    with torch.inference_mode():
        base = torch.softmax(model(normalize_batch(image.unsqueeze(0), preprocess)).float(), dim=1)[0]
        target = int(base.argmax())
        probabilities = [
            torch.softmax(model(normalize_batch(chunk, preprocess)).float(), dim=1)[:, target]
            for chunk in occluded.split(config.chunk)
        ]
    count = config.positions(image.shape[-1])
    drops = (base[target] - torch.cat(probabilities)).view(count, count)
    return target, float(base[target]), cell_scores(drops, config)


def heatmap_png(scores: torch.Tensor, size: int) -> bytes:
    """A `size` x `size` RGBA PNG: transparent where occlusion did not hurt, red to yellow and opaque where it did."""
    peak = float(scores.max())
    level = (scores.clamp(min=0) / peak).numpy().astype(np.float32) if peak > 0 else np.zeros(scores.shape, np.float32)
    smooth = np.asarray(Image.fromarray(level).resize((size, size), Image.Resampling.BILINEAR))
    smooth = np.clip(smooth, 0.0, 1.0)
    rgba = np.stack(
        [np.full_like(smooth, 255), 255 * smooth, np.zeros_like(smooth), HEATMAP_MAX_ALPHA * smooth], axis=-1
    )
    buffer = io.BytesIO()
    Image.fromarray(rgba.round().astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def explain_image(
    model: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    config: OcclusionConfig = OCCLUSION,
    preprocess: PreprocessConfig = PREPROCESS,
) -> dict:
    """The JSON answer for one preprocessed uint8 (3, S, S) image: label, score grid and heatmap PNG (base64).

    `grid[r][c]` covers input rows r*stride..(r+1)*stride and columns likewise; the input is a square of the
    photo (the hand's, or the whole frame) resized, so the grid and the heatmap stretch over that square.
    """
    target, probability, scores = occlusion_scores(model, image, config, preprocess)
    return {
        "label": CLASS_NAMES[target],
        "probability": round(probability, 6),
        "method": "occlusion",
        "patch": config.patch,
        "stride": config.stride,
        "forward_passes": config.forward_passes(image.shape[-1]),
        "grid": [[round(v, 5) for v in row] for row in scores.tolist()],
        "heatmap_png": base64.b64encode(heatmap_png(scores, image.shape[-1])).decode("ascii"),
    }


def explain_frame(classifier: Classifier, image: torch.Tensor, config: OcclusionConfig = OCCLUSION) -> dict:
    """The explanation of the CNN's input for one decoded image: the hand's square where the classifier finds a
    hand, else the whole frame. `region` says where that input lies in the image (left, top, right, bottom as
    fractions), so the grid and the heatmap can be laid over it."""
    hand = classifier.hands.landmarker(image) if classifier.hands else None
    height, width = image.shape[1:]
    region = [0.0, 0.0, 1.0, 1.0]
    if hand is not None:
        left, top, side = hand_square(hand.box, width, height, classifier.config)
        region = [round(v, 4) for v in (left / width, top / height, (left + side) / width, (top + side) / height)]
    square = cnn_input(image, hand.box if hand else None, classifier.config)
    return {**explain_image(classifier.model, square, config, classifier.config), "region": region}


def explain(classifier: Classifier, inputs: list[bytes], config: OcclusionConfig = OCCLUSION) -> BatchResult:
    """`Classifier.classify`'s contract for explanations: one answer or `ImageError` per input, in order.

    Images are explained one at a time; each costs `config.forward_passes()` images through the model. The
    explanation is the CNN's: the landmark classifier, fused with it in predictions, has no pixels to occlude.
    """
    timings: dict[str, float] = {}
    with timed("explain", timings):
        outputs: list[dict | ImageError] = [
            image if isinstance(image, ImageError) else explain_frame(classifier, image, config)
            for image in classifier.decode(inputs)
        ]
    return BatchResult(outputs, timings)
