"""The results folder: where synthetic sets and job results live, and the tidy table built from them.

Layout under a suite's output folder::

    suite.yaml                      the suite as run (resolved)
    synsets/<key>.safetensors       one synthetic set (tensors only) ...
    synsets/<key>.safetensors.json  ... and its metadata (config, seed, wall time, peak memory, versions, sha256)
    jobs/<key>.json                 one evaluation job's result (one row of the tidy table)
    results.csv                     the tidy table: one row per dataset, distiller, IPC, model, seed, eval model
    summary.md                      mean ± std per cell

Every file is written to a temporary name and renamed into place, so a file either is complete or is absent.
Keys are content hashes (see :mod:`atombench.runner`), so a re-run finds what is done and skips it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import pandas as pd

from .runtime import atomic_write


class ResultsStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def synset_path(self, key: str) -> Path:
        return self.root / "synsets" / f"{key}.safetensors"

    def job_path(self, key: str) -> Path:
        return self.root / "jobs" / f"{key}.json"

    def read_job(self, key: str) -> dict | None:
        """The stored result of a job, or None when absent or unreadable (then it is recomputed)."""
        try:
            row = json.loads(self.job_path(key).read_text())
        except (OSError, ValueError):
            return None
        return row if isinstance(row, dict) and row.get("job_key") == key else None

    def write_table(self, rows: Iterable[dict]) -> pd.DataFrame:
        """Write ``results.csv`` and ``summary.md`` from ``rows`` (kept in the suite's order)."""
        # tracebacks stay in the job files (jobs/<key>.json); the table keeps the one-line 'error'
        df = pd.DataFrame([{k: v for k, v in r.items() if k != "traceback"} for r in rows])
        with atomic_write(self.root / "results.csv", "w") as fh:
            df.to_csv(fh, index=False)
        with atomic_write(self.root / "summary.md", "w") as fh:
            fh.write(summary_markdown(df))
        return df


def _cell(values: pd.Series) -> str:
    vals = values.dropna()
    if vals.empty:
        return "–"
    std = vals.std(ddof=0) if len(vals) > 1 else 0.0
    return f"{vals.mean():.2f} ± {std:.2f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def summary_markdown(df: pd.DataFrame, metric: str = "accuracy") -> str:
    """One table per evaluation model: rows = distillers (suite order), columns = dataset × IPC,
    cells = mean ± std of test accuracy (%) over every seed and evaluation model (population std)."""
    if df.empty or metric not in df:
        return "No results yet.\n"
    ok = df[df.get("status", "ok") == "ok"] if "status" in df else df
    parts = []
    for model, sub in ok.groupby("model", sort=False):
        cols = list(dict.fromkeys((d, int(i)) for d, i in zip(sub["dataset"], sub["ipc"])))  # suite order
        header = ["method"] + [f"{d} IPC {i}" for d, i in cols]
        rows = []
        for distiller, dsub in sub.groupby("distiller", sort=False):
            row = [str(distiller)]
            for d, i in cols:
                row.append(_cell(dsub[(dsub["dataset"] == d) & (dsub["ipc"] == i)][metric]))
            rows.append(row)
        n = sub.groupby(["distiller", "dataset", "ipc"]).size()
        counts = sorted(set(int(x) for x in n))
        parts.append(f"### {model}: test {metric} (%), mean ± std over "
                     f"{'/'.join(map(str, counts))} trained models per cell\n\n" + markdown_table(header, rows))
    failed = df[df["status"] != "ok"] if "status" in df else df.iloc[0:0]
    if len(failed):
        parts.append(f"{len(failed)} job(s) failed; see the 'error' column of results.csv.")
    return "\n\n".join(parts) + "\n"

