"""What an occlusion explanation costs next to a prediction, measured on real photos in process.

    python -m asl_serve.loadtests.explain_cost [--variants fp32 int8] [--count 12] [--images DIR]
        [--report reports/explain_cost.md]

Loads each archive's TorchScript model as the handler does, with the PyTorch thread count of
handler/model-config.yaml, and times `model.pipeline.Classifier.classify` (one photo) against
`model.explain.explain` (the same photo), counting the images each passes through the model.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from asl_serve.handler.archive import VARIANTS, shipped_archive, shipped_settings
from asl_serve.harness.archives import load_model
from asl_serve.layout import REPO, REPORTS
from asl_serve.loadtests.images import DEFAULT_IMAGES, image_paths
from asl_serve.model.config import PREPROCESS
from asl_serve.model.explain import OCCLUSION, explain
from asl_serve.model.pipeline import Classifier, elapsed_ms
from asl_serve.model.runtime import use_threads


class CountingModel:
    """The model, counting the images it is given."""

    def __init__(self, model):
        self.model, self.images = model, 0

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self.images += len(batch)
        return self.model(batch)


def timed_ms(call) -> float:
    started = time.perf_counter()
    call()
    return elapsed_ms(started)


def measure(mar: Path, photos: list[bytes]) -> dict:
    """Median and p90 milliseconds of a prediction and an explanation, and model images per request."""
    model = CountingModel(load_model(mar))
    classifier = Classifier(model)
    classifier.classify(photos[:1], [1])  # warm-up: first-call graph optimisation
    predict_ms, explain_ms, predict_images, explain_images = [], [], [], []
    for photo in photos:
        model.images = 0
        predict_ms.append(timed_ms(lambda photo=photo: classifier.classify([photo])))
        predict_images.append(model.images)
        model.images = 0
        explain_ms.append(timed_ms(lambda photo=photo: explain(classifier, [photo])))
        explain_images.append(model.images)
    return {
        "predict_images": statistics.mode(predict_images),
        "explain_images": statistics.mode(explain_images),
        "predict_ms": (statistics.median(predict_ms), statistics.quantiles(predict_ms, n=10)[-1]),
        "explain_ms": (statistics.median(explain_ms), statistics.quantiles(explain_ms, n=10)[-1]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=sorted(VARIANTS))
    parser.add_argument("--count", type=int, default=12, help="photos, spread over the folder's classes")
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--report", type=Path, default=REPORTS / "explain_cost.md")
    args = parser.parse_args(argv)
    threads = int(shipped_settings()["handler"]["threads"])
    use_threads(threads)  # as the handler does
    paths = image_paths(args.images)
    paths = paths[:: max(1, len(paths) // args.count)][: args.count]
    photos = [p.read_bytes() for p in paths]
    size, passes = PREPROCESS.image_size, OCCLUSION.forward_passes()
    lines = [
        "# Explanation cost",
        "",
        f"`python -m asl_serve.loadtests.explain_cost --count {args.count}`: {len(photos)} photos from "
        f"`{args.images.relative_to(REPO)}`, in process, {threads} PyTorch thread(s) as "
        "handler/model-config.yaml sets, one request at a time. An explanation is an occlusion map "
        f"(`model/explain.py`): a {OCCLUSION.patch}-pixel grey patch at a stride of {OCCLUSION.stride} "
        f"over the {OCCLUSION.forward_passes() - 1} placements of the {size}x{size} input, plus the unoccluded "
        f"image, {OCCLUSION.chunk} images per forward pass.",
        "",
        "| variant | model inputs per prediction | per explanation | prediction ms (median, p90) "
        "| explanation ms (median, p90) | explanation / prediction |",
        "|---|---|---|---|---|---|",
    ]
    for variant in args.variants:
        mar = shipped_archive(variant)
        if not mar.exists():
            print(f"error: {mar} is missing: run `make archive`", file=sys.stderr)
            return 1
        row = measure(mar, photos)
        (p50, p90), (e50, e90) = row["predict_ms"], row["explain_ms"]
        line = (
            f"| {variant} | {row['predict_images']} | {row['explain_images']} | {p50:.1f}, {p90:.1f} "
            f"| {e50:.0f}, {e90:.0f} | {e50 / p50:.0f}x |"
        )
        print(line, flush=True)
        lines.append(line)
    lines += [
        "",
        f"Batching the {passes - 1} occluded images amortises per-call overhead, so an explanation costs less "
        f"than {passes} single predictions; TorchServe runs it on the version's worker, where it holds the "
        "worker for that long (the page asks for one explanation at a time).",
        "",
        f"Measured on a machine with {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end "
        "(other work inflates the times); the forward-pass counts are exact.",
    ]
    args.report.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
