"""Predict many images (files and folders) and report: one row per image, failures named, a summary.

A failure of one image (unreadable, not an image, corrupt, refused by the server) is recorded and the
run goes on; a failure of the server itself (unreachable, bad token, no such version) stops it.
"""

import csv
import io
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from asl_serve.client.settings import ImageRejected
from asl_serve.model.classes import IMAGE_SUFFIXES, class_from_folder

FORMATS = ("jsonl", "csv")
CSV_FIELDS = ("image", "expected", "label", "probability", "top_k", "model_version", "error")


@dataclass
class Row:
    image: Path
    answer: dict | None = None
    error: str | None = None

    @property
    def expected(self) -> str | None:
        """The class named by the image's folder (`.../B/x.jpg` is a B), if the folder names one."""
        return class_from_folder(self.image.parent.name)


def expand(paths: list[Path]) -> list[Path]:
    """Files as given, folders searched recursively for images; each path once, in order."""
    found: dict[Path, None] = {}
    for path in paths:
        if path.is_dir():
            found.update(dict.fromkeys(sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)))
        else:
            found[path] = None
    return list(found)


def predict_all(images: list[Path], predict: Callable[[Path], dict]) -> Iterator[Row]:
    for image in images:
        try:
            yield Row(image, answer=predict(image))
        except (ImageRejected, OSError) as error:  # OSError: missing, unreadable, a folder without images
            yield Row(image, error=str(error))


def render(row: Row, fmt: str) -> str:
    """One output line: a JSON object, or a CSV record (top_k as label:probability pairs)."""
    answer = row.answer or {}
    if fmt == "jsonl":
        fields = {"image": str(row.image), **answer, **({"error": row.error} if row.error else {})}
        return json.dumps(fields)
    top_k = " ".join(f"{t['label']}:{t['probability']}" for t in answer.get("top_k", []))
    values = [row.image, row.expected or "", answer.get("label", ""), answer.get("probability", ""), top_k,
              answer.get("model_version", ""), row.error or ""]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(values)
    return buffer.getvalue()


def summary(rows: list[Row]) -> list[str]:
    """Counts, then accuracy per class for the images whose folder names their class."""
    failed = [row for row in rows if row.error]
    lines = [f"{len(rows) - len(failed)} of {len(rows)} images predicted, {len(failed)} failed"]
    labelled = [row for row in rows if row.answer and row.expected]
    if labelled:
        right = Counter(row.expected for row in labelled if row.answer["label"] == row.expected)
        total = Counter(row.expected for row in labelled)
        correct = sum(right.values())
        uncounted = sum(1 for row in failed if row.expected)
        note = f"; {uncounted} that failed are not counted" if uncounted else ""
        lines.append(f"accuracy {correct}/{len(labelled)} = {correct / len(labelled):.1%} "
                     f"(images in folders named by class{note})")
        lines += [f"  {label:<8} {right[label]}/{count} = {right[label] / count:.0%}"
                  for label, count in sorted(total.items())]
    return lines
