"""A model plug-in: a one-hidden-layer MLP family and a named variant of it."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from atombench.config import check
from atombench.models.base import Features, FeatureNet, ModelFamily


class TinyMLP(FeatureNet):
    def __init__(self, channels: int, num_classes: int, image_size: tuple[int, int], hidden: int):
        super().__init__()
        height, width = image_size                                   # (H, W)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(channels * height * width, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)

    def extract(self, x):
        # maps: the intermediate feature maps [B, C, H, W] (none here), embedding: [B, D] fed to classify
        return Features(maps=[], embedding=self.body(x))

    def classify(self, embedding):
        return self.head(embedding)


@dataclass
class TinyMLPConfig:
    hidden: int = 32

    def __post_init__(self):
        check(self.hidden >= 1, f"hidden must be >= 1, got {self.hidden}")


def build_tiny_mlp(cfg: TinyMLPConfig, channels: int, num_classes: int, image_size: tuple[int, int]) -> TinyMLP:
    return TinyMLP(channels, num_classes, image_size, cfg.hidden)


tiny_mlp = ModelFamily(build_tiny_mlp, TinyMLPConfig, "a one-hidden-layer MLP (an example plug-in)")
# a named variant: the same family with preset options; it gets a name only through its own entry point
small_mlp = tiny_mlp.variant("a narrower one-hidden-layer MLP (hidden: 8)", hidden=8)
