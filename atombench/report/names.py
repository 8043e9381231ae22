"""Row order and display names: coresets first, then distillers, then the whole-dataset upper bound.

A method's kind comes from a fixed list of the built-ins, else from its class (a distiller defined in
:mod:`atombench.distillers.coreset`, or one with ``kind = "coreset"``, is a coreset), else it is a distiller.

Display names: the built-ins' are fixed below; a plug-in's is the ``display_name`` attribute of its class (a
distiller or dataset class), else its registered name. A suite ``label`` is shown as written.
Within a kind, the built-ins come in the papers' order and anything else (plug-ins, labelled variants such as
``atom_channel_only``) follows in the order it first appears in the results.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from functools import lru_cache
from typing import Iterable

CORESETS = ["random", "herding", "kcenter", "forgetting"]
DISTILLERS = ["dc", "dsa", "dm", "cafe", "mtt", "datadam", "atom"]
WHOLE = ["whole", "full"]
KINDS = ["coreset", "distiller", "whole"]

METHOD_NAMES = {"random": "Random", "herding": "Herding", "kcenter": "K-Center", "forgetting": "Forgetting",
                "dc": "DC", "dsa": "DSA", "dm": "DM", "cafe": "CAFE", "mtt": "MTT", "datadam": "DataDAM",
                "atom": "ATOM", "whole": "Whole dataset", "full": "Whole dataset", "kip": "KIP", "ld": "LD",
                "dd": "DD"}
DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "svhn": "SVHN", "cifar10": "CIFAR-10",
                 "cifar100": "CIFAR-100", "tiny_imagenet": "TinyImageNet", "digits": "digits",
                 "cifar10_jpeg": "CIFAR-10 (JPEG q75)", "image_folder": "image folder"}
MODEL_NAMES = {"convnet": "ConvNet", "convnet_bn": "ConvNet-BN", "mlp": "MLP", "lenet": "LeNet",
               "alexnet": "AlexNet", "alexnet_bn": "AlexNet-BN", "vgg11": "VGG11", "vgg11_bn": "VGG11-BN",
               "resnet18": "ResNet18", "resnet18_bn": "ResNet18-BN", "resnet18_ap": "ResNet18-AP",
               "resnet18_bn_ap": "ResNet18-BN-AP"}


@lru_cache(maxsize=None)
def _class_kind(name: str) -> str | None:
    """The kind a registered distiller's class declares, or None when it cannot be loaded."""
    from .. import registry
    from ..errors import AtombenchError

    try:
        cls = registry.distillers.get(name)
    except (AtombenchError, Exception):  # noqa: BLE001 - an unknown or broken plug-in: use the fallback
        return None
    kind = getattr(cls, "kind", None)
    if kind in KINDS:
        return kind
    return "coreset" if getattr(cls, "__module__", "").endswith("distillers.coreset") else "distiller"


def method_kind(label: str, method: str | None = None) -> str:
    """``coreset``, ``distiller`` or ``whole`` for a row label and its registered method name."""
    method = method if isinstance(method, str) and method else label
    if label in WHOLE or method in WHOLE:
        return "whole"
    for name in (label, method):
        if name in CORESETS:
            return "coreset"
        if name in DISTILLERS:
            return "distiller"
    return _class_kind(method) or "distiller"


def order_methods(labels: Iterable[str], methods: dict[str, str] | None = None) -> list[str]:
    """Labels in table order: kind, then the papers' order of the built-ins, then first appearance."""
    methods = methods or {}
    labels = list(dict.fromkeys(labels))
    fixed = CORESETS + DISTILLERS + WHOLE

    def key(item):
        pos, label = item
        kind = method_kind(label, methods.get(label))
        return KINDS.index(kind), fixed.index(label) if label in fixed else len(fixed), pos

    return [label for _, label in sorted(enumerate(labels), key=key)]


@lru_cache(maxsize=None)
def _display_name(kind: str, name: str) -> str | None:
    """The ``display_name`` a registered plug-in's class declares, or None (unknown, broken or none declared)."""
    from .. import registry

    try:
        obj = getattr(registry, kind).get(name)
    except Exception:  # noqa: BLE001 - a label, 'whole', or a broken plug-in: shown as written
        return None
    text = getattr(obj, "display_name", None)
    return text if isinstance(text, str) and text.strip() else None


def method_name(label: str) -> str:
    return METHOD_NAMES.get(label) or _display_name("distillers", str(label)) or label


#: the values of a dataset entry's ``zca:`` that do not whiten
NO_ZCA = (None, False, "none", "false", "off")

#: the display names of the labelled dataset entries of the report being built (:func:`entry_names`)
_ENTRY_NAMES: dict[str, str] = {}


def zca_kind(zca):
    """The kind of a dataset entry's ``zca:`` (a kind, ``true``, or a mapping with ``kind``): ``unit_interval``,
    ``normalised``, ``paper``, or None where it does not whiten."""
    kind = zca.get("kind", "unit_interval") if isinstance(zca, dict) else zca
    if kind in NO_ZCA:
        return None
    return "unit_interval" if kind is True or kind == "true" else kind


def _zca_text(zca) -> str | None:
    """How a dataset entry's ``zca:`` reads in a table, or None where it does not whiten."""
    kind = zca_kind(zca)
    if kind is None:
        return None
    eps = zca.get("eps") if isinstance(zca, dict) else None
    space = {"paper": "its paper's ZCA", "unit_interval": "ZCA on [0, 1]",
             "normalised": "ZCA on normalised images"}.get(kind, f"ZCA ({kind})")
    return space + (f", eps {eps}" if eps is not None else "")


@contextmanager
def entry_names(entries: dict[str, dict]):
    """Within the block, :func:`dataset_name` gives the labelled dataset entries of the suites being reported
    (label -> entry) their display names, e.g. ``cifar10_jpeg_zca`` (``{name: cifar10_jpeg, zca: paper}``) ->
    "CIFAR-10 (JPEG q75), its paper's ZCA", so that every table says which dataset a row is on; an entry told apart
    by other options keeps its label in brackets, as does one whose name would repeat another's. The report holds
    it around a build; the names before it are back after the block."""
    made: dict[str, str] = {}
    for label, entry in entries.items():
        plugin = str(entry.get("name") or label)
        if label == plugin:
            continue
        base = DATASET_NAMES.get(plugin) or _display_name("datasets", plugin) or plugin
        zca = _zca_text(entry.get("zca"))
        made[label] = f"{base}, {zca}" if zca else f"{base} ({label})"
    texts = list(made.values())
    before = dict(_ENTRY_NAMES)
    _ENTRY_NAMES.clear()
    _ENTRY_NAMES.update({label: text if texts.count(text) == 1 else f"{text} ({label})"
                         for label, text in made.items()})
    try:
        yield
    finally:
        _ENTRY_NAMES.clear()
        _ENTRY_NAMES.update(before)


def dataset_name(key: str) -> str:
    return _ENTRY_NAMES.get(key) or DATASET_NAMES.get(key) or _display_name("datasets", str(key)) or key


def model_name(key: str) -> str:
    return MODEL_NAMES.get(key, key)


def slug(*parts) -> str:
    """A file-name-safe name built from ``parts`` (labels are plain names, but plug-ins may use colons)."""
    text = "_".join(str(p) for p in parts)
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "x"
