"""Every knob of training, augmentation and export, typed, in one place."""

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from asl_serve.layout import EXPORT_DIR, SHARED_DATA, WEIGHTS


def default_sources() -> tuple[Path, ...]:
    """Every source's training split in the shared data (none on a clone without it)."""
    return tuple(sorted(SHARED_DATA.glob("*/train")))


def test_sets() -> tuple[Path, ...]:
    """People each source's train/ never shows: report them, never train or tune on them."""
    return tuple(sorted(SHARED_DATA.glob("*/test")))


@dataclass(frozen=True)
class AugmentConfig:
    """Kornia batch augmentation: geometry for other hands and framings, colour for other rooms."""

    crop_scale: tuple[float, float] = (0.55, 1.0)
    crop_ratio: tuple[float, float] = (0.8, 1.25)
    rotation_degrees: float = 15.0
    translate: float = 0.08
    shear_degrees: float = 8.0
    perspective: float = 0.2
    horizontal_flip: float = 0.5  # left-handed signers mirror the hand shape
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.08
    color_jitter_p: float = 0.9
    grayscale_p: float = 0.1
    channel_shuffle_p: float = 0.05
    blur_p: float = 0.2
    noise_p: float = 0.2
    erase_p: float = 0.25
    zoom_out: float = 0.8  # affine scale down to this, for hands small in the frame
    background_p: float = 0.8  # cut-out hands (black surround) pasted onto a room photo
    cutout_threshold: float = 0.08  # pixels darker than this (max over RGB, [0, 1]) count as surround
    arms_length_whole_frame: float = 0.15  # arm's-length copies read whole, as when a small hand goes unseen


@dataclass(frozen=True)
class SplitConfig:
    """Validation holds out whole blocks of consecutive frames per source and class, never single frames."""

    blocks_per_class: int = 10
    validation_blocks: int = 2


@dataclass(frozen=True)
class SamplingConfig:
    """Each class weighs the same; within a class each source gets count**source_power of its share.

    0 makes every source equal within a class, 1 keeps the sources' natural sizes.
    """

    source_power: float = 0.5
    samples_per_epoch: int = 8000


@dataclass(frozen=True)
class TrainConfig:
    data: tuple[Path, ...] = field(default_factory=default_sources)
    out_dir: Path = Path("runs/latest")
    figures_dir: Path = Path("reports/figures")
    cache_dir: Path = Path(".cache/images")
    weights: Path = WEIGHTS
    epochs: int = 12
    patience: int = 4  # early stopping on validation accuracy
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    frozen_blocks: int = 4  # stem and first blocks keep their ImageNet weights (faster, generalises)
    seed: int = 0
    limit_per_class: int | None = None  # small runs for smoke tests
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)


@dataclass(frozen=True)
class ExportConfig:
    out_dir: Path = EXPORT_DIR
    calibration_images: int = 1024
    min_int8_agreement: float = 0.99  # refuse an int8 model that disagrees with fp32 more often


def add_options(parser: argparse.ArgumentParser, config: TrainConfig) -> None:
    """One command-line option per scalar field of `config` and of its sections, named after the field
    (`--epochs`, `--samples-per-epoch`, `--background-p`), its default the config's: no field listed twice."""
    for _, holder, item in scalar_fields(config):
        value = getattr(holder, item.name)
        kind = Path if isinstance(value, Path) else type(value) if value is not None else int  # None: a count
        parser.add_argument("--" + item.name.replace("_", "-"), default=value, metavar=kind.__name__.upper(),
                            type=kind, help=f"{holder.__class__.__name__}.{item.name} (default: %(default)s)")


def from_options(config: TrainConfig, args: argparse.Namespace) -> TrainConfig:
    """`config` with the values `add_options`' options were given."""
    sections: dict[str | None, dict] = {}
    for section, _, item in scalar_fields(config):
        sections.setdefault(section, {})[item.name] = getattr(args, item.name)
    changed = {name: dataclasses.replace(getattr(config, name), **values)
               for name, values in sections.items() if name is not None}
    return dataclasses.replace(config, **sections[None], **changed)


def scalar_fields(config: TrainConfig) -> list[tuple[str | None, object, dataclasses.Field]]:
    """(section name or None, the object holding it, field) for every field that is a number, a path or an
    optional count; tuples (ranges, the data folders) are left to the caller."""
    holders = [(None, config)] + [(f.name, getattr(config, f.name)) for f in dataclasses.fields(config)
                                  if dataclasses.is_dataclass(getattr(config, f.name))]
    return [(section, holder, item) for section, holder in holders for item in dataclasses.fields(holder)
            if type(getattr(holder, item.name)) in (int, float) or isinstance(getattr(holder, item.name), Path)
            or (getattr(holder, item.name) is None and item.type == (int | None))]
