"""The one evaluation loop: any callable model (eager, TorchScript fp32 or int8) over decoded images."""

from collections.abc import Callable

import torch

from model.classes import CLASS_NAMES
from model.preprocess import normalize_batch


@torch.inference_mode()
def predict_logits(model: Callable, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Logits for uint8 (N, 3, S, S) images, through the shared `normalize_batch`."""
    if hasattr(model, "eval"):
        model.eval()
    outputs = [model(normalize_batch(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
    return torch.cat(outputs) if outputs else torch.empty(0, len(CLASS_NAMES))


def accuracy_by_source(predictions: torch.Tensor, labels: torch.Tensor, sources: list[str]) -> dict[str, float]:
    """Top-1 accuracy per source and over all images."""
    correct = predictions == labels
    result = {}
    for source in sorted(set(sources)):
        mask = torch.tensor([s == source for s in sources])
        result[source] = float(correct[mask].float().mean())
    result["all"] = float(correct.float().mean()) if len(correct) else 0.0
    return result


def confusion_matrix(predictions: torch.Tensor, labels: torch.Tensor, classes: int = len(CLASS_NAMES)):
    """Counts with true classes as rows and predicted classes as columns."""
    matrix = torch.zeros(classes, classes, dtype=torch.long)
    matrix.index_put_((labels, predictions), torch.ones_like(labels), accumulate=True)
    return matrix
