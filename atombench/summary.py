"""``summary.md``: the one place that renders the run's summaries (the cross-architecture tables, then the
architecture search's) as Markdown. :meth:`atombench.store.ResultsStore.write_summary` writes it."""

from __future__ import annotations

import math

import pandas as pd

from .grid import cell_identity, report_dimensions


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


def varies(df: pd.DataFrame, dim: str) -> bool:
    """Whether one cell (the axes that identify one: dataset, method, IPC, model, protocol;
    :func:`atombench.grid.cell_identity`) was evaluated under several values of ``dim`` (a
    value that differs only between methods, as ``augment: auto`` gives, or between protocols, is not a dimension of
    the results)."""
    if dim not in df or not len(df):
        return False
    # within one protocol: a protocol brings its own settings (DC's own protocol has no augmentation)
    keys = [c for c in cell_identity() if c in df and c != dim]
    sub = df[df[dim].notna()]
    return bool(len(sub)) and int(sub.groupby(keys, dropna=False)[dim].nunique().max()) > 1


#: a results row's ``status`` when nothing went wrong: done, or left for later by ``--no-distill``
NOT_FAILED = ("ok", "pending")


def status_rows(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The failed rows and the pending rows of a results table (none without a ``status`` column)."""
    if "status" not in df:
        return df.iloc[0:0], df.iloc[0:0]
    return df[~df["status"].isin(NOT_FAILED)], df[df["status"] == "pending"]


def pending_text(pending: pd.DataFrame) -> str:
    """Why the ``pending`` rows have no result, counted by reason: outside a run's ``--only`` selection, or their
    synthetic sets not distilled yet (``--no-distill``, or a run in progress)."""
    errors = pending["error"].astype(str) if "error" in pending else pd.Series("", index=pending.index)
    outside = int(errors.str.contains("--only").sum())
    parts = [f"{len(pending) - outside} with synthetic sets not distilled yet (--no-distill, or a run stopped "
             f"before them)" if len(pending) > outside else "",
             f"{outside} outside a run's --only selection (run again without it)" if outside else ""]
    return f"{len(pending)} job(s) pending: " + "; ".join(x for x in parts if x)


def summary_markdown(df: pd.DataFrame, metric: str = "accuracy") -> str:
    """One table per evaluation model: rows = distillers (suite order), columns = dataset × IPC,
    cells = mean ± std of test accuracy (%) over every seed and evaluation model (population std)."""
    if df.empty or metric not in df:
        return "No results yet.\n"
    ok = df[df.get("status", "ok") == "ok"] if "status" in df else df
    if "snapshot" in ok:  # the final sets only: snapshots are the budget curves' points (the report draws them)
        ok = ok[ok["snapshot"].isna() | ~ok["snapshot"].astype(bool)]
    parts = []
    # one table per evaluation model and per value of each evaluation dimension that varies in the run
    dims = [c for c in report_dimensions() if varies(ok, c)]
    whole = ok[ok["ipc"].isna()] if "ipc" in ok else ok.iloc[0:0]  # whole-dataset references: every IPC column
    cells = ok[ok["ipc"].notna()] if "ipc" in ok else ok
    for what, sub in cells.groupby(dims + ["model"], sort=False):
        what = what if isinstance(what, tuple) else (what,)
        model = what[-1]
        cols = list(dict.fromkeys((d, int(i)) for d, i in zip(sub["dataset"], sub["ipc"])))  # suite order
        header = ["method"] + [f"{d} IPC {i}" for d, i in cols]
        rows = []
        for distiller, dsub in sub.groupby("distiller", sort=False):
            row = [str(distiller)]
            for d, i in cols:
                row.append(_cell(dsub[(dsub["dataset"] == d) & (dsub["ipc"] == i)][metric]))
            rows.append(row)
        ref = whole[whole["model"] == model]
        if len(ref):
            rows.append(["whole dataset"] + [_cell(ref[ref["dataset"] == d]["accuracy" if metric not in ref else metric])
                                             for d, _ in cols])
        n = sub.groupby(["distiller", "dataset", "ipc"]).size()
        counts = sorted(set(int(x) for x in n))
        title = ", ".join([str(model)] + [f"{dim} {v}" for dim, v in zip(dims, what[:-1])])
        parts.append(f"### {title}: test {metric} (%), mean ± std over "
                     f"{'/'.join(map(str, counts))} trained models per cell\n\n" + markdown_table(header, rows))
    failed, pending = status_rows(df)
    if len(failed):
        parts.append(f"{len(failed)} job(s) failed; see the 'error' column of results.csv.")
    if len(pending):
        parts.append(pending_text(pending) + ".")
    return "\n\n".join(parts) + "\n"


def nas_markdown(plan, summary: pd.DataFrame, sets: dict) -> str:
    """The NAS section of ``summary.md``: one table per dataset and IPC."""
    nas = plan.config

    def num(x, fmt="{:.2f}"):
        return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else fmt.format(x)

    parts = ["## Neural architecture search"]
    for ds in plan.datasets:
        n_train, n_val = len(ds.view.train_x), len(ds.view.test_x)
        parts.append(
            f"{ds.label}: {len(ds.candidates)} candidates ({nas.space if isinstance(nas.space, str) else 'grid'} "
            f"space), each trained once per proxy for {nas.epochs} epochs, on the whole training set "
            f"({n_train} images, without the {n_val} validation images) for {nas.ground_truth_epochs} epochs "
            f"(ground truth); selection and rank correlations on the validation split, test accuracy (%) of the "
            f"selected candidate after training on the whole set. Time: seconds of compute to train and validate "
            f"every candidate on the proxy (distillation not included).")
        if ds.excluded:
            parts.append(f"Left out at this image size ({len(ds.excluded)}): "
                         + ", ".join(n for n, _ in ds.excluded) + f" ({ds.excluded[0][1]}).")
        for ipc in plan.ipcs:
            sub = summary[(summary["dataset"] == ds.label) & (summary["ipc"] == ipc)]
            if not len(sub):
                continue
            k = int(sub["topk"].iloc[0])
            header = ["proxy", "Spearman (all)", f"Spearman (top {k})", "selected", "selected: test acc.",
                      "time (s)", "images", "distillation (s)"]
            body = []
            for _, r in sub.iterrows():
                meta = sets.get((ds.label, r["proxy"], ipc), (None, None, None, None))[2]
                distill = num(meta.get("wall_time_s"), "{:.0f}") if meta else "–"
                body.append([str(r["proxy"]), num(r["spearman_all"]), num(r["spearman_topk"]),
                             str(r["selected_candidate"] or "–"), num(r["selected_test_accuracy"]),
                             num(r["wall_time_s"], "{:.0f}"), num(r["images_stored"], "{:.0f}"), distill])
            best = sub["best_test_accuracy"].iloc[0]
            parts.append(f"### NAS on {ds.label}, IPC {ipc}: best test accuracy of any candidate "
                         f"{num(best)}%\n\n" + markdown_table(header, body))
    return "\n\n".join(parts) + "\n"
