"""The landmark classifier's features, its fusion with the CNN, its training, and the arm's-length framing."""

import random

import numpy as np
import pytest
import torch
from PIL import Image

from asl_serve.model.classes import CLASS_NAMES
from asl_serve.model.hand_shape import fuse, hand_features, load_hand_shape
from asl_serve.model.hands import HandLandmarker
from asl_serve.training.arms_length import Framing, place, to_pil
from asl_serve.training.hand_shape import HandShapeConfig, augment, train_hand_shape
from tests.conftest import MARKED, photo


@pytest.fixture(scope="module")
def hands():
    """The hand in each marked photo and in its mirror image."""
    landmarker = HandLandmarker()
    found = []
    for name in sorted(MARKED):
        image = photo(name)
        found.append((name, landmarker(image), landmarker(image.flip(2).contiguous())))
    return found


def features_of(hand) -> torch.Tensor:
    return hand_features(torch.from_numpy(hand.landmarks)[None], torch.tensor([hand.handedness == "Right"]))[0]


def test_features_ignore_where_the_hand_is_and_how_big(hands):
    _, hand, _ = hands[0]
    landmarks = torch.from_numpy(hand.landmarks)[None]
    moved = landmarks * 2.5 + torch.tensor([40.0, -15.0, 0.0])
    right = torch.tensor([hand.handedness == "Right"])
    assert torch.allclose(hand_features(landmarks, right), hand_features(moved, right), atol=1e-4)


def test_a_mirrored_hand_is_the_other_hand_with_nearly_the_same_features(hands):
    """Mirroring changes the hand read, and its features less than those of any other letter in the set."""
    features = [features_of(hand) for _, hand, _ in hands]
    for i, (_, hand, mirrored) in enumerate(hands):
        assert hand.handedness != mirrored.handedness
        nearest_other = min(float((features[i] - other).abs().mean()) for j, other in enumerate(features) if j != i)
        assert float((features[i] - features_of(mirrored)).abs().mean()) < nearest_other


def test_the_committed_classifier_reads_the_marked_letters_from_landmarks_alone(hands):
    net, weight = load_hand_shape()
    assert 0 <= weight <= 2
    features = torch.stack([features_of(hand) for _, hand, _ in hands])
    with torch.inference_mode():
        predicted = [CLASS_NAMES[i] for i in net(features).argmax(1).tolist()]
    right = sum(name.split("/")[0] == label for (name, _, _), label in zip(hands, predicted, strict=True))
    assert right >= 7, predicted  # people never seen in training, 10 letters


def test_fusion_weight_zero_is_the_cnn_and_a_large_one_leans_on_the_landmarks():
    cnn = torch.tensor([[2.0, 1.0, 0.0]])
    shape = torch.tensor([[0.0, 0.0, 6.0]])
    assert torch.allclose(fuse(cnn, shape, 0.0), torch.log_softmax(cnn, 1))
    assert fuse(cnn, shape, 0.0).argmax() == 0 and fuse(cnn, shape, 2.0).argmax() == 2


def test_augmentation_keeps_the_shape_and_is_seeded():
    features = torch.randn(5, 63)
    config = HandShapeConfig()
    first = augment(features, config, torch.Generator().manual_seed(1))
    assert first.shape == features.shape and not torch.allclose(first, features)
    assert torch.equal(first, augment(features, config, torch.Generator().manual_seed(1)))


def test_a_tiny_training_run_learns_two_separable_shapes(hands):
    (_, a, _), (_, b, _) = hands[0], hands[5]
    landmarks = torch.from_numpy(np.stack([a.landmarks] * 20 + [b.landmarks] * 20))
    right = torch.tensor([a.handedness == "Right"] * 20 + [b.handedness == "Right"] * 20)
    labels = torch.tensor([0] * 20 + [1] * 20)
    config = HandShapeConfig(epochs=3, samples_per_epoch=256)
    net = train_hand_shape(landmarks, right, labels, ["s"] * 40, config)
    with torch.inference_mode():
        assert net(hand_features(landmarks, right)).argmax(1).tolist() == labels.tolist()


def test_arms_length_framing_moves_the_photo_where_it_says_and_is_seeded():
    image = photo(sorted(MARKED)[0])
    room = photo(sorted(MARKED)[1])
    framing = Framing()
    frame, scale, (x, y) = place(to_pil(image), to_pil(room), random.Random(3), framing)
    again, _, _ = place(to_pil(image), to_pil(room), random.Random(3), framing)
    assert frame.size == framing.frame and np.array_equal(np.asarray(frame), np.asarray(again))
    side = round(max(image.shape[1:]) * scale)
    assert framing.photo_side[0] <= side <= framing.photo_side[1]
    small = to_pil(image).resize((side, side), Image.Resampling.LANCZOS)  # the 416x416 photo, shrunk
    assert np.abs(np.asarray(frame)[y : y + side, x : x + side].astype(int) - np.asarray(small).astype(int)).mean() < 1
