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
