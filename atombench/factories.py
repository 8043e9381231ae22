"""The plug-in factories: a dataset, a distiller or a model built from its registered name and its options (the
plug-ins themselves are found in :mod:`atombench.registry`; ``atombench.plugins``, this module's former name, still
re-exports every name here).

Everything that turns a suite's names into objects goes through here: the run's preflight, the jobs in worker
processes, :meth:`~atombench.distillers.base.DistillContext.fresh_net` (the networks a distiller samples are
built exactly as evaluation builds them), the report (which reloads a dataset to de-normalise images) and the
MTT expert pre-training command. Options are parsed through one interface for the three kinds,
:meth:`atombench.registry.Registry.parse_options`.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import torch

from . import registry
from .data.base import RealData
from .errors import AtombenchError, PluginError
from .runtime import stable_hash

_DATA_CACHE: dict[str, RealData] = {}


def load_dataset(name: str, options: dict, zca: Optional[str] | bool = None, zca_eps: float = 0.1) -> RealData:
    """The dataset ``name`` with ``options``, ZCA-whitened in the space ``zca`` (``unit_interval`` or
    ``normalised``; None: not whitened; ``True``, what older results folders recorded, is
    ``normalised``); cached per process (workers load each dataset once)."""
    if zca is True:
        zca = "normalised"
    zca = zca or None
    key = stable_hash([name, options, zca, zca_eps])
    if key not in _DATA_CACHE:
        plugin = registry.datasets.get(name)
        data = plugin.load(registry.datasets.parse_options(name, options, f"dataset '{name}' options"))
        if zca:
            from .data.zca import fit_cached

            base = data.fingerprint
            fingerprint = stable_hash(["zca", base, zca, float(zca_eps)])
            whiten = fit_cached(fingerprint, data.train_x, zca_eps, zca, data.mean, data.std)
            data = dataclasses.replace(data, train_x=whiten(data.train_x), test_x=whiten(data.test_x),
                                       options={**data.options, "zca": zca, "zca_eps": zca_eps}, zca=whiten)
            # whitened data is identified by what it was whitened from and how, not by its float bits: the
            # eigendecomposition of a 3,072-dimensional covariance rounds differently with the thread count and
            # the CPU, and keys made from those bits did not survive a run with other workers (2026-12-07)
            data.__dict__["fingerprint"] = fingerprint
        _DATA_CACHE[key] = data
    return _DATA_CACHE[key]


def paper_dataset(name: str) -> str:
    """The dataset whose papers' settings apply to the dataset plug-in ``name`` (published numbers, evaluation
    protocols, ZCA spaces, presets): its ``published_as`` (``cifar10_jpeg`` -> ``cifar10``), else ``name``."""
    try:
        return str(getattr(registry.datasets.get(name), "published_as", None) or name)
    except Exception:  # noqa: BLE001 - an unknown or broken plug-in is reported where it is loaded
        return name


def dataset_args(spec, distiller=None, ipc: Optional[int] = None) -> tuple:
    """The arguments of :func:`load_dataset` for a suite's dataset entry (picklable, sent to workers); with
    ``zca: paper`` the whitening depends on the method (``distiller``) and the IPC."""
    paper = distiller.paper_zca(paper_dataset(spec.name), ipc) if (distiller is not None and spec.zca == "paper") else None
    setting = spec.zca_setting(paper)
    return (spec.name, spec.options, *(setting if setting else (None, spec.zca_eps)))


def load_data(args: tuple, holdout: Optional[tuple] = None) -> RealData:
    """A dataset from :func:`dataset_args`, or its architecture-search view (the training set without a
    validation split, which takes the test split's place) when ``holdout = (fraction, seed)``."""
    real = load_dataset(*args)
    if holdout is None:
        return real
    from .data.views import selection_view

    key = stable_hash([list(args), list(holdout)])
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = selection_view(real, *holdout)
    return _DATA_CACHE[key]


def make_distiller(name: str, options: dict):
    """The distiller ``name`` with its ``Config`` parsed from ``options`` (a suite entry's ``options:``); a plug-in
    that raises while being created is one line naming it."""
    cls = registry.distillers.get(name)
    cfg = registry.distillers.parse_options(name, options, f"distiller '{name}' options")
    try:
        distiller = cls(cfg)
    except AtombenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - a plug-in bug: one line naming the plug-in
        raise PluginError(f"distiller '{name}' could not be created ({type(exc).__name__}: {exc}); this is a bug "
                          f"in the plug-in ({cls.__module__}): report it to its authors (--debug shows the "
                          f"traceback)") from exc
    distiller.registered_name = name
    return distiller


def build_model(name: str, options: dict | None, data: RealData, seed: int):
    """The model ``name`` with ``options`` for ``data``'s channels, classes and image size, its weights drawn
    from ``seed`` (the global RNG is left as it was)."""
    family = registry.models.get(name)
    cfg = registry.models.parse_options(name, options, f"model '{name}' options")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return family.build(cfg, data.channels, data.num_classes, data.image_size)
