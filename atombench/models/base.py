"""The one documented hook through which distillers see inside a network: :meth:`FeatureNet.extract`.

Every model atombench builds (its own ConvNet family, the CIFAR-size AlexNet/VGG/ResNet and any timm model) is
a :class:`FeatureNet`:

* ``forward(x)`` returns logits (what training and evaluation use);
* ``extract(x)`` returns :class:`Features`: ``maps``, the intermediate feature maps ``[B, C_l, H_l, W_l]`` of
  each block in order (for the ConvNet family: the post-activation, pre-pooling output of every block, the
  layers DataDAM/ATOM hook), and ``embedding``, the flattened final features ``[B, D]`` fed to the classifier
  (what DM's and DataDAM's embedding terms match);
* ``classify(embedding)`` maps an embedding to logits, so ``forward(x) == classify(extract(x).embedding)``.

A model plug-in is a :class:`ModelFamily`: a ``Config`` dataclass of options and ``build(config, channels,
num_classes, image_size) -> FeatureNet``. Named variants (``convnet_bn``) are the same family with preset
options; a namespace plug-in (``timm``) has ``resolve(rest) -> ModelFamily``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from .. import config as cfgmod


def reinitialise_(net: nn.Module) -> nn.Module:
    """Draw ``net``'s weights afresh in place (every module's ``reset_parameters``, in the order the modules were
    built): the parameters keep their storage, so a captured CUDA graph may do it. Reproduces building the
    network only where construction initialises through ``reset_parameters`` alone (ConvNet does)."""
    for m in net.modules():
        reset = getattr(m, "reset_parameters", None)
        if callable(reset):
            reset()
    return net


@dataclass
class Features:
    maps: list[torch.Tensor]
    embedding: torch.Tensor


class FeatureNet(nn.Module):
    """Base class of every atombench model; subclasses implement :meth:`extract` and :meth:`classify`."""

    def extract(self, x: torch.Tensor) -> Features:  # pragma: no cover - abstract
        raise NotImplementedError

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.extract(x).embedding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.extract(x).embedding)


@dataclass
class NoOptions:
    """A model with no options."""


class ModelFamily:
    """A registered model: ``builder(cfg, channels, num_classes, image_size)`` plus a typed ``Config``.

    ``presets`` are option values fixed by a named variant; the suite may still override any option.
    """

    def __init__(self, builder: Callable[..., FeatureNet], config: type = NoOptions, description: str = "",
                 **presets: Any):
        self.builder = builder
        self.Config = config
        self.description = description
        self.presets = presets

    def variant(self, description: str, **presets: Any) -> "ModelFamily":
        return ModelFamily(self.builder, self.Config, description, **{**self.presets, **presets})

    def parse(self, options: dict | None, path: str = "", problems: list | None = None):
        data = {**self.presets, **(options or {})}
        if problems is None:
            return cfgmod.parse(self.Config, data, path)
        return cfgmod.collect(self.Config, data, path, problems)

    def build(self, cfg: Any, channels: int, num_classes: int, image_size: tuple[int, int]) -> FeatureNet:
        if isinstance(cfg, dict) or cfg is None:
            cfg = self.parse(cfg)
        return self.builder(cfg, channels=channels, num_classes=num_classes, image_size=tuple(image_size))

    def config_dict(self, cfg: Any) -> dict:
        return cfgmod.to_dict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg or {})
