"""Tables across the evaluation's dimensions: protocols (the fairness table), labels and augmentations (DD-Ranking's
robustness scores) and distillation budgets (snapshots), plus which value of each dimension the main tables show.

Each table is built from the tidy results like the main ones (:mod:`atombench.report.tables`) and is empty when the
results lack the dimension (one protocol, hard labels only, no snapshots).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..grid import preferred, report_dimensions
from ..summary import varies
from . import names
from .inputs import Inputs
from .render import Row, Table
from .stats import Stat, samples, stat
from .tables import (TableOptions, _cell_rows, _metric_label, _pm, _sample_text, check_metric, higher_is_better,
                     method_map, resolve_unit, select_columns, select_rows)


# -- protocols: the fairness table -----------------------------------------------------------------------------
def training_extras(train_config) -> list[str]:
    """What a row's training (its ``train_config`` JSON) does beyond the reference's SGD, halfway decay and single
    augmentation: the optimiser, a multi-step schedule, a mix after the augmentation (NCFM's protocol), for the
    fairness table's settings; empty for a reference training or an unreadable config."""
    import json

    try:
        t = json.loads(train_config) if isinstance(train_config, str) else None
    except ValueError:
        return []
    if not isinstance(t, dict):
        return []
    out = []
    if t.get("optimizer", "sgd") != "sgd":
        out.append(f"{'AdamW' if t['optimizer'] == 'adamw' else t['optimizer']} wd {float(t.get('weight_decay', 0)):g}")
    if t.get("lr_milestones"):
        at = "/".join(f"{float(f):g}" for f in t["lr_milestones"])
        out.append(f"lr x{float(t.get('lr_gamma', 0.1)):g} at {at} of the epochs")
    if t.get("mix", "none") != "none":
        out.append(f"then {t['mix']} p {float(t.get('mix_prob', 1.0)):g}")
    return out


def _ranks(means: dict[str, float], higher: bool) -> dict[str, float]:
    """Competition ranks (1 = best; ties share the average rank) of the methods with a mean."""
    s = pd.Series({k: v for k, v in means.items() if v is not None and not np.isnan(v)}, dtype=float)
    if not len(s):
        return {}
    return s.rank(ascending=not higher, method="average").to_dict()


def fairness_tables(inputs: Inputs, opts: TableOptions) -> list[Table]:
    """Each method under its own paper's protocol and under the common one (``eval.protocol: both``).

    ``fairness``: rows = methods, columns = dataset x IPC, each cell "own / common" (mean ± std) and the change;
    ``fairness_ranks``: the rank of each method among the methods of its column under each protocol, their mean over
    the columns, and Kendall's tau between the two rankings per column. Empty when the results hold only one
    protocol."""
    ok = inputs.ok
    if "protocol" not in ok or not {"paper", "common"} <= set(ok["protocol"].dropna().astype(str)):
        return []
    check_metric(ok, opts.metric)
    models = list(dict.fromkeys(ok["model"].astype(str)))
    model = opts.model or models[0]
    if model not in models:
        return []
    df = ok[ok["model"].astype(str) == model]
    cols = select_columns(df, opts.columns)
    mmap = method_map(ok)
    labels = [x for x in select_rows(names.order_methods(df["distiller"].astype(str), mmap), opts.rows)
              if names.method_kind(x, mmap.get(x)) != "whole"]
    unit = resolve_unit(df, opts.unit)
    higher = higher_is_better(opts.metric)
    p = opts.precision
    own_df, common_df = df[df["protocol"] == "paper"], df[df["protocol"] == "common"]

    def settings(label: str) -> str:
        r = own_df[own_df["distiller"].astype(str) == label]
        if not len(r):
            return ""
        first = r.iloc[0]
        declared = bool(first.get("protocol_declared", True)) if "protocol_declared" in r else True
        if not declared:
            return "none declared: the common protocol"
        lr = first.get("lr")
        parts = [f"{int(first['epochs'])} epochs", f"batch {int(first['batch_size'])}",
                 f"lr {'learned' if str(lr) == 'learned' else f'{float(lr):g}'}" if lr is not None else "",
                 f"aug {first.get('augment')}"] + training_extras(first.get("train_config"))
        if str(first.get("checkpoint_rule", "final")) == "best":
            parts.append("paper reports its best checkpoint")
        return ", ".join(x for x in parts if x)

    rows, rank_rows, records = [], [], []
    stats: dict[tuple[str, str, int], tuple[Stat | None, Stat | None]] = {}
    for label in labels:
        cells = []
        for d, i in cols:
            own = stat(samples(_cell_rows(own_df, label, d, i), opts.metric, unit))
            com = stat(samples(_cell_rows(common_df, label, d, i), opts.metric, unit))
            stats[(label, d, i)] = (own, com)
            if own is None and com is None:
                cells.append(None)
                continue
            text = f"{_pm(own, p)} / {_pm(com, p)}"
            if own is not None and com is not None:
                text += f" ({own.mean - com.mean:+.{p}f})"
            cells.append(text)
        rows.append(Row([names.method_name(label), settings(label)], cells, names.method_kind(label, mmap.get(label))))
    taus, per_col_ranks = [], []
    for d, i in cols:
        r_own = _ranks({x: (stats[(x, d, i)][0].mean if stats[(x, d, i)][0] else None) for x in labels}, higher)
        r_com = _ranks({x: (stats[(x, d, i)][1].mean if stats[(x, d, i)][1] else None) for x in labels}, higher)
        per_col_ranks.append((r_own, r_com))
        both = [x for x in labels if x in r_own and x in r_com]
        if len(both) >= 3:
            from scipy.stats import kendalltau

            tau = kendalltau([r_own[x] for x in both], [r_com[x] for x in both]).statistic
            taus.append(f"{names.dataset_name(d)} IPC {i}: {tau:.2f}")
        for x in labels:
            own, com = stats[(x, d, i)]
            records.append({"method": x, "dataset": d, "ipc": i, "model": model, "metric": opts.metric,
                            "unit": unit, "own_mean": own.mean if own else None, "own_std": own.std if own else None,
                            "own_n": own.n if own else None, "common_mean": com.mean if com else None,
                            "common_std": com.std if com else None, "common_n": com.n if com else None,
                            "change": (own.mean - com.mean) if own and com else None,
                            "rank_own": r_own.get(x), "rank_common": r_com.get(x), "own_protocol": settings(x)})
    for x in labels:
        cells, ro, rc = [], [], []
        for r_own, r_com in per_col_ranks:
            a, b = r_own.get(x), r_com.get(x)
            cells.append(None if a is None and b is None else f"{_rank_text(a)} / {_rank_text(b)}")
            ro += [a] if a is not None else []
            rc += [b] if b is not None else []
        mean_text = f"{np.mean(ro):.1f} / {np.mean(rc):.1f}" if ro and rc else None
        rank_rows.append(Row([names.method_name(x)], cells + [mean_text], names.method_kind(x, mmap.get(x))))
    groups = [(names.dataset_name(d), sum(1 for dd, _ in cols if dd == d)) for d in dict.fromkeys(d for d, _ in cols)]
    # the models of one protocol: a job shared by both protocols is one trained model, listed once per protocol
    one = df[df["protocol"].astype(str) == "common"] if "protocol" in df else df
    n_text = _sample_text(one if len(one) else df, unit, [c.n for pair in stats.values() for c in pair if c is not None],
                          model)
    caption = (f"Each cell: the method's sets evaluated under its own paper's protocol / under the common protocol "
               f"(the suite's eval: section, the same for every method), and the change (own - common). "
               f"{n_text}. The same trained-model seeds under both protocols (a paired comparison); a method "
               f"whose own protocol is the common one is trained once and shown under both. atombench evaluates "
               f"the final synthetic set under both, also where a paper reports its best checkpoint.")
    frame = pd.DataFrame(records)
    main = Table("fairness", f"Own protocol vs common protocol: {_metric_label(opts.metric)} of "
                             f"{names.model_name(model)}", ["Method", "Own protocol"], [f"IPC {i}" for _, i in cols],
                 rows, groups, caption, [], p, None, frame)
    rank_caption = ("Rank of each method among the methods of its column (1 = best; ties share the mean rank) "
                    "under its own protocol / under the common protocol; last column: the mean over the columns."
                    + (f" Kendall's tau between the two rankings: {'; '.join(taus)}." if taus else ""))
    ranks = Table("fairness_ranks", "Ranking of the methods under each protocol", ["Method"],
                  [f"IPC {i}" for _, i in cols] + ["mean rank"], rank_rows,
                  groups + [("all", 1)] if groups else [], rank_caption, [], p, None, frame)
    return [main, ranks]


def _rank_text(r: float | None) -> str:
    if r is None:
        return "–"
    return f"{r:.0f}" if float(r).is_integer() else f"{r:.1f}"


# -- several evaluation settings: what the main tables show -----------------------------------------------------
def default_view(inputs: Inputs) -> tuple[dict[str, str], list[str]]:
    """For each evaluation dimension with several values in the results (the axes that split the report,
    :func:`atombench.grid.report_dimensions`: protocol, labels, augmentation), the value the main and
    cross-architecture tables show (the axis's ``prefer``: the common protocol, hard labels; else the first listed);
    and a note per dimension. Rows without the column (whole-dataset references) are kept by every choice."""
    ok = inputs.ok
    chosen, notes = {}, []
    prefer = preferred()
    for dim in report_dimensions():
        if not varies(ok, dim):
            continue
        values = list(dict.fromkeys(ok[dim].dropna().astype(str)))
        pick = prefer.get(dim) if prefer.get(dim) in values else values[0]
        chosen[dim] = pick
        notes.append(f"{dim}: {', '.join(values)} in the results; the main and cross-architecture tables show "
                     f"{dim} {pick} (--where {dim}=VALUE for another)")
    return chosen, notes


def final_sets(inputs: Inputs) -> Inputs:
    """The rows of final synthetic sets (snapshots, the budget curves' points, left out)."""
    import dataclasses

    df = inputs.results
    if "snapshot" not in df:
        return inputs
    keep = df["snapshot"].isna() | (df["snapshot"].astype(str).str.lower().isin(["false", "0", "0.0"]))
    return dataclasses.replace(inputs, results=df[keep].reset_index(drop=True))


def apply_view(inputs: Inputs, chosen: dict[str, str]) -> Inputs:
    import dataclasses

    df = inputs.results
    for dim, value in chosen.items():
        df = df[df[dim].isna() | (df[dim].astype(str) == value)]
    return dataclasses.replace(inputs, results=df.reset_index(drop=True))


# -- DD-Ranking's robustness scores ------------------------------------------------------------------------------
def robustness_tables(inputs: Inputs, opts: TableOptions) -> list[Table]:
    """``robustness``: rows = methods, columns = dataset x IPC, cells "LRS / ARS" (mean ± std over seeds);
    ``robustness_components``: HLR, IOR and the gains over random with and without augmentation. Empty unless the
    results have soft and hard labels or an augmentation and ``none`` (:mod:`atombench.report.robustness`)."""
    from .robustness import G_ARS, W_LRS, robustness_frame, settings

    ok = inputs.ok
    if not len(ok) or "distiller" not in ok or "ipc" not in ok:
        return []
    s = settings(ok)
    if not (s["labels"] == "soft" or s["plain"]):
        return []
    frame = robustness_frame(ok, opts.metric)
    if not len(frame):
        return []
    models = list(dict.fromkeys(frame["model"].astype(str)))
    model = opts.model if opts.model in models else models[0]
    frame = frame[frame["model"].astype(str) == model]
    cols = [(d, int(i)) for d, i in dict.fromkeys(zip(frame["dataset"], frame["ipc"]))]
    mmap = method_map(ok)
    labels = [x for x in names.order_methods(frame["method"].astype(str), mmap)]
    p = opts.precision

    def cell(sub: pd.DataFrame, col: str) -> Stat | None:
        vals = sub[col].dropna().astype(float).to_numpy() if col in sub else np.zeros(0)
        return Stat(float(vals.mean()), float(vals.std()), len(vals)) if len(vals) else None

    rows, comp_rows, records = [], [], []
    has_ars = "ars" in frame and frame["ars"].notna().any()
    for x in labels:
        cells = []
        for d, i in cols:
            sub = frame[(frame["method"] == x) & (frame["dataset"] == d) & (frame["ipc"] == i)]
            a, b = cell(sub, "lrs"), cell(sub, "ars")
            cells.append(None if a is None and b is None else f"{_pm(a, p)} / {_pm(b, p)}")
            comp = [cell(sub, c) for c in ("hlr", "ior", "gain_aug", "gain_plain")]
            comp_rows.append(Row([names.method_name(x), names.dataset_name(d), f"{i}"],
                                 [_pm(c, p) if c is not None else None for c in comp] +
                                 [_pm(a, p) if a else None, _pm(b, p) if b else None], names.method_kind(x, mmap.get(x))))
            records.append({"method": x, "dataset": d, "ipc": i, "model": model,
                            **{f"{c}_mean": (cell(sub, c).mean if cell(sub, c) else None)
                               for c in ("hlr", "ior", "lrs", "gain_aug", "gain_plain", "ars")},
                            **{f"{c}_std": (cell(sub, c).std if cell(sub, c) else None) for c in ("lrs", "ars")}})
        rows.append(Row([names.method_name(x)], cells, names.method_kind(x, mmap.get(x))))
    groups = [(names.dataset_name(d), sum(1 for dd, _ in cols if dd == d)) for d in dict.fromkeys(d for d, _ in cols)]
    what = (f"labels {s['labels']}, augmentation {s['aug']}" + (f" (ARS: with {s['aug']} and without)"
                                                                 if has_ars else ""))
    caption = (f"DD-Ranking's label-robust score LRS = 100 (e^a - e^-1)/(e - e^-1), a = {W_LRS:g} IOR - "
               f"{1 - W_LRS:g} HLR, and augmentation-robust score ARS (the same map of b = {G_ARS:g} x gain over "
               f"random with augmentation + {1 - G_ARS:g} x gain without), accuracies as fractions; mean ± std over "
               f"seeds of {names.model_name(model)}, {what}. HLR needs the whole-dataset reference (eval.whole), IOR "
               f"and ARS the random baseline at the same IPC; higher is better for both scores.")
    frame_out = pd.DataFrame(records)
    main = Table("robustness", f"Label- and augmentation-robust scores (LRS / ARS) of {names.model_name(model)}",
                 ["Method"], [f"IPC {i}" for _, i in cols], rows, groups, caption, [], p, None, frame_out)
    comp_caption = ("HLR: whole-dataset accuracy - the set's hard-label accuracy (lower is better); IOR: the set's "
                    "accuracy - the random subset's under the same labels and augmentation; the gains over random "
                    "with and without augmentation enter ARS. Percentage points, mean ± std over seeds.")
    comp = Table("robustness_components", "Components of the robustness scores", ["Method", "Dataset", "IPC"],
                 ["HLR", "IOR", "gain (aug)", "gain (no aug)", "LRS", "ARS"], comp_rows, [], comp_caption, [], p,
                 None, frame_out)
    return [main, comp, _settings_table(ok, model, mmap, s, opts)]


def _settings_table(ok: pd.DataFrame, model: str, mmap: dict, s: dict, opts: TableOptions) -> Table:
    """``robustness_settings``: the accuracies the scores come from, one column per (labels, augmentation)
    setting, and what soft labels and augmentation each add (mean ± std over seeds, percentage points)."""
    from .robustness import _per_seed, common_rows

    df = common_rows(ok[ok["ipc"].notna() & (ok["model"].astype(str) == model)])
    labels = [x for x in ("hard", "soft") if x == "hard" and s["has_hard"] or x == "soft" and s["labels"] == "soft"]
    augs = [a for a in dict.fromkeys([s["plain"], s["aug"]]) if a is not None]
    settings_ = [(lab, a) for lab in labels for a in augs]
    per = {st: _per_seed(df, st[0], st[1], opts.metric) for st in settings_}
    gains = []  # (name, (labels, aug) minus (labels, aug))
    if len(labels) == 2:
        gains.append((f"soft - hard ({s['aug']})", ("soft", s["aug"]), ("hard", s["aug"])))
    if s["plain"] and s["aug"] != s["plain"]:
        gains.append((f"{s['aug']} - none (hard)" if "hard" in labels else f"{s['aug']} - none",
                      (labels[0], s["aug"]), (labels[0], s["plain"])))
    keys = sorted({k[:4] for series in per.values() for k in series.index},
                  key=lambda k: (str(k[0]), float(k[1])))
    methods = names.order_methods([k[3] for k in keys], mmap)
    p = opts.precision
    rows, records = [], []

    def summary(vals) -> Stat | None:
        vals = np.asarray([v for v in vals if v is not None and not pd.isna(v)], dtype=float)
        return Stat(float(vals.mean()), float(vals.std()), len(vals)) if len(vals) else None

    for x in methods:
        for d, i, m, _ in [k for k in keys if k[3] == x]:
            cells, rec = [], {"method": x, "dataset": d, "ipc": int(i), "model": m}
            for st in settings_:
                series = per[st]
                sub = series[[k for k in series.index if k[:4] == (d, i, m, x)]]
                c = summary(sub.to_numpy())
                cells.append(_pm(c, p) if c else None)
                rec[f"{st[0]}_{st[1]}_mean"] = c.mean if c else None
            for name, a, b in gains:
                sa, sb = per[a], per[b]
                diffs = [sa.get(k) - sb.get(k) for k in sa.index if k[:4] == (d, i, m, x) and k in sb.index]
                c = summary(diffs)
                cells.append(_pm(c, p) if c else None)
                rec[f"{name}_mean"] = c.mean if c else None
            rows.append(Row([names.method_name(x), names.dataset_name(d), f"{int(i)}"], cells,
                            names.method_kind(x, mmap.get(x))))
            records.append(rec)
    columns = [f"{lab}, {a}" for lab, a in settings_] + [g[0] for g in gains]
    caption = (f"Test accuracy (%) of {names.model_name(model)} under each label and augmentation setting the scores "
               "use, and what soft labels and augmentation add (per seed: the difference on the same synthetic "
               "set, then mean ± std over seeds; percentage points).")
    return Table("robustness_settings", "Accuracy under each label and augmentation setting",
                 ["Method", "Dataset", "IPC"], columns, rows, [], caption, [], p, None, pd.DataFrame(records))


# -- distillation budget: snapshots ---------------------------------------------------------------------------------
def budget_points(inputs: Inputs, opts: TableOptions) -> pd.DataFrame:
    """Accuracy of the iterative distillers' snapshots and final sets, one row per (dataset, IPC, method,
    iteration): mean ± std over seeds of the accuracy and the distillation wall time so far, and whether the point
    is on the Pareto front of its (dataset, IPC) (no other point reaches at least its accuracy in at most its time).
    Empty without snapshots."""
    ok = inputs.ok
    if "snapshot" not in ok or "iteration" not in ok or not len(ok):
        return pd.DataFrame()
    chosen, _ = default_view(final_sets(inputs))
    df = apply_view(inputs, chosen).ok
    df = df[df["iteration"].notna()]
    if not len(df):
        return pd.DataFrame()
    models = list(dict.fromkeys(df["model"].astype(str)))
    model = opts.model if opts.model in models else models[0]
    df = df[df["model"].astype(str) == model]
    per_seed = df.groupby(["dataset", "ipc", "distiller", "iteration", "seed"], dropna=False).agg(
        acc=(opts.metric, "mean"), time=("distill_time_s", "mean")).reset_index()
    pts = per_seed.groupby(["dataset", "ipc", "distiller", "iteration"], dropna=False).agg(
        mean=("acc", "mean"), std=("acc", lambda v: float(np.std(v))), n=("acc", "size"),
        time=("time", "mean")).reset_index()
    keys = ["dataset", "ipc", "distiller", "iteration"]
    per_model = df.groupby(keys, dropna=False).agg(
        model_std=(opts.metric, lambda v: float(np.std(v)) if len(v) > 1 else float("nan")),
        final=("snapshot", lambda v: bool((~v.fillna(False).astype(bool)).any()))).reset_index()
    pts = pts.merge(per_model, on=keys, how="left")
    one = pts["n"] == 1  # one synthetic set: the spread of the models trained on it
    pts["std"] = pts["std"].where(~one, pts["model_std"])
    pts["std_over"] = np.where(one, "models", "seeds")
    pts["model"] = model
    pts["pareto"] = False
    for (_, _), g in pts.groupby(["dataset", "ipc"]):
        for i, r in g.iterrows():
            dominated = ((g["time"] <= r["time"]) & (g["mean"] >= r["mean"])
                         & ((g["time"] < r["time"]) | (g["mean"] > r["mean"]))).any()
            pts.loc[i, "pareto"] = not dominated
    return pts


def _fmt_time(t: float | None) -> str:
    if t is None or (isinstance(t, float) and np.isnan(t)):
        return "–"
    return f"{t:.0f} s" if t < 600 else f"{t / 60:.1f} min" if t < 7200 else f"{t / 3600:.1f} h"


def budget_tables(inputs: Inputs, opts: TableOptions) -> list[Table]:
    """``budget``: accuracy against distillation iterations and wall time per method, dataset and IPC (Pareto
    points marked); ``cost_to_reach``: the wall time each method needs to reach 90/95/99 % of its own final
    accuracy and the best rival's final accuracy. Empty without snapshots (``snapshots:`` in the suite)."""
    pts = budget_points(inputs, opts)
    if not len(pts) or not (pts.groupby(["dataset", "ipc", "distiller"]).size() > 1).any():
        return []
    mmap = method_map(inputs.ok)
    order = names.order_methods(pts["distiller"].astype(str), mmap)
    p = opts.precision
    rows, reach_rows, records = [], [], []
    for d, i in dict.fromkeys(zip(pts["dataset"], pts["ipc"])):
        g = pts[(pts["dataset"] == d) & (pts["ipc"] == i)]
        finals = {m: gm.sort_values("iteration").iloc[-1] for m, gm in g.groupby("distiller")}
        for m in [x for x in order if x in finals]:
            gm = g[g["distiller"] == m].sort_values("iteration")
            for _, r in gm.iterrows():
                rows.append(Row([names.method_name(m), names.dataset_name(d), f"{int(i)}"],
                                [f"{int(r['iteration'])}", _fmt_time(r["time"]),
                                 f"{r['mean']:.{p}f} ± {r['std']:.{p}f}" if np.isfinite(r["std"])
                                 else f"{r['mean']:.{p}f}", "*" if r["pareto"] else ""],
                                names.method_kind(m, mmap.get(m))))
            final = finals[m]["mean"]
            rivals = {x: f["mean"] for x, f in finals.items() if x != m}
            best_rival = max(rivals.items(), key=lambda kv: kv[1]) if rivals else None

            def first_time(threshold: float):
                hit = gm[gm["mean"] >= threshold - 1e-9]
                return float(hit.iloc[0]["time"]) if len(hit) else None

            reach = {f: first_time(final * f / 100) for f in (90, 95, 99)}
            rival_t = first_time(best_rival[1]) if best_rival else None
            last = "" if finals[m]["final"] else f" (snapshot {int(finals[m]['iteration'])})"
            reach_rows.append(Row([names.method_name(m), names.dataset_name(d), f"{int(i)}"],
                                  [f"{final:.{p}f}{last}", _fmt_time(float(finals[m]["time"]))]
                                  + [_fmt_time(reach[f]) for f in (90, 95, 99)]
                                  + [f"{names.method_name(best_rival[0])} {best_rival[1]:.{p}f}: {_fmt_time(rival_t)}"
                                     if best_rival else None], names.method_kind(m, mmap.get(m))))
            records.append({"method": m, "dataset": d, "ipc": int(i), "final": final,
                            "final_time_s": float(finals[m]["time"]),
                            **{f"time_to_{f}pct_s": reach[f] for f in (90, 95, 99)},
                            "best_rival": best_rival[0] if best_rival else None,
                            "best_rival_final": best_rival[1] if best_rival else None,
                            "time_to_best_rival_s": rival_t})
    model = pts["model"].iloc[0]
    caption = (f"Accuracy of {names.model_name(model)} trained on each iterative method's snapshots and final sets "
               f"(mean ± std over seeds; over the models trained on the one set where a point has one seed; no ± "
               f"for one set and one model), against the distillation iterations and the distillation wall time so "
               f"far (mean over seeds; for a resumed run, the time of its runs added). *: on the Pareto front of its "
               f"dataset and IPC (no point of any method reaches at least its accuracy in at most its time).")
    reach_caption = ("Distillation wall time to reach 90/95/99 % of the method's own final accuracy (the first "
                     "snapshot at or above it), and to reach the best rival's final accuracy (–: never within the "
                     "budget run). Times are those of the machine the run used (see the cost table). Where the "
                     "final set is not there yet (a run cut off, or evaluated with --no-distill), the last "
                     "snapshot evaluated stands for it, and says so.")
    return [Table("budget", "Accuracy against distillation budget", ["Method", "Dataset", "IPC"],
                  ["iterations", "wall time", "accuracy (%)", "Pareto"], rows, [], caption, [], p, None, pts),
            Table("cost_to_reach", "Distillation cost to reach an accuracy", ["Method", "Dataset", "IPC"],
                  ["final (%)", "final time", "90 %", "95 %", "99 %", "best rival's final"], reach_rows, [],
                  reach_caption, [], p, None, pd.DataFrame(records))]
