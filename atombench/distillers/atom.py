"""ATOM: Attention Mixer for Efficient Dataset Distillation (Khaki et al., CVPR Workshops 2024).

DataDAM's spatial attention matching **mixed with channel-wise attention matching** on the same intermediate
blocks, plus the lambda-weighted final-layer embedding matching (formulas in
:mod:`atombench.distillers.matching`)::

    L = w * sum_{k,l} [ w_s * D(k, a_s(f^l)) + w_c * D(k, a_c(f^l)) ] + w * lambda * sum_k D(k, e)

No ATOM code has been released and its equations could not be read (``docs/methods.md#atom``): the loss is
reconstructed from the abstract, third-party summaries and DataDAM's code, and every hyper-parameter is
inherited from DataDAM's paper (``docs/methods.md#atom-hyper-parameters``): 8000 iterations, 64 real images per
class, lr 1 momentum 0.5, lambda 0.01 below 64 px and 0.02 at 64 px (``task_balance: null``), powers 1 (the released DataDAM code; its table's 4 is
an unused signature default), equal mixing weights, real
initialisation, ConvNet-3 with instance norm, DSA. ``attention: channel`` is the channel-only variant of the
paper's ablations; ``attention: spatial`` reduces ATOM to DataDAM. The open questions: ``docs/open_questions.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ..config import check
from ..protocols import CIFAR_UNIT_ZCA, with_
from .datadam import DATADAM_PROTOCOL, AttentionMatching, AttentionMatchingConfig, chosen_layers, sq

#: ATOM's evaluation: DataDAM's code (inherited, as every ATOM setting: inferred), ZCA on [0, 1] CIFAR images
#: (ATOM's supplementary material) (``docs/evaluation_protocols.md#per-method``)
ATOM_PROTOCOL = with_(
    DATADAM_PROTOCOL, zca=CIFAR_UNIT_ZCA,
    sources=(("epochs", "inherited from DataDAM's code: 1800 (inferred; ATOM's own could not be read)"),
             ("batch_size", "inherited from DataDAM's code: 64 (inferred)"),
             ("lr", "inherited from DataDAM's code: 0.01 (inferred)"),
             ("augment", "ATOM supplementary material: DSA in evaluation"),
             ("checkpoint", "inherited from DataDAM's code (inferred; ATOM's reporting could not be read)"),
             ("zca", "ATOM supplementary material: Kornia ZCA on CIFAR-10/100 images in [0, 1]")))
from .matching import Stats


@dataclass
class ATOMConfig(AttentionMatchingConfig):
    """ATOM hyper-parameters (inherited from DataDAM's paper; see the module docstring)."""

    #: which attention terms are matched: both (ATOM), spatial only (= DataDAM) or channel only (ablation)
    attention: Literal["both", "spatial", "channel"] = "both"
    #: p of the spatial and channel attention maps: 1, DataDAM's released code (see ``DataDAMConfig``)
    spatial_power: float = 1.0
    channel_power: float = 1.0
    spatial_weight: float = 1.0
    channel_weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("spatial_power", "channel_power"):
            check(getattr(self, name) > 0, f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("spatial_weight", "channel_weight"):
            check(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")


class ATOMDistiller(AttentionMatching):
    """ATOM: spatial + channel attention matching plus embedding matching in random networks"""

    Config = ATOMConfig
    protocol = ATOM_PROTOCOL

    def __init__(self, config=None):
        super().__init__(config)
        self.uses_spatial = self.config.attention in ("both", "spatial")
        self.uses_channel = self.config.attention in ("both", "channel")

    def layers(self, num_maps: int) -> list[int]:
        return chosen_layers(self.config.layers, num_maps)

    def powers(self) -> tuple[float, float]:
        return self.config.spatial_power, self.config.channel_power

    def loss_from_stats(self, real: Stats, syn: Stats) -> torch.Tensor:
        cfg = self.config
        zero = torch.zeros((), device=syn.embed.device)
        spatial = sum((sq(r, s) for r, s in zip(real.spatial, syn.spatial)), zero)
        channel = sum((sq(r, s) for r, s in zip(real.channel, syn.channel)), zero)
        attention = cfg.spatial_weight * spatial + cfg.channel_weight * channel
        return cfg.layer_weight * attention + cfg.layer_weight * self.lam * sq(real.embed, syn.embed)
