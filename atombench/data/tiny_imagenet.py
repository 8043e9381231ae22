"""Tiny-ImageNet-200 from its standard folder layout under ``root`` (64x64 RGB, 200 classes).

``<root>/tiny-imagenet-200/``: ``wnids.txt`` (the classes, in label order), optional ``words.txt`` (readable
names), ``train/<wnid>/images/*.JPEG`` (500 per class) and ``val/images/*.JPEG`` with ``val/val_annotations.txt``
(file, wnid, box), used as the test set as in the DM/MTT/DataDAM code. Normalisation as the reference (ImageNet
mean/std). torchvision has no downloader for it: unpack ``tiny-imagenet-200.zip`` under ``root``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..errors import DataError
from .base import RealData, default_root, expand, normalise

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


@dataclass
class TinyImageNetConfig:
    root: Optional[str] = None
    download: bool = False


def _read(paths: list[Path]) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    out = np.empty((len(paths), 64, 64, 3), dtype=np.uint8)
    for i, p in enumerate(paths):
        try:
            with Image.open(p) as im:
                im = im.convert("RGB")
                if im.size != (64, 64):
                    im = im.resize((64, 64))
                out[i] = np.asarray(im)
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"dataset 'tiny_imagenet': could not read {p} ({type(exc).__name__}: {exc}); the "
                            f"file looks truncated or corrupt: unpack tiny-imagenet-200.zip again") from exc
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)


class TinyImageNet:
    """Tiny-ImageNet-200 (64x64 RGB, 200 classes) from the standard folder layout under root"""

    description = "Tiny-ImageNet-200 (64x64 RGB, 200 classes) from the standard folder layout under root"
    Config = TinyImageNetConfig

    @classmethod
    def load(cls, cfg: TinyImageNetConfig) -> RealData:
        root = expand(cfg.root) if cfg.root else default_root()
        base = root / "tiny-imagenet-200"
        if cfg.download:
            raise DataError("dataset 'tiny_imagenet': there is no downloader for Tiny-ImageNet; download "
                            f"tiny-imagenet-200.zip yourself, unpack it under {root} and set download: false")
        wnids_file = base / "wnids.txt"
        if not wnids_file.is_file():
            raise DataError(f"dataset 'tiny_imagenet': {wnids_file} not found; unpack tiny-imagenet-200.zip under "
                            f"{root} (so that {base}/train and {base}/val exist)")
        wnids = [w.strip() for w in wnids_file.read_text().split() if w.strip()]
        label = {w: i for i, w in enumerate(wnids)}
        names = {w: w for w in wnids}
        words = base / "words.txt"
        if words.is_file():
            for line in words.read_text(errors="replace").splitlines():
                wnid, _, text = line.partition("\t")
                if wnid in names:
                    names[wnid] = text.split(",")[0].strip() or wnid
        train_paths, train_y = [], []
        for w in wnids:
            files = sorted((base / "train" / w / "images").glob("*.JPEG"))
            if not files:
                raise DataError(f"dataset 'tiny_imagenet': no images in {base / 'train' / w / 'images'}; the "
                                f"unpacked archive is incomplete: unpack tiny-imagenet-200.zip again")
            train_paths += files
            train_y += [label[w]] * len(files)
        ann = base / "val" / "val_annotations.txt"
        if not ann.is_file():
            raise DataError(f"dataset 'tiny_imagenet': {ann} not found; unpack tiny-imagenet-200.zip again")
        test_paths, test_y = [], []
        for line in ann.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 2 and parts[1] in label:
                test_paths.append(base / "val" / "images" / parts[0])
                test_y.append(label[parts[1]])
        return RealData("tiny_imagenet", normalise(_read(train_paths), MEAN, STD), torch.tensor(train_y),
                        normalise(_read(test_paths), MEAN, STD), torch.tensor(test_y),
                        [names[w] for w in wnids], MEAN, STD, options={"root": str(root)})
