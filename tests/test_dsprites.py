"""The `dsprites` dataset: factor indexing, the procedural renderer, and the splits and one-class protocol."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import xgen
from xgen_plugins.dsprites import SHAPES, factor_values, factors_to_index, index_to_factors, raster, render
from xgen_plugins.dsprites.factors import COUNT, SIZES

SQUARE, ELLIPSE, HEART = range(3)


def factors(shape: int, scale: int = 5, orientation: int = 0, x: int = 16, y: int = 16) -> list[int]:
    return [0, shape, scale, orientation, x, y]


def centroid(image: torch.Tensor) -> tuple[float, float]:
    """(column, row) centre of mass of a (64, 64) binary image."""
    rows, cols = image.nonzero(as_tuple=True)
    return cols.float().mean().item(), rows.float().mean().item()


def reference(factor_rows: torch.Tensor) -> torch.Tensor:
    """The module's geometry evaluated at all 4,096 pixel centres of each image, one image at a time."""
    values = factor_values(factor_rows)
    centres = (torch.arange(64, dtype=torch.float64) + 0.5) / 64
    out = []
    for row, value in zip(factor_rows.tolist(), values, strict=True):
        scale, angle, x, y = value[2:].tolist()
        dx = centres.view(1, 64) - (0.2 + 0.6 * x)
        dy = (0.2 + 0.6 * y) - centres.view(64, 1)
        u = (math.cos(angle) * dx + math.sin(angle) * dy) / scale
        v = (math.cos(angle) * dy - math.sin(angle) * dx) / scale
        out.append(raster.SHAPE_TESTS[row[1]](u, v).float())
    return torch.stack(out).unsqueeze(1)


def test_every_index_round_trips_through_its_factors():
    index = torch.arange(COUNT)
    found = index_to_factors(index)
    assert found.shape == (COUNT, 6) and found.dtype == torch.int64
    assert torch.equal(factors_to_index(found), index)
    assert torch.equal(factors_to_index(found[:, 1:]), index), "the 5-column form (no color) indexes the same"
    assert torch.equal(found.amax(dim=0), torch.tensor(SIZES) - 1) and found.min() == 0
    assert index_to_factors(torch.tensor([1]))[0].tolist() == [0, 0, 0, 0, 0, 1], "posY varies fastest"
    assert index_to_factors(torch.tensor([245_760]))[0].tolist() == [0, 1, 0, 0, 0, 0]


def test_factor_values_follow_the_original_latents_values():
    values = factor_values(torch.tensor([factors(HEART, 5, 39, 31, 0), factors(SQUARE, 0, 10, 0, 16)]))
    assert values.dtype == torch.float64
    assert values[0].tolist() == pytest.approx([1.0, 3.0, 1.0, 2 * math.pi, 1.0, 0.0])
    assert values[1].tolist() == pytest.approx([1.0, 1.0, 0.5, 10 * 2 * math.pi / 39, 0.0, 16 / 31])
    every = factor_values(index_to_factors(torch.arange(0, COUNT, 997)))
    for column, expected in ((2, np.linspace(0.5, 1, 6)), (3, np.linspace(0, 2 * np.pi, 40))):
        assert set(every[:, column].unique().tolist()) <= set(expected.tolist())


def test_render_is_binary_float32_at_64x64_and_deterministic():
    index = torch.randperm(COUNT, generator=torch.Generator().manual_seed(0))[:600]
    images = render(index_to_factors(index))
    assert images.shape == (600, 1, 64, 64) and images.dtype == torch.float32
    assert set(images.unique().tolist()) == {0.0, 1.0}
    assert (images.flatten(1).sum(dim=1) > 20).all(), "every image shows its shape"
    assert torch.equal(images, render(index_to_factors(index)))


def test_a_batch_renders_as_its_images_alone_across_chunks(monkeypatch):
    rows = index_to_factors(torch.randperm(COUNT, generator=torch.Generator().manual_seed(1))[:50])
    whole = render(rows)
    monkeypatch.setattr(raster, "CHUNK", 7)
    assert torch.equal(render(rows), whole)
    alone = torch.cat([render(rows[i : i + 1]) for i in range(len(rows))])
    assert torch.equal(alone, whole)


def test_the_27_pixel_window_loses_nothing_of_any_shape():
    """Rendering only a window around each shape gives the image that testing every pixel of the canvas gives."""
    corners = [factors(s, 5, o, x, y) for s in range(3) for o in range(0, 40, 3) for x in (0, 31) for y in (0, 31)]
    random = index_to_factors(torch.randperm(COUNT, generator=torch.Generator().manual_seed(2))[:200])
    rows = torch.cat([torch.tensor(corners), random])
    differ = (render(rows) != reference(rows)).sum(dim=(1, 2, 3))
    assert differ.max() <= 1, "at most a pixel centre on an edge may fall the other way in float32"


def test_the_largest_shapes_stay_inside_the_frame_at_every_orientation_and_corner():
    rows = torch.tensor([factors(s, 5, o, x, y) for s in range(3) for o in range(40) for x in (0, 31) for y in (0, 31)])
    images = render(rows)[:, 0]
    border = torch.cat([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], dim=1)
    assert border.sum() == 0


def test_the_shape_moves_with_posx_and_posy():
    for shape in range(3):
        along_x = render(torch.tensor([factors(shape, 3, 7, x, 10) for x in range(32)]))[:, 0]
        along_y = render(torch.tensor([factors(shape, 3, 7, 20, y) for y in range(32)]))[:, 0]
        cx = [centroid(image)[0] for image in along_x]
        cy = [centroid(image)[1] for image in along_y]
        assert all(b > a for a, b in itertools.pairwise(cx)), f"{SHAPES[shape]}: x centroid {cx}"
        assert all(b > a for a, b in itertools.pairwise(cy)), f"{SHAPES[shape]}: y centroid {cy}"
        assert cx[-1] - cx[0] == pytest.approx(0.6 * 64, abs=1.5), "posX 0 -> 1 spans 0.2 -> 0.8 of the frame"
        assert max(abs(centroid(image)[1] - centroid(along_x[0])[1]) for image in along_x) < 0.5


def test_the_area_grows_with_scale():
    for shape in range(3):
        for orientation in (0, 13, 27):
            areas = render(torch.tensor([factors(shape, s, orientation) for s in range(6)])).sum(dim=(1, 2, 3))
            assert (areas[1:] > areas[:-1]).all(), f"{SHAPES[shape]} at orientation {orientation}: {areas.tolist()}"
            assert areas[-1] / areas[0] == pytest.approx(4.0, rel=0.2), "area goes with scale squared"


def test_a_square_turned_by_a_quarter_turn_looks_the_same():
    """Orientations are linspace(0, 2 pi, 40), so index 10 is 10 * 2 pi / 39 = 92.3 degrees."""
    images = render(torch.tensor([factors(SQUARE, 5, 0), factors(SQUARE, 5, 10), factors(SQUARE, 5, 5)]))[:, 0]
    area = images[0].sum()
    assert (images[0] != images[1]).sum() <= 0.1 * area
    assert (images[0] != images[2]).sum() > 0.2 * area, "an eighth of a turn is a diamond"


def test_the_first_and_last_orientations_are_both_upright():
    rows = torch.tensor([factors(s, 5, o) for s in range(3) for o in (0, 39)])
    images = render(rows)[:, 0]
    for shape in range(3):
        assert (images[2 * shape] != images[2 * shape + 1]).sum() <= 2


def test_the_heart_points_down_at_orientation_0_and_up_near_a_half_turn():
    upright, turned = render(torch.tensor([factors(HEART, 5, 0), factors(HEART, 5, 20)]))[:, 0]
    for image, tip_at_bottom in ((upright, True), (turned, False)):
        widths = image.sum(dim=1)
        rows = widths.nonzero().flatten()
        top, bottom = widths[rows[:4]].sum(), widths[rows[-4:]].sum()
        assert (bottom < top) == tip_at_bottom


def test_ellipse_is_twice_as_long_as_wide():
    image = render(torch.tensor([factors(ELLIPSE, 5, 0)]))[0, 0]
    width, height = (image.sum(dim=0) > 0).sum(), (image.sum(dim=1) > 0).sum()
    assert width / height == pytest.approx(2.0, rel=0.1)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (torch.tensor([[0, 3, 0, 0, 0, 0]]), r"factor shape takes indices 0-2"),
        (torch.tensor([[0, 0, 0, 40, 0]]), r"factor posX takes indices 0-31"),
        (torch.zeros(2, 4, dtype=torch.long), r"\(N, 6\) or \(N, 5\)"),
        (torch.zeros(2, 6), r"integer tensor"),
    ],
)
def test_bad_factors_are_refused(rows, message):
    with pytest.raises(xgen.XgenError, match=message):
        render(rows)


def test_bad_indices_are_refused():
    with pytest.raises(xgen.XgenError, match=r"\[0, 737280\)"):
        index_to_factors(torch.tensor([COUNT]))


@pytest.fixture(scope="module")
def unlabelled():
    dataset = xgen.dataset("dsprites:train_n=300,test_n=100")
    return dataset.train(), dataset.test()


def test_splits_carry_images_of_their_factors(unlabelled):
    for split, size in zip(unlabelled, (300, 100), strict=True):
        assert len(split) == size and split.images.shape[1:] == (1, 64, 64)
        assert split.labels is None
        assert split.extras["factors"].shape == (size, 6) and split.extras["factors"].dtype == torch.int64
        assert split.extras["values"].dtype == torch.float32
        assert torch.equal(split.extras["values"], factor_values(split.extras["factors"]).float())
        assert torch.equal(split.images, render(split.extras["factors"]))
        assert torch.equal(split.classes, split.extras["factors"][:, 1])
        assert split.class_names == {0: "square", 1: "ellipse", 2: "heart"}
        for name, index, shape in zip(
            split.names, factors_to_index(split.extras["factors"]).tolist(), split.classes.tolist(), strict=True
        ):
            assert name.split("_")[1:] == [f"{index:06d}", SHAPES[shape]]
    assert set(unlabelled[0].classes.tolist()) == {0, 1, 2}


def test_train_and_test_are_disjoint_and_deterministic(unlabelled):
    train, test = unlabelled
    train_index = set(factors_to_index(train.extras["factors"]).tolist())
    test_index = set(factors_to_index(test.extras["factors"]).tolist())
    assert len(train_index) == 300 and len(test_index) == 100 and not train_index & test_index
    again = xgen.dataset("dsprites:train_n=300,test_n=100")
    assert again.train().names == train.names and again.test().names == test.names
    assert xgen.dataset("dsprites:train_n=300,test_n=100,split_seed=1").train().names != train.names


def test_the_one_class_protocol_trains_on_one_shape_and_labels_the_others_anomalous(unlabelled):
    dataset = xgen.dataset("dsprites:heart,train_n=200,test_n=100")
    assert dataset.normal == "heart"
    train, test = dataset.train(), dataset.test()
    assert len(train) == 200 and set(train.classes.tolist()) == {HEART}
    assert torch.equal(train.labels, torch.zeros(200, dtype=torch.int64))
    assert torch.equal(test.labels, (test.classes != HEART).long())
    assert 0 < test.labels.sum() < 100
    assert test.names == unlabelled[1].names, "the test images depend on neither `normal` nor `train_n`"
    assert not set(train.names) & {name.replace("test_", "train_") for name in test.names}


def test_the_spec_rebuilds_the_same_dataset():
    dataset = xgen.dataset("dsprites:normal=ellipse,train_n=20,test_n=10,split_seed=3")
    rebuilt = xgen.dataset(dataset.spec())
    assert rebuilt.config() == dataset.config()
    assert rebuilt.test().names == dataset.test().names
    assert xgen.dataset(xgen.dataset("dsprites").spec()).config() == xgen.dataset("dsprites").config()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("dsprites:hart", r"dsprites has no shape 'hart'; set normal to .* Did you mean 'heart'\?"),
        ("dsprites:normal=circle", r"no shape 'circle'.* Available: ellipse, heart, square\."),
        ("dsprites:train_n=0", r"train_n >= 1 and test_n >= 1"),
        ("dsprites:train_n=ten", r"option 'train_n' of dataset 'dsprites' got 'ten': expected an integer"),
        ("dsprites:train_n=700000,test_n=40000", r"train_n \+ test_n <= 737280 images, got 740000"),
        ("dsprites:square,train_n=245000,test_n=1000", r"with normal=square can give train_n \+ test_n <= 245760"),
        ("dsprites:trian_n=5", r"dataset 'dsprites' has no option 'trian_n'\. Did you mean 'train_n'\?"),
    ],
)
def test_bad_options_are_refused_with_one_sentence(spec, message):
    with pytest.raises(xgen.XgenError, match=message) as info:
        xgen.dataset(spec)
    assert "\n" not in str(info.value) and str(info.value).endswith((".", "?"))
