"""Coreset baselines: real images selected per class (``random``, ``herding``).

These are the coreset rows of the DC/DM/DataDAM/ATOM tables: the synthetic set *is* a subset of the real
training set, so IPC cannot exceed the smallest class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from ..config import check
from ..data.base import RealData
from ..train import TrainConfig, train_model
from .base import DistillContext, Distiller, class_balanced_labels


@dataclass
class RandomConfig:
    """Random selection has no hyper-parameters; the seed of the run picks the images."""


class RandomDistiller(Distiller):
    """Random real images per class (seeded): the coreset baseline every table starts with."""

    Config = RandomConfig

    def distill(self, data: RealData, ipc: int, ctx: DistillContext):
        picks = [data.class_indices[c][torch.randperm(len(data.class_indices[c]), generator=ctx.generator)[:ipc]]
                 for c in range(data.num_classes)]
        index = torch.cat(picks)
        return data.train_x[index], class_balanced_labels(data.num_classes, ipc), {"indices": index.tolist()}


@dataclass
class HerdingConfig:
    """Herding (Welling 2009; used as a coreset baseline by Rebuffi et al. 2017 and the DC/DM papers).

    The DC paper selects in the embedding of a ConvNet trained on the whole training set [recall; the DC code
    release has no herding script], hence ``features: trained``. ``train_epochs`` is not given by the papers:
    20 passes of the evaluation protocol (SGD 0.01, momentum 0.9, batch 256) is our choice. ``random`` uses an
    untrained network of the same architecture, ``pixels`` the raw normalised pixels.
    """

    features: Literal["trained", "random", "pixels"] = "trained"
    net: str = "convnet"
    net_options: dict = field(default_factory=dict)
    train_epochs: int = 20
    batch_size: int = 256

    def __post_init__(self) -> None:
        check(self.train_epochs >= 0, f"train_epochs must be >= 0, got {self.train_epochs}")
        check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")


def herd(features: torch.Tensor, k: int) -> torch.Tensor:
    """Greedy herding: indices whose running mean stays closest to the mean of ``features`` ``[N, D]``."""
    mu = features.mean(0)
    chosen: list[int] = []
    running = torch.zeros_like(mu)
    available = torch.ones(len(features), dtype=torch.bool, device=features.device)
    for t in range(1, k + 1):
        dist = ((mu - (running + features) / t) ** 2).sum(1)
        dist[~available] = float("inf")
        i = int(dist.argmin())
        chosen.append(i)
        available[i] = False
        running += features[i]
    return torch.tensor(chosen, dtype=torch.long)


class HerdingDistiller(Distiller):
    """Herding coreset: per class, greedily pick images whose feature mean tracks the class mean."""

    Config = HerdingConfig
    # features depend only on (data, config, seed): computing them once serves every IPC of a run
    _feature_cache: dict = {}

    def _features(self, data: RealData, ctx: DistillContext) -> torch.Tensor:
        cfg = self.config
        key = (data.fingerprint, repr(cfg), ctx.seed)
        if key in self._feature_cache:
            return self._feature_cache[key]
        if cfg.features == "pixels":
            feats = data.train_x.flatten(1)
        else:
            net = ctx.fresh_net(cfg.net, cfg.net_options, data, frozen=False)
            if cfg.features == "trained":
                x, y = data.train_x.to(ctx.device), data.train_y.to(ctx.device)
                train_model(net, x, y, TrainConfig(epochs=cfg.train_epochs, batch_size=cfg.batch_size),
                            ctx.generator)
            net.eval()
            with torch.no_grad():
                feats = torch.cat([net.embed(data.train_x[i:i + 512].to(ctx.device)).cpu()
                                   for i in range(0, len(data.train_x), 512)])
        self._feature_cache.clear()  # keep one entry: features of big datasets are large
        self._feature_cache[key] = feats
        return feats

    def distill(self, data: RealData, ipc: int, ctx: DistillContext):
        feats = self._features(data, ctx)
        index = torch.cat([data.class_indices[c][herd(feats[data.class_indices[c]], ipc)]
                           for c in range(data.num_classes)])
        return data.train_x[index], class_balanced_labels(data.num_classes, ipc), {"indices": index.tolist()}
