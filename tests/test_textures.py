"""The `textures` dataset: crops of scikit-image's photographs, split by rows, with exactly masked synthetic defects."""

from __future__ import annotations

import re

import numpy as np
import pytest
import skimage.data
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import xgen
from xgen_plugins.textures.defects import DEFECTS, MIN_CHANGE, plant

CATEGORIES = ("brick", "grass", "gravel")
NAME = re.compile(r"^test_(\d{4})_(good|scratch|stain|hole|paste|blur)$")
# Below 2/255 by float32 rounding only: a pushed pixel moves by exactly 2/255 computed in float64.
VISIBLE = MIN_CHANGE - 1e-6


def small(category: str, **options) -> xgen.Dataset:
    spec = ",".join(
        [f"textures:{category}", "size=32", "train_n=12", "test_n=20"] + [f"{k}={v}" for k, v in options.items()]
    )
    return xgen.dataset(spec)


def assert_exact_masks(test: xgen.ImageSet, clean: xgen.ImageSet) -> None:
    """Defective images differ from their clean crop exactly on the mask, by at least 2/255; good ones equal it."""
    changed = test.images[:, 0] != clean.images[:, 0]
    assert torch.equal(test.masks.bool(), changed)
    assert torch.equal(test.masks, test.masks.bool().float())
    moved = (test.images - clean.images)[:, 0].abs()
    assert (moved[changed] >= VISIBLE).all(), "a masked pixel changed by less than 2/255"
    area = test.masks.sum(dim=(1, 2))
    defective = test.labels == 1
    assert (area[defective] > 0).all(), "a defective image has an empty mask"
    assert (area[defective] < test.masks[0].numel()).all(), "a defect covers the whole crop"
    assert torch.equal(test.images[~defective], clean.images[~defective])
    assert (area[~defective] == 0).all()


@pytest.fixture(scope="module", params=CATEGORIES)
def splits(request):
    dataset = small(request.param)
    return request.param, dataset.train(), dataset.test(), dataset.clean_test()


def test_masks_cover_exactly_the_changed_pixels_for_every_defect_and_category(splits):
    _, _, test, clean = splits
    assert set(test.classes.tolist()) == set(range(6))
    assert_exact_masks(test, clean)


def test_shapes_dtypes_and_ranges(splits):
    _, train, test, clean = splits
    assert train.images.shape == (12, 1, 32, 32)
    assert test.images.shape == clean.images.shape == (20, 1, 32, 32)
    assert test.masks.shape == (20, 32, 32) and test.masks.dtype == torch.float32
    assert train.masks is None and clean.masks is None
    for split in (train, test, clean):
        assert split.images.dtype == torch.float32
        assert split.images.min() >= 0 and split.images.max() <= 1
        assert split.labels.dtype == split.classes.dtype == torch.int64
        assert split.class_names == {0: "good", 1: "scratch", 2: "stain", 3: "hole", 4: "paste", 5: "blur"}
        assert len(set(split.names)) == len(split)
    assert train.names[3] == "train_0003"
    assert not train.labels.any() and not train.classes.any() and not clean.labels.any()


def test_the_test_split_is_half_good_half_defective_with_the_types_taking_turns(splits):
    _, _, test, clean = splits
    assert test.labels.tolist() == [i % 2 for i in range(20)]
    assert torch.equal(test.labels, (test.classes > 0).long())
    assert test.classes[1::2].tolist() == [1, 2, 3, 4, 5] * 2
    assert torch.bincount(test.classes[1::2], minlength=6)[1:].tolist() == [2] * 5
    for i, name in enumerate(test.names):
        match = NAME.match(name)
        assert match and int(match.group(1)) == i
        assert match.group(2) == test.class_names[int(test.classes[i])]
    assert clean.names == test.names and torch.equal(clean.classes, test.classes)


def test_train_crops_come_from_the_upper_three_quarters_and_test_crops_from_the_lower_quarter(splits):
    category, train, test, clean = splits
    photo = getattr(skimage.data, category)()
    for split, rows in ((train, (0, 384)), (clean, (384, 512)), (test, (384, 512))):
        origin = split.extras["origin"]
        assert origin.shape == (len(split), 2) and origin.dtype == torch.int64
        assert (origin[:, 0] >= rows[0]).all() and (origin[:, 0] + 32 <= rows[1]).all()
        assert (origin[:, 1] >= 0).all() and (origin[:, 1] + 32 <= 512).all()
    assert len(set(train.extras["origin"][:, 0].tolist())) > 1, "train crops should not all share a row"
    for split in (train, clean):
        for image, (row, col) in zip(split.images[:, 0], split.extras["origin"].tolist(), strict=True):
            expected = photo[row : row + 32, col : col + 32]
            assert np.array_equal((image.numpy() * 255).round().astype(np.uint8), expected)
    assert torch.equal(test.extras["origin"], clean.extras["origin"])


def test_the_largest_size_takes_the_whole_held_out_quarter():
    dataset = xgen.dataset("textures:gravel,size=128,train_n=2,test_n=6")
    test, clean = dataset.test(), dataset.clean_test()
    assert test.images.shape == (6, 1, 128, 128)
    assert (test.extras["origin"][:, 0] == 384).all()
    assert_exact_masks(test, clean)


def test_generation_is_deterministic_and_seeded(splits):
    category, train, test, _ = splits
    again = small(category)
    for first, second in ((train, again.train()), (test, again.test())):
        assert first.names == second.names
        assert torch.equal(first.images, second.images)
        assert torch.equal(first.extras["origin"], second.extras["origin"])
    assert torch.equal(test.masks, again.test().masks)
    other = small(category, seed=1)
    assert not torch.equal(other.train().images, train.images)
    other_test = other.test()
    assert not torch.equal(other_test.images, test.images)
    assert not torch.equal(other_test.masks, test.masks)


def test_a_smaller_split_is_a_prefix_of_a_larger_one(splits):
    category, train, test, _ = splits
    fewer = xgen.dataset(f"textures:{category},size=32,train_n=5,test_n=7")
    assert torch.equal(fewer.train().images, train.images[:5])
    shorter = fewer.test()
    assert torch.equal(shorter.images, test.images[:7]) and torch.equal(shorter.masks, test.masks[:7])
    assert shorter.names == test.names[:7]


def test_a_defect_subset_takes_turns_in_canonical_order():
    dataset = xgen.dataset("textures:brick,size=32,train_n=1,test_n=12,defects=hole+scratch")
    assert dataset.defect_types() == ["scratch", "hole"]
    test = dataset.test()
    assert test.classes.tolist() == [0, 1, 0, 3] * 3
    assert_exact_masks(test, dataset.clean_test())


@pytest.mark.parametrize("kind", DEFECTS)
@pytest.mark.parametrize("level", [0.0, 2 / 255, 0.5, 254 / 255, 1.0])
def test_defects_keep_the_contract_on_flat_and_saturated_crops(kind, level):
    """A flat crop gives blur nothing to change and black or white ones nothing to darken or lighten: masked pixels
    must still move by 2/255, inside [0, 1]."""
    clean = np.full((24, 24), level, dtype=np.float32)
    donors = [np.full((128, 512), level, dtype=np.float32)]
    image, mask = plant(kind, clean, np.random.default_rng(7), donors)
    assert image.dtype == np.float32 and mask.dtype == bool
    assert np.array_equal(mask, image != clean)
    assert 0 < mask.sum() < mask.size
    assert image.min() >= 0 and image.max() <= 1
    assert (np.abs(image - clean)[mask] >= VISIBLE).all()


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(16, 128), category=st.sampled_from(CATEGORIES))
def test_masks_are_exact_for_any_seed_and_size(seed, size, category):
    dataset = xgen.dataset(f"textures:{category},size={size},train_n=1,test_n=10,seed={seed}")
    test = dataset.test()
    assert test.images.shape == (10, 1, size, size)
    assert_exact_masks(test, dataset.clean_test())


def test_loading_by_spec_and_rebuilding_from_the_spec():
    dataset = xgen.dataset("textures:grass,size=32,train_n=10,test_n=10")
    assert (dataset.category, dataset.size, dataset.train_n, dataset.test_n) == ("grass", 32, 10, 10)
    assert len(dataset.train()) == len(dataset.test()) == 10
    assert dataset.spec() == "textures:grass,size=32,train_n=10,test_n=10"
    rebuilt = xgen.dataset(dataset.spec())
    assert torch.equal(rebuilt.test().images, dataset.test().images)
    assert xgen.dataset("textures").config() == {
        "category": "brick",
        "size": 64,
        "train_n": 1000,
        "test_n": 200,
        "defects": "all",
        "seed": 0,
    }


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("textures:size=200", r"size must be between 16 and 128 .*got 200"),
        ("textures:size=8", r"size must be between 16 and 128 .*got 8"),
        ("textures:bricks", r"textures has no category 'bricks'\. Did you mean 'brick'\?"),
        ("textures:marble", r"no category 'marble'\. Available: brick, grass, gravel\."),
        ("textures:defects=scrach", r"no defect type 'scrach'\. Did you mean 'scratch'\?"),
        ("textures:defects=scratch+", r"no defect type ''"),
        ("textures:defects=scratch,stain", r"defect type 'stain' as its category; join defect types with '\+'"),
        ("textures:test_n=1", r"test_n >= 2"),
        ("textures:train_n=0", r"train_n >= 1"),
        ("textures:seed=-1", r"seed must be a non-negative integer"),
        ("textures:sise=32", r"has no option 'sise'\. Did you mean 'size'\?"),
    ],
)
def test_bad_options_are_refused_with_one_sentence(spec, message):
    with pytest.raises(xgen.XgenError, match=message) as info:
        xgen.dataset(spec)
    assert "\n" not in str(info.value) and str(info.value).endswith((".", "?"))
