"""DM: Distribution Matching (Zhao & Bilen, WACV 2023) -- mean final embeddings in random networks.

Defaults from the DM code and paper (``docs/methods.md#dm``): 20000 iterations, 256 real images per class,
real initialisation, image SGD lr 1 (10 above IPC 50), momentum 0.5, DSA ``color_crop_cutout_flip_scale_rotate``,
ConvNet-3 with instance norm.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..protocols import Protocol
from .matching import FeatureMatchingDistiller, MatchingConfig, Stats

#: DM's evaluation (``docs/evaluation_protocols.md#per-method``)
DM_PROTOCOL = Protocol(
    epochs=1000, batch_size=256, lr=0.01, lr_decay=True, augment="dsa", checkpoint="final",
    sources=(("epochs", "DM code main_DM.py: epoch_eval_train 1000"),
             ("batch_size", "DC/DM code: batch_train 256"),
             ("lr", "DC/DM code utils.evaluate_synset: lr_net 0.01, x0.1 after epoch Epoch//2+1"),
             ("augment", "DM code: DSA (dsa_strategy color_crop_cutout_flip_scale_rotate) when training"),
             ("checkpoint", "DM code: the final synthetic set")))


@dataclass
class DMConfig(MatchingConfig):
    """DM hyper-parameters; every default is the DM code's (``main_DM.py``)."""


class DMDistiller(FeatureMatchingDistiller):
    """DM: match per-class mean embeddings of real and synthetic images in fresh random ConvNets"""

    Config = DMConfig
    protocol = DM_PROTOCOL

    def loss_from_stats(self, real: Stats, syn: Stats) -> torch.Tensor:
        return ((real.embed - syn.embed) ** 2).sum()
