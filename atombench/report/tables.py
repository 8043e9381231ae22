"""The report's tables, built from the tidy results: main, cross-architecture, NAS and cost (the tables across
evaluation protocols, labels, augmentations and budgets are in :mod:`atombench.report.fairness`,
:mod:`atombench.report.robustness` and :mod:`atombench.report.budget`).

* **main**: rows = methods (coresets, distillers, the whole dataset), columns = dataset x IPC, one evaluation
  model (the suite's first unless chosen), cells mean ± std, the best per column bold, † where a method cannot
  be told apart from the best (see :mod:`atombench.report.stats`), published rows in italics under ours;
* **cross-architecture**: per dataset and IPC, rows = methods, columns = evaluation models;
* **NAS**: per dataset, IPC and proxy, the selected architecture's accuracy, rank correlations, time, storage;
* **cost**: per dataset, method and IPC, distillation wall time, peak memory and iterations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import UsageError, suggest
from . import names
from .entries import (dataset_entries, distiller_entries, distiller_scopes, in_scope, label_paper,
                      label_preprocessing, models_in_order)
from .inputs import Inputs
from .published import default_options, lookup
from .render import Row, Table
from .stats import MIN_SAMPLES, Stat, mark_column, stat
from .stats import cell as cell_stat

LOWER_IS_BETTER = ("time", "mem", "loss", "error")


@dataclass
class TableOptions:
    metric: str = "accuracy"
    precision: int = 1
    model: str | None = None
    rows: list[str] | None = None
    columns: list[str] | None = None
    unit: str = "auto"  # auto | seeds | models
    alpha: float = 0.05


def higher_is_better(metric: str) -> bool:
    return not any(w in metric for w in LOWER_IS_BETTER)


def _metric_label(metric: str) -> str:
    return {"accuracy": "test accuracy (%)", "top5_accuracy": "top-5 test accuracy (%)"}.get(metric, metric)


def _count_text(values) -> str:
    vals = sorted(set(int(v) for v in values))
    if not vals:
        return "0"
    return str(vals[0]) if len(vals) == 1 else f"{vals[0]}–{vals[-1]}"


def _plural(n_text: str, word: str) -> str:
    return f"{n_text} {word}" + ("" if n_text == "1" else "s")


def dataset_plugin_names(inputs: Inputs) -> dict[str, str]:
    """Dataset key (label) -> plug-in name, from the suites as run (a key without a suite maps to itself)."""
    return {label: ds["name"] for label, ds in dataset_entries(inputs.suites).items()}


def method_map(df: pd.DataFrame) -> dict[str, str]:
    """Distiller label -> the method that made its sets (``made_by``: an imported set's declared method, else
    the plug-in, ``method``)."""
    col = "made_by" if "made_by" in df else "method"
    if col not in df or "distiller" not in df:
        return {}
    return {str(d): str(m) for d, m in zip(df["distiller"], df[col]) if isinstance(m, str)}


def check_metric(df: pd.DataFrame, metric: str) -> None:
    if metric not in df:
        numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
        raise UsageError(f"--metric {metric}: no column '{metric}' in the results{suggest(metric, numeric)}; "
                         f"numeric columns: {', '.join(numeric)}")
    if not pd.api.types.is_numeric_dtype(df[metric]) and df[metric].notna().any():
        raise UsageError(f"--metric {metric}: the column holds text, not numbers; pick a numeric column such as "
                         f"accuracy")


def _dataset_columns(df: pd.DataFrame) -> list[tuple[str, int]]:
    """(dataset, IPC) pairs: datasets in order of appearance, IPCs ascending (rows without an IPC skipped)."""
    have = df[df["ipc"].notna()] if "ipc" in df else df.iloc[0:0]
    out = []
    for d in dict.fromkeys(have["dataset"].astype(str)):
        for i in sorted(set(int(x) for x in have[have["dataset"].astype(str) == d]["ipc"])):
            out.append((d, i))
    return out


def select_columns(df: pd.DataFrame, wanted: list[str] | None) -> list[tuple[str, int]]:
    """The table's (dataset, IPC) columns; ``wanted`` entries are ``DATASET`` or ``DATASET:IPC``."""
    cols = _dataset_columns(df)
    if not wanted:
        return cols
    out = []
    datasets = list(dict.fromkeys(d for d, _ in cols))
    for item in wanted:
        d, _, ipc = item.partition(":")
        if d not in datasets:
            raise UsageError(f"--columns {item}: no dataset '{d}' in the results{suggest(d, datasets)}; "
                             f"datasets: {', '.join(datasets) or '(none)'}")
        if ipc:
            try:
                i = int(ipc)
            except ValueError:
                raise UsageError(f"--columns {item}: the IPC must be a whole number, e.g. {d}:10") from None
            if (d, i) not in cols:
                have = [str(x) for dd, x in cols if dd == d]
                raise UsageError(f"--columns {item}: {d} has no results at IPC {i}; IPCs: {', '.join(have)}")
            picked = [(d, i)]
        else:
            picked = [c for c in cols if c[0] == d]
        out += [c for c in picked if c not in out]
    return out


def select_rows(labels: list[str], wanted: list[str] | None) -> list[str]:
    if not wanted:
        return labels
    for w in wanted:
        if w not in labels:
            raise UsageError(f"--rows {w}: no method '{w}' in the results{suggest(w, labels)}; "
                             f"methods: {', '.join(labels) or '(none)'}")
    return list(dict.fromkeys(wanted))


def resolve_unit(df: pd.DataFrame, unit: str) -> str:
    """``auto``: seeds when every cell has at least 2 seeds (then seeds are independent repeats), else models."""
    if unit != "auto":
        return unit
    if "ipc" in df and df["ipc"].notna().any():  # the whole-dataset reference (one model, no IPC) does not
        df = df[df["ipc"].notna()]                # decide how the synthetic sets' cells are summarised
    if "seed" not in df or not len(df):
        return "models"
    per_cell = df.groupby(["dataset", "distiller", "ipc", "model"], dropna=False)["seed"].nunique()
    return "seeds" if len(per_cell) and int(per_cell.min()) >= 2 else "models"


def _cell_rows(df: pd.DataFrame, label: str, dataset: str, ipc: int) -> pd.DataFrame:
    rows = df[(df["distiller"].astype(str) == label) & (df["dataset"].astype(str) == dataset)]
    exact = rows[rows["ipc"] == ipc]
    if len(exact) or names.method_kind(label) != "whole":
        return exact
    return rows  # the whole dataset does not depend on the IPC: its one result spans the dataset's columns


def _sample_text(df: pd.DataFrame, unit: str, n_values: list[int], model: str | None) -> str:
    what = f"trained {names.model_name(model)} model" if model else "trained model"
    varies = " (a cell with fewer says its n)" if len(set(n_values)) > 1 else ""
    if unit == "seeds":
        per_seed = df.groupby(["dataset", "distiller", "ipc", "model", "seed"], dropna=False).size() \
            if len(df) else []
        return (f"Mean ± std over {_plural(_count_text(n_values), 'seed')} (synthetic sets) per cell{varies}, each "
                f"seed the mean of {_plural(_count_text(per_seed), what)}")
    seeds = df.groupby(["dataset", "distiller", "ipc", "model"], dropna=False)["seed"].nunique() \
        if "seed" in df and len(df) else []
    return (f"Mean ± std over {_plural(_count_text(n_values), what)} per cell{varies} "
            f"({_plural(_count_text(seeds), 'seed')} x the models trained on each synthetic set)")


def _rule_text(unit: str, alpha: float, higher: bool, tested: bool, published: bool, whole: bool) -> str:
    parts = [f"**Bold**: the best mean in its column ({'higher' if higher else 'lower'} is better; "
             f"equal at the shown precision counts as best)"]
    if tested:
        parts.append(f"†: not significantly different from the best (Welch's two-sided t-test over the synthetic "
                     f"sets, one sample per seed{', the mean of its models' if unit != 'seeds' else ''}, "
                     f"p ≥ {alpha:g}; no mark without at least {MIN_SAMPLES} sets on each side)")
    else:
        parts.append(f"no significance marks: Welch's t-test needs at least {MIN_SAMPLES} synthetic sets (seeds) "
                     f"per cell")
    if whole:
        parts.append("the whole-dataset row is the upper bound and takes no part in bolding")
    if published:
        parts.append("*italic* rows: published numbers (the papers' ConvNet-3 protocol, sources below), shown "
                     "for comparison and not part of bolding or testing")
    return "; ".join(parts) + "."


def _own_protocol_differs(df: pd.DataFrame, label: str, method: str, dataset_names: dict) -> bool:
    """Whether ``label``'s rows in the table were trained under another protocol than its paper declares (the
    common one, with other epochs, batch or augmentation): its published number, measured under its paper's, is
    then not like for like with its cells. False where that cannot be told (no settings in the results)."""
    import json

    from ..factories import make_distiller, paper_dataset
    from ..protocols import ModelName

    rows = df[df["distiller"].astype(str) == label]
    if not len(rows) or not {"epochs", "batch_size", "augment"} <= set(rows):
        return False
    r = rows.iloc[0]
    if str(r.get("protocol")) == "paper":
        return False
    try:
        options = json.loads(r["model_options"]) if isinstance(r.get("model_options"), str) else {}
        own = make_distiller(method, {}).paper_protocol(
            paper_dataset(dataset_names.get(str(r["dataset"]), str(r["dataset"]))),
            ModelName(str(r.get("model_name", r["model"])), options), int(r["ipc"]))
    except Exception:  # noqa: BLE001 - a method not installed here, or a row without an IPC
        return False
    if own is None:
        return False
    mine = {"epochs": r["epochs"], "batch_size": r["batch_size"], "augment": r["augment"]}
    return any(getattr(own, k) is not None and str(getattr(own, k)) != str(v).removesuffix(".0")
               for k, v in mine.items())


def _published_row(label: str, cols, published: pd.DataFrame, dataset_names: dict, kind: str, applies,
                   own_protocol: bool = False):
    """The published row for method ``label`` over ``cols``, or None when no column has a number; a column gets
    one only where ``applies(label, dataset, ipc)``."""
    method = "whole" if kind == "whole" else label
    cells, sources = [], []
    for d, i in cols:
        hit = lookup(published, dataset_names.get(d, d), method, i) if applies(label, d, i) else None
        if hit is None:
            cells.append(None)
            continue
        cells.append(Stat(float(hit["mean"]), float(hit["std"]), 0))
        sources.append((hit["source"], bool(hit["verified"]), hit["note"]))
    if not sources:
        return None, []
    unverified = any(not v for _, v, _ in sources)
    text = (f"{names.method_name(label)} (published{', unverified' if unverified else ''}"
            f"{', under its own protocol' if own_protocol else ''})")
    return Row([text], cells, kind, published=True), sources


def rows_of(rows: list[Row]) -> list[Row]:
    """The measured rows (published rows left out), in the order of the labels they were made from."""
    return [r for r in rows if not r.published]


def _preprocessings(inputs: Inputs, d: str, ipc, labels: list[str], mmap: dict, dataset_names: dict) -> dict:
    """Label -> the preprocessing the suite's entry ``d`` gave its sets (a ``zca: paper`` entry: each method its
    paper's); empty without the suite."""
    entries, specs = dataset_entries(inputs.suites), distiller_entries(inputs.suites)
    if d not in entries:
        return {}
    return {label: label_preprocessing(entries[d], specs, label, mmap.get(label, label), dataset_names.get(d, d), ipc)
            for label in labels}


def _published_applies(inputs: Inputs, df: pd.DataFrame, dataset_names: dict, mmap: dict):
    """Whether a method's published number belongs beside its column of a dataset entry at an IPC: the suite runs
    the method there (not a column its ``datasets:`` or ``ipc:`` leaves out), and the entry gives its sets the
    preprocessing its paper's number was measured on (DataDAM's ZCA number not beside its unwhitened cell, DM's
    unwhitened one not beside a whitened entry's). Results without their suite, or a method not installed here:
    every column, as before."""
    entries, specs = dataset_entries(inputs.suites), distiller_entries(inputs.suites)
    runs = distiller_scopes(inputs.suites)

    def applies(label: str, d: str, ipc) -> bool:
        if names.method_kind(label, mmap.get(label)) == "whole" or d not in entries:
            return True  # the whole dataset's number is every entry's reference; no suite: nothing known
        if not in_scope(runs, label, d, ipc):
            return False
        method, plugin = mmap.get(label, label), dataset_names.get(d, d)
        paper = label_paper(specs, label, method, plugin, ipc)
        return paper is None or label_preprocessing(entries[d], specs, label, method, plugin, ipc) == paper

    return applies


def main_table(inputs: Inputs, opts: TableOptions, published: pd.DataFrame | None = None) -> Table | None:
    ok = inputs.ok
    if not len(ok) or "distiller" not in ok:
        return None
    check_metric(ok, opts.metric)
    models = models_in_order(ok["model"], inputs.suites)
    model = opts.model or models[0]
    if model not in models:
        raise UsageError(f"--model {model}: no results for the model '{model}'{suggest(model, models)}; "
                         f"models: {', '.join(models)}")
    df = ok[ok["model"].astype(str) == model]
    cols = select_columns(df, opts.columns)
    mmap = method_map(ok)
    labels = select_rows(names.order_methods(df["distiller"].astype(str), mmap), opts.rows)
    unit = resolve_unit(df, opts.unit)
    model_names = set(df["model_name"].astype(str)) if "model_name" in df else {model}
    # published numbers beside the network they were measured with: the registered model with its default
    # options (a plug-in's ResNet-18 number does not bring the ConvNet-3 rows to a ResNet-18 table, nor do
    # ConvNet-3's numbers sit beside a ConvNet of another depth or width)
    plain = default_options(df)
    if published is not None and len(published):
        published = published[published["model"].astype(str).isin(model_names)]
    show_published = published is not None and len(published) and plain and len(model_names) == 1
    dataset_names = dataset_plugin_names(inputs)
    applies = _published_applies(inputs, df, dataset_names, mmap)
    scopes = distiller_scopes(inputs.suites)

    rows, ours, records, sources, missing, published_of = [], [], [], [], [], []
    for label in labels:
        kind = names.method_kind(label, mmap.get(label))
        cells = []
        for d, i in cols:
            cell = cell_stat(_cell_rows(df, label, d, i), opts.metric, unit)
            if cell is None and in_scope(scopes, label, d, i):  # (not a column the suite leaves it out of)
                missing.append(f"{names.method_name(label)} at {names.dataset_name(d)} IPC {i}")
            cells.append(cell)
        row = Row([names.method_name(label)], cells, kind)
        rows.append(row)
        if kind != "whole":
            ours.append(row)
        if show_published and (label not in mmap or mmap[label] == label or kind == "whole"):
            prow, src = _published_row(label, cols, published, dataset_names, kind, applies,
                                       kind != "whole" and _own_protocol_differs(df, label, mmap.get(label, label),
                                                                                 dataset_names))
            if prow is not None:
                rows.append(prow)
                published_of.append((prow, label))
                sources += [(names.method_name(label), *s) for s in src]
    higher = higher_is_better(opts.metric)
    mixed = {}
    for j, (d, i) in enumerate(cols):
        pres = _preprocessings(inputs, d, i, [lb for lb, r in zip(labels, rows_of(rows))
                                              if r.kind != "whole" and r.cells[j] is not None], mmap, dataset_names)
        if len(set(pres.values())) > 1:  # a zca: paper entry: each method on its own paper's whitening
            mixed[(d, i)] = pres
        mark_column([r.cells[j] for r in ours], opts.precision, opts.alpha, higher, test=(d, i) not in mixed)
    n_values = [c.n for r in rows if not r.published for c in r.cells if c is not None]
    tested = any(c.tied is not None for r in ours for c in r.cells if c is not None)
    for row, label in zip([r for r in rows if not r.published], labels):
        for (d, i), c in zip(cols, row.cells):
            records.append(_record(label, row.kind, False, d, i, model, opts.metric, unit, c, ""))
    for row, label in published_of:
        for (d, i), c in zip(cols, row.cells):
            if c is not None:
                records.append(_record(label, row.kind, True, d, i, "convnet", opts.metric, "", c, ""))
    groups = []
    for d in dict.fromkeys(d for d, _ in cols):
        groups.append((names.dataset_name(d), sum(1 for dd, _ in cols if dd == d)))
    caption = (f"{_sample_text(df, unit, n_values, model)} (the population std, as the papers' code computes it). "
               "Measured cells: the final synthetic sets, at the suite's distillation budget (the budget table has "
               "each method's snapshots); published cells: at the papers' budgets. "
               + _rule_text(unit, opts.alpha, higher, tested, bool(sources),
                            any(r.kind == "whole" for r in rows)))
    notes = []
    if sources:
        seen = dict.fromkeys((m, s, v, note) for m, s, v, note in sources)
        notes.append("Published numbers: " + "; ".join(
            f"{m}: {s}{'' if v else ' (unverified)'}{f' ({note})' if note else ''}" for m, s, v, note in seen) + ".")
    for (d, i), pres in mixed.items():
        each = ", ".join(f"{names.method_name(lb)} {pre}" for lb, pre in pres.items())
        notes.append(f"{names.dataset_name(d)} IPC {i}: each method on its own paper's preprocessing ({each}), "
                     f"compared as the papers compared them, not on one dataset: no † marks in that column (the "
                     f"claims and whitening tables compare the methods on one preprocessing).")
    if missing:
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        notes.append(f"Missing cells (no finished job): {', '.join(missing[:8])}{more}.")
    return Table("main", f"{_metric_label(opts.metric).capitalize()} of {names.model_name(model)} trained on the "
                         f"synthetic sets", ["Method"], [f"IPC {i}" for _, i in cols], rows, groups, caption, notes,
                 opts.precision, max(n_values) if n_values else None, pd.DataFrame(records))


def _record(label, kind, published, dataset, ipc, model, metric, unit, c: Stat | None, source) -> dict:
    return {"method": label, "kind": kind, "published": published, "dataset": dataset, "ipc": ipc,
            "model": model, "metric": metric, "unit": unit,
            "mean": None if c is None else c.mean, "std": None if c is None else c.std,
            "n": None if c is None or published else c.n,
            "best": None if c is None or published else c.best,
            "not_different_from_best": None if c is None or published else c.tied,
            "p_value": None if c is None else c.p}


def cross_arch_tables(inputs: Inputs, opts: TableOptions) -> list[Table]:
    """One table per (dataset, IPC) evaluated on at least two models: rows = methods, columns = models."""
    ok = inputs.ok
    if not len(ok) or "model" not in ok or ok["model"].nunique() < 2:
        return []
    check_metric(ok, opts.metric)
    mmap = method_map(ok)
    models = models_in_order(ok["model"], inputs.suites)
    unit = resolve_unit(ok, opts.unit)
    higher = higher_is_better(opts.metric)
    tables = []
    for d, i in select_columns(ok, opts.columns):
        sub = ok[(ok["dataset"].astype(str) == d) & (ok["ipc"] == i)]
        here = [m for m in models if m in set(sub["model"].astype(str))]
        if len(here) < 2:
            continue
        labels = [x for x in select_rows(names.order_methods(ok["distiller"].astype(str), mmap), opts.rows)
                  if x in set(sub["distiller"].astype(str))]
        rows, records = [], []
        for label in labels:
            kind = names.method_kind(label, mmap.get(label))
            cells = []
            for m in here:
                r = sub[(sub["distiller"].astype(str) == label) & (sub["model"].astype(str) == m)]
                cells.append(cell_stat(r, opts.metric, unit))
            rows.append(Row([names.method_name(label)], cells, kind))
        ours = [r for r in rows if r.kind != "whole"]
        for j in range(len(here)):
            mark_column([r.cells[j] for r in ours], opts.precision, opts.alpha, higher)
        for label, row in zip(labels, rows):
            for m, c in zip(here, row.cells):
                records.append(_record(label, row.kind, False, d, i, m, opts.metric, unit, c, ""))
        n_values = [c.n for r in rows for c in r.cells if c is not None]
        tested = any(c.tied is not None for r in ours for c in r.cells if c is not None)
        caption = ("Rows: the method that made the synthetic set; columns: the model trained on it. "
                   f"{_sample_text(sub, unit, n_values, None)}. "
                   + _rule_text(unit, opts.alpha, higher, tested, False, any(r.kind == "whole" for r in rows)))
        tables.append(Table(names.slug("cross_arch", d, f"ipc{i}"),
                            f"Cross-architecture {_metric_label(opts.metric)} on {names.dataset_name(d)}, IPC {i}",
                            ["Method"], [names.model_name(m) for m in here], rows, [], caption, [],
                            opts.precision, max(n_values) if n_values else None, pd.DataFrame(records)))
    return tables


# -- NAS -----------------------------------------------------------------------------------------------------
NAS_SUMMARY_COLUMNS = ["dataset", "proxy", "ipc", "spearman_all", "spearman_topk", "topk", "selected_candidate",
                       "selected_test_accuracy", "best_test_accuracy", "wall_time_s", "images_stored"]


def summarise_nas(nas: pd.DataFrame, topk: int = 10) -> pd.DataFrame:
    """``nas_summary.csv``'s columns computed from ``nas.csv`` (used when the summary file is absent)."""
    from scipy.stats import spearmanr

    truth = "gt_val_accuracy" if "gt_val_accuracy" in nas else "gt_test_accuracy"
    out = []
    for (d, proxy, ipc), g in nas.groupby(["dataset", "proxy", "ipc"], sort=False, dropna=False):
        g = g.dropna(subset=["proxy_val_accuracy", truth])
        if not len(g):
            continue
        top = g.nlargest(min(topk, len(g)), truth)
        pick = g.loc[g["proxy_val_accuracy"].idxmax()]
        rho = spearmanr(g["proxy_val_accuracy"], g[truth]).statistic if len(g) > 2 else np.nan
        rho_k = spearmanr(top["proxy_val_accuracy"], top[truth]).statistic if len(top) > 2 else np.nan
        out.append({"dataset": d, "proxy": proxy, "ipc": ipc, "spearman_all": rho, "spearman_topk": rho_k,
                    "topk": len(top), "selected_candidate": pick["candidate"],
                    "selected_test_accuracy": pick.get("gt_test_accuracy", np.nan),
                    "best_test_accuracy": g["gt_test_accuracy"].max() if "gt_test_accuracy" in g else np.nan,
                    "wall_time_s": np.nan, "images_stored": np.nan})
    return pd.DataFrame(out, columns=NAS_SUMMARY_COLUMNS)


def nas_table(summary: pd.DataFrame, precision: int = 1) -> Table:
    df = summary.copy()
    for c in NAS_SUMMARY_COLUMNS:
        if c not in df:
            df[c] = np.nan
    order = names.order_methods(df["proxy"].astype(str))
    df["_d"] = df["dataset"].map({d: k for k, d in enumerate(dict.fromkeys(df["dataset"]))})
    df["_p"] = df["proxy"].astype(str).map({p: k for k, p in enumerate(order)})
    df = df.sort_values(["_d", "ipc", "_p"], kind="stable")
    topks = sorted(set(int(k) for k in df["topk"].dropna()))

    def num(x, p=precision):
        return "–" if pd.isna(x) else f"{float(x):.{p}f}"

    rows = []
    for _, r in df.iterrows():
        ipc = "–" if pd.isna(r["ipc"]) else str(int(r["ipc"]))
        images = "–" if pd.isna(r["images_stored"]) else f"{int(r['images_stored']):,}"
        minutes = "–" if pd.isna(r["wall_time_s"]) else f"{float(r['wall_time_s']) / 60:.1f}"
        rows.append(Row([names.dataset_name(str(r["dataset"])), ipc, names.method_name(str(r["proxy"]))],
                        [num(r["selected_test_accuracy"]), num(r["best_test_accuracy"]),
                         num(r["spearman_all"], 2), num(r["spearman_topk"], 2), minutes, images,
                         "–" if pd.isna(r["selected_candidate"]) else str(r["selected_candidate"])]))
    k = f"top-{topks[0]}" if len(topks) == 1 else "top-k"
    caption = ("Neural architecture search with each proxy: every candidate is trained on the proxy, the one with "
               "the best proxy validation accuracy is retrained on the whole training set. Selected: its test "
               "accuracy (%); Best: the best test accuracy among the candidates; ρ: Spearman rank correlation "
               f"between proxy and ground-truth accuracies over all candidates and over the {k} (by ground "
               "truth); time: training every candidate on the proxy; images: the proxy's size.")
    return Table("nas", "Neural architecture search", ["Dataset", "IPC", "Proxy"],
                 ["Selected (%)", "Best (%)", "ρ (all)", f"ρ ({k})", "Time (min)", "Images", "Selected arch."],
                 rows, [], caption, [], precision, None,
                 df.drop(columns=["_d", "_p"]).reset_index(drop=True))


# -- cost ----------------------------------------------------------------------------------------------------
def cost_table(inputs: Inputs, opts: TableOptions) -> Table | None:
    """Distillation cost per (dataset, method, IPC): wall time, peak memory, iterations (from the metadata).

    **One-off costs.** ``herding``, ``kcenter`` and ``forgetting`` select with a ConvNet trained on the real data
    once per (dataset, network, seed) and shared by the three methods at every IPC (``cache/trained_nets/``);
    the set that happened to train it recorded the training in its wall time. The table takes it out of that
    set's wall time and shows it in its own column, on every row whose sets use such a network, with a note
    saying that it is paid once (``cached`` when it was trained by an earlier run).

    **Unmeasured memory.** On the CPU the harness measures the growth of the process's resident memory; a set
    distilled within memory the process already held shows no growth (0.0 MB). Such values are shown as ``–``
    (not measured), not as a cost of zero; CUDA's allocator peak is always a measurement.
    """
    df = inputs.results
    if not len(df) or "distill_time_s" not in df:
        return None
    df = df[df["distill_time_s"].notna()]
    # a set shared by two dataset entries (the same whitening reached two ways: one key) is a row of each entry
    key = ["results_dir", "dataset", "synset_key"] if "synset_key" in df else ["results_dir", "dataset",
                                                                                "distiller", "ipc", "seed"]
    sets = df.drop_duplicates(key)
    if not len(sets):
        return None
    mmap = method_map(df)
    cols = select_columns(sets, opts.columns)
    labels = select_rows(names.order_methods(sets["distiller"].astype(str), mmap), opts.rows)

    def meta_of(r) -> dict:
        if "synset_key" not in r or not isinstance(r["synset_key"], str):
            return {}
        return inputs.synset_meta(r["results_dir"], r["synset_key"]) or {}

    # the one-off trainings: which set paid for each shared network, and how long it took
    trained: dict[str, float] = {}
    for _, r in sets.iterrows():
        meta = meta_of(r)
        k, secs = meta.get("trained_net_key"), meta.get("trained_net_seconds")
        if k and meta.get("trained_net_reused") is False and isinstance(secs, (int, float)) and secs > 0:
            trained[str(k)] = max(trained.get(str(k), 0.0), float(secs))
    shared_column = any(meta_of(r).get("trained_net_key") for _, r in sets.iterrows())

    devices, kinds, rows, records = set(), set(), [], []
    unmeasured = cached = False
    for d, i in cols:
        for label in labels:
            g = sets[(sets["dataset"].astype(str) == d) & (sets["ipc"] == i) & (sets["distiller"].astype(str) == label)]
            if not len(g):
                continue
            iters, ms_per_it, times, mems, oneoff, net_keys = [], [], [], [], [], set()
            for _, r in g.iterrows():
                meta = meta_of(r)
                seconds = float(r["distill_time_s"])
                k = meta.get("trained_net_key")
                if k:
                    net_keys.add(str(k))
                    if meta.get("trained_net_reused") is False and str(k) in trained:
                        seconds = max(0.0, seconds - trained[str(k)])  # the one-off training has its own column
                    if str(k) in trained:
                        oneoff.append(trained[str(k)])
                times.append(seconds)
                kind = str(meta.get("peak_mem_kind", ""))
                mem = r["distill_peak_mem_mb"] if "distill_peak_mem_mb" in r else np.nan
                mem = float(mem) if pd.notna(mem) else np.nan
                if np.isfinite(mem) and mem < 0.05 and kind != "cuda_allocated":
                    mem = np.nan  # no growth of the resident memory: not measured, not free
                    unmeasured = True
                mems.append(mem)
                if not meta:
                    continue
                devices.add(str(meta.get("device", "")))
                kinds.add(kind)
                it = (meta.get("config") or {}).get("iterations")
                if isinstance(it, (int, float)) and it > 0:
                    iters.append(int(it))
                    ms_per_it.append(1000 * seconds / it)
            if "distill_peak_mem_mb" in g and g["distill_peak_mem_mb"].notna().any() and np.isnan(mems).all():
                unmeasured = True
            t = stat(np.asarray(times, dtype=float))
            mem = stat(np.asarray(mems, dtype=float))
            images = g["num_images"].dropna() if "num_images" in g else pd.Series(dtype=float)
            it_text = _count_text(iters) if iters else "–"
            shared = stat(np.asarray(oneoff, dtype=float))
            if net_keys and shared is None:
                shared_text = "cached"
                cached = True
            else:
                shared_text = _pm(shared, 2) if net_keys else "–"
            values = [_pm(t, 2), _pm(mem, 1), it_text, f"{np.mean(ms_per_it):.1f}" if ms_per_it else "–",
                      str(int(images.iloc[0])) if len(images) else "–"]
            if shared_column:
                values.insert(1, shared_text)
            rows.append(Row([names.dataset_name(d), names.method_name(label), str(i)], values,
                            f"{d}:{i}"))  # a rule between (dataset, IPC) groups
            records.append({"dataset": d, "method": label, "ipc": i, "seeds": len(g),
                            "wall_time_s_mean": t.mean if t else None, "wall_time_s_std": t.std if t else None,
                            "shared_training_s_mean": shared.mean if shared else None,
                            "shared_training_cached": bool(net_keys) and shared is None,
                            "peak_mem_mb_mean": mem.mean if mem else None, "peak_mem_mb_std": mem.std if mem else None,
                            "iterations": iters[0] if len(set(iters)) == 1 else None,
                            "ms_per_iteration": float(np.mean(ms_per_it)) if ms_per_it else None,
                            "num_images": int(images.iloc[0]) if len(images) else None})
    devices.discard("")
    kinds.discard("")
    mem_text = {"cuda_allocated": "peak CUDA memory allocated", "cpu_rss": "increase of the process's resident "
                "memory (CPU)"}
    n = sets.groupby(["dataset", "distiller", "ipc"]).size()
    caption = (f"Distillation cost per synthetic set, mean ± std over {_plural(_count_text(n), 'seed')}: wall "
               f"time, peak memory ({' / '.join(mem_text.get(k, k) for k in sorted(kinds)) or 'as measured'}), "
               f"iterations of the distiller's config and the time per iteration"
               f"{' on ' + ', '.join(sorted(devices)) if devices else ''}. Coresets have no iterations. Times are "
               f"as measured in each run, on its machine and under its load: sets distilled beside other work, or "
               f"resumed across runs, are not comparable with each other to better than that load.")
    notes = [] if devices else ["Iterations need the synthetic sets' metadata (synsets/*.json), which was not found."]
    if shared_column:
        notes.append("One-off training: herding, k-center and forgetting select with a ConvNet trained on the real "
                     "data once per dataset and seed, shared by these methods at every IPC (cache/trained_nets/). "
                     "Its training time is paid once, not per row: it is shown on every row that uses it and left "
                     "out of their wall time (its memory stays in the peak memory of the set that trained it)" + ("; 'cached': trained by an earlier run, its time is not in these "
                                                  "results." if cached else "."))
    if unmeasured:
        notes.append("Peak memory '–': not measured. On the CPU the harness measures how much the process's "
                     "resident memory grows; a set distilled within memory the process already held shows no "
                     "growth, which is not a cost of zero.")
    columns = ["Wall time (s)", "Peak memory (MB)", "Iterations", "ms / iteration", "Images"]
    if shared_column:
        columns.insert(1, "One-off training (s)")
    return Table("cost", "Distillation cost", ["Dataset", "Method", "IPC"], columns,
                 rows, [], caption, notes, opts.precision, None, pd.DataFrame(records))


def _pm(s: Stat | None, p: int) -> str:
    if s is None:
        return "–"
    return f"{s.mean:.{p}f} ± {s.std:.{p}f}" if s.n > 1 else f"{s.mean:.{p}f}"
