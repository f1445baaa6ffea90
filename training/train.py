"""Fine-tune the classifier on folder-per-class trees; runs alone or under `torchrun` (DDP, gloo).

    python -m asl_serve.training.train --data DIR [--data DIR ...] [--epochs N]
    torchrun --nproc_per_node=2 -m asl_serve.training.train --data DIR
"""

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from asl_serve.model.classes import CLASS_NAMES, NOTHING
from asl_serve.model.config import NETWORK, PREPROCESS
from asl_serve.model.decode import decode_image
from asl_serve.model.preprocess import normalize, to_unit_range
from asl_serve.training import arms_length, figures
from asl_serve.training.augment import build_augmentation
from asl_serve.training.config import TrainConfig, add_options, from_options
from asl_serve.training.dataset import ImageSet, Sample, load_images, scan, split_by_blocks
from asl_serve.training.landmarks import HandSet, find_hands
from asl_serve.training.metrics import accuracy_by_source, confusion_matrix, predict_logits
from asl_serve.training.network import ASLNet, build_network, count_parameters
from asl_serve.training.sampling import balanced_weights, draw_epoch


def init_distributed() -> tuple[int, int]:
    """(rank, world size); joins the gloo process group when started by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        dist.init_process_group("gloo")
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    return (dist.get_rank() if world > 1 else 0), world


def freeze_early_blocks(net: ASLNet, count: int) -> None:
    """Keep the stem and first blocks at their ImageNet weights and statistics."""
    for block in net.features[:count]:
        block.requires_grad_(False)


def set_train_mode(net: ASLNet, frozen: int) -> None:
    net.train()
    for block in net.features[:frozen]:
        block.eval()  # frozen batch-norm statistics stay as pretrained


def with_arms_length(samples: list[Sample], hands: HandSet, photos: ImageSet, config: TrainConfig,
                     seed: int) -> ImageSet:
    """`photos` (the samples as the CNN reads them) and an arm's-length version of each: the photo shrunk
    into a room of the same split's `nothing` photos, as `python -m asl_serve.training.arms_length` frames test sets."""
    rooms = [decode_image(s.path.read_bytes()) for s in samples if s.label == NOTHING]
    if not rooms:
        print("no `nothing` photos to use as rooms: no arm's-length copies")
        return photos
    return photos + arms_length.training_images(samples, hands, rooms, config.augment.arms_length_whole_frame, seed)


def load_data(config: TrainConfig, rank: int, world: int) -> tuple[ImageSet, ImageSet]:
    """Training and validation images as the CNN reads them, each also at arm's length."""
    samples = scan(list(config.data), config.limit_per_class)
    train_samples, val_samples = split_by_blocks(samples, config.split, config.seed)
    if rank != 0:
        dist.barrier()  # rank 0 finds the hands, decodes and fills the caches first
    sets = []
    for name, part in (("train", train_samples), ("validation", val_samples)):
        hands = find_hands([s.path for s in part], desc=f"hands {name}")
        photos = load_images(part, config.cache_dir, f"decode {name}", hands)
        sets.append(with_arms_length(part, hands, photos, config, config.seed + len(sets)))
    if rank == 0 and world > 1:
        dist.barrier()
    return sets[0], sets[1]


@dataclasses.dataclass
class Run:
    """What every epoch of one training run uses, built once by `train`."""

    config: TrainConfig
    net: ASLNet
    model: nn.Module  # the net, or DistributedDataParallel around it
    train_set: ImageSet
    weights: torch.Tensor  # each image's chance of being drawn (training.sampling)
    augment: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    rank: int = 0
    world: int = 1


def train_epoch(run: Run, epoch: int) -> float:
    """One balanced draw of `samples_per_epoch` images, sharded over ranks; returns the mean loss."""
    config, images, labels = run.config, run.train_set.images, run.train_set.labels
    generator = torch.Generator().manual_seed(config.seed * 1000 + epoch)  # same draw on every rank
    order = draw_epoch(run.weights, config.sampling.samples_per_epoch, generator)
    per_rank = len(order) // run.world
    shard = order[run.rank * per_rank : (run.rank + 1) * per_rank]
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    set_train_mode(run.net, config.frozen_blocks)
    total, count = 0.0, 0
    for start in tqdm(range(0, len(shard), config.batch_size), desc=f"epoch {epoch}", disable=run.rank != 0,
                      leave=False):
        batch = shard[start : start + config.batch_size]
        with torch.no_grad():
            inputs = normalize(run.augment(to_unit_range(images[batch])))
        loss = loss_fn(run.model(inputs), labels[batch])
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        run.scheduler.step()
        total, count = total + loss.item() * len(batch), count + len(batch)
    return total / max(count, 1)


def save_outputs(net: ASLNet, config: TrainConfig, history: list[dict], validation: ImageSet, skipped: int):
    """Checkpoint, committed weights, metrics.json and figures from the best epoch's network."""
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    predictions = predict_logits(net, validation.images).argmax(1)
    best = max(history, key=lambda h: h["validation"]["mean"])
    torch.save(
        {
            "state_dict": net.state_dict(),
            "classes": CLASS_NAMES,
            "train_config": json.loads(json.dumps(dataclasses.asdict(config), default=str)),
            "preprocess": dataclasses.asdict(PREPROCESS),
            "epoch": best["epoch"],
        },
        out / "checkpoint.pt",
    )
    config.weights.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), config.weights)
    metrics = {
        "best_epoch": best["epoch"],
        "validation": best["validation"],
        "validation_images": len(validation),
        "skipped_files": skipped,
        "parameters": count_parameters(net),
        "history": history,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    figures.save_training_curves(history, config.figures_dir / "training_curves.png")
    figures.save_confusion_matrix(
        confusion_matrix(predictions, validation.labels),
        config.figures_dir / "confusion_matrix.png",
        f"validation, best epoch {best['epoch']}",
    )
    return metrics


def train(config: TrainConfig) -> dict | None:
    """Train, keep the best validation epoch, stop early; returns the metrics on rank 0."""
    rank, world = init_distributed()
    torch.manual_seed(config.seed)
    net = build_network(pretrained=True).to(memory_format=torch.channels_last)
    freeze_early_blocks(net, config.frozen_blocks)
    torch.manual_seed(config.seed + rank)  # different augmentation draws per rank
    if rank == 0:
        print(f"network: {count_parameters(net):,} parameters (budget {NETWORK.max_parameters:,})")
    train_set, validation = load_data(config, rank, world)
    skipped = len(train_set.skipped) + len(validation.skipped)
    if rank == 0:
        print(f"train {len(train_set)} images, validation {len(validation)}, skipped unreadable {skipped}")
    model = nn.parallel.DistributedDataParallel(net) if world > 1 else net
    trainable = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * (config.sampling.samples_per_epoch // world // config.batch_size + 1)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=steps, pct_start=0.15)
    run = Run(config, net, model, train_set,
              balanced_weights(train_set.labels.tolist(), train_set.sources, config.sampling.source_power),
              build_augmentation(config.augment, train_set.images[train_set.labels == NOTHING]),
              optimizer, scheduler, rank, world)
    history, best_state, best_acc, stale = [], None, -1.0, 0
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        loss = train_epoch(run, epoch)
        stop = torch.zeros(1)
        if rank == 0:
            predictions = predict_logits(net, validation.images).argmax(1)
            accuracy = accuracy_by_source(predictions, validation.labels, validation.sources)
            history.append({"epoch": epoch, "train_loss": loss, "validation": accuracy,
                            "seconds": round(time.perf_counter() - started, 1)})
            print(f"epoch {epoch}: loss {loss:.3f} validation {json.dumps(accuracy)}")
            if accuracy["mean"] > best_acc:
                best_acc, stale = accuracy["mean"], 0
                best_state = {k: v.clone() for k, v in net.state_dict().items()}
            else:
                stale += 1
            stop[0] = float(stale >= config.patience)
        if world > 1:
            dist.broadcast(stop, src=0)
        if stop.item():
            break
    metrics = None
    if rank == 0:
        net.load_state_dict(best_state)
        metrics = save_outputs(net, config, history, validation, skipped)
        print(f"best epoch {metrics['best_epoch']}: {json.dumps(metrics['validation'])}")
    if world > 1:
        dist.destroy_process_group()
    return metrics


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """`--data DIR` (repeatable) and one option per field of `TrainConfig` (`training.config.add_options`)."""
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, action="append", help="folder-per-class tree (repeatable)")
    add_options(parser, defaults)
    args = parser.parse_args(argv)
    config = from_options(defaults, args)
    return dataclasses.replace(config, data=tuple(args.data)) if args.data else config


if __name__ == "__main__":
    train(parse_args())
