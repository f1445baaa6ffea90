"""Eager vs TorchScript fp32 vs int8 in one run: file size and latency side by side.

    python -m training.compare [--data DIR ...] [--export-dir build/export]

Writes reports/model_comparison.md (accuracy is `training.evaluate`'s). Latency is the model's
forward pass on preprocessed input, median of repeats, at batch 1 and 32, with 1 and 2 threads.
"""

import argparse
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch

from model.preprocess import normalize_batch
from training.config import WEIGHTS, TrainConfig
from training.export import export_data, load_trained

REPORT = Path("reports/model_comparison.md")


def median_ms_per_image(model, batch: torch.Tensor, repeats: int) -> float:
    with torch.inference_mode():
        model(batch)  # warm-up
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            model(batch)
            times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000 / len(batch)


def compare(data: tuple[Path, ...], export_dir: Path) -> str:
    variants = {
        "eager fp32": (load_trained(WEIGHTS), WEIGHTS),
        "TorchScript fp32": (torch.jit.load(str(export_dir / "asl_fp32.pt")), export_dir / "asl_fp32.pt"),
        "TorchScript int8": (torch.jit.load(str(export_dir / "asl_int8.pt")), export_dir / "asl_int8.pt"),
    }
    _, validation = export_data(data, TrainConfig(), 0)
    batch = normalize_batch(validation.images[:32])
    header = ["variant", "size MB", "ms/img b1 1t", "ms/img b32 1t", "ms/img b1 2t", "ms/img b32 2t"]
    rows = []
    for name, (model, path) in variants.items():
        latencies = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            latencies += [median_ms_per_image(model, batch[:1], 30), median_ms_per_image(model, batch, 5)]
        rows.append([name, f"{path.stat().st_size / 1e6:.1f}", *[f"{ms:.2f}" for ms in latencies]])
    return render(header, rows)


def render(header: list[str], rows: list[list[str]]) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = [
        "# Model comparison",
        "",
        "Made by `make compare` (`python -m training.compare`) in one run on one machine: "
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads available, "
        f"torch {torch.__version__}, commit {commit or 'uncommitted'}, "
        f"load average {os.getloadavg()[0]:.1f} at the end (other work on the machine inflates latencies).",
        "Accuracy of each variant on every set: `make evaluate` (reports/evaluation.md).",
        "Latency: forward pass on preprocessed input, median of repeats, per image.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *["| " + " | ".join(row) + " |" for row in rows],
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, action="append", help="training trees (repeatable)")
    parser.add_argument("--export-dir", type=Path, default=Path("build/export"))
    args = parser.parse_args()
    report = compare(tuple(args.data) if args.data else TrainConfig().data, args.export_dir)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
