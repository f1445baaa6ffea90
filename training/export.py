"""Export the trained weights as TorchScript fp32 and static int8 (FX graph mode, x86 backend).

    python -m training.export [--data DIR ...] [--out-dir build/export]

Calibration and the agreement check use images through the shared preprocessing. Without the
training data at hand (a user's fresh clone) the committed sample images serve for both.
"""

import argparse
import copy
import json
from pathlib import Path

import torch
from torch.ao.quantization import get_default_qconfig_mapping
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

from model.config import PREPROCESS
from model.network import ASLNet, build_network
from model.preprocess import normalize_batch
from training.config import SAMPLES, ExportConfig, TrainConfig
from training.dataset import ImageSet, load_images, scan, split_by_blocks
from training.metrics import accuracy_by_source, predict_logits
from training.sampling import balanced_weights

BACKEND = "x86"
FP32_LAYERS = ("features.0", "features.1")  # stem and first block, see quantize_int8


def load_trained(weights: Path) -> ASLNet:
    net = build_network(pretrained=False)
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return net.eval()


def example_input(batch: int = 1) -> torch.Tensor:
    size = PREPROCESS.image_size
    return torch.zeros(batch, 3, size, size).contiguous(memory_format=torch.channels_last)


def script(module: torch.nn.Module) -> torch.jit.ScriptModule:
    """Trace and freeze: constants folded, no Python needed to run it."""
    with torch.inference_mode():
        return torch.jit.freeze(torch.jit.trace(module.eval(), example_input()))


def quantize_int8(net: ASLNet, calibration: torch.Tensor, batch_size: int = 64) -> torch.nn.Module:
    """Static int8: conv-bn fused, observers calibrated on real images, then converted.

    The stem and first block stay fp32: quantizing the normalised RGB input and the first feature
    maps to x86's 7-bit activation range cost ~2.5 pp of top-1 agreement with fp32 (97.2% -> 99.5%
    on validation when kept), for a few percent of the network's FLOPs.
    """
    torch.backends.quantized.engine = BACKEND
    qconfig = get_default_qconfig_mapping(BACKEND)
    for name in FP32_LAYERS:
        qconfig.set_module_name(name, None)
    prepared = prepare_fx(copy.deepcopy(net).eval(), qconfig, (example_input(),))
    with torch.inference_mode():
        for start in range(0, len(calibration), batch_size):
            prepared(normalize_batch(calibration[start : start + batch_size]))
    return convert_fx(prepared)


def export_data(data: tuple[Path, ...], config: TrainConfig, count: int) -> tuple[torch.Tensor, ImageSet]:
    """Calibration images drawn class- and source-balanced from the training split, and the validation
    set; the samples if no data."""
    roots = [d for d in data if d.is_dir()] or [SAMPLES]
    train, validation = split_by_blocks(scan(roots), config.split, config.seed)
    if roots == [SAMPLES]:
        train = validation = train + validation
    generator = torch.Generator().manual_seed(config.seed)
    picked = []
    if count:
        weights = balanced_weights([s.label for s in train], [s.source for s in train], config.sampling.source_power)
        picked = [train[i] for i in torch.multinomial(weights, min(count, len(train)), generator=generator).tolist()]
    calibration = load_images(picked, config.cache_dir, "calibration").images
    return calibration, load_images(validation, config.cache_dir, "validation")


def export(weights: Path, data: tuple[Path, ...], out_dir: Path, config: ExportConfig | None = None) -> dict:
    """Write asl_fp32.pt and asl_int8.pt; refuse an int8 model that strays from fp32."""
    config = config or ExportConfig()
    net = load_trained(weights)
    calibration, validation = export_data(data, TrainConfig(), config.calibration_images)
    fp32 = script(net)
    int8 = script(quantize_int8(net, calibration))
    fp32_predictions = predict_logits(fp32, validation.images).argmax(1)
    int8_predictions = predict_logits(int8, validation.images).argmax(1)
    agreement = float((fp32_predictions == int8_predictions).float().mean())
    report = {
        "validation_images": len(validation),
        "int8_top1_agreement": agreement,
        "fp32": accuracy_by_source(fp32_predictions, validation.labels, validation.sources),
        "int8": accuracy_by_source(int8_predictions, validation.labels, validation.sources),
    }
    print(json.dumps(report, indent=2))
    if agreement < config.min_int8_agreement:
        raise SystemExit(
            f"int8 agrees with fp32 on {agreement:.2%} of validation images, below "
            f"{config.min_int8_agreement:.0%}: not writing the int8 model"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.jit.save(fp32, str(out_dir / "asl_fp32.pt"))
    torch.jit.save(int8, str(out_dir / "asl_int8.pt"))
    (out_dir / "export_report.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {out_dir / 'asl_fp32.pt'} and {out_dir / 'asl_int8.pt'}")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=TrainConfig().weights)
    parser.add_argument("--data", type=Path, action="append", help="training trees for calibration (repeatable)")
    parser.add_argument("--out-dir", type=Path, default=ExportConfig().out_dir)
    args = parser.parse_args()
    export(args.weights, tuple(args.data) if args.data else TrainConfig().data, args.out_dir)


if __name__ == "__main__":
    main()
