"""DM: Distribution Matching (Zhao & Bilen, WACV 2023) -- mean final embeddings in random networks.

Defaults from the DM code and paper (``docs/methods.md#dm``): 20000 iterations, 256 real images per class,
real initialisation, image SGD lr 1 (10 above IPC 50), momentum 0.5, DSA ``color_crop_cutout_flip_scale_rotate``,
ConvNet-3 with instance norm.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .matching import FeatureMatchingDistiller, MatchingConfig, Stats


@dataclass
class DMConfig(MatchingConfig):
    """DM hyper-parameters; every default is the DM code's (``main_DM.py``)."""


class DMDistiller(FeatureMatchingDistiller):
    """DM: match per-class mean embeddings of real and synthetic images in fresh random ConvNets"""

    Config = DMConfig

    def loss_from_stats(self, real: Stats, syn: Stats) -> torch.Tensor:
        return ((real.embed - syn.embed) ** 2).sum()
