"""Class- and source-balanced sampling: sources differ in size by 5x and some lack classes."""

from collections import Counter

import torch


def balanced_weights(labels: list[int], sources: list[str], source_power: float) -> torch.Tensor:
    """One weight per sample, summing to 1: every present class gets the same mass, split among the
    sources that have it in proportion to count**source_power, and evenly within a (source, class)."""
    counts = Counter(zip(sources, labels, strict=True))
    classes = sorted(set(labels))
    class_mass: dict[tuple[str, int], float] = {}
    for label in classes:
        groups = {key: n for key, n in counts.items() if key[1] == label}
        total = sum(n**source_power for n in groups.values())
        for key, n in groups.items():
            class_mass[key] = (n**source_power / total) / len(classes)
    return torch.tensor([class_mass[key] / counts[key] for key in zip(sources, labels, strict=True)])


def draw_epoch(weights: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` sample indices drawn with replacement by weight."""
    return torch.multinomial(weights, count, replacement=True, generator=generator)
