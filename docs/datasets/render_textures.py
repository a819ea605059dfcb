"""Render docs/datasets/textures-examples.png: per category, a good test crop and one crop of each defect type (top
row), and the same crops with their masks in red (bottom row). Run: python docs/datasets/render_textures.py"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

import xgen

SCALE = 2
GAP = 6


def tile(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """image: (H, W) in [0, 1]; mask: (H, W) in {0, 1} or None -> (H, W, 3) uint8, masked pixels tinted red."""
    rgb = np.repeat(image[..., None], 3, axis=-1)
    if mask is not None:
        rgb = np.where(mask[..., None] > 0, 0.4 * rgb + 0.6 * np.array([1.0, 0.0, 0.0]), rgb)
    return (rgb * 255 + 0.5).astype(np.uint8)


def render() -> Image.Image:
    rows = []
    for category in ("brick", "grass", "gravel"):
        test = xgen.dataset(f"textures:{category},train_n=1,test_n=12").test()
        first = [int((test.classes == k).nonzero()[0]) for k in sorted(test.class_names)]
        for masked in (False, True):
            tiles = [tile(test.images[i, 0].numpy(), test.masks[i].numpy() if masked else None) for i in first]
            rows.append(tiles)
    side = rows[0][0].shape[0]
    step = side + GAP
    sheet = np.full((len(rows) * step - GAP, len(rows[0]) * step - GAP, 3), 255, dtype=np.uint8)
    for r, tiles in enumerate(rows):
        top = r * step
        for c, picture in enumerate(tiles):
            sheet[top : top + side, c * step : c * step + side] = picture
    picture = Image.fromarray(sheet).resize((sheet.shape[1] * SCALE, sheet.shape[0] * SCALE), Image.NEAREST)
    return picture.quantize(colors=128, method=Image.Quantize.MEDIANCUT)


if __name__ == "__main__":
    out = Path(__file__).with_name("textures-examples.png")
    render().save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)")
