"""What the suites as run say about their entries: the dataset entries and what each does to a method's data (its
preprocessing: none, or one of the two ZCA spaces), the distiller entries and where the suite runs them. Read by the
main table (which published number belongs beside which column) and by the claims and preprocessing tables."""

from __future__ import annotations

from ..data.base import LOCATION_OPTIONS
from . import names


def dataset_entries(suites: dict) -> dict[str, dict]:
    """Dataset key (label) -> its entry (name, options, zca, ...) in the suites as run (``Inputs.suites``)."""
    out = {}
    for suite in suites.values():
        for ds in suite.get("datasets") or []:
            if isinstance(ds, dict) and ds.get("name"):
                out.setdefault(ds.get("label") or ds["name"], ds)
    return out


def paper_preprocessing(method: str, plugin: str, ipc: int, options: dict | None = None) -> str | None:
    """``ZCA`` or ``none``: how ``method``'s paper preprocessed ``plugin`` (``published_as`` included) at ``ipc``,
    from its protocol (:meth:`~atombench.distillers.base.Distiller.paper_zca`) with the suite's ``options`` (an
    imported set's paper is its ``method`` option); None for a method not installed here or options it refuses."""
    from ..factories import make_distiller, paper_dataset

    try:
        distiller = make_distiller(method, dict(options or {}))
        space = distiller.paper_zca(paper_dataset(plugin), int(ipc))
    except Exception:  # noqa: BLE001 - a method not installed here, or options it no longer takes
        return None
    return zca_space(space)


#: how each whitening reads in the claims and preprocessing tables
ZCA_SPACES = {"unit_interval": "ZCA [0, 1]", "normalised": "ZCA normalised"}


def zca_space(kind) -> str:
    """``none`` or the whitening of a dataset entry's ``zca:`` (``ZCA [0, 1]``, ``ZCA normalised``): the two
    spaces are different preprocessings (not an affine map of each other), never pooled as one "ZCA"."""
    kind = names.zca_kind(kind)
    return "none" if kind is None else ZCA_SPACES.get(kind, f"ZCA {kind}")


def is_zca(pre: str) -> bool:
    return isinstance(pre, str) and pre.startswith("ZCA")


def model_order(suites: dict) -> list[str]:
    """The models' labels (``label`` or name) in the order the suites as run list them."""
    out: dict[str, None] = {}
    for suite in suites.values():
        for m in (suite.get("models") or []) if isinstance(suite, dict) else []:
            label = (m.get("label") or m.get("name")) if isinstance(m, dict) else m
            if label:
                out.setdefault(str(label), None)
    return list(out)


def models_in_order(models, suites: dict) -> list[str]:
    """The distinct model labels of ``models`` (a results column) in the suites' order (:func:`model_order`), so
    that the first is the suite's first model, not the first to finish; models no suite lists last."""
    listed = {m: j for j, m in enumerate(model_order(suites))}
    seen = list(dict.fromkeys(str(m) for m in models))
    return sorted(seen, key=lambda m: (listed.get(m, len(listed)), seen.index(m)))


def _distiller_items(suites: dict) -> dict[str, dict]:
    """Distiller label -> its entry in the suites as run (the first suite's where several name one label)."""
    out: dict[str, dict] = {}
    for suite in suites.values():
        for d in (suite.get("distillers") or []) if isinstance(suite, dict) else []:
            if isinstance(d, dict) and d.get("name"):
                out.setdefault(d.get("label") or d["name"], d)
    return out


def distiller_entries(suites: dict) -> dict[str, tuple[str, dict]]:
    """Distiller label -> (plug-in name, options) from the suites as run."""
    return {label: (d["name"], d.get("options") or {}) for label, d in _distiller_items(suites).items()}


def label_paper(specs: dict, label: str, method: str, plugin: str, ipc) -> str | None:
    """:func:`paper_preprocessing` of the distiller labelled ``label`` (its suite options from ``specs``,
    :func:`distiller_entries`; ``method`` where the suites do not name it)."""
    name, options = specs.get(label, (method, {}))
    return paper_preprocessing(name, plugin, int(ipc), options)


def label_preprocessing(entry: dict | None, specs: dict, label: str, method: str, plugin: str, ipc) -> str:
    """:func:`preprocessing_of` for the distiller labelled ``label`` (as :func:`label_paper` finds it)."""
    name, options = specs.get(label, (method, {}))
    return preprocessing_of(entry, name, plugin, ipc, options)


def preprocessing_of(entry: dict | None, method: str, plugin: str, ipc, options: dict | None = None) -> str:
    """``ZCA``, ``none`` or ``unknown``: what a suite's dataset entry did to one method's data. ``zca: paper``
    whitens only where the method's paper did (DM's sets on such an entry are not whitened); ``unknown`` where that
    cannot be told here (the method is not installed)."""
    kind = names.zca_kind((entry or {}).get("zca"))
    if kind == "paper":
        return paper_preprocessing(method, plugin, ipc, options) or "unknown"
    return zca_space(kind)


def in_scope(scopes: dict, label: str, dataset: str, ipc) -> bool:
    """Whether the suite runs ``label`` on ``dataset`` at ``ipc`` (:func:`distiller_scopes`; unknown: yes)."""
    datasets, ipcs = scopes.get(label, (None, None))
    return not ((datasets and dataset not in datasets) or (ipcs and int(ipc) not in ipcs))


def distiller_scopes(suites: dict) -> dict[str, tuple[list | None, list | None]]:
    """Distiller label -> the dataset entries and IPCs its suite entry limits it to (None: all)."""
    return {label: (d.get("datasets") or None, [int(i) for i in d["ipc"]] if d.get("ipc") else None)
            for label, d in _distiller_items(suites).items()}


def zca_eps(entry: dict | None):
    """The whitening's eps of a dataset entry as the suite reads it (:attr:`atombench.suite.DatasetSpec.eps`: an
    entry that gives the default eps and one that gives none are one whitening); None for an entry the suite
    parser refuses (a results folder of another version)."""
    from ..config import Invalid
    from ..suite import DatasetSpec

    entry = entry or {}
    try:
        return DatasetSpec(str(entry.get("name", "")), zca=entry.get("zca", False),
                           **({"zca_eps": entry["zca_eps"]} if entry.get("zca_eps") is not None else {})).eps
    except (Invalid, TypeError):  # a suite of another version (a form or type the parser refuses): no eps to read
        return None


def data_options(entry: dict | None) -> str:
    """A dataset entry's options that change its images (not where they lie, not its whitening: that is
    its preprocessing): entries of one plug-in with other options (an image size) are never pooled as one dataset."""
    options = {k: v for k, v in ((entry or {}).get("options") or {}).items() if k not in LOCATION_OPTIONS}
    return repr(sorted(options.items())) if options else ""
