"""The evaluation command on the committed samples, and served vs in-process evaluation agreeing."""

import json
import subprocess
import sys

import pytest
import torch

from asl_serve.handler.archive import VARIANTS
from asl_serve.harness.served_evaluation import served
from asl_serve.layout import EXPORT_DIR, REPO, SAMPLE_SETS
from asl_serve.model.hand_shape import load_hand_shape
from asl_serve.training.evaluate import evaluate, in_process, named_sets
from tests.conftest import exported


@pytest.fixture(scope="module")
def sample_sets():
    return named_sets(list(SAMPLE_SETS))


def test_loop_counts_add_up(sample_sets):
    results = evaluate(in_process(exported("int8"), None, load_hand_shape()), sample_sets)
    assert list(results) == ["samples/asl2text", "samples/roboflow"]
    for name, result in results.items():
        assert result.images == len(sample_sets[name]) == int(result.confusion.sum())
        assert result.accuracy == pytest.approx(float(result.confusion.trace()) / result.images)
        assert set(result.per_class) == {s.path.parent.name for s in sample_sets[name]}
        assert set(result.parts) == {"hand_found", "cnn_alone", "landmarks_alone"}
        assert all(0 <= value <= 1 for value in result.parts.values())
    assert results["samples/roboflow"].parts["hand_found"] >= 0.9  # 25 of its 26 hands, in real homes
    assert len(results["samples/roboflow"].per_class) == 26  # letters only: no del, nothing, space


def test_command_writes_every_set_and_variant_and_a_figure_each(tmp_path, sample_sets):
    report = tmp_path / "evaluation.md"
    data = [arg for root in SAMPLE_SETS for arg in ("--data", str(root))]
    subprocess.run([sys.executable, "-m", "asl_serve.training.evaluate", *data, "--variants", "int8", "fp32", "eager",
                    "--export-dir", str(EXPORT_DIR), "--report", str(report)], check=True, cwd=REPO, timeout=300)
    summary = json.loads(report.with_suffix(".json").read_text())  # what the archives pack for `describe`
    assert list(summary) == ["int8", "fp32", "eager"]
    for sets in summary.values():
        assert {name: result["images"] for name, result in sets.items()} == {
            name: len(samples) for name, samples in sample_sets.items()}
        assert all(0 <= result[key] <= 1 for result in sets.values()
                   for key in ("accuracy", "hand_found", "cnn_alone", "landmarks_alone"))
    text = report.read_text()
    assert text.startswith("#") and "## The hand-aware pipeline (int8)" in text
    assert sorted(p.name for p in (tmp_path / "figures" / "evaluation").iterdir()) == [
        "samples_asl2text.png", "samples_roboflow.png"]


@pytest.mark.parametrize(("variant", "version"), [(variant, version) for variant, (_, version) in VARIANTS.items()])
def test_served_and_in_process_evaluation_agree(torchserve, sample_sets, variant, version):
    """Same file, same preprocessing, same answers; int8 kernels may round one borderline image
    differently in the server's smaller batches, so one image in all may differ, no more."""
    server = torchserve.server
    remote = served(server.inference_url, version, server.key_file)
    local = in_process(exported(variant), None, load_hand_shape())
    differing = 0
    for samples in sample_sets.values():
        remote_answers, local_answers = remote(samples), local(samples)
        assert torch.equal(remote_answers.labels, local_answers.labels)
        assert torch.equal(remote_answers.found, local_answers.found)  # the same hands found
        differing += int((remote_answers.predictions != local_answers.predictions).sum())
    assert differing <= 1
