"""Where a request's time goes inside the handler: a torch.profiler trace of each stage on real photos.

    python -m asl_serve.loadtests.profile_stages [--variant int8] [--batches 1 8] [--rounds 3] [--images DIR]
        [--report reports/profile.md] [--trace-dir build/profile]

Runs the handler's own pipeline, `model.pipeline.Classifier.classify` on the archive's model, which
marks each of its stages with torch.profiler.record_function, with the PyTorch thread count of
handler/model-config.yaml, and the baseline handler's Pillow + NumPy preprocessing on the same photos
for comparison, then the stages of one 4000x3000 JPEG. Writes a table of time per stage to --report and a
Chrome trace per batch size to --trace-dir (open it in chrome://tracing or https://ui.perfetto.dev).
"""

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.profiler import ProfilerActivity, profile, record_function

from asl_serve.handler.archive import VARIANTS, shipped_archive, shipped_settings
from asl_serve.harness.archives import labels, load_model
from asl_serve.harness.images import encode
from asl_serve.layout import REPO, REPORTS
from asl_serve.loadtests.baseline_handler import BaselineHandler
from asl_serve.loadtests.images import DEFAULT_IMAGES, image_paths
from asl_serve.model.config import PREPROCESS
from asl_serve.model.pipeline import STAGES, Classifier, HandReader, elapsed_ms
from asl_serve.model.runtime import use_threads

LARGE = (4000, 3000)  # a 12-megapixel phone photo
BASELINE = ("decode + resize + normalise (Pillow, NumPy)", "inference", "postprocess")


def baseline_stages(handler: BaselineHandler, photos: list[bytes]) -> None:
    """One batch through the baseline handler's preprocess, forward and postprocess."""
    with record_function(BASELINE[0]):
        batch = handler.preprocess([{"body": photo} for photo in photos])
    with record_function(BASELINE[1]), torch.inference_mode():
        logits = handler.model(batch)
    with record_function(BASELINE[2]):
        handler.postprocess(logits)


@dataclass
class Profile:
    stages: dict[str, float]  # milliseconds per image in each stage (profiler CPU time, children included)
    operators: dict[str, float]  # the heaviest operators by self CPU time, milliseconds per image
    images_per_s: float  # without the profiler
    median_call_ms: float  # the median time of one call on a batch, without the profiler


def profile_stages(run: Callable[[list[bytes]], None], photos: list[bytes], batch: int, rounds: int,
                   names: tuple[str, ...], trace: Path | None, top: int = 6) -> Profile:
    """Time per stage and per operator under the profiler, and the unprofiled images/s, after a warm-up."""
    batches = [photos[i:i + batch] for i in range(0, len(photos) - batch + 1, batch)]
    for chunk in batches[:3]:
        run(chunk)
    calls_ms = []
    for _ in range(rounds):
        for chunk in batches:
            called = time.perf_counter()
            run(chunk)
            calls_ms.append(elapsed_ms(called))
    images = rounds * batch * len(batches)
    throughput = images / (sum(calls_ms) / 1000)
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(rounds):
            for chunk in batches:
                run(chunk)
    if trace:
        trace.parent.mkdir(parents=True, exist_ok=True)
        profiler.export_chrome_trace(str(trace))
    events = profiler.key_averages()
    totals = {event.key: event.cpu_time_total for event in events if event.key in names}
    heaviest = sorted((e for e in events if e.key not in names), key=lambda e: e.self_cpu_time_total, reverse=True)
    return Profile(
        {name: totals.get(name, 0.0) / 1000 / images for name in names},
        {e.key: e.self_cpu_time_total / 1000 / images for e in heaviest[:top]},
        throughput,
        statistics.median(calls_ms),
    )


def large_upload(classifier: Classifier, photo: bytes, rounds: int = 10) -> dict[str, float]:
    """Median milliseconds per stage for one LARGE JPEG made from a real photo, by classify's own timing."""
    with Image.open(io.BytesIO(photo)) as image:
        large = encode(image.convert("RGB").resize(LARGE, Image.Resampling.BICUBIC), "JPEG", quality=90)
    classifier.classify([large])  # warm-up
    runs = [classifier.classify([large]).timings_ms for _ in range(rounds)]
    return {stage: statistics.median(run[stage] for run in runs) for stage in runs[0]}


def tables(profile: Profile) -> list[str]:
    total = sum(profile.stages.values())
    lines = ["| stage | ms per image | share |", "|---|---:|---:|"]
    lines += [f"| {name} | {ms:.2f} | {ms / total:.0%} |" for name, ms in profile.stages.items()]
    lines += [f"| **total** | **{total:.2f}** | |", ""]
    lines += ["| heaviest operators (self time) | ms per image |", "|---|---:|"]
    lines += [f"| `{name}` | {ms:.2f} |" for name, ms in profile.operators.items()]
    lines += ["", f"Unprofiled: {profile.images_per_s:.0f} images/s; the median call took "
              f"{profile.median_call_ms:.1f} ms."]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m asl_serve.loadtests.profile_stages", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="int8")
    parser.add_argument("--batches", nargs="+", type=int, help="batch sizes (default: 1 and the shipped batchSize)")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the photos per measurement")
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--report", type=Path, default=REPORTS / "profile.md")
    parser.add_argument("--trace-dir", type=Path, default=REPO / "build" / "profile")
    args = parser.parse_args(argv)
    config = shipped_settings()
    threads = int(config["handler"]["threads"])
    use_threads(threads)  # as the handler does
    batches = args.batches or sorted({1, config["batchSize"]})
    mar = shipped_archive(args.variant)
    model = load_model(mar)
    classifier = Classifier(model, PREPROCESS, HandReader.load(threads))
    baseline = BaselineHandler()
    baseline.model = model
    baseline.mapping = labels(mar)
    photos = [path.read_bytes() for path in image_paths(args.images)]
    command = " ".join(["python -m asl_serve.loadtests.profile_stages", *(argv if argv is not None else sys.argv[1:])])
    images, traces = args.images.resolve(), args.trace_dir.resolve()
    lines = [
        "# Time per stage inside the handler",
        "",
        f"`{command}`: torch.profiler (CPU time, record_function per stage) on {len(photos)} photos from "
        f"{images.relative_to(REPO) if images.is_relative_to(REPO) else images}, {args.variant} model from "
        f"{mar.relative_to(REPO)}, {threads} PyTorch thread(s) as handler/model-config.yaml "
        f"sets, {args.rounds} pass(es) after a warm-up. Chrome traces of our handler: "
        f"{traces.relative_to(REPO) if traces.is_relative_to(REPO) else traces}/.",
    ]
    for batch in batches:
        ours = profile_stages(classifier.classify, photos, batch, args.rounds, STAGES,
                              args.trace_dir / f"ours-{args.variant}-batch{batch}.json")
        theirs = profile_stages(lambda chunk: baseline_stages(baseline, chunk), photos, batch, args.rounds,
                                BASELINE, None)
        lines += ["", f"## Batch {batch}", "", "Our handler (Kornia):", "", *tables(ours), "",
                  "Baseline handler (Pillow + NumPy, loadtests/baseline_handler.py):", "", *tables(theirs)]
        print(f"batch {batch}: ours {sum(ours.stages.values()):.2f} ms/image, "
              f"baseline {sum(theirs.stages.values()):.2f} ms/image")
    stages = large_upload(classifier, photos[0])
    lines += ["", f"## One {LARGE[0]}x{LARGE[1]} JPEG", "",
              "A committed photo enlarged to a phone camera's size (Pillow bicubic, JPEG quality 90), through "
              "`Classifier.classify` alone; median of its own stage timings over 10 runs.", "",
              "| stage | ms |", "|---|---:|", *(f"| {name} | {ms:.1f} |" for name, ms in stages.items())]
    print(f"{LARGE[0]}x{LARGE[1]} JPEG: " + ", ".join(f"{name} {ms:.1f} ms" for name, ms in stages.items()))
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
