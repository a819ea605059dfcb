"""The `digits` dataset: scikit-learn's digits in the one-class protocol (train on one digit, test on all)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import xgen

NAME = re.compile(r"^(train|test)_(\d{4})_digit(\d)$")


@pytest.fixture(scope="module")
def sklearn_digits():
    bunch = load_digits()
    return bunch.images.astype(np.float32) / 16.0, bunch.target


def indices(split: xgen.ImageSet, prefix: str) -> list[int]:
    """The scikit-learn index each name encodes (names look like `train_0123_digit1`)."""
    found = []
    for name in split.names:
        match = NAME.match(name)
        assert match, f"name {name!r} does not encode the source index"
        assert match.group(1) == prefix
        found.append(int(match.group(2)))
    return found


@pytest.fixture(scope="module")
def ones():
    dataset = xgen.dataset("digits:normal=1")
    return dataset.train(), dataset.test()


def test_images_are_float32_in_unit_range_at_28x28(ones):
    for split in ones:
        assert split.images.dtype == torch.float32
        assert split.images.shape[1:] == (1, 28, 28)
        assert split.images.min() >= 0 and split.images.max() <= 1
        assert split.images.max() == 1, "the brightest strokes should reach 1"
        assert split.masks is None
        assert len(split.names) == len(split) == len(set(split.names))


def test_the_training_split_holds_only_the_normal_digit(ones):
    train, _ = ones
    assert len(train) > 100
    assert torch.equal(train.classes, torch.ones(len(train), dtype=torch.int64))
    assert torch.equal(train.labels, torch.zeros(len(train), dtype=torch.int64))
    assert all(name.endswith("_digit1") for name in train.names)


def test_the_test_split_holds_every_digit_labelled_anomalous_unless_normal(ones):
    _, test = ones
    assert set(test.classes.tolist()) == set(range(10))
    assert test.labels.dtype == torch.int64
    assert torch.equal(test.labels, (test.classes != 1).long())
    assert 0 < (test.labels == 0).sum() < (test.labels == 1).sum()
    assert [int(name[-1]) for name in test.names] == test.classes.tolist()


def test_names_encode_the_scikit_learn_index_of_each_image(ones, sklearn_digits):
    """At size 8 there is no resampling, so each image must be exactly the scikit-learn image its name names."""
    images, target = sklearn_digits
    small = xgen.dataset("digits:normal=1,size=8")
    for split, prefix in ((small.train(), "train"), (small.test(), "test")):
        index = indices(split, prefix)
        assert split.images.shape[1:] == (1, 8, 8)
        assert torch.equal(split.images[:, 0], torch.from_numpy(images[index]))
        assert split.classes.tolist() == target[index].tolist()
    for split, prefix in zip(ones, ("train", "test"), strict=True):
        assert split.classes.tolist() == target[indices(split, prefix)].tolist()


def test_train_and_test_are_disjoint_and_the_test_split_takes_30_percent_of_each_digit(ones, sklearn_digits):
    _, target = sklearn_digits
    train, test = ones
    train_index, test_index = set(indices(train, "train")), set(indices(test, "test"))
    assert not train_index & test_index
    assert train_index | {i for i in test_index if target[i] == 1} == set(np.flatnonzero(target == 1).tolist())
    for digit in range(10):
        members = int((target == digit).sum())
        in_test = sum(1 for i in test_index if target[i] == digit)
        assert in_test == round(0.3 * members), f"digit {digit}: {in_test} of {members} in test"


def test_the_split_is_deterministic(ones):
    again = xgen.dataset("digits:normal=1")
    for first, second in zip(ones, (again.train(), again.test()), strict=True):
        assert first.names == second.names
        assert torch.equal(first.images, second.images)
        assert torch.equal(first.labels, second.labels)


def test_another_normal_digit_changes_the_labels_but_not_the_test_images(ones):
    _, test_of_ones = ones
    threes = xgen.dataset("digits:normal=3")
    train, test = threes.train(), threes.test()
    assert set(train.classes.tolist()) == {3}
    assert test.names == test_of_ones.names
    assert torch.equal(test.labels, (test.classes != 3).long())
    assert not torch.equal(test.labels, test_of_ones.labels)


def test_another_split_seed_gives_another_split(ones):
    train, _ = ones
    other = xgen.dataset("digits:normal=1,split_seed=1").train()
    assert len(other) == len(train) and other.names != train.names


def test_the_spec_rebuilds_the_same_dataset():
    dataset = xgen.dataset("digits:normal=3,size=16")
    rebuilt = xgen.dataset(dataset.spec())
    assert rebuilt.config() == dataset.config()
    assert rebuilt.test().names == dataset.test().names


@pytest.mark.parametrize("size", [8, 16, 32])
def test_the_size_option_sets_the_image_size(size):
    dataset = xgen.dataset(f"digits:size={size}")
    train, test = dataset.train(), dataset.test()
    assert train.images.shape[1:] == test.images.shape[1:] == (1, size, size)
    assert train.images.dtype == torch.float32 and train.images.min() >= 0 and train.images.max() <= 1
    assert test.names == xgen.dataset("digits").test().names


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("digits:normal=12", r"normal must be a digit 0-9, got 12"),
        ("digits:normal=-1", r"normal must be a digit 0-9, got -1"),
        ("digits:normal=one", r"option 'normal' of dataset 'digits' got 'one': expected an integer"),
        ("digits:nromal=1", r"dataset 'digits' has no option 'nromal'\. Did you mean 'normal'\?"),
        ("digits:colour=red", r"dataset 'digits' has no option 'colour'"),
        ("digits:size=4", r"size must be at least 8, got 4"),
        ("digits:test_fraction=1.5", r"test_fraction must be in \(0, 1\), got 1.5"),
        ("digits:3", r"got '3' without a key"),
    ],
)
def test_bad_options_are_refused_with_one_sentence(spec, message):
    with pytest.raises(xgen.XgenError, match=message) as info:
        xgen.dataset(spec)
    assert "\n" not in str(info.value) and str(info.value).endswith((".", "?"))
