"""What a dataset plug-in yields: :class:`RealData`, normalised train/test tensors plus their description.

A dataset plug-in is a class with a ``Config`` dataclass (its options, e.g. ``root``/``download``/``size``)
and a ``load(config) -> RealData`` class method, registered in the entry-point group ``atombench.datasets``.
Images are float32 ``[N, C, H, W]`` already normalised with the dataset's mean/std (the space in which
distillers optimise and models train, as in the reference code), labels are int64 ``[N]``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Optional, Sequence

import torch

from ..errors import DataError

#: dataset options that say where the data lies or how it is fetched, not what it is: left out of the
#: :attr:`RealData.fingerprint` (so of every key), so that a results folder stays valid on a machine whose data lies
#: elsewhere (a cluster node, a GPU machine, another ``$ATOMBENCH_DATA``); the fingerprint samples the data itself
LOCATION_OPTIONS = frozenset({"root", "download", "verify"})


@dataclass
class RealData:
    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: Sequence[str]
    mean: Sequence[float]
    std: Sequence[float]
    #: the dataset's resolved options, for cache keys and metadata
    options: dict = field(default_factory=dict)
    #: dataset-specific facts distillers may need (e.g. ``digits: True`` drops flip from DSA)
    tags: dict = field(default_factory=dict)
    #: the ZCA whitening applied to the images, when the suite asked for it (:mod:`atombench.data.zca`)
    zca: Optional[object] = None

    def __post_init__(self) -> None:
        if self.train_x.ndim != 4 or self.test_x.ndim != 4:
            raise DataError(f"dataset '{self.name}': images must be [N, C, H, W], got "
                            f"{tuple(self.train_x.shape)} and {tuple(self.test_x.shape)}")
        if len(self.train_x) != len(self.train_y) or len(self.test_x) != len(self.test_y):
            raise DataError(f"dataset '{self.name}': image and label counts differ")

    @property
    def channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.train_x.shape[2]), int(self.train_x.shape[3])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @cached_property
    def class_indices(self) -> list[torch.Tensor]:
        """Indices of the training images of each class."""
        return [torch.nonzero(self.train_y == c, as_tuple=True)[0] for c in range(self.num_classes)]

    @property
    def min_class_size(self) -> int:
        return min(len(i) for i in self.class_indices)

    def sample_class(self, c: int, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` random training images of class ``c`` (without replacement when the class is big enough)."""
        idx = self.class_indices[c]
        if n <= len(idx):
            pick = idx[torch.randperm(len(idx), generator=generator)[:n]]
        else:
            pick = idx[torch.randint(len(idx), (n,), generator=generator)]
        return self.train_x[pick]

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return x * std + mean

    @cached_property
    def fingerprint(self) -> str:
        """A short hash of the name, the options that say what the data is (not :data:`LOCATION_OPTIONS`) and a
        sample of the data (changes when the data does, not when it moves)."""
        h = hashlib.sha256()
        h.update(self.name.encode())
        h.update(repr(sorted((k, v) for k, v in self.options.items() if k not in LOCATION_OPTIONS)).encode())
        for t in (self.train_x, self.train_y, self.test_x, self.test_y):
            h.update(repr(tuple(t.shape)).encode())
            flat = t.reshape(-1)
            h.update(flat[:: max(1, flat.numel() // 4096)].contiguous().cpu().numpy().tobytes())
        return h.hexdigest()[:16]


class ClassSampler:
    """``n`` distinct random training indices of every class, drawn with fixed-shape operations on ``device``
    (random keys, the ``n`` smallest per class): no read-back to the host, so a CUDA graph can capture it. Calls
    draw from the device's default generator."""

    def __init__(self, class_indices: list[torch.Tensor], n: int, device: torch.device | str):
        sizes = [len(i) for i in class_indices]
        if n > min(sizes):
            raise ValueError(f"{n} images per class asked, the smallest class has {min(sizes)}")
        width = max(sizes)
        self.n = n
        self.table = torch.zeros(len(sizes), width, dtype=torch.long)
        self.padding = torch.ones(len(sizes), width, dtype=torch.bool)
        for c, idx in enumerate(class_indices):
            self.table[c, :len(idx)] = idx
            self.padding[c, :len(idx)] = False
        self.table, self.padding = self.table.to(device), self.padding.to(device)

    def __call__(self) -> torch.Tensor:
        """``[k * n]`` indices, class by class."""
        keys = torch.rand(self.table.shape, device=self.table.device).masked_fill_(self.padding, 2.0)
        return self.table.gather(1, keys.topk(self.n, dim=1, largest=False, sorted=False).indices).flatten()


def normalise(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(x - mean) / std`` per channel for a float ``[N, C, H, W]`` tensor in [0, 1]."""
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x.float() - m) / s


def expand(path: str | Path, what: str = "root") -> Path:
    """``path`` with ``~`` expanded; ``~user`` of no such user is a :class:`DataError` naming ``what`` (pathlib
    raises a bare RuntimeError)."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        raise DataError(f"{what} {path}: no such user's home folder; write the path out") from None


def cache_root() -> Path:
    """Where atombench keeps what it computes once per machine: ``$ATOMBENCH_CACHE`` or ``~/.cache/atombench``;
    its ``decoded/`` (image folders' pixels) and ``zca/`` (fitted whitenings) may be deleted, they are computed
    again (``data/`` beside them is the default dataset root, :func:`default_root`, which is not a cache)."""
    import os

    env = os.environ.get("ATOMBENCH_CACHE")
    return expand(env, "$ATOMBENCH_CACHE") if env else Path.home() / ".cache" / "atombench"


def default_root() -> Path:
    """Where datasets live unless a suite says ``root:``: ``$ATOMBENCH_DATA`` or ``~/.cache/atombench/data``."""
    import os

    env = os.environ.get("ATOMBENCH_DATA")
    return expand(env, "$ATOMBENCH_DATA") if env else Path.home() / ".cache" / "atombench" / "data"
