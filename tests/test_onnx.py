"""The ONNX Runtime variants answer as TorchScript fp32 does on every committed photo, through the one loader."""

import pytest
import torch

from asl_serve.layout import SAMPLE_SETS
from asl_serve.model.classes import CLASS_NAMES
from asl_serve.model.pipeline import Classifier
from asl_serve.model.preprocess import normalize_batch
from asl_serve.training.dataset import ImageSet, Sample, load_images, scan
from asl_serve.training.export import MAX_LOGIT_DIFFERENCE
from asl_serve.training.metrics import predict_logits
from tests.conftest import exported

# The export lets int8 differ from fp32 on up to 1% of ~3,200 validation images (it does on 0.35%): about
# one of the 84 photos at that rate, so one borderline photo flipped by int8 rounding passes and two fail.
MAX_INT8_DIFFERING = 1


@pytest.fixture(scope="module")
def photos() -> list[Sample]:
    """Every committed photo: samples/asl2text and samples/roboflow."""
    return scan(list(SAMPLE_SETS))


@pytest.fixture(scope="module")
def samples(photos) -> ImageSet:
    """The photos through the shared preprocessing, in the same order."""
    images = load_images(photos)
    assert not images.skipped
    return images


@pytest.fixture(scope="module")
def torchscript_fp32(samples) -> torch.Tensor:
    return predict_logits(exported("fp32"), samples.images)


def test_onnx_fp32_answers_as_torchscript_fp32(samples, torchscript_fp32):
    logits = predict_logits(exported("onnx-fp32"), samples.images)
    assert len(logits) == len(samples) == 84
    assert torch.equal(logits.argmax(1), torchscript_fp32.argmax(1))
    assert torch.allclose(logits, torchscript_fp32, atol=MAX_LOGIT_DIFFERENCE)


def test_onnx_int8_agrees_with_torchscript_fp32(photos, samples, torchscript_fp32):
    predictions = predict_logits(exported("onnx-int8"), samples.images).argmax(1)
    differing = [photos[i].path.name for i in torch.nonzero(predictions != torchscript_fp32.argmax(1)).flatten()]
    print(f"ONNX int8 differs from TorchScript fp32 on {len(differing)} of {len(samples)}: {differing}")
    assert len(differing) <= MAX_INT8_DIFFERING


@pytest.mark.parametrize("variant", ["onnx-fp32", "onnx-int8"])
def test_onnx_model_takes_any_layout_and_batch_size(samples, variant):
    """The session reads what the pipeline hands over (channels_last) and any batch size, as TorchScript does."""
    model = exported(variant)
    batch = normalize_batch(samples.images[:8])
    assert not batch.is_contiguous()  # channels_last
    logits = model(batch)
    assert logits.dtype == torch.float32 and logits.shape == (8, len(CLASS_NAMES))
    assert torch.equal(model(batch.contiguous()), logits)
    one_by_one = torch.cat([model(batch[i : i + 1]) for i in range(len(batch))])
    assert torch.allclose(one_by_one, logits, atol=1e-4)


def test_the_core_serves_an_onnx_model_from_bytes(photos):
    """Photos' bytes through `Classifier`, as the handler calls it: ONNX int8 answers TorchScript fp32's labels."""
    data = [photo.path.read_bytes() for photo in photos]
    top_k = [1] * len(data)
    onnx_labels = [answer["label"] for answer in Classifier(exported("onnx-int8")).classify(data, top_k).outputs]
    fp32_labels = [answer["label"] for answer in Classifier(exported("fp32")).classify(data, top_k).outputs]
    assert sum(a != b for a, b in zip(onnx_labels, fp32_labels, strict=True)) <= MAX_INT8_DIFFERING
