"""MNIST, Fashion-MNIST, CIFAR-10, CIFAR-100 and SVHN through torchvision's own dataset classes.

Options: ``root`` (default ``$ATOMBENCH_DATA`` or ``~/.cache/atombench/data``) and ``download`` (torchvision's
downloader; needs internet). CIFAR and SVHN also take ``verify`` (default true): torchvision checks the md5 of
every file; ``verify: false`` only checks that the files exist (for copies re-packed by hand, and for the tests,
which write small files in the real on-disk formats). Normalisation constants are the reference's
(``docs/preprocessing.md#normalisation``).

MNIST and Fashion-MNIST are read by torchvision from ``<root>/<MNIST|FashionMNIST>/raw/`` (uncompressed idx
files). The upstream flat layout is also accepted: when ``<root>`` itself holds the four idx files (``.gz`` or
not) they are decompressed once into ``<root>/<MNIST|FashionMNIST>/raw/``. For Fashion-MNIST with no ``root``
given, Debian's package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``) is used when the default
root has no copy; its files are staged into the default root.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..errors import DataError
from .base import RealData, default_root, expand, normalise

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
GET_IT = "set `download: true` in the suite's dataset options (needs internet) or put the files there"


@dataclass
class TorchvisionConfig:
    root: Optional[str] = None
    download: bool = False


@dataclass
class VerifiedConfig:
    root: Optional[str] = None
    download: bool = False
    verify: bool = True


def _root(cfg) -> Path:
    return expand(cfg.root) if cfg.root else default_root()


def _to_tensor(images, layout: str) -> torch.Tensor:
    """uint8 images (NHW, NHWC or NCHW) -> float32 NCHW in [0, 1]."""
    x = torch.as_tensor(np.asarray(images))
    if layout == "NHW":
        x = x.unsqueeze(1)
    elif layout == "NHWC":
        x = x.permute(0, 3, 1, 2)
    return x.contiguous().float().div_(255.0)


def _wrap(name: str, what: Path, exc: Exception) -> DataError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DataError(f"dataset '{name}': could not read {what} ({type(exc).__name__}: {first}); the files look "
                     f"truncated or corrupt: delete them and download again")


# -- MNIST and Fashion-MNIST ---------------------------------------------------------------------------------
def _flat_idx(folder: Path) -> dict[str, Path] | None:
    """The four idx files directly in ``folder`` (.gz or plain), or None."""
    found = {}
    for stem in IDX_FILES:
        for cand in (folder / stem, folder / f"{stem}.gz"):
            if cand.is_file():
                found[stem] = cand
                break
    return found if len(found) == len(IDX_FILES) else None


def _stage(files: dict[str, Path], raw: Path) -> None:
    """Decompress/copy the idx files into torchvision's raw folder, each atomically."""
    raw.mkdir(parents=True, exist_ok=True)
    for stem, src in files.items():
        dst = raw / stem
        if dst.is_file():
            continue
        fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", dir=raw)
        try:
            with os.fdopen(fd, "wb") as out, (gzip.open(src, "rb") if src.suffix == ".gz" else open(src, "rb")) as inp:
                shutil.copyfileobj(inp, out)
            os.replace(tmp, dst)
        except (OSError, EOFError) as exc:
            Path(tmp).unlink(missing_ok=True)
            raise _wrap("mnist", src, exc) from exc


class _MNISTLike:
    Config = TorchvisionConfig
    name = ""
    folder = ""
    mean: float = 0.0
    std: float = 1.0
    tv_class = ""
    digits = False
    fallbacks: tuple[Path, ...] = ()

    @classmethod
    def load(cls, cfg: TorchvisionConfig) -> RealData:
        import torchvision

        root = _root(cfg)
        raw = root / cls.folder / "raw"
        if not all((raw / f).is_file() for f in IDX_FILES) and not cfg.download:
            sources = [root] + ([] if cfg.root else list(cls.fallbacks))
            for src in sources:
                files = _flat_idx(src)
                if files:
                    _stage(files, raw)
                    break
            else:
                looked = ", ".join(str(p) for p in [raw, *sources])
                raise DataError(f"dataset '{cls.name}': no idx files found (looked in {looked}); {GET_IT}")
        tv = getattr(torchvision.datasets, cls.tv_class)
        try:
            train = tv(str(root), train=True, download=cfg.download)
            test = tv(str(root), train=False, download=cfg.download)
        except RuntimeError as exc:
            if "not found" not in str(exc):
                raise _wrap(cls.name, raw, exc) from exc
            raise DataError(f"dataset '{cls.name}': {str(exc).strip()} (under {raw}); {GET_IT}") from exc
        except Exception as exc:  # noqa: BLE001 - torchvision's readers fail in many ways on bad files
            raise _wrap(cls.name, raw, exc) from exc
        mean, std = [cls.mean], [cls.std]
        return RealData(cls.name, normalise(_to_tensor(train.data, "NHW"), mean, std), torch.as_tensor(train.targets).long(),
                        normalise(_to_tensor(test.data, "NHW"), mean, std), torch.as_tensor(test.targets).long(),
                        list(train.classes), mean, std,
                        options={"root": str(root), "download": cfg.download},
                        tags={"digits": True} if cls.digits else {})


class MNIST(_MNISTLike):
    """MNIST (torchvision; 28x28 greyscale digits, 10 classes)"""

    description = "MNIST (torchvision; 28x28 greyscale digits, 10 classes)"
    name, folder, tv_class, mean, std, digits = "mnist", "MNIST", "MNIST", 0.1307, 0.3081, True


class FashionMNIST(_MNISTLike):
    """Fashion-MNIST (torchvision; also reads Debian's dataset-fashion-mnist package)"""

    description = "Fashion-MNIST (torchvision; also reads Debian's dataset-fashion-mnist package)"
    name, folder, tv_class, mean, std = "fashion_mnist", "FashionMNIST", "FashionMNIST", 0.2861, 0.3530
    fallbacks = (DEBIAN_FASHION_MNIST,)


# -- CIFAR and SVHN ------------------------------------------------------------------------------------------
def _unverified(tv_cls):
    """``tv_cls`` with the md5 check replaced by an existence check (``verify: false``)."""

    class Unverified(tv_cls):
        def _check_integrity(self) -> bool:
            base = Path(self.root)
            if hasattr(self, "base_folder") and hasattr(self, "train_list"):
                return all((base / self.base_folder / f).is_file() for f, _ in self.train_list + self.test_list)
            return (base / self.filename).is_file()

        def _load_meta(self) -> None:  # CIFAR: the same reading as torchvision's, without the md5 check
            import pickle

            with open(Path(self.root) / self.base_folder / self.meta["filename"], "rb") as fh:
                meta = pickle.load(fh, encoding="latin1")
            self.classes = meta[self.meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    Unverified.__name__ = tv_cls.__name__
    return Unverified


class _CIFARLike:
    Config = VerifiedConfig
    name = ""
    tv_class = ""
    folder = ""
    mean: list = []
    std: list = []

    @classmethod
    def _make(cls, cfg: VerifiedConfig, root: Path, train: bool):
        import torchvision

        tv = getattr(torchvision.datasets, cls.tv_class)
        tv = tv if cfg.verify else _unverified(tv)
        return tv(str(root), train=train, download=cfg.download)

    @classmethod
    def load(cls, cfg: VerifiedConfig) -> RealData:
        root = _root(cfg)
        where = root / cls.folder
        if not where.exists() and not cfg.download:
            raise DataError(f"dataset '{cls.name}': {where} does not exist; {GET_IT}")
        try:
            train, test = cls._make(cfg, root, True), cls._make(cfg, root, False)
        except RuntimeError as exc:
            if "not found" not in str(exc):
                raise _wrap(cls.name, where, exc) from exc
            raise DataError(f"dataset '{cls.name}': {str(exc).strip()} (under {where}); {GET_IT}") from exc
        except Exception as exc:  # noqa: BLE001 - pickle/mat readers fail in many ways on bad files
            raise _wrap(cls.name, where, exc) from exc
        return cls._finish(train, test, root, cfg)

    @classmethod
    def _finish(cls, train, test, root: Path, cfg) -> RealData:
        return RealData(cls.name, normalise(_to_tensor(train.data, "NHWC"), cls.mean, cls.std),
                        torch.as_tensor(train.targets).long(),
                        normalise(_to_tensor(test.data, "NHWC"), cls.mean, cls.std),
                        torch.as_tensor(test.targets).long(), list(train.classes), cls.mean, cls.std,
                        options={"root": str(root), "download": cfg.download, "verify": cfg.verify})


class CIFAR10(_CIFARLike):
    """CIFAR-10 (torchvision; 32x32 RGB, 10 classes)"""

    description = "CIFAR-10 (torchvision; 32x32 RGB, 10 classes)"
    name, tv_class, folder = "cifar10", "CIFAR10", "cifar-10-batches-py"
    mean, std = [0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]


class CIFAR100(_CIFARLike):
    """CIFAR-100 (torchvision; 32x32 RGB, 100 classes)"""

    description = "CIFAR-100 (torchvision; 32x32 RGB, 100 classes)"
    name, tv_class, folder = "cifar100", "CIFAR100", "cifar-100-python"
    mean, std = [0.5071, 0.4866, 0.4409], [0.2673, 0.2564, 0.2762]


class SVHN(_CIFARLike):
    """SVHN (torchvision; 32x32 RGB street-view digits, 10 classes)"""

    description = "SVHN (torchvision; 32x32 RGB street-view digits, 10 classes)"
    name, tv_class, folder = "svhn", "SVHN", "svhn"
    mean, std = [0.4377, 0.4438, 0.4728], [0.1980, 0.2010, 0.1970]

    @classmethod
    def _make(cls, cfg: VerifiedConfig, root: Path, train: bool):
        import torchvision

        tv = torchvision.datasets.SVHN if cfg.verify else _unverified(torchvision.datasets.SVHN)
        return tv(str(root / cls.folder), split="train" if train else "test", download=cfg.download)

    @classmethod
    def _finish(cls, train, test, root: Path, cfg) -> RealData:
        return RealData(cls.name, normalise(_to_tensor(train.data, "NCHW"), cls.mean, cls.std),
                        torch.as_tensor(train.labels).long(),
                        normalise(_to_tensor(test.data, "NCHW"), cls.mean, cls.std),
                        torch.as_tensor(test.labels).long(), [str(i) for i in range(10)], cls.mean, cls.std,
                        options={"root": str(root), "download": cfg.download, "verify": cfg.verify},
                        tags={"digits": True})
