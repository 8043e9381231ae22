"""Published numbers (``published.csv`` in this package): the papers' ConvNet-3 accuracies, with their sources.

Each row gives a dataset (our plug-in name), a method (our distiller name, or ``whole`` for the whole training
set), an IPC (empty: any IPC), mean and std (%), the evaluation model, whether the number was read in the source
(``verified``) or only recalled, and the source. ``which="verified"`` (the default of ``atombench report``) keeps
the verified rows, ``"all"`` adds the recalled ones (their rows say *unverified*), ``"none"`` shows no published
row.
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


def lookup(published: pd.DataFrame, dataset: str, method: str, ipc: int) -> pd.Series | None:
    """The published row for a cell: the row of this IPC, else the dataset's any-IPC row (the whole dataset)."""
    rows = published[(published["dataset"] == dataset) & (published["method"] == method)]
    exact = rows[rows["ipc"].eq(ipc).fillna(False).astype(bool)]
    if len(exact):
        return exact.iloc[0]
    anyipc = rows[rows["ipc"].isna()]
    return anyipc.iloc[0] if len(anyipc) else None
