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

from .runtime import atomic_write, write_json


def _digest(row: dict) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()


class ResultsStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def synset_path(self, key: str) -> Path:
        return self.root / "synsets" / f"{key}.safetensors"

    def job_path(self, key: str) -> Path:
        return self.root / "jobs" / f"{key}.json"

    def write_job(self, key: str, row: dict) -> None:
        """Write one job's result atomically, with a checksum of its content."""
        body = json.loads(json.dumps(row, default=str))
        write_json(self.job_path(key), dict(body, sha256=_digest(body)))

    def read_job(self, key: str, warn=None) -> dict | None:
        """The stored result of a job, or None when absent or damaged (then it is recomputed; ``warn`` is told
        why when the file exists but is unreadable, truncated or tampered with)."""
        path = self.job_path(key)
        if not path.exists():
            return None
        try:
            row = json.loads(path.read_text())
            if not isinstance(row, dict) or row.get("job_key") != key:
                raise ValueError("it is not this job's result")
            digest = row.pop("sha256", None)
            if digest is not None and digest != _digest(row):
                raise ValueError("checksum mismatch: the file was modified")
        except (OSError, ValueError) as exc:
            if warn:
                warn(f"warning: job result {path.name} is damaged ({str(exc).splitlines()[0]}); recomputing it")
            return None
        return row

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

