"""Views of a dataset that hide part of it: the architecture search's selection view.

Architecture search (:mod:`atombench.nas`) must not see the test split. :func:`selection_view` carves a seeded,
stratified validation split out of the training set and puts it in the test split's place, so that code which
"tests" a model during the search validates it, and the validation images are never distilled from or trained on.
"""

from __future__ import annotations

import torch

from .base import RealData


def holdout_split(labels: torch.Tensor, num_classes: int, fraction: float, seed: int) -> tuple[torch.Tensor,
                                                                                              torch.Tensor]:
    """``(train, validation)`` indices into a training set: ``round(fraction * n_c)`` images of every class c
    (at least 1, at most ``n_c - 1``) drawn with ``seed``, both sorted."""
    gen = torch.Generator().manual_seed(seed)
    val = []
    for c in range(num_classes):
        idx = torch.nonzero(labels == c, as_tuple=True)[0]
        k = min(max(1, round(fraction * len(idx))), len(idx) - 1)
        val.append(idx[torch.randperm(len(idx), generator=gen)[:k]])
    val_idx = torch.sort(torch.cat(val)).values
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[val_idx] = False
    return torch.nonzero(keep, as_tuple=True)[0], val_idx


def selection_view(real: RealData, fraction: float, seed: int) -> RealData:
    """The dataset as the search sees it: the training set without the validation split, and the validation
    split in the place of the test split."""
    train_idx, val_idx = holdout_split(real.train_y, real.num_classes, fraction, seed)
    view = RealData(real.name, real.train_x[train_idx], real.train_y[train_idx], real.train_x[val_idx],
                    real.train_y[val_idx], real.classes, real.mean, real.std,
                    options={**real.options, "nas_holdout": {"val_fraction": fraction, "split_seed": seed}},
                    tags=dict(real.tags), zca=real.zca)
    if real.zca is not None:  # whitened pixels round with the thread count and CPU: identify the view by its source
        from ..runtime import stable_hash

        view.__dict__["fingerprint"] = stable_hash(["view", real.fingerprint, float(fraction), int(seed)])
    return view
