"""The `faces` dataset: scikit-image's LFW subset in the one-class protocol (train on faces, test on both)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from skimage.data import lfw_subset

import xgen

NAME = re.compile(r"^(train|test)_(\d{4})_(face|nonface)$")


@pytest.fixture(scope="module")
def lfw():
    return lfw_subset()


@pytest.fixture(scope="module")
def faces():
    dataset = xgen.dataset("faces")
    return dataset.train(), dataset.test()


def indices(split: xgen.ImageSet, prefix: str) -> list[int]:
    """The lfw_subset index each name encodes (names look like `test_0007_face`)."""
    found = []
    for name in split.names:
        match = NAME.match(name)
        assert match, f"name {name!r} does not encode the source index"
        assert match.group(1) == prefix
        assert (match.group(3) == "face") == (int(match.group(2)) < 100)
        found.append(int(match.group(2)))
    return found


def test_lfw_subset_is_200_images_of_25x25_already_in_unit_range(lfw):
    """What the dataset relies on: float values in [0, 1] (the docstring says uint8), faces first."""
    assert lfw.shape == (200, 25, 25)
    assert lfw.min() >= 0 and lfw.max() <= 1
    assert "100 first images are faces" in lfw_subset.__doc__


def test_images_are_float32_in_unit_range_and_the_source_images_at_25x25(faces, lfw):
    for split, prefix in zip(faces, ("train", "test"), strict=True):
        assert split.images.dtype == torch.float32
        assert split.images.shape[1:] == (1, 25, 25)
        assert split.images.min() >= 0 and split.images.max() <= 1
        assert split.masks is None
        assert torch.equal(split.images[:, 0], torch.from_numpy(lfw[indices(split, prefix)].astype(np.float32)))


def test_train_holds_70_faces_and_test_30_faces_and_all_100_non_faces(faces):
    train, test = faces
    assert len(train) == 70 and len(test) == 130
    assert torch.equal(train.labels, torch.zeros(70, dtype=torch.int64))
    assert torch.equal(train.classes, train.labels)
    assert (test.labels == 0).sum() == 30 and (test.labels == 1).sum() == 100
    assert torch.equal(test.classes, test.labels)
    assert train.class_names == test.class_names == {0: "face", 1: "nonface"}
    assert [name.endswith("_face") for name in test.names] == (test.labels == 0).tolist()


def test_train_and_test_faces_do_not_overlap_and_cover_all_100(faces):
    train, test = faces
    train_index, test_index = set(indices(train, "train")), set(indices(test, "test"))
    assert not train_index & test_index
    assert train_index | {i for i in test_index if i < 100} == set(range(100))
    assert {i for i in test_index if i >= 100} == set(range(100, 200))


def test_the_split_is_deterministic_and_follows_the_seed(faces):
    again = xgen.dataset("faces")
    for first, second in zip(faces, (again.train(), again.test()), strict=True):
        assert first.names == second.names
        assert torch.equal(first.images, second.images)
    other = xgen.dataset("faces:split_seed=1").train()
    assert len(other) == 70 and other.names != faces[0].names


def test_test_fraction_sets_how_many_faces_are_held_out():
    dataset = xgen.dataset("faces:test_fraction=0.5")
    assert len(dataset.train()) == 50
    assert (dataset.test().labels == 0).sum() == 50


@pytest.mark.parametrize("size", [8, 28, 32, 64])
def test_the_size_option_resizes_into_the_unit_range(size, faces):
    dataset = xgen.dataset(f"faces:size={size}")
    train, test = dataset.train(), dataset.test()
    assert train.images.shape[1:] == test.images.shape[1:] == (1, size, size)
    for split in (train, test):
        assert split.images.dtype == torch.float32 and split.images.min() >= 0 and split.images.max() <= 1
    assert test.names == faces[1].names
    assert abs(train.images.mean() - faces[0].images.mean()) < 0.01, "resizing keeps the brightness"


def test_the_spec_rebuilds_the_same_dataset():
    dataset = xgen.dataset("faces:size=28,split_seed=2")
    rebuilt = xgen.dataset(dataset.spec())
    assert rebuilt.config() == dataset.config()
    assert rebuilt.train().names == dataset.train().names


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("faces:size=4", r"size must be at least 8, got 4"),
        ("faces:size=big", r"option 'size' of dataset 'faces' got 'big': expected an integer"),
        ("faces:test_fraction=1.5", r"test_fraction must hold out 1 to 99 of the 100 faces .*got 1.5"),
        ("faces:test_fraction=0.001", r"test_fraction must hold out 1 to 99"),
        ("faces:sise=28", r"dataset 'faces' has no option 'sise'\. Did you mean 'size'\?"),
        ("faces:28", r"got '28' without a key"),
    ],
)
def test_bad_options_are_refused_with_one_sentence(spec, message):
    with pytest.raises(xgen.XgenError, match=message) as info:
        xgen.dataset(spec)
    assert "\n" not in str(info.value) and str(info.value).endswith((".", "?"))
