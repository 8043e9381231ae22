"""Cells of the tables: mean ± std over samples, the best per column, and which others cannot be told apart.

**Samples.** ``unit="seeds"``: one sample per synthetic set (its seed), the mean over the models trained on it;
``unit="models"``: every trained model is a sample (the papers' protocol: 5 sets x 20 models, std over the 100).
The std is the population std (``np.std``, as the papers' code and ``summary.md``).

**The rule** (stated in each caption): in a column, the cell with the best mean is bold, and so is any cell whose
mean is equal at the shown precision. Every other cell of ours is compared with the best one by Welch's
two-sided t-test (unequal variances) over its independent synthetic sets (one sample per seed, whatever the unit
of the mean ± std: models trained on one set share its randomness, and counting them as independent samples
makes a gap of a point "significant" between two sets); p >= alpha (0.05) marks it as not significantly different
from the best (†). A test needs at least ``MIN_SAMPLES`` (3) sets on each side; otherwise no mark is given:
with 2 against 2, Welch's test has about one degree of freedom and cannot reject even a 30-point gap, so a †
there would say nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

UNITS = ("seeds", "models")


@dataclass
class Stat:
    mean: float
    std: float
    n: int
    samples: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    best: bool = False
    #: not significantly different from the best (None: not tested)
    tied: bool | None = None
    p: float | None = None
    #: what the significance test compares (one sample per synthetic set); None: ``samples``
    sets: np.ndarray | None = field(repr=False, default=None)

    def text(self, precision: int) -> str:
        """``mean ± std``; one sample has no spread to show (published cells, n = 0, carry the papers' ±)."""
        if self.n == 1:
            return f"{self.mean:.{precision}f}"
        return f"{self.mean:.{precision}f} ± {self.std:.{precision}f}"


def samples(rows: pd.DataFrame, metric: str, unit: str) -> np.ndarray:
    """The values a cell summarises: per seed means (``seeds``) or every trained model (``models``)."""
    rows = rows[rows[metric].notna()]
    if not len(rows):
        return np.zeros(0)
    if unit == "seeds" and "seed" in rows:
        return rows.groupby("seed", sort=True)[metric].mean().to_numpy(dtype=float)
    return rows[metric].to_numpy(dtype=float)


def cell(rows: pd.DataFrame, metric: str, unit: str) -> Stat | None:
    """The :class:`Stat` of a table cell: mean ± std over ``unit``'s samples, tested over its sets (per seed)."""
    out = stat(samples(rows, metric, unit))
    if out is not None and unit != "seeds":
        out.sets = samples(rows, metric, "seeds") if "seed" in rows else None
    return out


def stat(values: np.ndarray) -> Stat | None:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if not len(values):
        return None
    return Stat(float(values.mean()), float(values.std()) if len(values) > 1 else 0.0, len(values), values)


#: samples needed on each side of Welch's test for a significance mark
MIN_SAMPLES = 3


def welch_p(a: np.ndarray, b: np.ndarray) -> float | None:
    """Two-sided p-value of Welch's t-test, or None with fewer than ``MIN_SAMPLES`` samples on a side."""
    if len(a) < MIN_SAMPLES or len(b) < MIN_SAMPLES:
        return None
    va, vb = a.var(ddof=1), b.var(ddof=1)
    if va == 0 and vb == 0:  # no spread at all: the means either are equal or are certainly different
        return 1.0 if a.mean() == b.mean() else 0.0
    import warnings

    from scipy import stats as st

    with warnings.catch_warnings():  # nearly equal samples: scipy warns of precision loss; the p-value stands
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(st.ttest_ind(a, b, equal_var=False).pvalue)
    return p if math.isfinite(p) else None


def _tested(c: Stat) -> np.ndarray:
    return c.samples if c.sets is None else c.sets


def mark_column(cells: list[Stat | None], precision: int, alpha: float = 0.05, higher_is_better: bool = True,
                test: bool = True) -> None:
    """Set ``best``, ``tied`` and ``p`` on the cells of one column (``None`` cells are missing)."""
    present = [c for c in cells if c is not None]
    for c in present:
        c.best, c.tied, c.p = False, None, None
    if not present:
        return
    sign = 1 if higher_is_better else -1
    top = max(present, key=lambda c: sign * c.mean)
    shown = round(top.mean, precision)
    for c in present:
        c.best = round(c.mean, precision) == shown
    if not test:
        return
    for c in present:
        if c.best:
            continue
        c.p = welch_p(_tested(top), _tested(c))
        c.tied = None if c.p is None else bool(c.p >= alpha)
