"""Accuracy on held-out people and frames: one evaluation loop for every variant, in process or served.

    python -m asl_serve.training.evaluate                      # every test/ split under ../shared + validation blocks
    python -m asl_serve.training.evaluate --data DIR [--data DIR ...] [--variants int8 fp32 eager onnx-int8 onnx-fp32]

The same loop evaluates a served model (`python -m asl_serve.harness.served_evaluation --url ...`, tooling: training
knows nothing of the server).

Prints per-set and per-class accuracy, writes reports/evaluation.md (and .json: variant -> set ->
images, accuracy, and for the hand-aware pipeline the hand-found rate and the CNN and the landmark
classifier alone) and a confusion matrix figure per set. The arm's-length versions of the sets
(`python -m asl_serve.training.arms_length`, `make evaluate` writes them first) are evaluated beside them. Test
splits are for reporting only: model selection uses the validation blocks.
"""

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from asl_serve.layout import EXPORT_FILES, SAMPLE_SETS, WEIGHTS, git_commit
from asl_serve.model.classes import CLASS_NAMES, NOTHING
from asl_serve.model.hand_shape import HAND_SHAPE_WEIGHTS, HandShapeNet, fuse_where_found, load_hand_shape
from asl_serve.model.runtime import load_model
from asl_serve.training import figures
from asl_serve.training.arms_length import SUFFIX, arms_length_dir
from asl_serve.training.config import ExportConfig, TrainConfig, test_sets
from asl_serve.training.dataset import Sample, scan, split_by_blocks
from asl_serve.training.export import load_trained
from asl_serve.training.hand_shape import score_set
from asl_serve.training.metrics import confusion_matrix

REPORT = Path("reports/evaluation.md")
VARIANTS = ("int8", "fp32", "eager", "onnx-int8", "onnx-fp32")  # the first one given draws the confusion figures
NO_ANSWER = -1  # a served request that failed counts as wrong


@dataclass
class Answers:
    """A predictor's answers for one set: what the pipeline answers, and where known, its parts."""

    labels: torch.Tensor
    predictions: torch.Tensor  # the answer: the fusion where a hand was found, the CNN alone elsewhere
    found: torch.Tensor | None = None  # a hand was found
    cnn: torch.Tensor | None = None  # the CNN alone
    landmarks: torch.Tensor | None = None  # the landmark classifier alone; `nothing` where no hand was found


# Samples in, answers out.
Predictor = Callable[[list[Sample]], Answers]


@dataclass
class SetResult:
    """One variant on one set: accuracy, per-class accuracy, the confusion counts and the pipeline's parts."""

    images: int
    accuracy: float
    per_class: dict[str, float]
    confusion: torch.Tensor
    parts: dict[str, float]  # hand_found, cnn_alone, landmarks_alone: those the predictor knows


def named_sets(dirs: list[Path]) -> dict[str, list[Sample]]:
    """Each folder as one set, named by its last two parts (`massey/test`, `samples/roboflow`)."""
    return {f"{d.resolve().parent.name}/{d.resolve().name}": scan([d]) for d in dirs}


def default_sets(config: TrainConfig) -> dict[str, list[Sample]]:
    """Every test/ split under the shared data, then each source's validation blocks, each followed by its
    arm's-length version where `training.arms_length` wrote one; without the shared data, the committed samples."""
    roots = [d for d in config.data if d.is_dir()]
    if not roots:
        return named_sets(list(SAMPLE_SETS))
    split_sets = {(d.parent.name, d.name): scan([d]) for d in test_sets() if d.is_dir()}
    _, validation = split_by_blocks(scan(roots), config.split, config.seed)
    for source in sorted({s.source for s in validation}):
        split_sets[source, "validation"] = [s for s in validation if s.source == source]
    sets = {}
    for (source, split), samples in split_sets.items():
        sets[f"{source}/{split}"] = samples
        if (framed := arms_length_dir(source, split)).is_dir():
            sets[f"{source}/{split}{SUFFIX}"] = scan([framed])
    return sets


def in_process(model: Callable, cache_dir: Path | None, hand_shape: tuple[HandShapeNet, float],
               whole_frame: bool = False) -> Predictor:
    """The served pipeline's stages from the caches (hands, hand squares), with this variant as the CNN;
    unreadable files are skipped. `whole_frame`: the CNN reads whole frames, as before the hand square."""
    net, weight = hand_shape

    def predict(samples: list[Sample]) -> Answers:
        scored = score_set(samples, model, net, cache_dir, whole_frame)
        landmarks = torch.where(scored.found, scored.shape.argmax(1), NOTHING)
        return Answers(scored.labels, fuse_where_found(scored.cnn, scored.shape, scored.found, weight).argmax(1),
                       scored.found, scored.cnn.argmax(1), landmarks)

    return predict


def evaluate(predict: Predictor, sets: dict[str, list[Sample]]) -> dict[str, SetResult]:
    """The one evaluation loop: every set through one predictor."""
    results = {}
    for name, samples in sets.items():
        answers = predict(samples)
        labels, predictions = answers.labels, answers.predictions
        correct = predictions == labels
        per_class = {
            CLASS_NAMES[c]: float(correct[labels == c].float().mean()) for c in sorted(set(labels.tolist()))
        }
        answered = predictions != NO_ANSWER
        results[name] = SetResult(
            images=len(labels),
            accuracy=float(correct.float().mean()) if len(labels) else 0.0,
            per_class=per_class,
            confusion=confusion_matrix(predictions[answered], labels[answered]),
            parts=parts(answers),
        )
    return results


def parts(answers: Answers) -> dict[str, float]:
    """The hand-found rate and the accuracy of each part alone, as far as the predictor knows them."""
    known = {"hand_found": answers.found, "cnn_alone": answers.cnn, "landmarks_alone": answers.landmarks}
    return {name: float((values if name == "hand_found" else values == answers.labels).float().mean())
            for name, values in known.items() if values is not None and len(values)}


def load_variant(name: str, export_dir: Path, weights: Path) -> Callable:
    """The eager network, or an exported file loaded as the server loads it."""
    if name == "eager":
        return load_trained(weights)
    return load_model(export_dir / EXPORT_FILES[name], torch.get_num_threads())


def figure_folder(report: Path) -> str:
    """Where a report's confusion matrices go, relative to it: one folder per report, so that a served
    or custom run never overwrites the figures another report links to."""
    return f"figures/{report.stem}"


def render(results: dict[str, dict[str, SetResult]], command: str, figures: str) -> str:
    """Markdown: one row per set with every variant side by side, then per-class accuracy of the first."""
    variants = list(results)
    first = results[variants[0]]
    delta = {"int8", "fp32"} <= set(variants)
    commit = git_commit(short=True) or "unknown"
    lines = [
        "# Evaluation",
        "",
        f"Made by `{command}` at commit {commit or 'unknown'}. `*/test` sets are never trained on nor used "
        "to choose anything (massey, jbhumika and roboflow: people the training split never shows); "
        "`*/validation` are the held-out frame blocks used for model selection.",
        "",
        "| set | images | " + " | ".join(variants) + (" | int8 - fp32 (pp) |" if delta else " |"),
        "|---|---:|" + "---:|" * (len(variants) + delta),
    ]
    for name, result in first.items():
        cells = [f"{results[v][name].accuracy:.2%}" for v in variants]
        if delta:
            cells.append(f"{(results['int8'][name].accuracy - results['fp32'][name].accuracy) * 100:+.2f}")
        lines.append(f"| {name} | {result.images} | " + " | ".join(cells) + " |")
    lines += render_parts(variants[0], first)
    lines += ["", f"## Per class ({variants[0]})", "", "| class | " + " | ".join(first) + " |",
              "|---|" + "---:|" * len(first)]
    for label in CLASS_NAMES:
        cells = [f"{r.per_class[label]:.0%}" if label in r.per_class else "" for r in first.values()]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", f"## Confusion matrices ({variants[0]})", ""]
    lines += [f"![{name}]({figures}/{figure_name(name)})" for name in first]
    return "\n".join(lines) + "\n"


PART_NAMES = {"hand_found": "hand found", "cnn_alone": "CNN alone", "landmarks_alone": "landmarks alone"}


def render_parts(variant: str, results: dict[str, SetResult]) -> list[str]:
    """The hand-aware pipeline's parts per set: how often a hand was found, and each classifier alone."""
    known = [part for part in PART_NAMES if any(part in r.parts for r in results.values())]
    if not known:
        return []
    lines = ["", f"## The hand-aware pipeline ({variant})", "",
             "Where a hand is found, the CNN reads the square around it and its answer is fused with the landmark "
             "classifier's; elsewhere the CNN reads the whole frame and answers alone (the landmark classifier "
             "alone then answers `nothing`). `-arms-length` sets are the same photos shrunk into a room frame "
             "(`python -m asl_serve.training.arms_length`).", "",
             "| set | " + " | ".join(PART_NAMES[p] for p in known) + " | fused (the answer) |",
             "|---|" + "---:|" * (len(known) + 1)]
    for name, result in results.items():
        cells = [f"{result.parts[p]:.2%}" if p in result.parts else "" for p in known]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {result.accuracy:.2%} |")
    return lines


def figure_name(set_name: str) -> str:
    return set_name.replace("/", "_") + ".png"


def write_outputs(results: dict[str, dict[str, SetResult]], command: str, report: Path) -> None:
    figure_dir = report.parent / figure_folder(report)
    variant = next(iter(results))
    for name, result in results[variant].items():
        figures.save_confusion_matrix(
            result.confusion, figure_dir / figure_name(name), f"{name}, {variant}: {result.accuracy:.1%}"
        )
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(render(results, command, figure_folder(report)))
    summary = {variant: {name: {"images": r.images, "accuracy": round(r.accuracy, 4),
                                **{part: round(value, 4) for part, value in r.parts.items()}}
                         for name, r in sets.items()}
               for variant, sets in results.items()}
    report.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, action="append", help="folder-per-class tree, one set each")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS), help="in-process models")
    parser.add_argument("--export-dir", type=Path, default=ExportConfig().out_dir, help="the exported files")
    parser.add_argument("--weights", type=Path, default=WEIGHTS, help="state dict for the eager variant")
    parser.add_argument("--hand-shape", type=Path, default=HAND_SHAPE_WEIGHTS,
                        help="the landmark classifier and fusion weight (training.hand_shape)")
    parser.add_argument("--whole-frame", action="store_true", help="in process: the CNN reads whole frames, never "
                        "the hand's square (the comparison that chose the square)")
    parser.add_argument("--report", type=Path, default=REPORT)
    args = parser.parse_args()
    config = TrainConfig()
    hand_shape = load_hand_shape(args.hand_shape)
    predictors = {v: in_process(load_variant(v, args.export_dir, args.weights), config.cache_dir, hand_shape,
                                args.whole_frame) for v in args.variants}
    run(predictors, args.data, "python -m asl_serve.training.evaluate " + " ".join(sys.argv[1:]), args.report)


def run(predictors: dict[str, Predictor], data: list[Path] | None, command: str, report: Path) -> None:
    """Every predictor on every set (`data`, or the default sets), printed and written to `report`."""
    sets = named_sets(data) if data else default_sets(TrainConfig())
    if not sets:
        raise SystemExit("no sets to evaluate: pass --data DIR or place the data at ../shared/data/asl")
    results = {}
    for name, predict in predictors.items():
        results[name] = evaluate(predict, sets)
        for set_name, result in results[name].items():
            print(f"{name:>14}  {set_name:<24} {result.accuracy:7.2%}  ({result.images} images)")
    write_outputs(results, command, report)
    print(f"wrote {report}")


if __name__ == "__main__":
    main()
