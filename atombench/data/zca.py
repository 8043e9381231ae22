"""ZCA whitening as a dataset transform (``zca:`` on a suite's dataset entry), in either of the references' spaces.

As the reference code does with ``kornia.enhance.ZCAWhitening(eps=0.1, compute_inv=True)``
(``docs/preprocessing.md#zca``): fitted once on the whole training set, then applied to the train and test
images (the fit is kept on disk, :func:`fit_cached`, so every process of a run whitens with the same matrix);
synthetic images live (and are optimised) in the whitened space, and :meth:`ZCA.inverse` maps them back to the
dataset's normalised space for display.

Two input spaces, ``kind``:

* ``unit_interval`` (default of ``zca: true``): the images in [0, 1], not mean/std-normalised, are whitened, as in
  MTT's code and ATOM's supplementary material (and so the space in which MTT's presets were tuned);
* ``normalised``: the mean/std-normalised tensors are whitened, as in DataDAM's code.

The two are not affine maps of each other: with ``eps`` added to the covariance's eigenvalues, the per-channel
scaling before the fit changes which directions ``eps`` damps, so low-variance directions come out several times
larger in one space than in the other (``tests/test_zca.py`` measures it).

The transform is ``(u - mean) @ W`` with ``W = U diag((S + eps)^-1/2) U^T`` where ``U S U^T`` is the unbiased
covariance of the flattened training images ``u`` (kornia's definition), computed in float64 with
``torch.linalg.eigh`` (no kornia dependency for one matrix function). For ``unit_interval``, ``u = x * std +
mean`` per channel (the dataset's normalisation undone) and :meth:`ZCA.inverse` re-applies it.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal, Optional, Sequence

import torch

Kind = Literal["unit_interval", "normalised"]
KINDS = ("unit_interval", "normalised")


@dataclass
class ZCA:
    mean: torch.Tensor  # [D]
    transform: torch.Tensor  # [D, D]
    inverse_transform: torch.Tensor  # [D, D]
    eps: float
    kind: str = "normalised"
    #: per-channel (std, mean) that map the normalised images to [0, 1] before whitening (``unit_interval``)
    scale: Optional[torch.Tensor] = None  # [C, 1, 1]
    shift: Optional[torch.Tensor] = None  # [C, 1, 1]

    @classmethod
    def fit(cls, x: torch.Tensor, eps: float = 0.1, kind: str = "normalised",
            data_mean: Sequence[float] | None = None, data_std: Sequence[float] | None = None) -> "ZCA":
        """Fit on ``x`` (normalised images ``[N, C, H, W]``); ``unit_interval`` needs the dataset's mean and std."""
        if kind not in KINDS:
            raise ValueError(f"ZCA kind must be one of {KINDS}, got {kind!r}")
        scale = shift = None
        if kind == "unit_interval":
            if data_mean is None or data_std is None:
                raise ValueError("unit_interval ZCA needs the dataset's mean and std")
            scale = torch.tensor(list(data_std), dtype=torch.float32).view(-1, 1, 1)
            shift = torch.tensor(list(data_mean), dtype=torch.float32).view(-1, 1, 1)
            x = x * scale + shift
        flat = x.reshape(len(x), -1).double()
        mean = flat.mean(0)
        centred = flat - mean
        cov = centred.T @ centred / (len(flat) - 1)
        s, u = torch.linalg.eigh(cov)
        s = s.clamp_min(0)
        w = (u * (s + eps).rsqrt()) @ u.T
        w_inv = (u * (s + eps).sqrt()) @ u.T
        return cls(mean.float(), w.float(), w_inv.float(), eps, kind, scale, shift)

    def __call__(self, x: torch.Tensor, batch: int = 4096) -> torch.Tensor:
        shape = x.shape
        if self.scale is not None:
            x = x * self.scale.to(x) + self.shift.to(x)
        flat = x.reshape(len(x), -1)
        out = torch.cat([(flat[i:i + batch] - self.mean) @ self.transform for i in range(0, len(flat), batch)]) \
            if len(flat) else flat
        return out.reshape(shape)

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Whitened images back to the dataset's normalised space."""
        shape = x.shape
        flat = x.reshape(len(x), -1).to(self.inverse_transform)
        out = (flat @ self.inverse_transform + self.mean).reshape(shape)
        if self.scale is not None:
            out = (out - self.shift.to(out)) / self.scale.to(out)
        return out


def cache_dir() -> Path:
    """Where fitted whitenings are kept: ``zca`` under :func:`~atombench.data.base.cache_root`
    (``$ATOMBENCH_CACHE``, ``~/.cache/atombench``), beside the decoded images of ``image_folder``."""
    from .base import cache_root

    return cache_root() / "zca"


#: bumped when :meth:`ZCA.fit` changes what it computes: part of the cache file's name, so older fits are not read
FIT_VERSION = 1


def fit_cached(key: str, x: torch.Tensor, eps: float = 0.1, kind: str = "normalised",
               data_mean: Sequence[float] | None = None, data_std: Sequence[float] | None = None,
               directory: Optional[Path] = None) -> ZCA:
    """:meth:`ZCA.fit`, read from ``directory`` (default :func:`cache_dir`) when an earlier process fitted the same
    ``key`` (whitened data's fingerprint: the data it is fitted on, ``kind`` and ``eps``), else fitted and written
    there. On CIFAR-sized images the fit (a 3,072 x 3,072 covariance over 50,000 images and its
    eigendecomposition) takes about 35 s of one core, which every worker of a run paid again; and since the
    eigendecomposition rounds differently with the thread count, workers with other threads whitened with slightly
    different matrices. A file is used only if its settings, its size and its mean (every pixel's, compared with
    ``x``'s: the fingerprint samples the data, the mean reads all of it) fit; else, or where it is damaged, the
    whitening is fitted again and the file replaced. An unwritable folder only costs the time."""
    path = Path(directory or cache_dir()) / f"{key}.v{FIT_VERSION}.pt"
    flat = x.reshape(len(x), -1)
    dim = int(flat.shape[1]) if len(x) else 0
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        z = ZCA(**{f.name: state[f.name] for f in fields(ZCA)})
        if z.kind == kind and float(z.eps) == float(eps) and tuple(z.transform.shape) == (dim, dim):
            mean = flat.mean(0, dtype=torch.float64)
            if z.scale is not None:  # unit_interval: the mean of the images in [0, 1]
                mean = (mean.view(z.scale.shape[0], -1) * z.scale.view(-1, 1).double()
                        + z.shift.view(-1, 1).double()).flatten()
            if torch.allclose(mean.float(), z.mean, atol=1e-4, rtol=0):
                return z
    except Exception:  # noqa: BLE001 - absent, damaged or from another layout: fit again
        pass
    z = ZCA.fit(x, eps, kind, data_mean, data_std)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        from ..runtime import clean_stale_tmp

        clean_stale_tmp(path.parent)  # what a writer killed mid-write left (a whitening's size each)
        torch.save({f.name: getattr(z, f.name) for f in fields(ZCA)}, tmp)
        os.replace(tmp, path)  # atomic: a concurrent reader sees the whole file or none
    except Exception:  # noqa: BLE001 - unwritable, full: torch.save raises RuntimeError as often as OSError
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
    return z
