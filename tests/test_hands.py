"""The hand landmarker on committed photos whose hands were marked by eye, and the geometry around it."""

import json
import math

import numpy as np
import pytest
import torch

from asl_serve.model.hands import (
    BadHint,
    Hand,
    HandLandmarker,
    Roi,
    parse_hint,
    ssd_anchors,
    tracking_roi,
    up_angle,
    weighted_nms,
)
from asl_serve.model.preprocess import crop_to_hand, hand_square
from tests.conftest import MARKED, photo, room_without_the_hand


@pytest.fixture(scope="module")
def landmarker() -> HandLandmarker:
    return HandLandmarker(threads=1)


def iou(a, b) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_anchors_are_mediapipes_2016():
    anchors = ssd_anchors()
    assert anchors.shape == (2016, 2)
    assert np.allclose(anchors[:2], [[0.5 / 24, 0.5 / 24]] * 2)  # two per cell on the 24x24 grid first
    assert np.allclose(anchors[1152:1158], [[0.5 / 12, 0.5 / 12]] * 6)  # then six per cell on the 12x12 grid
    assert np.allclose(anchors[-1], [11.5 / 12, 11.5 / 12])


@pytest.mark.parametrize("name", sorted(MARKED))
def test_marked_hands_are_found_inside_their_boxes(landmarker, name):
    image = photo(name)
    hand = landmarker(image)
    assert hand is not None and hand.score >= 0.5
    answer = hand.as_json(image.shape[2], image.shape[1])
    assert len(answer["landmarks"]) == 21 and all(len(point) == 3 for point in answer["landmarks"])
    assert answer["handedness"] in {"Left", "Right"}
    marked = MARKED[name]
    left, top, right, bottom = answer["box"]
    assert marked[0] - 0.05 <= left and right <= marked[2] + 0.05  # the landmarks lie on the marked hand
    assert marked[1] - 0.05 <= top and bottom <= marked[3] + 0.05
    assert iou(answer["box"], marked) > 0.35  # and cover much of it (the marks include the wrist and arm)


def test_no_hand_where_the_room_has_none(landmarker):
    rooms = [room_without_the_hand(name) for name in sorted(MARKED)]
    assert all(min(room.shape[1:]) >= 60 for room in rooms)
    assert [landmarker(room.contiguous()) for room in rooms] == [None] * len(rooms)


DEGENERATE = [torch.zeros(3, 1, 1, dtype=torch.uint8), torch.full((3, 5, 900), 128, dtype=torch.uint8)]


@pytest.mark.parametrize("image", DEGENERATE, ids=["one pixel", "a thin strip"])
def test_degenerate_images_have_no_hand(landmarker, image):
    assert landmarker(image) is None


def test_the_most_confident_of_two_hands_is_read(landmarker):
    names = sorted(MARKED)[:2]
    both = torch.cat([photo(names[0]), photo(names[1])], dim=2).contiguous()  # side by side, 832 x 416
    pixels = both.permute(1, 2, 0).numpy()
    hands = [landmarker.landmarks(pixels, roi) for roi in landmarker.palm_rois(pixels)]
    assert sorted(hand.box[0] >= 416 for hand in hands) == [False, True]  # one hand found on each side
    assert landmarker(both).score == max(hand.score for hand in hands)


def test_the_landmark_model_reads_grey_hands(landmarker):
    """MediaPipe's palm detector finds few hands in grey photos (the model card's limits; the CNN then reads
    the whole frame, as before), but given the square found in colour the landmark model reads them all."""
    for name in sorted(MARKED):
        image = photo(name)
        grey = image.float().mean(0, keepdim=True).round().to(torch.uint8).expand(3, -1, -1).contiguous()
        roi = landmarker.palm_rois(image.permute(1, 2, 0).numpy())[0]
        assert landmarker.landmarks(grey.permute(1, 2, 0).numpy(), roi).score >= 0.5


def test_roi_crop_and_back_are_inverse():
    roi = Roi(120.0, 80.0, 64.0, math.radians(30))
    matrix = roi.to_crop(224)
    points = np.array([[0.0, 0.0], [223.0, 17.0], [100.5, 200.25]])
    image_points = roi.from_crop(points, 224)
    back = (matrix[:, :2] @ image_points.T).T + matrix[:, 2]
    assert np.allclose(back, points, atol=1e-6)


def test_up_angle_turns_the_hand_upright():
    assert up_angle(np.array([0.0, 10.0]), np.array([0.0, 0.0])) == pytest.approx(0.0)  # fingers up
    assert up_angle(np.array([0.0, 0.0]), np.array([10.0, 0.0])) == pytest.approx(math.pi / 2)  # pointing right


def test_weighted_nms_merges_overlaps_and_keeps_apart_the_rest():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=np.float64)
    kept = weighted_nms(boxes, np.array([0.9, 0.6, 0.8]), iou=0.3)
    assert [score for _, score in kept] == [0.9, 0.8]
    assert np.allclose(kept[0][0], (boxes[0] * 0.9 + boxes[1] * 0.6) / 1.5)
    assert np.allclose(kept[1][0], boxes[2])


def test_the_cnn_reads_the_hand_square_or_the_whole_frame():
    image = torch.zeros(3, 300, 400, dtype=torch.uint8)
    assert crop_to_hand(image, None) is image
    assert hand_square((190, 140, 210, 160), 400, 300) == (184, 134, 32)  # 1.6 x the box's 20 pixels
    assert hand_square((0, 0, 20, 20), 400, 300) == (0, 0, 32)  # kept inside the image
    assert hand_square((0, 0, 400, 300), 400, 300) == (50, 0, 300)  # a hand filling the frame: its square
    assert crop_to_hand(image, (190, 140, 210, 160)).shape == (3, 32, 32)


def test_hand_json_is_fractions_of_the_image():
    landmarks = np.zeros((21, 3), dtype=np.float32)
    landmarks[:, 0], landmarks[:, 1] = np.linspace(100, 300, 21), np.linspace(50, 150, 21)
    answer = Hand(landmarks, "Right", 0.97).as_json(400, 200)
    assert answer["box"] == [0.25, 0.25, 0.75, 0.75]
    assert answer["landmarks"][0][:2] == [0.25, 0.25]


SMALL = 160  # pixels: a marked photo at arm's length in a webcam's 640x480 frame


def test_small_hands_in_a_large_frame_are_found_where_they_are(landmarker):
    """Each marked photo shrunk to 160 pixels at a corner of a 640x480 frame: the hand found lies in the
    shrunk photo's marked box (the whole frame, a margin, then four tiles are searched)."""
    found = 0
    for i, name in enumerate(sorted(MARKED)):
        small = torch.nn.functional.interpolate(photo(name)[None].float(), size=(SMALL, SMALL), mode="area")[0]
        frame = torch.full((3, 480, 640), 90, dtype=torch.uint8)
        top, left = (0, 480 - SMALL)[i % 2], (0, 640 - SMALL)[i // 2 % 2]
        frame[:, top : top + SMALL, left : left + SMALL] = small.round().to(torch.uint8)
        hand = landmarker(frame)
        if hand is None:
            continue
        found += 1
        marked = MARKED[name]
        x, y = (hand.box[0] + hand.box[2]) / 2, (hand.box[1] + hand.box[3]) / 2
        assert left + marked[0] * SMALL <= x <= left + marked[2] * SMALL
        assert top + marked[1] * SMALL <= y <= top + marked[3] * SMALL
    assert found >= 8


class CountingModel:
    """A LiteRT model wrapper that counts its calls."""

    def __init__(self, model):
        self.model, self.calls = model, 0

    def __call__(self, pixels):
        self.calls += 1
        return self.model(pixels)


def test_a_tracked_hand_skips_the_palm_detector_and_lands_where_detection_does():
    """The next frame's ROI from each marked photo's landmarks, sent back with the same photo: the landmark
    model alone reads the hand there: its landmarks lie, on median, within 3% of the image of where the full
    search put them, and none further than 8%."""
    landmarker = HandLandmarker(threads=1)
    landmarker.palm = CountingModel(landmarker.palm)
    for name in sorted(MARKED):
        image = photo(name)
        detected = landmarker(image)
        calls = landmarker.palm.calls
        tracked = landmarker(image, tracking_roi(detected.landmarks))
        assert landmarker.palm.calls == calls  # no palm detection
        assert (detected.tracked, tracked.tracked) == (False, True)
        offsets = np.abs(tracked.landmarks[:, :2] - detected.landmarks[:, :2]).max(1) / max(image.shape[1:])
        assert np.median(offsets) <= 0.03 and offsets.max() <= 0.08, name


def test_a_hint_where_no_hand_is_falls_back_to_detection(landmarker):
    name = sorted(MARKED)[0]
    image = photo(name)
    height, width = image.shape[1:]
    left, right = MARKED[name][0], MARKED[name][2]
    x = (left / 2 if left > 1 - right else (1 + right) / 2) * width  # in the widest strip beside the hand
    hint = Roi(x, height / 2, min(left, 1 - right) * width, 0.0)
    found = landmarker(image, hint)
    assert found is not None and not found.tracked
    assert np.allclose(found.landmarks, landmarker(image).landmarks)


def test_the_tracking_roi_round_trips_through_json():
    roi = Roi(120.0, 80.0, 64.0, 0.5)
    hint = parse_hint(json.dumps(roi.as_json(400, 300)))
    back = Roi.from_json(hint, 400, 300)
    assert np.allclose([back.x, back.y, back.size, back.angle], [120, 80, 64, 0.5], atol=0.05)


def test_the_tracking_roi_is_upright_and_covers_the_hand():
    landmarks = np.zeros((21, 3), dtype=np.float32)
    landmarks[:, 0] = 200 + np.tile([-20, 0, 20], 7)  # a hand 40 wide, wrist at the bottom, fingers up
    landmarks[:, 1] = np.linspace(300, 200, 21)
    landmarks[[0, 5, 9, 13], 0] = (200, 180, 200, 220)  # wrist below the middle of the knuckles
    roi = tracking_roi(landmarks)
    assert roi.angle == pytest.approx(0.0, abs=0.05)
    assert roi.size >= 2 * 80  # twice the palm's and knuckles' extent
    assert 200 <= roi.y <= 300 and roi.x == pytest.approx(200, abs=2)


BAD_HINTS = {
    "not JSON": "{x: 1}",
    "a list": "[0.5, 0.5, 0.2, 0]",
    "a missing key": {"x": 0.5, "y": 0.5, "size": 0.2},
    "an extra key": {"x": 0.5, "y": 0.5, "size": 0.2, "angle": 0, "z": 1},
    "a string number": {"x": "0.5", "y": 0.5, "size": 0.2, "angle": 0},
    "a boolean": {"x": True, "y": 0.5, "size": 0.2, "angle": 0},
    "NaN": '{"x": NaN, "y": 0.5, "size": 0.2, "angle": 0}',
    "infinite angle": '{"x": 0.5, "y": 0.5, "size": 0.2, "angle": Infinity}',
    "centre outside": {"x": 1.5, "y": 0.5, "size": 0.2, "angle": 0},
    "zero size": {"x": 0.5, "y": 0.5, "size": 0, "angle": 0},
    "huge size": {"x": 0.5, "y": 0.5, "size": 1e9, "angle": 0},
}


@pytest.mark.parametrize("hint", BAD_HINTS.values(), ids=BAD_HINTS.keys())
def test_bad_hints_are_refused_with_a_reason(hint):
    with pytest.raises(BadHint, match="roi"):
        parse_hint(hint)
