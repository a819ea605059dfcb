"""Where the two most responding dimensions look (`xgen_plugins/factor_vae/regions.py`), and why claim (v) needs it
beside eq. 1."""

import pytest
import torch

from xgen_plugins.factor_vae.losses import top2_pair
from xgen_plugins.factor_vae.regions import region_iou, region_measures


def two_maps_on_one_square(background: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Maps (1, 3, 8, 8): dimensions 0 and 1 both respond on the square [2:6, 2:6] (1 on one half and 0.6 on the
    other, mirrored), `background` elsewhere; dimension 2 is nearly silent. The image: a bright square there."""
    maps = torch.full((1, 3, 8, 8), background)
    maps[0, 0, 2:6, 2:4], maps[0, 0, 2:6, 4:6] = 1.0, 0.6
    maps[0, 1, 2:6, 2:4], maps[0, 1, 2:6, 4:6] = 0.6, 1.0
    maps[0, 2] = 0.01
    image = torch.zeros(1, 1, 16, 16)
    image[0, 0, 4:12, 4:12] = 1.0
    return maps, image


def test_top2_picks_the_two_largest_maps_of_each_image():
    maps = torch.rand(4, 5, 6, 6) * 0.05 + torch.tensor([0.1, 1.0, 0.2, 0.9, 0.3])[None, :, None, None]
    picked = top2_pair(maps)
    assert torch.equal(picked, maps[:, [1, 3]])


def test_region_iou_is_one_for_identical_regions_and_zero_for_disjoint_ones():
    pair = torch.zeros(2, 2, 4, 4)
    pair[0, :, :2] = 1.0
    pair[1, 0, :2], pair[1, 1, 2:] = 1.0, 1.0
    assert region_iou(pair, 0.5).tolist() == [1.0, 0.0]


def test_eq_1_falls_when_the_same_maps_sharpen_and_the_region_iou_does_not():
    flat, image = two_maps_on_one_square(background=0.45)
    sharp, _ = two_maps_on_one_square(background=0.0)
    flat_m, sharp_m = region_measures(flat, image), region_measures(sharp, image)
    assert sharp_m["overlap_top2"] == pytest.approx(0.75)
    assert flat_m["overlap_top2"] > 0.9
    assert flat_m["region_iou_0.5"] == sharp_m["region_iou_0.5"] == 1.0
    assert sharp_m["region_on_sprite"] == 1.0 and sharp_m["mass_on_sprite"] == pytest.approx(1.0)
    assert sharp_m["sprite_area"] == pytest.approx(16 / 64)
    assert flat_m["map_mean"] > sharp_m["map_mean"]


def test_maps_on_different_parts_of_the_object_have_a_low_region_iou():
    maps, image = two_maps_on_one_square(background=0.0)
    maps[0, 0, 2:6, 4:6] = 0.0
    maps[0, 1, 2:6, 2:4] = 0.0
    measured = region_measures(maps, image)
    assert measured["region_iou_0.5"] == 0.0 and measured["overlap_top2"] == 0.0
    assert measured["region_on_sprite"] == 1.0
