"""The fairness tables: each method under its own paper's evaluation protocol and under the common one
(``eval.protocol: both``), and the two rankings of the methods.

Built from the tidy results like the main tables (:mod:`atombench.report.tables`); empty when the results hold
only one protocol.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from . import names
from .entries import models_in_order
from .inputs import Inputs
from .render import Row, Table
from .stats import Stat, samples, stat
from .tables import (TableOptions, _cell_rows, _metric_label, _pm, _sample_text, check_metric, higher_is_better,
                     method_map, resolve_unit, select_columns, select_rows)


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


@functools.lru_cache(maxsize=None)
def _inferred(label: str) -> bool:
    """Whether the declared protocol of the method behind ``label`` is (in part) inferred rather than read: its
    sources say so (ATOM's, inherited from DataDAM's code)."""
    from ..factories import make_distiller

    try:
        protocol = make_distiller(label, {}).protocol
    except Exception:  # noqa: BLE001 - a label that is not a method name, or a method not installed here
        return False
    return protocol is not None and any("inferred" in str(src) for _, src in protocol.sources)


def _pair_text(own: Stat | None, com: Stat | None, p: int, most: int) -> str:
    """"own / common (change)", a side over fewer samples than the table's others saying its n."""
    def side(s: Stat | None) -> str:
        return _pm(s, p) + (f" (n={s.n})" if s is not None and s.n < most else "")

    text = f"{side(own)} / {side(com)}"
    if own is not None and com is not None:
        text += f" ({own.mean - com.mean:+.{p}f})"
    return text


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
    models = models_in_order(ok["model"], inputs.suites)
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

    def settings(label: str, d: str | None = None, i: int | None = None) -> str:
        """``label``'s own protocol in column (``d``, ``i``); without a column, every column's (each dataset's
        named where they differ: DC trains 1000 epochs with its augmentation on MNIST, 300 without on CIFAR)."""
        if d is None:
            texts = {}
            for dd, ii in cols:
                t = settings(label, dd, ii)
                if t:
                    texts.setdefault(t, []).append(f"{names.dataset_name(dd)} IPC {ii}")
            if len(texts) <= 1:
                return next(iter(texts), "")
            return "; ".join(f"{', '.join(where)}: {t}" for t, where in texts.items())
        r = _cell_rows(own_df, label, d, i)
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
        if _inferred(mmap.get(label, label)):
            parts.append("inferred, not read in its paper (its protocol's sources)")
        return ", ".join(x for x in parts if x)

    rows, rank_rows, records = [], [], []
    stats: dict[tuple[str, str, int], tuple[Stat | None, Stat | None]] = {}
    for label in labels:
        cells = []
        for d, i in cols:
            own_rows, com_rows = _paired(_cell_rows(own_df, label, d, i), _cell_rows(common_df, label, d, i),
                                         opts.metric)
            own = stat(samples(own_rows, opts.metric, unit))
            com = stat(samples(com_rows, opts.metric, unit))
            stats[(label, d, i)] = (own, com)
            cells.append((own, com))
        rows.append(Row([names.method_name(label), settings(label)], cells, names.method_kind(label, mmap.get(label))))
    most = max((c.n for pair in stats.values() for c in pair if c is not None), default=0)
    for row in rows:  # the cells' text, each side with its n where it has fewer samples than the table's most
        row.cells = [None if cell == (None, None) else _pair_text(*cell, p, most) for cell in row.cells]
    taus, per_col_ranks = [], []
    for d, i in cols:
        # both rankings over the methods with results under both protocols: a cell missing under one (a job
        # failed or not run yet) must not move the others' ranks under that one only
        paired = [x for x in labels if stats[(x, d, i)][0] is not None and stats[(x, d, i)][1] is not None]
        r_own = _ranks({x: stats[(x, d, i)][0].mean for x in paired}, higher)
        r_com = _ranks({x: stats[(x, d, i)][1].mean for x in paired}, higher)
        # a method alone in its column (a dataset entry only it runs on) ranks against nothing: no rank, and none
        # in its mean rank
        r_own, r_com = (r if len(r) > 1 else {} for r in (r_own, r_com))
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
                            "rank_own": r_own.get(x), "rank_common": r_com.get(x),
                            "own_protocol": settings(x, d, i)})
    # the mean rank over the columns that rank every method ranked anywhere: a rank of 2 among 2 methods and one
    # among 3 are not the same place, and a method missing from a column would otherwise be averaged over others
    ranked = {x for r_own, r_com in per_col_ranks for x in (*r_own, *r_com)}
    full = [k for k, (r_own, r_com) in enumerate(per_col_ranks) if set(r_own) == set(r_com) == ranked]
    for x in labels:
        cells = []
        for r_own, r_com in per_col_ranks:
            a, b = r_own.get(x), r_com.get(x)
            cells.append(None if a is None and b is None else f"{_rank_text(a)} / {_rank_text(b)}")
        ro = [per_col_ranks[k][0][x] for k in full if x in per_col_ranks[k][0]]
        rc = [per_col_ranks[k][1][x] for k in full if x in per_col_ranks[k][1]]
        mean_text = f"{np.mean(ro):.1f} / {np.mean(rc):.1f}" if ro and rc else None
        rank_rows.append(Row([names.method_name(x)], cells + [mean_text], names.method_kind(x, mmap.get(x))))
    groups = [(names.dataset_name(d), sum(1 for dd, _ in cols if dd == d)) for d in dict.fromkeys(d for d, _ in cols)]
    # the models of one protocol: a job shared by both protocols is one trained model, listed once per protocol
    one = df[df["protocol"].astype(str) == "common"] if "protocol" in df else df
    n_text = _sample_text(one if len(one) else df, unit, [c.n for pair in stats.values() for c in pair if c is not None],
                          model)
    caption = (f"Each cell: the method's sets evaluated under its own paper's protocol / under the common protocol "
               f"(the suite's eval: section, the same for every method), and the change (own - common). "
               f"{n_text}. The same trained-model seeds under both protocols (a paired comparison: where one "
               f"protocol has results of sets the other has not yet, both sides are over the sets they share); "
               f"a method whose own protocol is the common one is trained once and shown under both. atombench "
               f"evaluates the final synthetic set under both, also where a paper reports its best checkpoint.")
    frame = pd.DataFrame(records)
    main = Table("fairness", f"Own protocol vs common protocol: {_metric_label(opts.metric)} of "
                             f"{names.model_name(model)}", ["Method", "Own protocol"], [f"IPC {i}" for _, i in cols],
                 rows, groups, caption, [], p, None, frame)
    rank_caption = ("Rank of each method among the methods of its column with results under both protocols (1 = "
                    "best; ties share the mean rank) under its own protocol / under the common protocol; a method "
                    "alone in its column, or without results under one of the two, has none; "
                    + ("last column: the mean over the columns." if len(full) == len(cols) else
                       f"last column: the mean over the {len(full)} of the {len(cols)} columns that rank every "
                       f"method (the others rank fewer methods, so their places are not comparable)." if full else
                       "no mean rank: no column ranks every method, and places among fewer methods are not "
                       "comparable.")
                    + (f" Kendall's tau between the two rankings: {'; '.join(taus)}." if taus else ""))
    ranks = Table("fairness_ranks", "Ranking of the methods under each protocol", ["Method"],
                  [f"IPC {i}" for _, i in cols] + ["mean rank"], rank_rows,
                  groups + [("all", 1)] if groups else [], rank_caption, [], p, None, frame)
    return [main, ranks]


def _paired(own: pd.DataFrame, common: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of one cell under each protocol, restricted to the trained models (seed, evaluation index) both
    have, when they share any: a run in progress finishes a set's two evaluations at different times, and a set
    under one protocol only would otherwise be read as the protocol's effect."""
    keys = [c for c in ("seed", "eval_index") if c in own and c in common]
    own, common = own[own[metric].notna()], common[common[metric].notna()]
    if not keys or not len(own) or not len(common):
        return own, common

    def ids(rows: pd.DataFrame) -> pd.Series:
        return pd.Series(list(zip(*(rows[c].map(str) for c in keys))), index=rows.index)

    a, b = ids(own), ids(common)
    shared = set(a) & set(b)
    if not shared:
        return own, common
    return own[a.isin(shared)], common[b.isin(shared)]


def _rank_text(r: float | None) -> str:
    if r is None:
        return "–"
    return f"{r:.0f}" if float(r).is_integer() else f"{r:.1f}"
