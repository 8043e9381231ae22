"""scikit-learn's embedded ``digits``: real 8x8 handwritten digits that need no download (1797 images).

A fixed, seeded, stratified train/test split (``test_fraction`` 0.3, ``split_seed`` 0) and an optional bilinear
resize (``size: 16`` or ``32``). The reference gives no normalisation constants for this set: the mean and
std are computed on the (resized) training images in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..config import check
from .base import RealData, normalise


@dataclass
class DigitsConfig:
    size: Optional[int] = None
    test_fraction: float = 0.3
    split_seed: int = 0

    def __post_init__(self) -> None:
        check(self.size is None or 4 <= self.size <= 256, f"size must be from 4 to 256, got {self.size}")
        # a stratified split needs an image of every class on each side: 10 of the 1,797 images at least
        low = 10 / 1797
        check(low <= self.test_fraction <= 1 - low, f"test_fraction must leave each split an image of every class: "
                                                     f"from {low:.3f} to {1 - low:.3f}, got {self.test_fraction}")
        check(0 <= self.split_seed < 2 ** 32, f"split_seed must be from 0 to 2**32 - 1, got {self.split_seed}")


class Digits:
    """scikit-learn's embedded 8x8 handwritten digits (10 classes, no download), optionally resized"""

    description = "scikit-learn's embedded 8x8 handwritten digits (10 classes, no download), optionally resized"
    Config = DigitsConfig

    @classmethod
    def load(cls, cfg: DigitsConfig) -> RealData:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        raw = load_digits()
        x = torch.tensor(raw.data, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
        y = torch.tensor(raw.target, dtype=torch.int64)
        if cfg.size is not None and cfg.size != 8:
            x = F.interpolate(x, size=(cfg.size, cfg.size), mode="bilinear", align_corners=False)
        idx_train, idx_test = train_test_split(np.arange(len(y)), test_size=cfg.test_fraction,
                                               stratify=raw.target, random_state=cfg.split_seed)
        idx_train, idx_test = torch.tensor(np.sort(idx_train)), torch.tensor(np.sort(idx_test))
        mean, std = [float(x[idx_train].mean())], [float(x[idx_train].std())]
        return RealData("digits", normalise(x[idx_train], mean, std), y[idx_train],
                        normalise(x[idx_test], mean, std), y[idx_test], [str(i) for i in range(10)], mean, std,
                        options={"size": cfg.size, "test_fraction": cfg.test_fraction, "split_seed": cfg.split_seed},
                        tags={"digits": True})
