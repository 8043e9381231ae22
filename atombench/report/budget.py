"""The distillation-budget tables: accuracy against distillation iterations and wall time from the iterative
distillers' snapshots (``snapshots:`` in the suite), and the cost to reach an accuracy.

Built from the tidy results like the main tables (:mod:`atombench.report.tables`); empty without snapshots.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import names
from .entries import models_in_order
from .inputs import Inputs
from .render import Row, Table
from .tables import TableOptions, higher_is_better, method_map
from .views import apply_view, default_view, final_sets


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
    models = models_in_order(df["model"], inputs.suites)
    model = opts.model if opts.model in models else models[0]
    df = df[df["model"].astype(str) == model]
    per_seed = df.groupby(["dataset", "ipc", "distiller", "iteration", "seed"], dropna=False).agg(
        acc=(opts.metric, "mean"), time=("distill_time_s", "mean")).reset_index()
    # every point of a curve over the same sets: the seeds whose distillation reached the curve's last point (in a
    # run in progress the other seeds' snapshots would otherwise mix into the earlier points only)
    curve = ["dataset", "ipc", "distiller"]
    last = per_seed.groupby(curve, dropna=False)["iteration"].transform("max")
    reached = per_seed[per_seed["iteration"] == last][[*curve, "seed"]].drop_duplicates()
    per_seed = per_seed.merge(reached, on=[*curve, "seed"], how="inner")
    df = df.merge(reached, on=[*curve, "seed"], how="inner")
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
    sign = 1.0 if higher_is_better(opts.metric) else -1.0  # a loss: lower is the better point
    for (_, _), g in pts.groupby(["dataset", "ipc"]):
        for i, r in g.iterrows():
            better, value = sign * g["mean"], sign * r["mean"]
            dominated = ((g["time"] <= r["time"]) & (better >= value)
                         & ((g["time"] < r["time"]) | (better > value))).any()
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
    with_reach = higher_is_better(opts.metric)  # "90 % of the final accuracy" has no meaning for a loss
    mmap = method_map(inputs.ok)
    order = names.order_methods(pts["distiller"].astype(str), mmap)
    p = opts.precision
    rows, reach_rows, records = [], [], []
    for d, i in dict.fromkeys(zip(pts["dataset"], pts["ipc"])):
        g = pts[(pts["dataset"] == d) & (pts["ipc"] == i)]
        finals = {m: gm.sort_values("iteration").iloc[-1] for m, gm in g.groupby("distiller")}
        most = int(g["n"].max())  # the n of a full curve here (another dataset may have run more seeds)
        for m in [x for x in order if x in finals]:
            gm = g[g["distiller"] == m].sort_values("iteration")
            for _, r in gm.iterrows():
                rows.append(Row([names.method_name(m), names.dataset_name(d), f"{int(i)}"],
                                [f"{int(r['iteration'])}", _fmt_time(r["time"]),
                                 (f"{r['mean']:.{p}f} ± {r['std']:.{p}f}" if np.isfinite(r["std"])
                                  else f"{r['mean']:.{p}f}") + (f" (n={int(r['n'])})" if r["n"] < most else ""),
                                 "*" if r["pareto"] else ""],
                                names.method_kind(m, mmap.get(m))))
            final = finals[m]["mean"]
            rivals = {x: f["mean"] for x, f in finals.items() if x != m}
            best_rival = max(rivals.items(), key=lambda kv: kv[1]) if rivals else None
            # a rival whose final set is not there yet: its last snapshot, said as such (not as its final)
            rival_at = "" if best_rival is None or finals[best_rival[0]]["final"] else \
                f" (snapshot {int(finals[best_rival[0]]['iteration'])})"

            def first_time(threshold: float):
                hit = gm[gm["mean"] >= threshold - 1e-9]
                return float(hit.iloc[0]["time"]) if len(hit) else None

            reach = {f: first_time(final * f / 100) for f in (90, 95, 99)}
            rival_t = first_time(best_rival[1]) if best_rival else None
            last = "" if finals[m]["final"] else f" (snapshot {int(finals[m]['iteration'])})"
            reach_rows.append(Row([names.method_name(m), names.dataset_name(d), f"{int(i)}"],
                                  [f"{final:.{p}f}{last}", _fmt_time(float(finals[m]["time"]))]
                                  + [_fmt_time(reach[f]) for f in (90, 95, 99)]
                                  + [f"{names.method_name(best_rival[0])} {best_rival[1]:.{p}f}{rival_at}: "
                                     f"{_fmt_time(rival_t)}" if best_rival else None],
                                  names.method_kind(m, mmap.get(m))))
            records.append({"method": m, "dataset": d, "ipc": int(i), "final": final,
                            "final_time_s": float(finals[m]["time"]),
                            **{f"time_to_{f}pct_s": reach[f] for f in (90, 95, 99)},
                            "best_rival": best_rival[0] if best_rival else None,
                            "best_rival_final": best_rival[1] if best_rival else None,
                            "time_to_best_rival_s": rival_t})
    model = pts["model"].iloc[0]
    caption = (f"Accuracy of {names.model_name(model)} trained on each iterative method's snapshots and final sets "
               f"(mean ± std over seeds; over the models trained on the one set where a point has one seed; no ± "
               f"for one set and one model; each curve over the seeds whose distillation reached its last point, "
               f"a curve over fewer sets than the others of its dataset and IPC says its n), against the "
               f"distillation iterations and the distillation wall time so far (mean over seeds; for a resumed run, "
               f"the time of its runs added). *: on the Pareto front of its "
               f"dataset and IPC (no point of any method reaches at least its accuracy in at most its time).")
    reach_caption = ("Distillation wall time to reach 90/95/99 % of the method's own final accuracy (the first "
                     "snapshot at or above it), and to reach the best rival's final accuracy (–: never within the "
                     "budget run). Times are those of the machine the run used (see the cost table). Where the "
                     "final set is not there yet (a run cut off, or evaluated with --no-distill), the last "
                     "snapshot evaluated stands for it, and says so, as a rival's does.")
    return [Table("budget", "Accuracy against distillation budget", ["Method", "Dataset", "IPC"],
                  ["iterations", "wall time", "accuracy (%)", "Pareto"], rows, [], caption, [], p, None, pts),
            Table("cost_to_reach", "Distillation cost to reach an accuracy", ["Method", "Dataset", "IPC"],
                  ["final (%)", "final time", "90 %", "95 %", "99 %", "best rival's final"], reach_rows, [],
                  reach_caption, [], p, None, pd.DataFrame(records))][:2 if with_reach else 1]
