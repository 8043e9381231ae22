"""The ConvNet family of the dataset-distillation literature (DC, DSA, DM, MTT, DataDAM, ATOM).

Exactly as in the reference code (``../shared/reference/atom_spec.md`` section 1.1): ``depth`` blocks of
``Conv2d(in, width, 3, padding=1)`` -> norm -> activation -> pool, then a linear head on the flattened features.

* ``instancenorm`` is ``GroupNorm(C, C, affine=True)`` (one group per channel), not ``nn.InstanceNorm2d``;
  ``batchnorm`` = ``BatchNorm2d``; ``layernorm`` = ``LayerNorm([C, H, W])``; ``groupnorm`` = ``GroupNorm(4, C)``.
* The first convolution pads by 3 instead of 1 when the input has one channel (the MNIST quirk: 28x28 inputs give
  a 32x32 first feature map, hence the same 128x4x4 embedding as CIFAR).
* ``extract(x).maps`` are the post-activation, pre-pooling block outputs; ``embedding`` is the flattened output
  after the last pool (2048-d for 32x32 inputs at depth 3, width 128).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..config import check
from .base import Features, FeatureNet, ModelFamily

Norm = Literal["instancenorm", "batchnorm", "layernorm", "groupnorm", "none"]
Act = Literal["relu", "leakyrelu", "sigmoid", "swish"]
Pool = Literal["avgpooling", "maxpooling", "none"]


@dataclass
class ConvNetConfig:
    """ConvNet options; defaults are ``get_default_convnet_setting()`` of the DC/DM code (width 128, depth 3,
    relu, instancenorm, avgpooling)."""

    width: int = 128
    depth: int = 3
    act: Act = "relu"
    norm: Norm = "instancenorm"
    pool: Pool = "avgpooling"

    def __post_init__(self) -> None:
        check(self.width >= 1, f"width must be >= 1, got {self.width}")
        check(self.depth >= 1, f"depth must be >= 1, got {self.depth}")


class Swish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


def _act(name: str) -> nn.Module:
    # ReLU is not in-place here: the block output is also returned as a feature map.
    return {"relu": nn.ReLU, "leakyrelu": lambda: nn.LeakyReLU(0.01), "sigmoid": nn.Sigmoid, "swish": Swish}[name]()


def _norm(name: str, c: int, h: int, w: int) -> nn.Module:
    if name == "instancenorm":
        return nn.GroupNorm(c, c, affine=True)
    if name == "batchnorm":
        return nn.BatchNorm2d(c, affine=True)
    if name == "layernorm":
        return nn.LayerNorm([c, h, w], elementwise_affine=True)
    if name == "groupnorm":
        return nn.GroupNorm(4, c, affine=True)
    return nn.Identity()


class ConvNet(FeatureNet):
    def __init__(self, cfg: ConvNetConfig, channels: int, num_classes: int, image_size: tuple[int, int]):
        super().__init__()
        self.cfg = cfg
        h, w = image_size
        blocks = []
        c_in = channels
        for d in range(cfg.depth):
            pad = 3 if (d == 0 and channels == 1) else 1
            h, w = h + 2 * pad - 2, w + 2 * pad - 2
            check(h >= 1 and w >= 1, f"ConvNet depth {cfg.depth} cannot take {image_size} inputs")
            conv = nn.Conv2d(c_in, cfg.width, kernel_size=3, padding=pad)
            blocks.append(nn.Sequential(conv, _norm(cfg.norm, cfg.width, h, w), _act(cfg.act)))
            c_in = cfg.width
            if cfg.pool != "none":
                check(h >= 2 and w >= 2, f"ConvNet depth {cfg.depth} pools {image_size} inputs below 1x1; "
                                         f"use a smaller depth or larger images")
                h, w = h // 2, w // 2
        self.blocks = nn.ModuleList(blocks)
        self.pool = {"avgpooling": nn.AvgPool2d(2, 2), "maxpooling": nn.MaxPool2d(2, 2), "none": nn.Identity()}[cfg.pool]
        self.embed_dim = cfg.width * h * w
        self.classifier = nn.Linear(self.embed_dim, num_classes)

    def extract(self, x: torch.Tensor) -> Features:
        maps = []
        for block in self.blocks:
            x = block(x)
            maps.append(x)
            x = self.pool(x)
        return Features(maps=maps, embedding=x.flatten(1))

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.classifier(embedding)


def _build(cfg: ConvNetConfig, channels: int, num_classes: int, image_size: tuple[int, int]) -> ConvNet:
    return ConvNet(cfg, channels, num_classes, image_size)


# Named variants, as ``get_network`` names them in the DC/DM code (ConvNetD4 -> convnet_d4, ...).
convnet = ModelFamily(_build, ConvNetConfig, "ConvNet-3 of DC/DM/DataDAM/ATOM: width 128, instancenorm, relu, avg-pool")
convnet_d1 = convnet.variant("ConvNet, depth 1", depth=1)
convnet_d2 = convnet.variant("ConvNet, depth 2", depth=2)
convnet_d3 = convnet.variant("ConvNet, depth 3", depth=3)
convnet_d4 = convnet.variant("ConvNet, depth 4 (the usual Tiny-ImageNet network)", depth=4)
convnet_w32 = convnet.variant("ConvNet, width 32", width=32)
convnet_w64 = convnet.variant("ConvNet, width 64", width=64)
convnet_w128 = convnet.variant("ConvNet, width 128", width=128)
convnet_w256 = convnet.variant("ConvNet, width 256", width=256)
convnet_as = convnet.variant("ConvNet, sigmoid activation", act="sigmoid")
convnet_ar = convnet.variant("ConvNet, relu activation", act="relu")
convnet_al = convnet.variant("ConvNet, leaky-relu activation", act="leakyrelu")
convnet_aswish = convnet.variant("ConvNet, swish activation", act="swish")
convnet_nn = convnet.variant("ConvNet, no normalisation", norm="none")
convnet_bn = convnet.variant("ConvNet, BatchNorm (the released DataDAM code's 'ConvNet')", norm="batchnorm")
convnet_ln = convnet.variant("ConvNet, LayerNorm", norm="layernorm")
convnet_in = convnet.variant("ConvNet, instance norm (GroupNorm(C, C))", norm="instancenorm")
convnet_gn = convnet.variant("ConvNet, GroupNorm(4, C)", norm="groupnorm")
convnet_np = convnet.variant("ConvNet, no pooling", pool="none")
convnet_mp = convnet.variant("ConvNet, max pooling", pool="maxpooling")
convnet_ap = convnet.variant("ConvNet, average pooling", pool="avgpooling")
convnet_aswish_bn = convnet.variant("ConvNet, swish activation and BatchNorm", act="swish", norm="batchnorm")
