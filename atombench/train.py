"""The evaluation protocol: train a freshly initialised model on a (synthetic) set, test it on the real test set.

Follows ``evaluate_synset`` of the DC/DM/DataDAM code (reference section 5): SGD with lr 0.01, momentum 0.9,
weight decay 5e-4, cross-entropy on hard labels, shuffled mini-batches; ``epochs + 1`` passes, and after pass
``epochs // 2 + 1`` the learning rate is multiplied by 0.1 and the optimiser re-created (which also clears the
momentum buffers), exactly as the reference does. Testing uses ``net.eval()``, no augmentation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .config import check

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass
class TrainConfig:
    """Evaluation training. Defaults: DM/DSA protocol (1000 epochs, batch 256) [reference section 5];
    the DataDAM code uses 1800 epochs with batch 64."""

    epochs: int = 1000
    batch_size: int = 256
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    #: lr x0.1 after pass ``epochs // 2 + 1`` (reference); false keeps the lr constant
    lr_decay: bool = True
    test_batch_size: int = 256
    #: augmentation of training batches: DSA per-sample (DSA/DM/DataDAM/ATOM protocol), none, or auto = DSA for
    #: the distillers whose papers evaluate with it (``Distiller.eval_with_dsa``) and none for the others
    augment: Literal["auto", "none", "dsa"] = "auto"
    dsa_strategy: str = "color_crop_cutout_flip_scale_rotate"

    def __post_init__(self) -> None:
        check(self.epochs >= 0, f"epochs must be >= 0, got {self.epochs}")
        check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        check(self.test_batch_size >= 1, f"test_batch_size must be >= 1, got {self.test_batch_size}")
        check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        check(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")


def _sgd(net: nn.Module, cfg: TrainConfig, lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(net.parameters(), lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def train_model(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig,
                generator: torch.Generator, augment: Optional[Augment] = None) -> list[float]:
    """Train ``net`` in place on ``images``/``labels`` (already on the net's device); returns per-pass losses."""
    device = images.device
    net.train()
    lr = cfg.lr
    opt = _sgd(net, cfg, lr)
    decay_after = cfg.epochs // 2 + 1
    n = len(images)
    losses = []
    for ep in range(cfg.epochs + 1):
        perm = torch.randperm(n, generator=generator).to(device)
        total, count = 0.0, 0
        for start in range(0, n, cfg.batch_size):
            idx = perm[start:start + cfg.batch_size]
            x, y = images[idx], labels[idx]
            if augment is not None:
                x = augment(x, generator)
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        losses.append(total / max(count, 1))
        if cfg.lr_decay and ep == decay_after:
            lr *= 0.1
            opt = _sgd(net, cfg, lr)
    return losses


@torch.no_grad()
def evaluate(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256,
             device: torch.device | str = "cpu") -> dict:
    """Top-1 (and top-5 when there are more than 10 classes) accuracy on ``images``, in percent."""
    net.eval()
    correct1 = correct5 = 0
    num_classes = None
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(device, non_blocking=True)
        y = labels[start:start + batch_size].to(device, non_blocking=True)
        logits = net(x)
        num_classes = logits.shape[1]
        correct1 += int((logits.argmax(1) == y).sum())
        if num_classes > 10:
            top5 = logits.topk(5, dim=1).indices
            correct5 += int((top5 == y[:, None]).any(1).sum())
    n = max(len(images), 1)
    return {"accuracy": 100.0 * correct1 / n,
            "top5_accuracy": 100.0 * correct5 / n if num_classes and num_classes > 10 else None}
