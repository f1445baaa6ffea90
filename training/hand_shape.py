"""Train the landmark classifier (`model.hand_shape`) on cached landmarks and choose its fusion with the CNN.

    python -m asl_serve.training.hand_shape [--data DIR ...]     # after training.train; `make train` runs both

Left hands are mirrored by the features; augmentation rotates the hand in the image plane, stretches
it a little along x and y, and jitters every landmark, so the classifier does not learn one camera's
angle or one signer's proportions. The fusion weight is the one that scores best, as a mean over
sets, on the validation blocks and on their arm's-length versions (`training.arms_length`), with the
trained CNN: validation only, never a test/ split.
"""

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from asl_serve.layout import WEIGHTS
from asl_serve.model.hand_shape import (
    HAND_SHAPE_WEIGHTS,
    HandShapeNet,
    fuse_where_found,
    hand_features,
    save_hand_shape,
)
from asl_serve.training import arms_length
from asl_serve.training.config import TrainConfig
from asl_serve.training.dataset import Sample, load_images, scan, split_by_blocks
from asl_serve.training.export import load_trained
from asl_serve.training.landmarks import HandSet, find_hands
from asl_serve.training.metrics import accuracy_by_source, predict_logits
from asl_serve.training.sampling import balanced_weights, draw_epoch

FUSION_WEIGHTS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)  # the candidates, log p_landmarks's weight


@dataclass(frozen=True)
class HandShapeConfig:
    hidden: int = 256
    dropout: float = 0.2
    epochs: int = 60
    samples_per_epoch: int = 8000
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-3
    fusion_weights: tuple[float, ...] = FUSION_WEIGHTS
    label_smoothing: float = 0.1
    rotation_degrees: float = 15.0
    stretch: float = 0.1  # x and y scaled independently by 1 +- this
    jitter: float = 0.03  # landmark noise, in units of the wrist-to-knuckle length
    source_power: float = 0.5
    seed: int = 0


def augment(features: torch.Tensor, config: HandShapeConfig, generator: torch.Generator) -> torch.Tensor:
    """Random in-plane rotation, stretch and per-landmark jitter of (N, 63) normalised features."""
    points = features.reshape(-1, 21, 3)
    n = len(points)
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(config.rotation_degrees)
    cos, sin = angle.cos(), angle.sin()
    rotation = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)  # (N, 2, 2)
    xy = torch.einsum("nij,nkj->nki", rotation, points[..., :2])
    xy = xy * (1 + (torch.rand(n, 1, 2, generator=generator) * 2 - 1) * config.stretch)
    points = torch.cat([xy, points[..., 2:]], dim=2)
    points = points + torch.randn(points.shape, generator=generator) * config.jitter
    return points.flatten(1)


def train_hand_shape(landmarks: torch.Tensor, right: torch.Tensor, labels: torch.Tensor, sources: list[str],
                     config: HandShapeConfig = HandShapeConfig()) -> HandShapeNet:
    """A classifier trained on the photos whose hand was found (the rows given), class- and source-balanced."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    features = hand_features(landmarks, right)
    weights = balanced_weights(labels.tolist(), sources, config.source_power)
    net = HandShapeNet(config.hidden, config.dropout)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(config.samples_per_epoch / config.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=config.epochs * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    net.train()
    for _ in tqdm(range(config.epochs), desc="hand shape"):
        order = draw_epoch(weights, config.samples_per_epoch, generator)
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            loss = loss_fn(net(augment(features[batch], config, generator)), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    return net.eval()


@torch.inference_mode()
def shape_logits(net: HandShapeNet, hands: HandSet) -> torch.Tensor:
    """The landmark classifier's logits per photo; rows without a hand are zeros (never read)."""
    logits = torch.zeros(len(hands), net.layers[-1].out_features)
    found = hands.found
    if found.any():
        logits[found] = net(hand_features(hands.landmarks[found], hands.right[found]))
    return logits


@dataclass
class Scored:
    """One set's labels, sources and the three answers the evaluation compares."""

    labels: torch.Tensor
    sources: list[str]
    found: torch.Tensor
    cnn: torch.Tensor
    shape: torch.Tensor


def score_set(samples: list[Sample], cnn_model, net: HandShapeNet, cache_dir: Path | None,
              whole_frame: bool = False) -> Scored:
    """CNN logits on the photos as served (hand square or whole frame) and landmark logits, from the caches.

    `whole_frame`: the CNN reads every whole frame, as before the hand-aware pipeline (for comparison).
    """
    hands = find_hands([s.path for s in samples])
    images = load_images(samples, cache_dir, "decode", hands.without_hands() if whole_frame else hands)
    skipped = set(images.skipped)
    readable = [i for i, s in enumerate(samples) if s.path not in skipped]
    hands = hands.subset(readable)
    return Scored(images.labels, images.sources, hands.found, predict_logits(cnn_model, images.images),
                  shape_logits(net, hands))


def choose_fusion_weight(scored: list[Scored], candidates: tuple[float, ...]) -> tuple[float, dict[float, float]]:
    """The candidate weight with the best mean accuracy over sources, pooled over the scored sets."""
    labels = torch.cat([s.labels for s in scored])
    sources = [source for s in scored for source in s.sources]
    found = torch.cat([s.found for s in scored])
    cnn, shape = torch.cat([s.cnn for s in scored]), torch.cat([s.shape for s in scored])
    means = {w: accuracy_by_source(fuse_where_found(cnn, shape, found, w).argmax(1), labels, sources)["mean"]
             for w in candidates}
    return max(means, key=lambda w: (means[w], -w)), means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, action="append", help="folder-per-class tree (repeatable)")
    parser.add_argument("--cnn", type=Path, default=WEIGHTS, help="the trained CNN's state dict")
    parser.add_argument("--out", type=Path, default=HAND_SHAPE_WEIGHTS)
    parser.add_argument("--report", type=Path, default=Path("reports/hand_shape.json"),
                        help="the fusion weight chosen and every candidate's validation score")
    args = parser.parse_args()
    train_config = TrainConfig(**({"data": tuple(args.data)} if args.data else {}))
    config = HandShapeConfig()
    train, validation = split_by_blocks(scan(list(train_config.data)), train_config.split, train_config.seed)
    hands = find_hands([s.path for s in train], desc="hands train")
    rows = hands.found.nonzero().flatten()
    labels = torch.tensor([s.label for s in train])[rows]
    net = train_hand_shape(hands.landmarks[rows], hands.right[rows], labels,
                           [train[i].source for i in rows.tolist()], config)
    cnn = load_trained(args.cnn)
    sets = [validation]
    for source in sorted({s.source for s in validation}):
        folder = arms_length.arms_length_dir(source, "validation")
        if folder.is_dir():  # written by `python -m asl_serve.training.arms_length`
            sets.append([Sample(s.path, s.label, f"{source}{arms_length.SUFFIX}", s.frame) for s in scan([folder])])
    scored = [score_set(samples, cnn, net, train_config.cache_dir) for samples in sets]
    weight, means = choose_fusion_weight(scored, config.fusion_weights)
    save_hand_shape(net, config.hidden, config.dropout, weight, args.out)
    found = torch.cat([s.found for s in scored])
    labels = torch.cat([s.labels for s in scored])
    shape_right = (torch.cat([s.shape for s in scored]).argmax(1) == labels)[found]
    report = {
        "command": " ".join(["python -m asl_serve.training.hand_shape", *sys.argv[1:]]),
        "training_photos_with_a_hand": len(rows),
        "validation_sets": sorted({source for s in scored for source in s.sources}),
        "landmarks_alone_where_a_hand_is_found": round(float(shape_right.float().mean()), 4),
        "fusion_weight": weight,
        "validation_mean_over_sets_by_weight": {str(w): round(m, 4) for w, m in means.items()},
    }
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    print(f"wrote {args.out} and {args.report}")


if __name__ == "__main__":
    main()
