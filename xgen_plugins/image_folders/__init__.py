"""Datasets `folder:PATH` (any folder of images) and `mvtec:PATH` (one category of MVTec AD in its own layout)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

import xgen
from xgen import images
from xgen_plugins.image_folders._read import read_images, read_masks

MASK_FOLDERS = ("masks", "ground_truth")


@dataclass(frozen=True)
class _Entry:
    """One image file: its path, its ImageSet name, its class (0 = good) and its mask file, if any."""

    path: Path
    name: str
    cls: int
    mask: Path | None


def _check_common(dataset: xgen.Dataset) -> Path:
    """Validate the options both datasets share; return the root folder."""
    if not dataset.path:
        raise xgen.XgenError(f"dataset '{dataset.name}' needs a folder: write {dataset.name}:PATH.")
    root = Path(dataset.path).expanduser()
    if not root.is_dir():
        raise xgen.XgenError(f"dataset '{dataset.name}' got {root}, which is not a folder.")
    if dataset.size is not None and dataset.size < 1:
        raise xgen.XgenError(f"{dataset.name} option size must be a positive number of pixels, got {dataset.size}.")
    if dataset.channels not in (None, 1, 3):
        raise xgen.XgenError(f"{dataset.name} option channels must be 1 or 3, got {dataset.channels}.")
    return root


def _image_set(
    dataset: xgen.Dataset, root: Path, entries: list[_Entry], labelled: bool, masked: bool, class_names: list[str]
) -> xgen.ImageSet:
    """Decode `entries` into an ImageSet: images (N, C, H, W); labels, classes (N,) and masks (N, H, W) if asked.
    `class_names` names the class values in order (good first)."""
    paths = [e.path for e in entries]
    tensor, shapes = read_images(root, paths, dataset.size, dataset.channels)
    classes = torch.tensor([e.cls for e in entries], dtype=torch.int64)
    return xgen.ImageSet(
        images=tensor,
        labels=(classes != 0).long() if labelled else None,
        masks=read_masks(root, [e.mask for e in entries], paths, shapes, dataset.size) if masked else None,
        classes=classes if labelled else None,
        names=[e.name for e in entries],
        class_names=dict(enumerate(class_names)) if labelled else {},
    )


class Folder(xgen.Dataset):
    """Any folder of images, recursively and sorted. Without a `good/` sub-folder, train and test are all images,
    unlabelled. With one, `good/` is normal (label 0, class 0) and every other sub-folder is anomalous (label 1,
    classes 1, 2, ... in sorted order); masks come from `masks/` or `ground_truth/` mirroring
    `<subfolder>/<name>_mask.png` or `<subfolder>/<name>.png`. Train is the normal images, test all of them."""

    name = "folder"
    description = "Any folder of images; a good/ sub-folder makes it labelled (other sub-folders anomalous)."
    positional = "path"

    path: str = ""
    size: int | None = None
    channels: int | None = None

    def validate(self) -> None:
        self._root = _check_common(self)

    def _mask_folder(self) -> Path | None:
        return next((self._root / f for f in MASK_FOLDERS if (self._root / f).is_dir()), None)

    def _entries(self) -> tuple[list[_Entry], bool, bool, list[str]]:
        """Every image with its class and mask, whether the folder is labelled and masked, and the class names."""
        files = images.collect([self._root])
        if not (self._root / "good").is_dir():
            return [_Entry(f.path, f.stem.as_posix(), 0, None) for f in files], False, False, []
        files = [f for f in files if f.stem.parts[0] not in MASK_FOLDERS]
        loose = next((f for f in files if len(f.stem.parts) == 1), None)
        if loose is not None:
            raise xgen.XgenError(
                f"{loose.path.name} lies beside good/ in {self._root}; move it into good/ or a defect sub-folder."
            )
        defects = sorted({f.stem.parts[0] for f in files} - {"good"})
        number = {"good": 0} | {d: i + 1 for i, d in enumerate(defects)}
        mask_folder = self._mask_folder()
        entries = []
        for f in files:
            cls = number[f.stem.parts[0]]
            mask = None
            if mask_folder is not None and cls != 0:
                candidates = [
                    mask_folder / f.stem.parent / f"{f.stem.name}_mask.png",
                    mask_folder / f.stem.parent / f"{f.stem.name}.png",
                ]
                mask = next((c for c in candidates if c.is_file()), None)
                if mask is None:
                    shown = [c.relative_to(self._root).as_posix() for c in candidates]
                    raise xgen.XgenError(
                        f"{shown[0]} (or {shown[1]}) is missing for {f.path.relative_to(self._root).as_posix()}; "
                        f"add it, or remove {mask_folder.name}/ to use the folder without masks."
                    )
            entries.append(_Entry(f.path, f.stem.as_posix(), cls, mask))
        return entries, True, mask_folder is not None, ["good", *defects]

    def train(self) -> xgen.ImageSet:
        entries, labelled, masked, class_names = self._entries()
        if labelled:
            entries = [e for e in entries if e.cls == 0]
            if not entries:
                raise xgen.XgenError(f"{self._root / 'good'} holds no images; the normal training images go there.")
        return _image_set(self, self._root, entries, labelled, masked, class_names)

    def test(self) -> xgen.ImageSet:
        return _image_set(self, self._root, *self._entries())


class MVTec(xgen.Dataset):
    """One category of MVTec AD: `train/good/*.png`; `test/<defect>/*.png` (`good` is normal, label 0, class 0;
    other defects label 1 and classes 1, 2, ... in sorted order); `ground_truth/<defect>/<name>_mask.png`.
    Images are resized to size x size (bilinear, antialiased), masks with nearest neighbour (then {0, 1});
    `test/good` has zero masks. A mask must have its image's size. Names are `test/<defect>/<stem>`."""

    name = "mvtec"
    description = "One category of MVTec AD in its own layout: train/good, test/<defect>, ground_truth/<defect>."
    positional = "path"

    path: str = ""
    size: int = 256
    channels: int | None = None

    def validate(self) -> None:
        self._root = root = _check_common(self)
        for folder in ("train/good", "test"):
            if not (root / folder).is_dir():
                raise xgen.XgenError(
                    f"{folder} is missing in {root}; point mvtec: at one category folder, such as mvtec_ad/bottle."
                )
        self._train = [
            _Entry(f.path, f"train/good/{f.stem.as_posix()}", 0, None) for f in images.collect([root / "train/good"])
        ]
        tests = images.collect([root / "test"])
        loose = next((f for f in tests if len(f.stem.parts) != 2), None)
        if loose is not None:
            raise xgen.XgenError(
                f"{loose.path.relative_to(root).as_posix()} is not directly in a test/<defect> folder; "
                "MVTec test images are test/<defect>/<name>.png."
            )
        self.defects = ["good", *sorted({f.stem.parts[0] for f in tests} - {"good"})]
        number = {d: i for i, d in enumerate(self.defects)}
        self._test = []
        for f in tests:
            defect, stem = f.stem.parts
            mask = None
            if defect != "good":
                mask = root / "ground_truth" / defect / f"{stem}_mask.png"
                if not mask.is_file():
                    raise xgen.XgenError(
                        f"ground_truth/{defect}/{stem}_mask.png is missing for {f.path.relative_to(root).as_posix()}."
                    )
            self._test.append(_Entry(f.path, f"test/{f.stem.as_posix()}", number[defect], mask))

    def train(self) -> xgen.ImageSet:
        return _image_set(self, self._root, self._train, labelled=True, masked=True, class_names=self.defects)

    def test(self) -> xgen.ImageSet:
        return _image_set(self, self._root, self._test, labelled=True, masked=True, class_names=self.defects)


@xgen.hookimpl
def xgen_register_datasets(register):
    register(Folder)
    register(MVTec)
