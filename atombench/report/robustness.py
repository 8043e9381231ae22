"""DD-Ranking's label-robust and augmentation-robust scores, computed from the results table, and the report's
tables of them (``robustness``, ``robustness_components``, ``robustness_settings``).

Definitions (DD-Ranking v0.2.0, ``README.md`` and ``ddranking/metrics/{soft_label,aug_robust}.py``;
``docs/evaluation_protocols.md#label-and-augmentation-robustness``), with accuracies as fractions:

* **HLR** (hard-label recovery, lower is better) = Acc(whole dataset, hard labels) - Acc(synthetic set, hard labels);
* **IOR** (improvement over random, higher is better) = Acc(synthetic set) - Acc(random real subset of the same
  IPC), both under the same labels and augmentation (the suite's soft labels when it has them);
* **LRS** = (e^a - e^-1) / (e - e^-1) with a = w * IOR - (1 - w) * HLR, w = 0.5;
* **ARS** = (e^b - e^-1) / (e - e^-1) with b = g * (Acc_syn - Acc_rand)[with augmentation] + (1 - g) *
  (Acc_syn - Acc_rand)[without augmentation], g = 0.5, both under the same labels.

Scores are reported on a 0-100 scale (DD-Ranking's documentation writes "x 100%"). DD-Ranking's code feeds
percentages to the exponential; the definitions only keep the scores in [0, 100] with fractions, which is what is
done here. Each score is computed per seed (a synthetic set and the random subset of the same seed, the same
evaluation seeds) and reported as mean ± std over the seeds, as DD-Ranking does over its evaluation rounds.

The settings, from the rows of synthetic sets only (the whole-dataset reference rows are always ``augment: none``
and say nothing about how the sets were evaluated), per method: the synthetic hard-label accuracy of HLR is taken
without augmentation when the method has such rows (as DD-Ranking's soft-label evaluator, ``use_aug_for_hard:
false``), else under its augmentation; IOR and the "with augmentation" half of ARS use the first augmentation of the
suite's list that is not ``none`` among the method's (``none`` if it has no other); the random subset is taken under
the same augmentation, or, when the baseline was never evaluated under it (``augment: auto`` evaluates each method
under its paper's augmentation and the random subset without), under the baseline's own (``augment_random`` says
which); the common protocol's rows when there are several protocols.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import names
from .entries import models_in_order
from .inputs import Inputs
from .render import Row, Table
from .stats import Stat
from .tables import TableOptions, _pm, method_map

#: DD-Ranking's defaults: ``lrs_lambda`` and ``ars_lambda``
W_LRS = 0.5
G_ARS = 0.5
_LO, _HI = math.exp(-1), math.e


def squash(x: float) -> float:
    """``100 (e^x - e^-1) / (e - e^-1)``: maps x in [-1, 1] to [0, 100]."""
    return 100.0 * (math.exp(x) - _LO) / (_HI - _LO)


def lrs(hlr: float, ior: float, w: float = W_LRS) -> float:
    """The label-robust score from HLR and IOR in percentage points."""
    return squash(w * ior / 100.0 - (1 - w) * hlr / 100.0)


def ars(gain_aug: float, gain_plain: float, g: float = G_ARS) -> float:
    """The augmentation-robust score from the gains over random (percentage points) with and without augmentation."""
    return squash(g * gain_aug / 100.0 + (1 - g) * gain_plain / 100.0)


def settings(df: pd.DataFrame) -> dict:
    """Which labels and augmentations the scores use (module docstring), from the synthetic sets' rows (rows with an
    IPC: the whole-dataset reference rows are left out)."""
    if "ipc" in df:
        df = df[df["ipc"].notna()]
    augs = list(dict.fromkeys(df["augment"].dropna().astype(str))) if "augment" in df else []
    labels = set(df["labels"].dropna().astype(str)) if "labels" in df else {"hard"}
    main_aug = _main(augs)
    return {"labels": "soft" if "soft" in labels else "hard", "aug": main_aug, "augs": augs,
            "plain": "none" if "none" in augs else None, "hard_aug": "none" if "none" in augs else main_aug,
            "has_hard": "hard" in labels}


def _main(augs: list) -> str | None:
    """The first augmentation that is not ``none``, else the first."""
    return next((a for a in augs if a != "none"), augs[0] if augs else None)


def common_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The common protocol's rows when the results have several protocols (the scores compare one protocol)."""
    if "protocol" in df and df["protocol"].dropna().nunique() > 1:
        return df[df["protocol"].isna() | (df["protocol"].astype(str) == "common")]
    return df


def _per_seed(df: pd.DataFrame, labels: str, augment: str | None, metric: str) -> pd.DataFrame:
    """Mean accuracy per (dataset, ipc, model, distiller, seed) under ``labels`` and ``augment``."""
    sub = df
    if "labels" in sub:
        sub = sub[sub["labels"].fillna("hard").astype(str) == labels]
    if augment is not None and "augment" in sub:
        sub = sub[sub["augment"].astype(str) == augment]
    return sub.groupby(["dataset", "ipc", "model", "distiller", "seed"], dropna=False)[metric].mean()


def robustness_frame(results: pd.DataFrame, metric: str = "accuracy", random: str = "random",
                     w: float = W_LRS, g: float = G_ARS) -> pd.DataFrame:
    """One row per (dataset, IPC, model, method, seed): HLR, IOR, LRS, the gains over random with and without
    augmentation, ARS, and the accuracies they come from. Methods without a random row (or a whole-dataset row)
    get None where the reference is missing. ``results``: the finished rows (whole-dataset rows have no IPC)."""
    df = common_rows(results)
    whole = df[df["ipc"].isna()] if "ipc" in df else df.iloc[0:0]
    cells = df[df["ipc"].notna()] if "ipc" in df else df
    if not len(cells):
        return pd.DataFrame()
    s = settings(cells)
    labels = s["labels"]
    whole_acc = whole.groupby(["dataset", "model"])[metric].mean().to_dict() if len(whole) else {}
    per: dict = {}

    def acc_of(lab: str, aug: str | None, key: tuple):
        if (lab, aug) not in per:
            per[(lab, aug)] = _per_seed(cells, lab, aug, metric)
        v = per[(lab, aug)].get(key)
        return None if v is None or np.isnan(v) else float(v)

    def augs_of(method: str) -> list:
        """The method's augmentations, in the suite's order."""
        if "augment" not in cells:
            return []
        have = set(cells.loc[cells["distiller"].astype(str) == str(method), "augment"].dropna().astype(str))
        return [a for a in s["augs"] if a in have]

    own = {m: augs_of(m) for m in dict.fromkeys(cells["distiller"].astype(str))}
    rand_main = _main(own.get(random, []))
    rows = []
    for (d, ipc, model, method, seed) in _per_seed(cells, labels, None, metric).index:
        if method == random:
            continue
        augs = own.get(str(method), [])
        aug = _main(augs)
        acc = acc_of(labels, aug, (d, ipc, model, method, seed))
        if acc is None:
            continue
        # the random subset under the same setting, else under the only one the baseline has (augment: auto)
        rand_aug = aug
        rand = acc_of(labels, aug, (d, ipc, model, random, seed))
        if rand is None and rand_main not in (None, aug):
            rand_aug = rand_main
            rand = acc_of(labels, rand_aug, (d, ipc, model, random, seed))
        rec = {"dataset": d, "ipc": ipc, "model": model, "method": method, "seed": seed,
               "labels": labels, "augment": aug, "augment_random": rand_aug if rand is not None else None,
               "acc": acc, "acc_random": rand}
        h = acc_of("hard", "none" if "none" in augs else aug, (d, ipc, model, method, seed)) \
            if s["has_hard"] else None
        wacc = whole_acc.get((d, model))
        rec["acc_hard"] = h
        rec["acc_whole"] = wacc
        rec["hlr"] = (wacc - h) if wacc is not None and h is not None else None
        rec["ior"] = (acc - rand) if rand is not None else None
        rec["lrs"] = lrs(rec["hlr"], rec["ior"], w) if rec["hlr"] is not None and rec["ior"] is not None else None
        if "none" in augs and aug != "none":
            p_syn = acc_of(labels, "none", (d, ipc, model, method, seed))
            p_rand = acc_of(labels, "none", (d, ipc, model, random, seed))
            rec["acc_plain"], rec["acc_random_plain"] = p_syn, p_rand
            rec["gain_aug"] = rec["ior"] if rand_aug == aug else None
            rec["gain_plain"] = (p_syn - p_rand) if p_syn is not None and p_rand is not None else None
            rec["ars"] = ars(rec["gain_aug"], rec["gain_plain"], g) \
                if rec["gain_aug"] is not None and rec["gain_plain"] is not None else None
        rows.append(rec)
    return pd.DataFrame(rows)


# -- the report's tables ------------------------------------------------------------------------------------------
def robustness_tables(inputs: Inputs, opts: TableOptions) -> list[Table]:
    """``robustness``: rows = methods, columns = dataset x IPC, cells "LRS / ARS" (mean ± std over seeds);
    ``robustness_components``: HLR, IOR and the gains over random with and without augmentation. Empty unless the
    results have soft and hard labels or an augmentation and ``none`` (the settings: this module's docstring)."""
    ok = inputs.ok
    if not len(ok) or "distiller" not in ok or "ipc" not in ok:
        return []
    s = settings(common_rows(ok))  # the settings of the rows the scores use (a coreset's own protocol trains
    if not (s["labels"] == "soft" or s["plain"]):  # without augmentation: no "none" of the common one)
        return []
    frame = robustness_frame(ok, opts.metric)
    if not len(frame):
        return []
    models = models_in_order(frame["model"], inputs.suites)
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
            texts = [_pm(c, p) if c is not None else None for c in comp]
            if texts[1] is not None and _other_augmentation(sub).any():
                texts[1] += " ‡"  # the random subset under another augmentation than the set (augment: auto)
            comp_rows.append(Row([names.method_name(x), names.dataset_name(d), f"{i}"],
                                 texts +
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
    other = bool(_other_augmentation(frame).any())
    if other:
        caption += " ‡ in the components table: an IOR against the random subset under another augmentation."
    frame_out = pd.DataFrame(records)
    main = Table("robustness", f"Label- and augmentation-robust scores (LRS / ARS) of {names.model_name(model)}",
                 ["Method"], [f"IPC {i}" for _, i in cols], rows, groups, caption, [], p, None, frame_out)
    comp_caption = ("HLR: whole-dataset accuracy - the set's hard-label accuracy (lower is better); IOR: the set's "
                    "accuracy - the random subset's under the same labels and augmentation"
                    + ("; ‡: the random subset was evaluated only under another augmentation (augment: auto trains "
                       "each method under its paper's, the random subset without), so IOR there mixes the set's "
                       "gain with the augmentation's; list one augmentation for all (eval.augment) for a like-for-like "
                       "IOR" if other else "")
                    + "; the gains over random with and without augmentation enter ARS. Percentage points, mean ± "
                      "std over seeds.")
    comp = Table("robustness_components", "Components of the robustness scores", ["Method", "Dataset", "IPC"],
                 ["HLR", "IOR", "gain (aug)", "gain (no aug)", "LRS", "ARS"], comp_rows, [], comp_caption, [], p,
                 None, frame_out)
    return [main, comp, _settings_table(ok, model, mmap, s, opts)]


def _other_augmentation(frame: pd.DataFrame) -> pd.Series:
    """The score rows whose random subset was evaluated under another augmentation than the set."""
    if "augment_random" not in frame or "augment" not in frame:
        return pd.Series(False, index=frame.index)
    return frame["augment_random"].notna() & (frame["augment_random"].astype(str) != frame["augment"].astype(str))


def _settings_table(ok: pd.DataFrame, model: str, mmap: dict, s: dict, opts: TableOptions) -> Table:
    """``robustness_settings``: the accuracies the scores come from, one column per (labels, augmentation)
    setting, and what soft labels and augmentation each add (mean ± std over seeds, percentage points)."""
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
