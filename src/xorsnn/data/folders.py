"""ImageNet-style class-folder trees (ImageNet, miniImageNet): ``ROOT/train/<class>/*.jpg``, ``ROOT/val/<class>/*``.

Uses ``torchvision.datasets.ImageFolder`` and torchvision transforms when torchvision is
installed; otherwise a small Pillow-based reader with the same folder convention and the same
(resize, crop, flip, normalise) pipeline, so the layout works without torchvision.

Every split uses ``train/``'s class-to-index mapping; a ``val/`` folder with a class that
``train/`` lacks, or without one of ``train/``'s classes, is refused before any training, naming
the classes. The Pillow reader's augmentation draws from a stream per sample seeded by
``(seed, epoch, sample index)`` (:meth:`PillowImageFolder.set_augmentation`, called by the trainer
each epoch): independent of the worker and rank that loads the sample, and the same after ``--resume``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .base import DataBundle, DatasetError, DatasetInfo

__all__ = ["load_image_folder", "PillowImageFolder", "class_folders", "check_split_classes"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff"}


def class_folders(root: Path) -> list[str]:
    """Sorted names of the class folders of ``root`` (``DatasetError`` if there are none)."""
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise DatasetError(f"{root} contains no class folders (expected {root}/<class>/<image files>)")
    return classes


def check_split_classes(train_classes: list[str], split_dir: Path) -> None:
    """Refuse a split whose class folders differ from ``train/``'s, naming the unknown and missing ones."""
    found = set(class_folders(split_dir))
    unknown, missing = sorted(found - set(train_classes)), sorted(set(train_classes) - found)
    if unknown or missing:
        parts = ([f"unknown class(es) {unknown} (not in train/)"] if unknown else []) + \
                ([f"missing class(es) {missing} (present in train/)"] if missing else [])
        raise DatasetError(f"{split_dir} does not have train/'s {len(train_classes)} classes: {'; '.join(parts)}; "
                           "every split must hold the same class folders, as labels follow train/'s mapping")


class PillowImageFolder(Dataset):
    """``ROOT/<class>/<image>`` -> ``(float tensor [3, S, S], class index)`` with Pillow only.

    ``classes`` fixes the class-to-index mapping (default: ``root``'s sorted class folders); a class
    folder outside it is refused.
    """

    def __init__(self, root: Path, image_size: int, train: bool, seed: int = 0,
                 classes: list[str] | None = None) -> None:
        from PIL import Image  # noqa: F401 - fail early if Pillow is missing

        if classes is not None:
            check_split_classes(classes, root)
        self.classes = list(classes) if classes is not None else class_folders(root)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples = [(p, i) for i, c in enumerate(self.classes) for p in sorted((root / c).iterdir())
                        if p.suffix.lower() in _EXTS]
        if not self.samples:
            raise DatasetError(f"{root} contains no images with extensions {sorted(_EXTS)}")
        self.image_size, self.train = image_size, train
        # (seed, epoch) in shared memory, so DataLoader workers (persistent ones too) see set_augmentation
        self._aug = torch.tensor([seed, 0], dtype=torch.int64).share_memory_()

    def set_augmentation(self, seed: int, epoch: int) -> None:
        """Draw this epoch's augmentation from streams seeded by ``(seed, epoch, sample index)``."""
        self._aug[0], self._aug[1] = int(seed), int(epoch)

    def _rng(self, i: int) -> np.random.Generator:
        seed, epoch = (int(v) for v in self._aug.tolist())
        return np.random.default_rng([seed % 2**63, epoch % 2**63, int(i)])

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        path, label = self.samples[i]
        try:
            img = Image.open(path).convert("RGB")
        except Exception as exc:
            raise DatasetError(f"cannot read image {path}: {exc}") from None
        s = self.image_size
        if self.train:  # random-resized crop (scale 0.35-1) + flip
            rng = self._rng(i)
            w, h = img.size
            area = w * h * rng.uniform(0.35, 1.0)
            side = int(min(w, h, max(8, area**0.5)))
            x0, y0 = rng.integers(0, w - side + 1), rng.integers(0, h - side + 1)
            img = img.crop((x0, y0, x0 + side, y0 + side)).resize((s, s), Image.BILINEAR)
            if rng.random() < 0.5:
                img = img.transpose(Image.FLIP_LEFT_RIGHT)
        else:  # resize shorter side to s / 0.875, centre crop s
            w, h = img.size
            r = (s / 0.875) / min(w, h)
            img = img.resize((max(s, round(w * r)), max(s, round(h * r))), Image.BILINEAR)
            w, h = img.size
            img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
        m = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        sd = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        return (x - m) / sd, label


def _torchvision_folder(root: Path, image_size: int, train: bool, *, classes: list[str]) -> Dataset:
    """``torchvision.datasets.ImageFolder`` of ``root`` with ``classes``' mapping (checked by the caller)."""
    from torchvision import datasets, transforms

    norm = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    if train:
        tf = transforms.Compose([transforms.RandomResizedCrop(image_size), transforms.RandomHorizontalFlip(),
                                 transforms.ToTensor(), norm])
    else:
        tf = transforms.Compose([transforms.Resize(int(round(image_size / 0.875))), transforms.CenterCrop(image_size),
                                 transforms.ToTensor(), norm])

    class _FixedClasses(datasets.ImageFolder):  # train/'s mapping for every split
        def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
            return list(classes), {c: i for i, c in enumerate(classes)}

    return _FixedClasses(str(root), transform=tf)


def load_image_folder(root: str | Path, image_size: int = 224, name: str = "imagefolder",
                      backend: str = "auto") -> DataBundle:
    """A class-folder dataset with ``train/`` and ``val/`` (or ``test/``) sub-folders.

    Args:
        image_size: square crop size (224 for ImageNet, 84 for miniImageNet).
        backend: ``"auto"`` (torchvision if installed), ``"torchvision"`` or ``"pillow"``.
    """
    root = Path(root)
    train_dir = root / "train"
    test_dir = next((root / d for d in ("val", "test") if (root / d).is_dir()), None)
    if not train_dir.is_dir() or test_dir is None:
        raise DatasetError(f"{root} must contain train/ and val/ (or test/) class folders, e.g. "
                           f"{root}/train/<class>/<image>.jpg")
    use_tv = backend == "torchvision"
    if backend == "auto":
        try:
            import torchvision  # noqa: F401

            use_tv = True
        except ImportError:
            use_tv = False
    classes = class_folders(train_dir)
    check_split_classes(classes, test_dir)  # before reading any image: refused up front
    make = _torchvision_folder if use_tv else PillowImageFolder
    train = make(train_dir, image_size, True, classes=classes)
    test = make(test_dir, image_size, False, classes=classes)
    info = DatasetInfo(name=name, num_classes=len(classes), in_channels=3, image_size=(image_size, image_size),
                       mean=IMAGENET_MEAN, std=IMAGENET_STD, notes=f"class folders under {root}")
    return DataBundle(info, train, test)
