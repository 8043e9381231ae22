"""The claims table: the differences between methods that carry the papers' claims, measured and published.

A paper's claim is a difference: DataDAM above DM by about 6 points on CIFAR-10 at IPC 1, ATOM above DataDAM by
about 3. ``claims`` puts each such difference, measured here, beside the published one, with its spread and a test,
and says in words whether the published ordering reproduces:

* rows: a pair of methods (``A − B``), a dataset, its preprocessing (``none`` or ``ZCA``: read from the suite's
  dataset entries, so a pair whose methods run on different ZCA spaces of one dataset, each its paper's, are
  compared as "with ZCA"), the evaluation protocol (``paper``: each method under its own, ``common``), the IPC and
  the distillation budget (iterations: the final sets and every snapshot both methods have);
* cells: the measured difference of means ± its standard error (the two methods' seeds are independent sets, so
  ``sqrt(sd_A²/n_A + sd_B²/n_B)`` with the samples' ``ddof=1`` std), each method's mean, Welch's two-sided p over
  the per-seed samples (:func:`~atombench.report.stats.welch_p`, at least 3 per side), the published difference
  (means of the two published rows, on the dataset the results are compared with, ``published_as`` included), and
  the verdict:

  - ``reproduces``: the published sign, p < alpha;
  - ``reversed``: the opposite sign, p < alpha;
  - ``within noise``: p >= alpha (the data cannot tell the two methods apart at this size);
  - ``too few samples``: fewer than 3 seeds on a side; ``no published difference``: a method has no published row.

The pairs: ``--claims A-B,...`` (distiller labels), by default every pair of the distilling methods present (not
the coresets, not the whole dataset), ordered so that the published difference is positive (the claim as the later
paper makes it). The published numbers are those the report shows (``--published``): DataDAM's and ATOM's CIFAR
rows were recalled, not re-read, so ``--published all`` is needed to see their claims.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from . import names
from .published import lookup
from .render import Row, Table
from .stats import MIN_SAMPLES, samples, welch_p
from .tables import dataset_entries, method_map, resolve_unit

VERDICTS = ("reproduces", "reversed", "within noise", "too few samples", "no published difference")


def _published_mean(published: pd.DataFrame, dataset: str, method: str, ipc: int) -> float | None:
    row = lookup(published, dataset, method, ipc) if published is not None and len(published) else None
    return None if row is None else float(row["mean"])


def default_pairs(df: pd.DataFrame, published: pd.DataFrame, plugin_of: dict[str, str]) -> list[tuple[str, str]]:
    """Every pair of distilling methods present, ordered by the published difference (``A − B`` > 0) where both
    have published numbers (with ``--published verified``, the default, only the numbers read in the papers)."""
    mmap = method_map(df)
    labels = [x for x in names.order_methods(df["distiller"].astype(str), mmap)
              if names.method_kind(x, mmap.get(x)) not in ("whole", "coreset")]
    pairs = []
    for a, b in itertools.combinations(labels, 2):
        diffs = []
        for (d, i), _ in df.groupby(["dataset", "ipc"]):
            ds = plugin_of.get(str(d), str(d))
            pa, pb = (_published_mean(published, ds, mmap.get(x, x), int(i)) for x in (a, b))
            if pa is not None and pb is not None:
                diffs.append(pa - pb)
        pairs.append((b, a) if diffs and sum(diffs) < 0 else (a, b))
    return pairs


def parse_pairs(items: list[str] | None) -> list[tuple[str, str]] | None:
    from ..errors import UsageError

    if not items:
        return None
    out = []
    for item in items:
        a, sep, b = str(item).partition("-")
        if not sep or not a or not b:
            raise UsageError(f"--claims {item}: give a pair as A-B (distiller labels), e.g. datadam-dm")
        out.append((a, b))
    return out


def _verdict(diff: float, p: float | None, published_diff: float | None, alpha: float) -> str:
    if published_diff is None:
        return "no published difference"
    if p is None:
        return "too few samples"
    if p >= alpha:
        return "within noise"
    return "reproduces" if (diff > 0) == (published_diff > 0) else "reversed"


def claims_frame(df: pd.DataFrame, published: pd.DataFrame, suites: dict, pairs: list[tuple[str, str]] | None = None,
                 metric: str = "accuracy", alpha: float = 0.05, unit: str = "auto") -> pd.DataFrame:
    """One row per (pair, dataset, preprocessing, protocol, IPC, iterations) where both methods have results."""
    if not len(df) or "distiller" not in df or metric not in df:
        return pd.DataFrame()
    df = df[df["ipc"].notna()].copy()
    entries = dataset_entries(suites)
    plugin_of = {label: e["name"] for label, e in entries.items()}
    zca_of = {label: "ZCA" if e.get("zca") not in (None, False, "none", "false", "off") else "none"
              for label, e in entries.items()}
    df["_pre"] = df["dataset"].astype(str).map(lambda d: zca_of.get(d, "none"))
    df["_plugin"] = df["dataset"].astype(str).map(lambda d: plugin_of.get(d, d))
    df["_protocol"] = df["protocol"].astype(str) if "protocol" in df else "common"
    df["_iter"] = pd.to_numeric(df["iteration"], errors="coerce") if "iteration" in df else np.nan
    pairs = pairs or default_pairs(df, published, plugin_of)
    mmap = method_map(df)
    unit = resolve_unit(df, unit)
    records = []
    for a, b in pairs:
        sub = df[df["distiller"].astype(str).isin([a, b])]
        for (plugin, pre, proto, ipc), g in sub.groupby(["_plugin", "_pre", "_protocol", "ipc"], sort=False):
            iters_a = set(g.loc[g["distiller"].astype(str) == a, "_iter"].dropna())
            iters_b = set(g.loc[g["distiller"].astype(str) == b, "_iter"].dropna())
            for it in sorted(iters_a & iters_b) or [None]:
                ga = g[(g["distiller"].astype(str) == a) & ((g["_iter"] == it) if it is not None else True)]
                gb = g[(g["distiller"].astype(str) == b) & ((g["_iter"] == it) if it is not None else True)]
                sa, sb = samples(ga, metric, unit), samples(gb, metric, unit)
                if not len(sa) or not len(sb):
                    continue
                diff = float(sa.mean() - sb.mean())
                var = (sa.var(ddof=1) / len(sa) if len(sa) > 1 else math.nan) + \
                    (sb.var(ddof=1) / len(sb) if len(sb) > 1 else math.nan)
                p = welch_p(sa, sb)
                pa = _published_mean(published, plugin, mmap.get(a, a), int(ipc))
                pb = _published_mean(published, plugin, mmap.get(b, b), int(ipc))
                pub = None if pa is None or pb is None else pa - pb
                records.append({
                    "pair": f"{a} − {b}", "a": a, "b": b, "dataset": plugin, "zca": pre, "protocol": proto,
                    "ipc": int(ipc), "iteration": None if it is None else int(it),
                    "datasets": ", ".join(sorted(set(g["dataset"].astype(str)))),
                    "mean_a": float(sa.mean()), "mean_b": float(sb.mean()), "n_a": len(sa), "n_b": len(sb),
                    "diff": diff, "se": math.sqrt(var) if math.isfinite(var) else None, "p": p,
                    "published_a": pa, "published_b": pb, "published_diff": pub,
                    "paper_iterations_a": _paper_iterations(mmap.get(a, a)),
                    "paper_iterations_b": _paper_iterations(mmap.get(b, b)),
                    "verdict": _verdict(diff, p, pub, alpha)})
    return pd.DataFrame(records)


def _paper_iterations(method: str):
    """The distillation budget a method's paper used: its registered ``Config``'s default ``iterations`` (the
    papers' values: DM 20000, DataDAM and ATOM 8000, ...); None for a method without iterations or not installed."""
    import dataclasses

    from .. import registry

    try:
        config = registry.distillers.get(method).Config
        field = {f.name: f for f in dataclasses.fields(config)}.get("iterations")
    except Exception:  # noqa: BLE001 - a method not installed here, or a config that is not a dataclass
        return None
    return field.default if field is not None and isinstance(field.default, int) else None


def claims_tables(df: pd.DataFrame, published: pd.DataFrame, suites: dict, pairs=None, metric: str = "accuracy",
                  alpha: float = 0.05, unit: str = "auto", precision: int = 1) -> list[Table]:
    """``claims``: :func:`claims_frame` rendered (its CSV is the frame). Empty when no pair has results."""
    if pairs and len(df) and "distiller" in df:
        from ..errors import UsageError

        present = list(dict.fromkeys(df["distiller"].astype(str)))
        for label in (x for pair in pairs for x in pair):
            if label not in present:
                raise UsageError(f"--claims: no distiller '{label}' in the results; distillers: {', '.join(present)}")
    frame = claims_frame(df, published, suites, pairs, metric, alpha, unit)
    if not len(frame):
        return []
    p = precision
    rows = []
    for r in frame.itertuples():
        se = f" ± {r.se:.{p}f}" if r.se is not None and not (isinstance(r.se, float) and math.isnan(r.se)) else ""
        pub = "–" if r.published_diff is None or pd.isna(r.published_diff) else f"{r.published_diff:+.{p}f}"
        pval = "–" if r.p is None or pd.isna(r.p) else (f"{r.p:.3f}" if r.p >= 0.001 else "< 0.001")
        papers = "/".join("–" if v is None or pd.isna(v) else str(int(v))
                          for v in (r.paper_iterations_a, r.paper_iterations_b))
        done = "–" if r.iteration is None or pd.isna(r.iteration) else str(int(r.iteration))
        rows.append(Row([f"{names.method_name(r.a)} − {names.method_name(r.b)}", names.dataset_name(r.dataset),
                         r.zca, r.protocol, str(r.ipc), f"{done} ({papers})"],
                        [f"{r.mean_a:.{p}f} / {r.mean_b:.{p}f} (n={r.n_a}/{r.n_b})", f"{r.diff:+.{p}f}{se}", pval,
                         pub, r.verdict]))
    counts = frame["verdict"].value_counts()
    summary = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts)
    caption = (f"Differences between methods (A − B, {metric}), measured beside published. Measured: the difference "
               f"of the two methods' means ± its standard error over independent synthetic sets; p: Welch's "
               f"two-sided t-test over the samples (at least {MIN_SAMPLES} per side). Verdict at alpha = {alpha:g}: "
               f"reproduces (published sign, p < alpha), reversed (opposite sign, p < alpha), within noise "
               f"(p >= alpha). ZCA: the methods ran on ZCA-whitened data (each in its paper's space). Published "
               f"differences are of the original datasets' published means, at the papers' budgets (the "
               f"iterations in brackets, A/B): a row at fewer iterations compares an earlier point of the distillations "
               f"with them, and its verdict says only whether the difference is there at that budget.")
    return [Table("claims", "Claims: measured and published differences between methods",
                  ["pair", "dataset", "ZCA", "protocol", "IPC", "iterations (papers')"],
                  ["A / B", "A − B", "p", "published A − B", "verdict"], rows, caption=caption,
                  notes=[f"verdicts: {summary}"], precision=p, frame=frame)]
