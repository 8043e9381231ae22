"""The report's views of results with several evaluation settings: which value of each split dimension
(protocol, labels, augmentation) the main and cross-architecture tables show, and the rows of final synthetic sets
(snapshots left out).
"""

from __future__ import annotations

from ..grid import preferred, report_dimensions
from ..summary import varies
from .inputs import Inputs


def default_view(inputs: Inputs) -> tuple[dict[str, str], list[str]]:
    """For each evaluation dimension with several values in the results (the axes that split the report,
    :func:`atombench.grid.report_dimensions`: protocol, labels, augmentation), the value the main and
    cross-architecture tables show (the axis's ``prefer``: the common protocol, hard labels; else the first listed);
    and a note per dimension. Rows without the column (whole-dataset references) are kept by every choice."""
    ok = inputs.ok
    if "ipc" in ok and ok["ipc"].notna().any():  # the synthetic sets' values: the whole-dataset reference, listed
        ok = ok[ok["ipc"].notna()]                # first and trained without augmentation, would pick augment none
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
    """The rows of final synthetic sets (snapshots, the budget curves' points, left out), at one budget per method,
    dataset and IPC: where the final sets were distilled for several budgets (results folders merged, a budget
    changed between runs), those of the largest, with a note; never a cell averaging two budgets' sets."""
    import dataclasses

    import pandas as pd

    df = inputs.results
    if "snapshot" in df:
        df = df[df["snapshot"].isna() | (df["snapshot"].astype(str).str.lower().isin(["false", "0", "0.0"]))]
    notes = list(inputs.notes)
    if "iteration" in df and "distiller" in df and len(df):
        it = pd.to_numeric(df["iteration"], errors="coerce")
        done = it.where(df["status"].astype(str) == "ok") if "status" in df else it  # a pending or failed run
        by = [df[c].astype(str) for c in ("dataset", "distiller", "ipc") if c in df]  # of a larger budget hides
        top = done.groupby(by).transform("max")                                         # no finished set
        # an earlier budget, and a row of an older results.csv without the column beside newer ones (its budget
        # unknown), as claims._final does
        ok = df["status"].astype(str) == "ok" if "status" in df else pd.Series(True, index=df.index)
        older = top.notna() & ((it < top) | (it.isna() & ok))  # (a pending row without one: not a budget)
        if (older & ok).any():
            left = sorted({f"{d} at {'an unrecorded budget' if i != i else f'{int(i)} iterations'}"
                           for d, i in zip(df.loc[older & ok, "distiller"].astype(str), it[older & ok])})
            notes.append(f"final sets of an earlier budget left out of the tables ({', '.join(left[:6])}"
                         f"{', ...' if len(left) > 6 else ''}): each method's largest budget is shown")
        df = df[~older]
    if df is inputs.results:
        return inputs
    return dataclasses.replace(inputs, results=df.reset_index(drop=True), notes=notes)


def apply_view(inputs: Inputs, chosen: dict[str, str], own_augmentation: bool = False) -> Inputs:
    """The rows of ``chosen``'s value of each dimension (rows without the column kept). ``own_augmentation``: the
    augmentation is chosen among the common protocol's rows only; under protocol ``paper`` each method that declares
    a protocol trains with its own (DC's none, DSA's dsa), which a view of the common one must not drop (a method
    without one runs the common protocol under every listed augmentation: the view picks one, as for the common)."""
    import dataclasses

    df = inputs.results
    for dim, value in chosen.items():
        keep = df[dim].isna() | (df[dim].astype(str) == value)
        if own_augmentation and dim == "augment" and "protocol" in df:
            declared = df["protocol_declared"].map(lambda v: str(v).strip().lower() not in ("false", "0", "0.0")) \
                if "protocol_declared" in df else True  # a method without its own protocol runs the common one
            keep |= (df["protocol"].astype(str) == "paper") & declared
        df = df[keep]
    return dataclasses.replace(inputs, results=df.reset_index(drop=True))
