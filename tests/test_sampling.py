"""Class- and source-balanced sampling on a tiny real tree with uneven sources and a missing class."""

from collections import Counter

import pytest
import torch

from asl_serve.model.classes import CLASS_NAMES
from asl_serve.training.dataset import scan
from asl_serve.training.sampling import balanced_weights, draw_epoch
from tests.conftest import copy_sample


@pytest.fixture
def uneven_tree(tmp_path):
    """`big` has A x 9 and del x 3; `small` has A x 1 and no del."""
    for n in range(9):
        copy_sample(tmp_path / "big" / "A", f"{n}.jpg")
    for n in range(3):
        copy_sample(tmp_path / "big" / "del", f"{n}.jpg", "del")
    copy_sample(tmp_path / "small" / "A", "0.jpg")
    return scan([tmp_path / "big", tmp_path / "small"])


def mass(samples, weights, source=None, label=None) -> float:
    return float(sum(w for s, w in zip(samples, weights, strict=True)
                     if (source is None or s.source == source) and (label is None or s.label == label)))


@pytest.mark.parametrize("power", [0.0, 0.5, 1.0])
def test_every_class_weighs_the_same_and_sources_share_by_power(uneven_tree, power):
    weights = balanced_weights([s.label for s in uneven_tree], [s.source for s in uneven_tree], power)
    a, delete = CLASS_NAMES.index("A"), CLASS_NAMES.index("del")
    assert mass(uneven_tree, weights) == pytest.approx(1.0)
    assert mass(uneven_tree, weights, label=a) == pytest.approx(0.5)  # 13 images of A vs 3 of del: equal
    assert mass(uneven_tree, weights, label=delete) == pytest.approx(0.5)  # only one source has del
    share = 9**power / (9**power + 1)  # big's share of A
    assert mass(uneven_tree, weights, "big", a) == pytest.approx(0.5 * share)
    assert mass(uneven_tree, weights, "small", a) == pytest.approx(0.5 * (1 - share))


def test_draws_follow_the_weights(uneven_tree):
    weights = balanced_weights([s.label for s in uneven_tree], [s.source for s in uneven_tree], 0.0)
    drawn = draw_epoch(weights, 20_000, torch.Generator().manual_seed(0))
    counts = Counter(uneven_tree[i].source for i in drawn.tolist())
    # source-equal within A (0.25 each) plus all of del (0.5) from big: big 75%, small 25%
    assert counts["small"] / 20_000 == pytest.approx(0.25, abs=0.02)
