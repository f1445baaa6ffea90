"""Plots: augmentation grid, training curves, confusion matrix (`make figures` and the training run)."""

import argparse
from pathlib import Path

import torch
from matplotlib.figure import Figure  # no pyplot: no global backend or figure registry

from asl_serve.model.classes import CLASS_NAMES, NOTHING
from asl_serve.model.preprocess import to_unit_range
from asl_serve.training.augment import build_augmentation
from asl_serve.training.config import TrainConfig
from asl_serve.training.dataset import load_images, scan


def save_augmentation_grid(
    images: torch.Tensor, backgrounds: torch.Tensor, path: Path, seed: int = 0, variants: int = 4
) -> None:
    """Each row: a real image, then `variants` augmented draws of it (cut-out hands pasted on rooms)."""
    torch.manual_seed(seed)
    config = TrainConfig().augment
    augment = build_augmentation(config, backgrounds)
    unit = to_unit_range(images)
    columns = [unit] + [augment(unit).clamp(0, 1) for _ in range(variants)]
    fig = Figure(figsize=(2 * (variants + 1), 2 * len(images)))
    axes = fig.subplots(len(images), variants + 1)
    for row in range(len(images)):
        for col, batch in enumerate(columns):
            axes[row, col].imshow(batch[row].permute(1, 2, 0).numpy())
            axes[row, col].axis("off")
    axes[0, 0].set_title("original")
    for col in range(1, variants + 1):
        axes[0, col].set_title(f"augmented {col}")
    _save(fig, path)


def save_training_curves(history: list[dict], path: Path) -> None:
    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(11, 4))
    loss_ax, acc_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train loss")
    loss_ax.set_xlabel("epoch")
    loss_ax.legend()
    for source in history[0]["validation"]:
        acc_ax.plot(epochs, [h["validation"][source] for h in history], marker="o", label=f"val {source}")
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel("top-1 accuracy")
    acc_ax.legend()
    _save(fig, path)


def save_confusion_matrix(matrix: torch.Tensor, path: Path, title: str) -> None:
    fig = Figure(figsize=(11, 10))
    ax = fig.subplots()
    rates = matrix.float() / matrix.sum(1, keepdim=True).clamp(min=1)
    ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(CLASS_NAMES)), CLASS_NAMES, rotation=90)
    ax.set_yticks(range(len(CLASS_NAMES)), CLASS_NAMES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for (row, col), count in zip(matrix.nonzero().tolist(), matrix[matrix > 0].tolist(), strict=True):
        if row != col:
            ax.text(col, row, str(count), ha="center", va="center", fontsize=6, color="red")
    _save(fig, path)


def _save(fig: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description="Write reports/figures/augmentations.png from real images.")
    parser.add_argument("--data", type=Path, action="append", help="folder-per-class tree (repeatable)")
    parser.add_argument("--out", type=Path, default=TrainConfig().figures_dir / "augmentations.png")
    args = parser.parse_args()
    samples = scan(args.data or list(TrainConfig().data), limit_per_class=1)
    by_source = {}
    for sample in samples:  # one letter per source, a different letter each
        if sample.label < NOTHING and sample.label >= len(by_source) * 3:
            by_source.setdefault(sample.source, sample)
    backgrounds = load_images([s for s in samples if s.label == NOTHING], desc="backgrounds").images
    save_augmentation_grid(load_images(list(by_source.values()), desc="images").images, backgrounds, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
