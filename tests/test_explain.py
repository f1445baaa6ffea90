"""Occlusion explanations in process, on the exported TorchScript fp32 and int8 models (model/explain.py)."""

import base64
import io

import numpy
import pytest
import torch
from PIL import Image

from asl_serve.loadtests.explain_cost import CountingModel
from asl_serve.model.config import PREPROCESS
from asl_serve.model.decode import CorruptImage, EmptyImage, decode_image
from asl_serve.model.explain import OCCLUSION, OcclusionConfig, cell_scores, explain, heatmap_png
from asl_serve.model.pipeline import Classifier, HandReader
from asl_serve.model.preprocess import cnn_input, normalize_batch
from tests.conftest import MARKED as HAND_BOXES
from tests.conftest import ROBOFLOW as HANDS
from tests.conftest import SAMPLES, exported, hottest_cells

TOP_CELLS = 3


def inside(point: tuple[float, float], box: list[float]) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


@pytest.fixture(scope="module", params=["fp32", "int8", "onnx-int8"])
def classifier(request) -> Classifier:
    """An exported model (`make export`), with the hand-aware stages, as the handler serves it."""
    return Classifier(exported(request.param), hands=HandReader.load())


def test_cell_scores_average_the_placements_covering_each_cell():
    config = OcclusionConfig(patch=32, stride=16)
    drops = torch.zeros(9, 9)
    drops[0, 0] = 1.0  # only the top-left placement hurt
    cells = cell_scores(drops, config)
    assert cells.shape == (10, 10)
    assert cells[0, 0] == 1.0  # covered by that placement alone
    assert cells[1, 1] == 0.25  # covered by four placements, one of which hurt
    assert cells[2, 2] == 0.0


def test_heatmap_is_transparent_where_occlusion_did_not_hurt():
    scores = torch.full((10, 10), -0.1)
    scores[4, 6] = 0.5
    image = Image.open(io.BytesIO(heatmap_png(scores, PREPROCESS.image_size)))
    alpha = torch.from_numpy(numpy.asarray(image.getchannel("A")).copy())
    assert image.mode == "RGBA" and image.size == (PREPROCESS.image_size, PREPROCESS.image_size)
    assert alpha[0, 0] == 0 and alpha[-1, -1] == 0
    hottest = divmod(int(alpha.argmax()), image.width)
    assert 4 * 16 <= hottest[0] < 5 * 16 and 6 * 16 <= hottest[1] < 7 * 16


def test_explanation_agrees_with_classify_and_costs_the_documented_passes(classifier):
    data = (SAMPLES / "B" / "B0.jpg").read_bytes()
    counting = CountingModel(classifier.model)
    answer = explain(Classifier(counting, hands=classifier.hands), [data]).outputs[0]
    assert counting.images == OCCLUSION.forward_passes() == 82
    assert answer["forward_passes"] == counting.images
    predicted = classifier.classify([data], [1]).outputs[0]
    assert answer["label"] == predicted["label"] == "B"
    image = decode_image(data)  # the explanation is the CNN's, on the square it read
    hand = classifier.hands.landmarker(image)
    with torch.inference_mode():
        logits = classifier.model(normalize_batch(cnn_input(image, hand.box if hand else None).unsqueeze(0)))
    assert answer["probability"] == pytest.approx(float(torch.softmax(logits.float(), 1).max()), abs=1e-4)
    assert len(answer["grid"]) == len(answer["grid"][0]) == PREPROCESS.image_size // OCCLUSION.stride
    heatmap = Image.open(io.BytesIO(base64.b64decode(answer["heatmap_png"])))
    assert heatmap.format == "PNG" and heatmap.size == (PREPROCESS.image_size, PREPROCESS.image_size)


def test_hottest_cells_lie_on_the_hand(classifier):
    """Boxes marked by eye cover 9-34% of each photo; the hottest cell must be on the hand in every one."""
    names = sorted(HAND_BOXES)
    answers = explain(classifier, [(HANDS / name).read_bytes() for name in names]).outputs
    top_hits = []
    for name, answer in zip(names, answers, strict=True):
        cells = hottest_cells(answer, TOP_CELLS)
        assert answer["region"] != [0.0, 0.0, 1.0, 1.0]  # every marked hand is found: its square is explained
        assert inside(cells[0], HAND_BOXES[name]), f"{name}: hottest cell at {cells[0]} is off the hand"
        top_hits += [inside(cell, HAND_BOXES[name]) for cell in cells]
    assert sum(top_hits) >= 0.8 * len(top_hits), f"only {sum(top_hits)} of the top {len(top_hits)} cells on hands"


def test_bad_images_keep_their_slots(classifier):
    good = (SAMPLES / "L" / "L105.jpg").read_bytes()
    outputs = explain(classifier, [good[:2000], good, b""]).outputs
    assert isinstance(outputs[0], CorruptImage)
    assert outputs[1]["label"] == "L"
    assert isinstance(outputs[2], EmptyImage)
