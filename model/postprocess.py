"""Logits to the answer users get: the top label, its probability and the top-k list."""

import torch

from asl_serve.model.classes import CLASS_NAMES


def top_k_answers(logits: torch.Tensor, k: int | list[int], names: tuple[str, ...] = CLASS_NAMES) -> list[dict]:
    """One answer per row of `logits`; `k` is one value for all rows or one per row."""
    probabilities = torch.softmax(logits.float(), dim=1)
    ks = [k] * len(probabilities) if isinstance(k, int) else k
    answers = []
    for row, row_k in zip(probabilities, ks, strict=True):
        values, indices = row.topk(row_k)
        pairs = zip(values.tolist(), indices.tolist(), strict=True)
        top = [{"label": names[i], "probability": round(p, 6)} for p, i in pairs]
        answers.append({"label": top[0]["label"], "probability": top[0]["probability"], "top_k": top})
    return answers
