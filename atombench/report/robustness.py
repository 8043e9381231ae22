"""DD-Ranking's label-robust and augmentation-robust scores, computed from the results table.

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
