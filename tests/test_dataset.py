"""Folder-per-class trees: both layouts, odd folder names, corrupt files, block-wise validation split."""

import itertools

import pytest

from asl_serve.model.classes import CLASS_NAMES, class_from_folder
from asl_serve.model.config import PREPROCESS
from asl_serve.training.config import SplitConfig
from asl_serve.training.dataset import load_images, scan, source_name, split_by_blocks
from tests.conftest import copy_sample


def test_folder_names_map_case_insensitively():
    assert class_from_folder("Del") == "del"
    assert class_from_folder(" SPACE ") == "space"
    assert class_from_folder("a") == "A"
    assert class_from_folder("Nothing") == "nothing"
    assert class_from_folder("AA") is None
    assert len(CLASS_NAMES) == 29 and CLASS_NAMES[26:] == ("del", "nothing", "space")


def test_kaggle_layout_with_wrapper_folder(tmp_path):
    root = tmp_path / "asl_alphabet_train"
    for name in ("A", "B", "del"):
        for n in (1, 2, 3):
            copy_sample(root / "asl_alphabet_train" / name, f"{name}{n}.jpg")
    samples = scan([root])
    assert sorted({s.label for s in samples}) == [0, 1, CLASS_NAMES.index("del")]
    assert {s.frame for s in samples} == {1, 2, 3}
    assert source_name(root) == tmp_path.name  # generic folder names fall back to their parent


def test_other_tree_with_odd_names_and_a_corrupt_file(tmp_path):
    root = tmp_path / "mydata"
    copy_sample(root / "Del", "x_10.jpg", "del")
    copy_sample(root / "space", "frame7.JPG", "space")
    copy_sample(root / "not_a_class", "skip.jpg")
    (root / "Del" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (root / "Del" / "notes.txt").write_text("ignored: not an image suffix")
    samples = scan([root])
    assert {s.path.name for s in samples} == {"x_10.jpg", "frame7.JPG", "broken.jpg"}
    images = load_images(samples)
    assert len(images) == 2 and images.images.shape[1:] == (3, PREPROCESS.image_size, PREPROCESS.image_size)
    assert [p.name for p in images.skipped] == ["broken.jpg"]


def test_no_class_folders_is_a_clear_error(tmp_path):
    (tmp_path / "random").mkdir()
    with pytest.raises(FileNotFoundError, match="no class folders"):
        scan([tmp_path])


def test_validation_holds_out_contiguous_blocks_per_source_and_class(tmp_path):
    root = tmp_path / "video" / "train"
    for frame in range(0, 200, 5):
        copy_sample(root / "B", f"B{frame}.jpg", "B")
    train, validation = split_by_blocks(scan([root]), SplitConfig(blocks_per_class=10, validation_blocks=2), 0)
    held = sorted(s.frame for s in validation)
    assert len(held) == 8 and len(train) == 32
    runs = sum(1 for a, b in itertools.pairwise(held) if b - a != 5) + 1
    assert runs <= 2  # whole blocks of consecutive frames, never scattered single frames
    assert {s.source for s in train} == {"video"}


def test_flat_folder_labelled_by_file_name(tmp_path):
    """The Kaggle set's own test folder: `A_test.jpg` ... `space_test.jpg`, no class folders."""
    for name in ("A_test.jpg", "space_test.jpg", "nothing_test.jpg"):
        copy_sample(tmp_path, name)
    (tmp_path / "readme_test.jpg").write_bytes(b"not a class name: ignored")
    samples = scan([tmp_path])
    assert sorted(CLASS_NAMES[s.label] for s in samples) == ["A", "nothing", "space"]
