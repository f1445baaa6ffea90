"""Predictions and scores shared by training, export and evaluation: logits, accuracy, confusion counts."""

from collections.abc import Callable

import torch

from asl_serve.model.classes import CLASS_NAMES
from asl_serve.model.preprocess import normalize_batch


@torch.inference_mode()
def predict_logits(model: Callable, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Logits for uint8 (N, 3, S, S) images, through the shared `normalize_batch`."""
    if hasattr(model, "eval"):
        model.eval()
    outputs = [model(normalize_batch(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
    return torch.cat(outputs) if outputs else torch.empty(0, len(CLASS_NAMES))


def accuracy_by_source(predictions: torch.Tensor, labels: torch.Tensor, sources: list[str]) -> dict[str, float]:
    """Top-1 accuracy per source, over all images, and the mean over sources (what model selection uses:
    pooled accuracy would let the largest source decide)."""
    correct = predictions == labels
    result = {}
    for source in sorted(set(sources)):
        mask = torch.tensor([s == source for s in sources])
        result[source] = float(correct[mask].float().mean())
    per_source = list(result.values())
    result["all"] = float(correct.float().mean()) if len(correct) else 0.0
    result["mean"] = sum(per_source) / len(per_source) if per_source else 0.0
    return result


def confusion_matrix(predictions: torch.Tensor, labels: torch.Tensor, classes: int = len(CLASS_NAMES)):
    """Counts with true classes as rows and predicted classes as columns."""
    matrix = torch.zeros(classes, classes, dtype=torch.long)
    matrix.index_put_((labels, predictions), torch.ones_like(labels), accumulate=True)
    return matrix
