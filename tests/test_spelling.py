"""The spelling benchmark's own logic: the script it plays, the photos it picks, how it scores and chooses."""

from pathlib import Path

from asl_serve.loadtests.spelling import (
    FRAME_COUNTS,
    THRESHOLDS,
    Run,
    characters_right,
    choose,
    key,
    letter_photos,
    script,
)
from asl_serve.model.classes import CLASS_NAMES, NOTHING
from asl_serve.training.dataset import Sample


def test_the_script_spells_the_alphabet_then_the_words_with_the_room_between_double_letters():
    labels, expected = script("DEHLORW")
    assert expected == "DEHLORW" + "HELLO" + "WORLD"
    hello = labels[labels.index("H", 8) :][:7]
    assert hello == ["H", "E", "L", NOTHING, "L", "O", NOTHING]  # the room before the second L, and after
    assert labels[0] == labels[-1] == NOTHING


def test_one_photo_per_letter_is_picked_by_position_not_by_confidence():
    samples = [Sample(Path(f"/set/{letter}/{n}.jpg"), CLASS_NAMES.index(letter), "set", n)
               for letter in ("A", "B") for n in (3, 1, 2)] + [Sample(Path("/set/nothing/1.jpg"), NOTHING, "set", 1)]
    assert letter_photos(samples) == {"A": Path("/set/A/2.jpg"), "B": Path("/set/B/2.jpg")}  # the middle one


def test_characters_right_is_one_minus_the_edit_distance_over_the_length():
    assert characters_right("HELLO", "HELLO") == 1.0
    assert characters_right("HELO", "HELLO") == 0.8
    assert characters_right("", "HELLO") == 0.0
    assert characters_right("XXXXXXXXXXXX", "HELLO") == 0.0  # never below zero


def test_the_defaults_are_the_highest_threshold_within_a_tie_of_the_best():
    grid = [(t, n) for t in THRESHOLDS for n in FRAME_COUNTS]
    best, near = (THRESHOLDS[0], 3), (THRESHOLDS[1], 3)
    typed = {key(point): "ABCDEFGHIJKLMNOPQRSTUVWXY" for point in grid}  # 25 of 26 right
    typed[key(best)] = typed[key((THRESHOLDS[0], 4))] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # all right
    runs = [Run("set", "hand-filling", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "", 10.0, 100, 1.0, 1.0, typed)]
    _, chosen = choose(runs, grid)
    assert chosen == best  # one character in 26 is more than the tie
    runs.append(Run("other", "hand-filling", "A" * 400, "", 10.0, 100, 1.0, 1.0,
                    {key(point): "A" * 400 for point in grid}))
    typed[key(near)] = typed[key(best)]
    assert choose(runs, grid)[1] == near  # equal means: the higher threshold, fewest frames
