"""Eager vs TorchScript vs ONNX Runtime, fp32 and int8, in one run: file size and latency side by side.

    python -m asl_serve.training.compare [--data DIR ...] [--export-dir build/export]

Writes reports/model_comparison.md (accuracy is `training.evaluate`'s). Latency is the model's forward
pass on preprocessed validation images, median of repeats, at batch 1 and 8, on one thread: a served
worker's setting (`handler.threads: 1`).
"""

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import onnxruntime
import torch

from asl_serve.layout import EXPORT_FILES, WEIGHTS, git_commit
from asl_serve.model.preprocess import normalize_batch
from asl_serve.model.runtime import load_model
from asl_serve.training.config import ExportConfig, TrainConfig
from asl_serve.training.export import export_data, load_trained

REPORT = Path("reports/model_comparison.md")
THREADS = 1
BATCHES = {1: 50, 8: 10}  # batch size -> timed repeats
ROUNDS = 5  # every variant is timed once per round, so drift on a shared machine hits them alike


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
    torch.set_num_threads(THREADS)
    variants = {"eager": (load_trained(WEIGHTS), WEIGHTS)}  # named as `training.evaluate` names them
    for name, file in EXPORT_FILES.items():
        variants[name] = (load_model(export_dir / file, THREADS), export_dir / file)
    _, validation = export_data(data, TrainConfig(), 0)
    batch = normalize_batch(validation.images[: max(BATCHES)])
    times: dict[str, dict[int, list[float]]] = {name: {size: [] for size in BATCHES} for name in variants}
    for _ in range(ROUNDS):
        for name, (model, _) in variants.items():
            for size, repeats in BATCHES.items():
                times[name][size].append(median_ms_per_image(model, batch[:size], repeats))
    header = ["variant", "file", "size MB", *[f"ms/img batch {size}" for size in BATCHES]]
    rows = [[name, f"`{path.name}`", f"{path.stat().st_size / 1e6:.1f}",
             *[f"{statistics.median(times[name][size]):.2f}" for size in BATCHES]]
            for name, (_, path) in variants.items()]
    return render(header, rows)


def render(header: list[str], rows: list[list[str]]) -> str:
    commit = git_commit(short=True) or "unknown"
    lines = [
        "# Model comparison",
        "",
        "Made by `make compare` (`python -m asl_serve.training.compare`) in one run on one machine: "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {THREADS} thread, "
        f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, commit {commit or 'uncommitted'}, "
        f"load average {os.getloadavg()[0]:.1f} at the end (other work on the machine inflates latencies).",
        "Accuracy of each variant on every set: `make evaluate` (reports/evaluation.md).",
        f"Latency: forward pass on preprocessed input, per image, median over {ROUNDS} interleaved rounds of "
        "each round's median.",
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
    parser.add_argument("--export-dir", type=Path, default=ExportConfig().out_dir)
    args = parser.parse_args()
    report = compare(tuple(args.data) if args.data else TrainConfig().data, args.export_dir)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
