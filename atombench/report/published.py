"""Published numbers (``published.csv`` in this package): the papers' ConvNet-3 accuracies, with their sources.

Each row gives a dataset (our plug-in name), a method (our distiller name, or ``whole`` for the whole training
set), an IPC (empty: any IPC), mean and std (%), the evaluation model, whether the number was read in the source
(``verified``) or only recalled, and the source. ``which="verified"`` (the default of ``atombench report``) keeps
the verified rows, ``"all"`` adds the recalled ones (their rows say *unverified*), ``"none"`` shows no published
row.

A distiller plug-in declares its own published numbers on its class (``published``, see
:func:`plugin_published`); they are shown like the rows of ``published.csv``, which come first.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

CHOICES = ("verified", "all", "none")


def load_published(which: str = "verified") -> pd.DataFrame:
    """The published rows allowed by ``which``; for each (dataset, method, ipc) only the first one in the file."""
    with resources.files(__package__).joinpath("published.csv").open("r") as fh:
        df = pd.read_csv(fh, comment="#", dtype={"ipc": "Int64", "verified": str, "note": str})
    df["note"] = df["note"].fillna("")
    df["verified"] = df["verified"] == "yes"
    if which == "none":
        return df.iloc[0:0]
    if which == "verified":
        df = df[df["verified"]]
    return df.drop_duplicates(["dataset", "method", "ipc"], keep="first").reset_index(drop=True)


def default_options(rows) -> bool:
    """Whether the evaluation model of ``rows`` (results rows) runs at its registered defaults: published numbers
    name a network by its registered name, so a ConvNet of another depth or width is not the one they measured."""
    return "model_options" not in rows or rows["model_options"].fillna("{}").astype(str).isin(["{}", ""]).all()


def lookup(published: pd.DataFrame, dataset: str, method: str, ipc: int) -> pd.Series | None:
    """The published row for a cell: the row of this IPC, else the dataset's any-IPC row (the whole dataset)."""
    rows = published[(published["dataset"] == dataset) & (published["method"] == method)]
    exact = rows[rows["ipc"].eq(ipc).fillna(False).astype(bool)]
    if len(exact):
        return exact.iloc[0]
    anyipc = rows[rows["ipc"].isna()]
    return anyipc.iloc[0] if len(anyipc) else None


def with_aliases(published: pd.DataFrame) -> pd.DataFrame:
    """``published`` plus, for every dataset plug-in that declares ``published_as`` (``cifar10_jpeg`` ->
    ``cifar10``), a copy of that dataset's rows under the plug-in's name, each noted as published on the original
    images (the cell beside it was measured on the copy)."""
    from .. import registry
    from .names import dataset_name

    extra = []
    for name, obj, _ in registry.datasets.items():
        orig = getattr(obj, "published_as", None) if obj is not None else None
        if not orig or orig == name:
            continue
        rows = published[published["dataset"] == orig].copy()
        if not len(rows):
            continue
        mark = f"published on the original {dataset_name(orig)} images, not on {dataset_name(name)}"
        rows["dataset"] = name
        rows["note"] = [f"{n}; {mark}" if n else mark for n in rows["note"].fillna("")]
        extra.append(rows)
    if not extra:
        return published
    return pd.concat([published, *extra], ignore_index=True).drop_duplicates(
        ["dataset", "method", "ipc"], keep="first").reset_index(drop=True)


#: the keys of one published number a distiller plug-in declares (``published`` on its class)
PLUGIN_KEYS = {"dataset", "ipc", "mean", "std", "model", "verified", "source", "note"}


def plugin_published(methods, which: str = "verified") -> tuple[pd.DataFrame, list[str]]:
    """Published numbers declared by distiller plug-ins on their class, for the registered ``methods``::

        class MyDistiller(Distiller):
            published = [{"dataset": "cifar10", "ipc": 10, "mean": 50.1, "std": 0.4, "model": "convnet",
                          "verified": True, "source": "Me et al., CVPR 2025, Table 1"}]

    ``dataset`` is the dataset plug-in's name, ``ipc`` None for any IPC, ``model`` the evaluation model's
    registered name (default ``convnet``: published rows are shown only beside that model's table), ``verified``
    whether the number was read in the source (default False: shown only with ``--published all``), ``note``
    optional. Returns the rows allowed by ``which`` (columns as ``published.csv``; the method is the plug-in's
    registered name) and one line per malformed entry. Rows of ``published.csv`` come first and win."""
    from .. import registry

    rows, problems = [], []
    if which == "none":
        return pd.DataFrame(columns=["dataset", "method", "ipc", "mean", "std", "model", "verified", "source",
                                     "note"]), problems
    for method in dict.fromkeys(str(m) for m in methods):
        try:
            cls = registry.distillers.get(method)
        except Exception:  # noqa: BLE001 - not a registered distiller (a label, 'whole') or a broken plug-in
            continue
        entries = getattr(cls, "published", None)
        if not entries:
            continue
        for k, entry in enumerate(entries if isinstance(entries, (list, tuple)) else [entries]):
            where = f"distiller '{method}': published[{k}]"
            if not isinstance(entry, dict):
                problems.append(f"{where} is not a mapping; it was left out")
                continue
            unknown = set(entry) - PLUGIN_KEYS
            missing = {"dataset", "mean", "std", "source"} - set(entry)
            if unknown or missing:
                problems.append(f"{where}: " + "; ".join(
                    ([f"unknown key(s) {sorted(unknown)}"] if unknown else [])
                    + ([f"missing key(s) {sorted(missing)}"] if missing else [])) + "; it was left out")
                continue
            try:
                ipc = entry.get("ipc")
                rows.append({"dataset": str(entry["dataset"]), "method": method,
                             "ipc": None if ipc is None else int(ipc), "mean": float(entry["mean"]),
                             "std": float(entry["std"]), "model": str(entry.get("model", "convnet")),
                             "verified": bool(entry.get("verified", False)), "source": str(entry["source"]),
                             "note": str(entry.get("note", "") or "")})
            except (TypeError, ValueError) as exc:
                problems.append(f"{where}: {exc}; it was left out")
    df = pd.DataFrame(rows, columns=["dataset", "method", "ipc", "mean", "std", "model", "verified", "source",
                                     "note"])
    df["ipc"] = df["ipc"].astype("Int64")
    if which == "verified":
        df = df[df["verified"].astype(bool)]
    return df.reset_index(drop=True), problems
