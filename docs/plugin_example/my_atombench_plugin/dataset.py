"""A dataset plug-in: three Gaussian blobs drawn as small grey images, generated in memory or read from a file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from atombench.config import check
from atombench.data.base import RealData, default_root, normalise
from atombench.errors import DataError


@dataclass
class BlobsConfig:
    """The options a suite gives as ``datasets: [{name: blobs, options: {...}}]``."""

    per_class: int = 30           # training images per class (the test set has 10 per class)
    size: int = 8                 # images are 1 x size x size
    source: str = "generate"      # generate | file (read <root>/blobs.npz)
    root: str | None = None       # None: $ATOMBENCH_DATA, else ~/.cache/atombench/data

    def __post_init__(self):
        check(self.per_class >= 1, f"per_class must be >= 1, got {self.per_class}")
        check(self.size >= 4, f"size must be >= 4, got {self.size}")
        check(self.source in ("generate", "file"), f"source must be generate or file, got {self.source!r}")


class Blobs:
    """Three Gaussian blobs as 1x8x8 grey images (an example dataset plug-in)."""

    Config = BlobsConfig
    #: the name in the report's tables and plots (default: the registered name, blobs)
    display_name = "Blobs"
    CLASSES = ["left", "centre", "right"]     # class names; label c is CLASSES[c]
    MEAN, STD = [0.2], [0.3]                  # per channel, of the pixels in [0, 1]

    @classmethod
    def load(cls, cfg: BlobsConfig) -> RealData:
        if cfg.source == "file":
            path = Path(cfg.root).expanduser() if cfg.root else default_root()
            path = path / "blobs.npz"
            if not path.is_file():  # a user error: one line naming the path and how to get the data
                raise DataError(f"blobs: {path} not found; write it with numpy.savez(path, train_x=..., "
                                f"train_y=..., test_x=..., test_y=...) (images in [0, 1]) or use source: generate")
            with np.load(path) as f:
                train_x, train_y, test_x, test_y = (torch.from_numpy(f[k]) for k in
                                                    ("train_x", "train_y", "test_x", "test_y"))
        else:
            train_x, train_y = cls.generate(cfg.per_class, cfg.size, seed=0)
            test_x, test_y = cls.generate(10, cfg.size, seed=1)
        return RealData(
            name="blobs",
            # float32 [N, C, H, W], normalised: (x - mean) / std per channel, from pixels in [0, 1]
            train_x=normalise(train_x, cls.MEAN, cls.STD), train_y=train_y.long(),
            test_x=normalise(test_x, cls.MEAN, cls.STD), test_y=test_y.long(),
            classes=cls.CLASSES, mean=cls.MEAN, std=cls.STD,
            # everything that changes the data: it enters the cache keys of synthetic sets and results
            options={"per_class": cfg.per_class, "size": cfg.size, "source": cfg.source,
                     **({"root": str(cfg.root)} if cfg.source == "file" else {})},
        )

    @classmethod
    def generate(cls, per_class: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``per_class`` images of each class in [0, 1] ``[N, 1, size, size]`` and their labels, seeded."""
        g = torch.Generator().manual_seed(seed)
        ys = torch.arange(len(cls.CLASSES)).repeat_interleave(per_class)
        grid = torch.arange(size, dtype=torch.float32)
        centre_x = (ys.float() + 1) * size / (len(cls.CLASSES) + 1) + torch.randn(len(ys), generator=g)
        centre_y = size / 2 + torch.randn(len(ys), generator=g)
        dx = grid.view(1, 1, size) - centre_x.view(-1, 1, 1)
        dy = grid.view(1, size, 1) - centre_y.view(-1, 1, 1)
        x = torch.exp(-(dx ** 2 + dy ** 2) / (2 * (size / 6) ** 2))
        x = (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)
        return x.unsqueeze(1), ys
