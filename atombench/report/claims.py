"""The claims table: the differences between methods that carry the papers' claims, measured and published.

A paper's claim is a difference: DataDAM above DM by about 6 points on CIFAR-10 at IPC 1, ATOM above DataDAM by
about 3. ``claims`` puts each such difference, measured here, beside the published one, with its spread and a test,
and says in words whether the published ordering reproduces:

* rows: a pair of methods (``A − B``), a dataset (entries of one plug-in with other image options apart), the
  evaluation model, the preprocessing (``none``, ``ZCA [0, 1]`` or ``ZCA normalised``: read from the suite's dataset
  entries, so methods on the same whitening are compared wherever their entries are; two whitenings are never one
  "ZCA"), the evaluation protocol (``paper``: each method under its own, ``common``), the IPC and the distillation
  budget (iterations: every snapshot both methods have, and the final sets, each method's largest budget);
* cells: the measured difference of means ± its standard error (the two methods' seeds are independent sets, so
  ``sqrt(sd_A²/n_A + sd_B²/n_B)`` with the samples' ``ddof=1`` std), each method's mean, Welch's two-sided p over
  the per-seed samples (:func:`~atombench.report.stats.welch_p`, at least 3 per side), the published difference
  (means of the two published rows, on the dataset the results are compared with, ``published_as`` included, beside
  the evaluation model they were measured with only), and the verdict:

  - ``reproduces``: the published sign, p < alpha;
  - ``reversed``: the opposite sign, p < alpha;
  - ``differs``: the papers report a tie (a published difference of 0), p < alpha (``reproduces`` at p >= alpha);
  - ``within noise``: p >= alpha (the data cannot tell the two methods apart at this size); ``within noise,
    excludes published`` where the published difference also lies more than :data:`SIZE_Z` standard errors beyond
    the measured one (the methods are not told apart, and a difference of the published size would have shown);
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
from .published import default_options, lookup
from .render import Row, Table
from .stats import MIN_SAMPLES, samples, welch_p
from .entries import (ZCA_SPACES, data_options, dataset_entries, distiller_entries, is_zca, label_paper,
                      label_preprocessing, zca_eps)
from .tables import higher_is_better, method_map

VERDICTS = ("reproduces", "reproduces, smaller", "reproduces, larger", "reversed", "differs", "within noise",
            "within noise, excludes published",
            "too few samples", "no published difference")


def _published_mean(published: pd.DataFrame, dataset: str, method: str, ipc: int,
                    model: str | None = None) -> float | None:
    """The published mean of ``method`` on ``dataset`` at ``ipc``; None where there is none, or where it was
    measured with another evaluation model than ``model`` (a registered name; None: any)."""
    row = lookup(published, dataset, method, ipc) if published is not None and len(published) else None
    if row is None or (model is not None and "model" in row and str(row["model"]) != model):
        return None
    return float(row["mean"])


def _published_verified(published: pd.DataFrame, dataset: str, methods: tuple, ipc: int) -> bool:
    """Whether every published row behind a published difference was read in its source (not recalled)."""
    rows = [lookup(published, dataset, m, ipc) for m in methods]
    return all(r is not None and bool(r.get("verified", False)) for r in rows)


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
        if a == b:
            raise UsageError(f"--claims {item}: a method against itself; give two different labels, e.g. datadam-dm")
        out.append((a, b))
    return out


#: how many standard errors a published difference must lie beyond the measured one to be called larger or smaller
SIZE_Z = 1.96


def _verdict(diff: float, p: float | None, published_diff: float | None, alpha: float,
             se: float | None = None) -> str:
    if published_diff is None:
        return "no published difference"
    if p is None:
        return "too few samples"
    if published_diff == 0:  # the papers report a tie: a difference either way contradicts it
        return "reproduces" if p >= alpha else "differs"
    if p >= alpha:
        # no difference shown; where the published one lies far outside the measured one, it would have shown
        far = se is not None and abs(published_diff - diff) > SIZE_Z * se
        return "within noise, excludes published" if far else "within noise"
    if (diff > 0) != (published_diff > 0):
        return "reversed"
    if se is not None and abs(published_diff) > abs(diff) + SIZE_Z * se:
        return "reproduces, smaller"  # the published sign, but the published size is outside the measured one's
    if se is not None and abs(published_diff) < abs(diff) - SIZE_Z * se:
        return "reproduces, larger"
    return "reproduces"


def _with_preprocessing(df: pd.DataFrame, suites: dict) -> tuple[pd.DataFrame, dict[str, str], dict]:
    """``df`` with ``_pre`` (``ZCA`` / ``none``, per row: it depends on the method under ``zca: paper``),
    ``_plugin``, ``_protocol`` and ``_iter``; the map from dataset labels to plug-in names; and the suites'
    distillers (:func:`distiller_entries`)."""
    df = df[df["ipc"].notna()].copy()
    entries = dataset_entries(suites)
    plugin_of = {label: e["name"] for label, e in entries.items()}
    df["_plugin"] = df["dataset"].astype(str).map(lambda d: plugin_of.get(d, d))
    methods = df["method"] if "method" in df else df["distiller"]
    specs = distiller_entries(suites)
    cache: dict[tuple, str] = {}

    def pre(d, m, label, plugin, ipc) -> str:
        key = (d, m, label, plugin, ipc)
        if key not in cache:
            cache[key] = label_preprocessing(entries.get(d), specs, label, m, plugin, ipc)
        return cache[key]

    df["_pre"] = [pre(str(d), str(m if isinstance(m, str) else a), str(a), p, int(i))
                  for d, m, a, p, i in zip(df["dataset"], methods, df["distiller"], df["_plugin"], df["ipc"])]
    df["_protocol"] = df["protocol"].astype(str) if "protocol" in df else "common"
    df["_iter"] = pd.to_numeric(df["iteration"], errors="coerce") if "iteration" in df else np.nan
    df["_model"] = df["model"].astype(str) if "model" in df else ""
    data_of = {label: data_options(e) for label, e in entries.items()}
    eps_of = {label: zca_eps(e) for label, e in entries.items()}  # once per entry, not per row
    df["_opts"] = [data_of.get(str(d), "") for d in df["dataset"]]
    df["_data"] = [o + (f" zca_eps={eps_of.get(str(d))}" if is_zca(pre) else "")
                   for o, d, pre in zip(df["_opts"], df["dataset"], df["_pre"])]
    return df, plugin_of, specs


def _model_name(rows: pd.DataFrame) -> str | None:
    """The registered name of the evaluation model of ``rows`` (what published rows name), None when unknown;
    ``""`` (no published row names it) for a model with options of its own (a ConvNet of another depth)."""
    if not default_options(rows):
        return ""
    col = "model_name" if "model_name" in rows else "model" if "model" in rows else None
    names_ = set(rows[col].dropna().astype(str)) if col else set()
    return next(iter(names_)) if len(names_) == 1 else None


def _difference(sa: np.ndarray, sb: np.ndarray) -> dict:
    """Mean difference of two independent samples, its standard error and Welch's p."""
    var = (sa.var(ddof=1) / len(sa) if len(sa) > 1 else math.nan) + \
        (sb.var(ddof=1) / len(sb) if len(sb) > 1 else math.nan)
    return {"mean_a": float(sa.mean()), "mean_b": float(sb.mean()), "n_a": len(sa), "n_b": len(sb),
            "diff": float(sa.mean() - sb.mean()), "se": math.sqrt(var) if math.isfinite(var) else None,
            "p": welch_p(sa, sb)}


def _which_better(d: dict, alpha: float, metric: str, first: str, second: str) -> str:
    """The verdict of one method's two settings (:func:`_difference` of the first against the second): ``first``
    or ``second`` where the difference is significant (whichever the metric prefers), else why not."""
    if d["p"] is None:
        return "too few samples"
    if d["p"] >= alpha:
        return "within noise"
    return first if (d["diff"] > 0) == higher_is_better(metric) else second


def _claims_unit(unit: str) -> str:
    """A difference between methods is tested over independent synthetic sets: one sample per seed (the mean of
    the models trained on its set), whatever the other cells of the results have (``auto``); ``models`` only where
    asked for. Models trained on one set are not independent repeats of the distillation."""
    return "seeds" if unit == "auto" else unit


def _final(g: pd.DataFrame) -> pd.DataFrame:
    """The rows of final synthetic sets (a snapshot is an earlier point of a distillation), at one budget per
    method: where a method's final sets were distilled for several budgets (two results folders merged, a budget
    changed between runs), those of its largest budget, never the mean of different budgets' sets."""
    if "snapshot" in g:
        snap = g["snapshot"].map(lambda v: str(v).strip().lower() in ("true", "1", "1.0")).astype(bool)
        g = g[~snap]  # (astype: an empty group's mask is of objects, which pandas reads as column labels)
    if not len(g) or g["_iter"].isna().all():
        return g
    top = g.groupby(g["distiller"].astype(str))["_iter"].transform("max")
    return g[(g["_iter"] == top) | top.isna()]


def _at(g: pd.DataFrame, label: str, it) -> pd.DataFrame:
    """``label``'s rows at ``it`` iterations (its final sets and snapshots there); ``None``: its final sets,
    whatever their budget (a coreset's, or a pair whose final sets were distilled for different budgets)."""
    g = g[g["distiller"].astype(str) == label]
    return g[g["_iter"] == it] if it is not None else _final(g)


def _iterations(g: pd.DataFrame, a: str, b: str) -> list:
    """The budgets at which ``a`` and ``b`` are compared: every iteration count both have a set at (final or
    snapshot), and ``None`` (the final sets) unless the two methods' final sets are already compared at one
    common count."""
    ga, gb = g[g["distiller"].astype(str) == a], g[g["distiller"].astype(str) == b]
    common = sorted(set(ga["_iter"].dropna()) & set(gb["_iter"].dropna()))
    finals_a, finals_b = set(_final(ga)["_iter"]), set(_final(gb)["_iter"])
    if not (len(finals_a) == 1 and finals_a == finals_b and next(iter(finals_a)) in common):
        common.append(None)
    return common


def claims_frame(df: pd.DataFrame, published: pd.DataFrame, suites: dict, pairs: list[tuple[str, str]] | None = None,
                 metric: str = "accuracy", alpha: float = 0.05, unit: str = "auto") -> pd.DataFrame:
    """One row per (pair, dataset, preprocessing, protocol, IPC, iterations) where both methods have results; and,
    where the two papers preprocessed differently (DataDAM and ATOM with ZCA, DM without), one more row per
    (pair, dataset, protocol, IPC, iterations) with each method on its paper's preprocessing (``zca`` "A's / B's"):
    under protocol ``paper`` the comparison the published difference itself makes, under ``common`` the same sets
    with the evaluation recipes taken out."""
    if not len(df) or "distiller" not in df or metric not in df:
        return pd.DataFrame()
    df, plugin_of, specs = _with_preprocessing(df, suites)
    pairs = pairs or default_pairs(df, published, plugin_of)
    mmap = method_map(df)
    unit = _claims_unit(unit)
    records = []

    def record(a, b, plugin, pre, proto, ipc, it, ga, gb, datasets) -> None:
        sa, sb = samples(ga, metric, unit), samples(gb, metric, unit)
        if not len(sa) or not len(sb):
            return
        d = _difference(sa, sb)
        model = _model_name(pd.concat([ga, gb]))
        pa = _published_mean(published, plugin, mmap.get(a, a), int(ipc), model)
        pb = _published_mean(published, plugin, mmap.get(b, b), int(ipc), model)
        pub = None if pa is None or pb is None else pa - pb
        records.append({
            "pair": f"{a} − {b}", "a": a, "b": b, "dataset": plugin, "model": str(ga["_model"].iloc[0]),
            "zca": pre, "protocol": proto,
            "ipc": int(ipc), "iteration": None if it is None else int(it), "datasets": datasets, **d,
            "published_a": pa, "published_b": pb, "published_diff": pub,
            "paper_iterations_a": _paper_iterations(mmap.get(a, a)),
            "paper_iterations_b": _paper_iterations(mmap.get(b, b)),
            "published_verified": _published_verified(published, plugin, (mmap.get(a, a), mmap.get(b, b)),
                                                      int(ipc)) if pub is not None else None,
            "verdict": _verdict(d["diff"], d["p"], pub, alpha, d["se"])})

    for a, b in pairs:
        sub = df[df["distiller"].astype(str).isin([a, b])]
        for (plugin, pre, proto, ipc, _, _), g in sub.groupby(["_plugin", "_pre", "_protocol", "ipc", "_model",
                                                                "_data"], sort=False):
            if g["distiller"].astype(str).nunique() < 2:
                continue  # one of the two has no set on this preprocessing (DataDAM alone on a whitening)
            for it in _iterations(g, a, b):
                record(a, b, plugin, pre, proto, ipc, it, _at(g, a, it), _at(g, b, it),
                       ", ".join(sorted(set(g["dataset"].astype(str)))))
        # each method on its paper's preprocessing, where the two papers preprocessed differently (ZCA against
        # none, or two whitenings): under the own protocols the comparison the published difference makes; under
        # the common one, the same sets with the evaluation recipes taken out
        for (plugin, proto, ipc, _), g in sub.groupby(["_plugin", "_protocol", "ipc", "_model"], sort=False):
            pre_a, pre_b = (label_paper(specs, x, mmap.get(x, x), plugin, ipc) for x in (a, b))
            if pre_a is None or pre_b is None or pre_a == pre_b:
                continue  # the same preprocessing: the row above (pre, protocol) already is this comparison
            ga_all, gb_all = g[g["_pre"] == pre_a], g[g["_pre"] == pre_b]
            both = pd.concat([ga_all[ga_all["distiller"].astype(str) == a], gb_all[gb_all["distiller"].astype(str) == b]])
            for it in _iterations(both, a, b):
                ga, gb = _at(ga_all, a, it), _at(gb_all, b, it)
                record(a, b, plugin, f"{pre_a} / {pre_b}", proto, ipc, it, ga, gb,
                       ", ".join(sorted(set(pd.concat([ga, gb])["dataset"].astype(str)))))
    return pd.DataFrame(records)


def preprocessing_frame(df: pd.DataFrame, suites: dict, metric: str = "accuracy", alpha: float = 0.05,
                        unit: str = "auto") -> pd.DataFrame:
    """What ZCA whitening adds to each method: one row per (method, dataset plug-in, protocol, IPC, iterations)
    with results both on whitened and on unwhitened data (``zca`` on one dataset entry and not on another): the
    difference ZCA − none ± its standard error over the sets, Welch's p, whether the method's paper whitened, and a
    verdict (``ZCA helps`` / ``ZCA hurts`` at p < alpha, ``within noise``, ``too few samples``)."""
    if not len(df) or "distiller" not in df or metric not in df:
        return pd.DataFrame()
    df, _, specs = _with_preprocessing(df, suites)
    if "none" not in set(df["_pre"]) or not any(is_zca(x) for x in set(df["_pre"])):
        return pd.DataFrame()
    mmap = method_map(df)
    unit = _claims_unit(unit)
    labels = [x for x in names.order_methods(df["distiller"].astype(str), mmap)
              if names.method_kind(x, mmap.get(x)) != "whole"]
    records = []
    for label in labels:
        sub = df[df["distiller"].astype(str) == label]
        for (plugin, proto, ipc, model, _), g in sub.groupby(["_plugin", "_protocol", "ipc", "_model", "_opts"],
                                                             sort=False):
            for space in sorted(x for x in set(g["_pre"]) if is_zca(x)):  # each whitening against none
                iters_z = set(g.loc[g["_pre"] == space, "_iter"].dropna())
                iters_n = set(g.loc[g["_pre"] == "none", "_iter"].dropna())
                for it in sorted(iters_z & iters_n) or [None]:
                    if it is None:  # no common budget: only sets without one (coresets') compare as final
                        fz, fn = (_final(g[g["_pre"] == x]) for x in (space, "none"))
                        if not (fz["_iter"].isna().all() and fn["_iter"].isna().all()):
                            continue
                        at = pd.concat([fz, fn])
                    else:
                        at = g[(g["_iter"] == it)]
                    sz = samples(at[at["_pre"] == space], metric, unit)
                    sn = samples(at[at["_pre"] == "none"], metric, unit)
                    if not len(sz) or not len(sn):
                        continue
                    d = _difference(sz, sn)
                    verdict = _which_better(d, alpha, metric, "ZCA helps", "ZCA hurts")
                    records.append({"method": label, "dataset": plugin, "model": model, "space": space,
                                    "protocol": proto,
                                    "ipc": int(ipc), "iteration": None if it is None else int(it),
                                    "paper": label_paper(specs, label, mmap.get(label, label), plugin, ipc),
                                    "zca": d["mean_a"], "none": d["mean_b"], "n_zca": d["n_a"], "n_none": d["n_b"],
                                    "diff": d["diff"], "se": d["se"], "p": d["p"], "verdict": verdict})
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


def _fmt_p(p) -> str:
    return "–" if p is None or pd.isna(p) else (f"{p:.3f}" if p >= 0.001 else "< 0.001")


def _fmt_se(se, p: int) -> str:
    return f" ± {se:.{p}f}" if se is not None and not (isinstance(se, float) and math.isnan(se)) else ""


def _fmt_count(v) -> str:
    """An iteration count (or another whole number) of a frame's row; "–" where there is none."""
    return "–" if v is None or pd.isna(v) else str(int(v))


def _fmt_budget(v) -> str:
    """A row's iteration count; ``final`` for the final sets compared whatever their budgets (a coreset's)."""
    return "final" if v is None or pd.isna(v) else str(int(v))


def _verdict_counts(frame: pd.DataFrame, verdicts: tuple[str, ...]) -> str:
    counts = frame["verdict"].value_counts()
    return "verdicts: " + ", ".join(f"{counts[v]} {v}" for v in verdicts if v in counts)


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
    by_model = frame["model"].nunique() > 1  # a model column only where the results have several
    rows = []
    for r in frame.itertuples():
        pub = "–" if r.published_diff is None or pd.isna(r.published_diff) else \
            f"{r.published_diff:+.{p}f}" + ("" if r.published_verified else " (unverified)")
        papers = "/".join(_fmt_count(v) for v in (r.paper_iterations_a, r.paper_iterations_b))
        rows.append(Row([f"{names.method_name(r.a)} − {names.method_name(r.b)}", names.dataset_name(r.dataset)]
                        + ([names.model_name(r.model)] if by_model else [])
                        + [r.zca, r.protocol, str(r.ipc), f"{_fmt_budget(r.iteration)} ({papers})"],
                        [f"{r.mean_a:.{p}f} / {r.mean_b:.{p}f} (n={r.n_a}/{r.n_b})",
                         f"{r.diff:+.{p}f}{_fmt_se(r.se, p)}", _fmt_p(r.p), pub, r.verdict]))
    caption = (f"Differences between methods (A − B, {metric}), measured beside published. Measured: the difference "
               f"of the two methods' means ± its standard error over independent synthetic sets (from their sample "
               f"std, ddof = 1); p: Welch's "
               f"two-sided t-test over the samples (at least {MIN_SAMPLES} per side). Verdict at alpha = {alpha:g}: "
               f"reproduces (published sign, p < alpha; or a published tie, p >= alpha), \"smaller\" or \"larger\" "
               f"where the published difference lies more than {SIZE_Z:g} standard errors beyond the measured one, "
               f"reversed (opposite sign, p < alpha), differs (a published tie, p < alpha), within noise (p >= "
               f"alpha; \"excludes published\" where the published difference lies more than {SIZE_Z:g} standard "
               f"errors from the measured one, so a difference of its size would have shown); unverified: a "
               f"published number recalled, not read in its paper. Each row is one evaluation model; published "
               f"differences are shown beside the model the papers measured them with. ZCA: both methods ran on the data of that preprocessing (none, or the same ZCA space for "
               f"both, not necessarily either paper's); \"A's / B's\": "
               f"each method on its paper's preprocessing, where the two papers preprocessed differently: under "
               f"protocol paper (each its own) the comparison the published difference makes, under common the same "
               f"sets with the evaluation recipes taken out. Published "
               f"differences are of the original datasets' published means, at the papers' budgets (the "
               f"iterations in brackets, A/B): a row at fewer iterations compares an earlier point of the distillations "
               f"with them, and its verdict says only whether the difference is there at that budget.")
    return [Table("claims", "Claims: measured and published differences between methods",
                  ["pair", "dataset"] + (["model"] if by_model else []) + ["ZCA", "protocol", "IPC",
                                                                          "iterations (papers')"],
                  ["A / B", "A − B", "p", "published A − B", "verdict"], rows, caption=caption,
                  notes=[_verdict_counts(frame, VERDICTS)], precision=p, frame=frame)]


PREPROCESSING_VERDICTS = ("ZCA helps", "ZCA hurts", "within noise", "too few samples")


def whitening_frame(df: pd.DataFrame, suites: dict, metric: str = "accuracy", alpha: float = 0.05,
                    unit: str = "auto") -> pd.DataFrame:
    """Which whitening serves each method better: one row per (method, dataset plug-in, model, protocol, IPC,
    iterations) where the method ran on two ZCA spaces (DataDAM's paper whitens normalised CIFAR images, ATOM's and
    MTT's [0, 1] ones): the difference A − B of the two spaces (in ``ZCA_SPACES`` order) ± its standard error over
    the sets, Welch's p, the method's paper's space, and a verdict (``<space> better`` at p < alpha, ``within
    noise``, ``too few samples``). Where two papers whitened in different spaces, this says how much of their
    margin the space alone could be."""
    if not len(df) or "distiller" not in df or metric not in df:
        return pd.DataFrame()
    df, _, specs = _with_preprocessing(df, suites)
    mmap = method_map(df)
    unit = _claims_unit(unit)
    order = list(ZCA_SPACES.values())
    records = []
    for label in [x for x in names.order_methods(df["distiller"].astype(str), mmap)
                  if names.method_kind(x, mmap.get(x)) != "whole"]:
        sub_ = df[df["distiller"].astype(str) == label]
        for (plugin, proto, ipc, model, _), g in sub_.groupby(["_plugin", "_protocol", "ipc", "_model", "_opts"],
                                                               sort=False):
            spaces = sorted((x for x in set(g["_pre"]) if is_zca(x)),
                            key=lambda x: order.index(x) if x in order else len(order))
            for a, b in itertools.combinations(spaces, 2):
                ga, gb = g[g["_pre"] == a], g[g["_pre"] == b]
                common = sorted(set(ga["_iter"].dropna()) & set(gb["_iter"].dropna()))
                for it in common or ([None] if ga["_iter"].isna().all() and gb["_iter"].isna().all() else []):
                    at_a = ga[ga["_iter"] == it] if it is not None else _final(ga)
                    at_b = gb[gb["_iter"] == it] if it is not None else _final(gb)
                    sa, sb = samples(at_a, metric, unit), samples(at_b, metric, unit)
                    if not len(sa) or not len(sb):
                        continue
                    d = _difference(sa, sb)
                    verdict = _which_better(d, alpha, metric, f"{a} better", f"{b} better")
                    records.append({"method": label, "dataset": plugin, "model": model, "a": a, "b": b,
                                    "protocol": proto, "ipc": int(ipc), "iteration": None if it is None else int(it),
                                    "paper": label_paper(specs, label, mmap.get(label, label), plugin, ipc),
                                    "mean_a": d["mean_a"],
                                    "mean_b": d["mean_b"], "n_a": d["n_a"], "n_b": d["n_b"], "diff": d["diff"],
                                    "se": d["se"], "p": d["p"], "verdict": verdict})
    return pd.DataFrame(records)


def _whitening_table(df: pd.DataFrame, suites: dict, metric: str, alpha: float, unit: str,
                     precision: int) -> Table | None:
    """``whitening``: :func:`whitening_frame` rendered; None unless some method ran on two ZCA spaces."""
    frame = whitening_frame(df, suites, metric, alpha, unit)
    if not len(frame):
        return None
    p = precision
    by_model = frame["model"].nunique() > 1
    rows = [Row([names.method_name(r.method), names.dataset_name(r.dataset)]
                + ([names.model_name(r.model)] if by_model else [])
                + [f"{r.a} − {r.b}", r.protocol, str(r.ipc), _fmt_budget(r.iteration),
                   r.paper if is_zca(r.paper) else "none"],
                [f"{r.mean_a:.{p}f} / {r.mean_b:.{p}f} (n={r.n_a}/{r.n_b})", f"{r.diff:+.{p}f}{_fmt_se(r.se, p)}",
                 _fmt_p(r.p), r.verdict]) for r in frame.itertuples()]
    caption = (f"Which whitening serves each method better ({metric}): the same method, budget and protocol on two "
               f"ZCA spaces (ZCA [0, 1]: whitening [0, 1] images, as ATOM's and MTT's papers did; ZCA normalised: "
               f"mean/std-normalised ones, as DataDAM's did; the same eps, not an affine map of each other); the "
               f"difference ± its standard error over independent synthetic sets and Welch's two-sided p (at least "
               f"{MIN_SAMPLES} per side). Where two papers whitened in different spaces, a difference here is part "
               f"of their published margin that is not the method.")
    return Table("whitening", "Whitening space: the same method on the two ZCA spaces",
                 ["method", "dataset"] + (["model"] if by_model else []) + ["spaces", "protocol", "IPC", "iterations",
                                                                           "paper's space"],
                 ["A / B", "A − B", "p", "verdict"], rows, caption=caption,
                 notes=[_verdict_counts(frame, tuple(dict.fromkeys(frame["verdict"])))], precision=p, frame=frame)


def preprocessing_tables(df: pd.DataFrame, suites: dict, metric: str = "accuracy", alpha: float = 0.05,
                         unit: str = "auto", precision: int = 1) -> list[Table]:
    """``preprocessing``: :func:`preprocessing_frame` rendered (its CSV is the frame), where some method has results
    both with and without ZCA; and ``whitening`` (:func:`whitening_frame`), where some method ran on two ZCA spaces."""
    whitening = _whitening_table(df, suites, metric, alpha, unit, precision)
    frame = preprocessing_frame(df, suites, metric, alpha, unit)
    if not len(frame):
        return [whitening] if whitening is not None else []
    p = precision
    by_model = frame["model"].nunique() > 1
    rows = []
    for r in frame.itertuples():
        paper = "no" if r.paper == "none" else ("–" if not is_zca(r.paper) else
                                                 "yes" if r.paper == r.space else f"yes, {r.paper}")
        rows.append(Row([names.method_name(r.method), names.dataset_name(r.dataset)]
                        + ([names.model_name(r.model)] if by_model else [])
                        + [r.space, r.protocol, str(r.ipc), _fmt_budget(r.iteration), paper],
                        [f"{r.zca:.{p}f} / {r.none:.{p}f} (n={r.n_zca}/{r.n_none})",
                         f"{r.diff:+.{p}f}{_fmt_se(r.se, p)}", _fmt_p(r.p), r.verdict]))
    caption = (f"What ZCA whitening adds to each method ({metric}): the same method, budget and protocol on "
               f"ZCA-whitened data (in the space of the suite's dataset entry: its paper's with zca: paper) and on "
               f"the unwhitened data; the difference ZCA − none ± its standard error over independent synthetic "
               f"sets and Welch's two-sided p (at least {MIN_SAMPLES} per side). Verdict at alpha = {alpha:g}: ZCA "
               f"helps / hurts (p < alpha), within noise (p >= alpha). \"paper's ZCA\": whether the method's paper "
               f"whitened this dataset, so its published number includes this difference.")
    return [Table("preprocessing", "Preprocessing: what ZCA whitening adds to each method",
                  ["method", "dataset"] + (["model"] if by_model else []) + ["ZCA", "protocol", "IPC",
                                                                            "iterations", "paper's ZCA"],
                  ["ZCA / none", "ZCA − none", "p", "verdict"], rows, caption=caption,
                  notes=[_verdict_counts(frame, PREPROCESSING_VERDICTS)], precision=p, frame=frame)] \
        + ([whitening] if whitening is not None else [])
