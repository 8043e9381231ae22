"""ZCA whitening as a dataset transform (``zca: true`` on a suite's dataset entry).

As the reference code does with ``kornia.enhance.ZCAWhitening(eps=0.1, compute_inv=True)``
(``docs/preprocessing.md#zca``): fitted once on the whole training set, then applied to the train and test
images; synthetic images live (and are optimised) in the whitened space, and :meth:`ZCA.inverse` maps them back
for display.
Following DataDAM's code, whitening is applied on top of the mean/std-normalised tensors (MTT whitens
un-normalised [0, 1] images instead, and ATOM's supplementary material says the same for ATOM; the difference is
a per-channel affine map before fitting: ``docs/open_questions.md#zca-input-space``).

The transform is ``(x - mean) @ W`` with ``W = U diag((S + eps)^-1/2) U^T`` where ``U S U^T`` is the unbiased
covariance of the flattened training images, which is kornia's definition; computed in float64 with
``torch.linalg.eigh`` (no kornia dependency for one matrix function).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ZCA:
    mean: torch.Tensor  # [D]
    transform: torch.Tensor  # [D, D]
    inverse_transform: torch.Tensor  # [D, D]
    eps: float

    @classmethod
    def fit(cls, x: torch.Tensor, eps: float = 0.1) -> "ZCA":
        flat = x.reshape(len(x), -1).double()
        mean = flat.mean(0)
        centred = flat - mean
        cov = centred.T @ centred / (len(flat) - 1)
        s, u = torch.linalg.eigh(cov)
        s = s.clamp_min(0)
        w = (u * (s + eps).rsqrt()) @ u.T
        w_inv = (u * (s + eps).sqrt()) @ u.T
        return cls(mean.float(), w.float(), w_inv.float(), eps)

    def __call__(self, x: torch.Tensor, batch: int = 4096) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(len(x), -1)
        out = torch.cat([(flat[i:i + batch] - self.mean) @ self.transform for i in range(0, len(flat), batch)]) \
            if len(flat) else flat
        return out.reshape(shape)

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(len(x), -1).to(self.inverse_transform)
        return (flat @ self.inverse_transform + self.mean).reshape(shape)
