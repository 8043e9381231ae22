"""What a report reads from one or more results folders (see :mod:`atombench.store` for the layout).

* ``results.csv``: the tidy table; when it is absent (a run that was stopped before tabulating) the finished
  jobs in ``jobs/*.json`` stand in for it, and jobs that finished after it was written (a run in progress) replace
  their ``pending`` rows;
* ``suite.json`` (else ``suite.yaml``): the suite as run (dataset names and options, to reload a dataset for
  de-normalising images; whether it asked for NAS);
* ``synsets/<key>.safetensors.json``: each synthetic set's metadata (loss curve, iterations, wall time, memory);
* ``nas.csv`` and ``nas_summary.csv``: the NAS experiment, when one was run.

Several folders are merged into one table (rows of the same job, by ``job_key``, are counted once); the column
``results_dir`` says where each row came from. Anything missing is recorded in :attr:`Inputs.notes` instead of
failing: a report over a partial folder says what it lacks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UsageError, suggest
from ..store import REPORTED_AS, ResultsStore


@dataclass
class Inputs:
    roots: list[Path]
    results: pd.DataFrame  # every row, failed ones included
    nas: pd.DataFrame | None = None
    nas_summary: pd.DataFrame | None = None
    #: per results folder: the suite as run (``suite.json``), or {} when absent
    suites: dict[Path, dict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    _meta: dict = field(default_factory=dict)

    @property
    def ok(self) -> pd.DataFrame:
        """The rows of jobs that finished (``status == ok``)."""
        df = self.results
        return df[df["status"] == "ok"] if "status" in df else df

    def synset_meta(self, root: Path | str, key: str) -> dict | None:
        """A synthetic set's metadata (without loading its tensors), or None when it is absent or unreadable."""
        cache_key = (str(root), key)
        if cache_key not in self._meta:
            path = ResultsStore(root).synset_meta_path(key)
            try:
                meta = json.loads(path.read_text())
                self._meta[cache_key] = meta if isinstance(meta, dict) else None
            except (OSError, ValueError):
                self._meta[cache_key] = None
        return self._meta[cache_key]


def _read_csv(path: Path, notes: list[str]) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        notes.append(f"{path} could not be read ({str(exc).splitlines()[0]}); it was left out")
        return None


def _checked(df: pd.DataFrame, path: Path, notes: list[str]) -> pd.DataFrame:
    """``df`` checked against the results schema (:func:`atombench.grid.check_table`): each problem becomes a note,
    and a column of numbers holding something else is read as numbers, the values that are not left empty (so that
    no table shows them)."""
    from ..grid import check_table

    for column, problem in check_table(df):
        notes.append(f"{path}: {problem}; " + ("its values that are not numbers were left out"
                                               if column in df else "the tables that need it are left out"))
        if column in df:
            df = df.assign(**{column: pd.to_numeric(df[column], errors="coerce")})
    return df


#: the columns that, with the axes', say which grid point and protocol a row reports (a job two protocols share
#: is one record, reported under each protocol's identity)
_IDENTITY = ("epochs", "batch_size", "lr", "protocol_declared", "checkpoint_rule")
#: what a model was trained with, of a row's columns: a result stands for another row only where they agree
_TRAINING = ("epochs", "batch_size", "lr", "augment", "labels")
#: columns only a paper-protocol row has: not carried onto the other rows a record is reported as
_PAPER_ONLY = ("protocol_declared", "checkpoint_rule")


def _job_rows(root: Path, since: float | None = None) -> list[dict]:
    """The records under ``jobs/`` (of the jobs that finished after ``since``, a modification time, if given), a
    record of a job reported as several rows (``reported_as``: a method whose own protocol is the common one) once
    per row."""
    jobs = ResultsStore(root).jobs_dir
    rows = []
    for path in sorted(jobs.glob("*.json")) if jobs.is_dir() else []:
        try:
            if since is not None and path.stat().st_mtime <= since:
                continue
            row = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(row, dict):
            row.pop("sha256", None)
            row.pop("traceback", None)
            also = row.pop(REPORTED_AS, None)
            rows.append(row)
            # one job reported as several rows (its other protocol): each row its result under that identity
            base = {k: v for k, v in row.items() if k not in _PAPER_ONLY}
            rows.extend(dict(base, **other) for other in (also if isinstance(also, list) else [])
                        if isinstance(other, dict))
    return rows


def _jobs_table(root: Path, notes: list[str]) -> pd.DataFrame | None:
    """The finished jobs under ``jobs/`` when ``results.csv`` was never written (the run was stopped)."""
    rows = _job_rows(root)
    if not rows:
        return None
    notes.append(f"{root}: results.csv is missing (the run did not finish): the table holds the {len(rows)} "
                 f"finished job(s) found in jobs/; run the suite again to complete it")
    return pd.DataFrame(rows)


def _with_newer_jobs(root: Path, df: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """``df`` (``results.csv``) with the jobs that finished after it was written: a long run writes
    ``results.csv`` only at its end, so a report made while it runs (or after it was stopped) would otherwise show
    the previous run's table. A finished job fills every ``pending`` row of its key with its result, under that
    row's identity (a job two protocols share is one record, reported once per protocol, as in ``results.csv``);
    a job no row of ``results.csv`` names replaces the row of the same grid point (dataset, distiller, seed, IPC,
    model, evaluation, protocol, augmentation, labels, iteration): an older result of the point under another key
    (a set whose key changed with the code), with the other rows of that row's job (a shared job's other protocol);
    of two such jobs, the later."""
    from ..grid import axes, value_text

    store = ResultsStore(root)
    if "job_key" not in df or not store.results_csv.is_file():
        return df
    done = set(df.loc[df["status"].astype(str) == "ok", "job_key"].astype(str)) if "status" in df else set()
    rows = [r for r in _job_rows(root, since=store.results_csv.stat().st_mtime)
            if r.get("status") == "ok" and str(r.get("job_key")) not in done]
    if not rows:
        return df
    ident = [a.column for a in axes()]

    def point(row) -> tuple:
        return tuple(value_text(row.get(c)) for c in ident)

    rows = sorted(rows, key=lambda r: float(r.get("finished_at") or 0))
    by_key = {str(r.get("job_key")): r for r in rows}
    identity = [*ident, *_IDENTITY]

    def under(row: dict, result: dict) -> dict:  # ``result`` reported as ``row`` (its protocol, for a shared job)
        return dict(result, **{c: row[c] for c in identity if c in row})

    filled, kept, used = [], [], set()
    for row in df.to_dict("records"):
        key = str(row.get("job_key"))
        if key in by_key:  # its own result, under this row's identity (the protocol of a shared job)
            filled.append(under(row, by_key[key]))
            used.add(key)
        else:
            kept.append(row)
    latest = {point(r): r for r in rows if str(r.get("job_key")) not in used}  # a shared job's rows, each
    taken = {point(r) for r in filled}
    # a row replaced by a newer job of its grid point takes the other rows of its job with it (the other protocol
    # of a shared job): each gets the newer result under its own identity
    moved = {str(r.get("job_key")): latest[point(r)] for r in kept if point(r) in latest}

    def same_training(row: dict, result: dict) -> bool:  # not a newer job that is its own protocol's alone
        return all(value_text(row.get(c)) == value_text(result.get(c)) for c in _TRAINING if c in row)

    rest = []
    for row in kept:
        if point(row) in latest or point(row) in taken:
            continue
        newer = moved.get(str(row.get("job_key")))
        if newer is not None and same_training(row, newer):
            filled.append(under(row, newer))
        else:
            rest.append(row)
    notes.append(f"{root}: {len(by_key)} job(s) finished after results.csv was written (a run in progress, or "
                 f"stopped before its end): their rows are taken from jobs/; the run's next results.csv holds them")
    out = pd.DataFrame([*rest, *filled, *latest.values()])
    return out.reindex(columns=[*df.columns, *(c for c in out.columns if c not in df.columns)])


#: the columns a results table must have to be read as one
_REQUIRED = ("dataset", "distiller", "model")


def _is_results_folder(root: Path) -> bool:
    """What a run writes: results.csv, jobs/, suite.json or suite.yaml (a run that finished no job has the last)."""
    store = ResultsStore(root)
    return any(p.exists() for p in (store.results_csv, store.jobs_dir, store.suite_json, store.suite_yaml,
                                    store.nas_csv))


def _suite_as_run(root: Path) -> dict:
    """The suite as run: ``suite.json`` (resolved), else the text of ``suite.yaml``, else {}."""
    try:
        suite = json.loads(ResultsStore(root).suite_json.read_text())
        if isinstance(suite, dict):
            return suite
    except (OSError, ValueError):
        pass
    import yaml

    try:
        suite = yaml.safe_load(ResultsStore(root).suite_yaml.read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    return suite if isinstance(suite, dict) else {}


def read_inputs(paths: list[str | Path]) -> Inputs:
    """Read the results folders ``paths``; a folder that does not exist is a usage error."""
    roots = []
    for p in paths:
        root = Path(p)
        if not root.exists():
            raise UsageError(f"results folder '{root}' not found; pass the folder a run wrote "
                             f"(e.g. results/quickstart)")
        if not root.is_dir():
            raise UsageError(f"'{root}' is not a folder; pass the results folder a run wrote "
                             f"(e.g. results/quickstart), not a file in it")
        if not _is_results_folder(root):
            inside = sorted(str(q) for q in root.iterdir() if q.is_dir() and _is_results_folder(q))[:6] \
                if root.is_dir() else []
            hint = (f"it holds results folders: {', '.join(inside)} (pass one, or several with --output DIR)"
                    if inside else "pass the folder a run wrote (e.g. results/quickstart)")
            raise UsageError(f"'{root}' is not a results folder (no results.csv, jobs/ or suite.json in it); {hint}")
        roots.append(root)
    notes: list[str] = []
    frames, nas, nas_summary, suites = [], [], [], {}
    for root in roots:
        store = ResultsStore(root)
        df = _read_csv(store.results_csv, notes)
        rebuilt = False
        if df is not None and (not len(df) or not set(_REQUIRED) <= set(df.columns)):
            lacking = [c for c in _REQUIRED if c not in df.columns]
            from_jobs = _jobs_table(root, [])
            what = f"lacks the column(s) {', '.join(lacking)}" if lacking and len(df.columns) else "has no rows"
            if from_jobs is not None and len(from_jobs):  # damaged or emptied: a run rebuilds it from jobs/
                notes.append(f"{store.results_csv} {what}: the rows were taken from the {len(from_jobs)} "
                             f"finished job(s) under jobs/ (a run of the suite rewrites the file)")
                df, rebuilt = from_jobs, True
            elif lacking and len(df.columns):
                notes.append(f"{store.results_csv} {what}: it is not a results table and was left out")
                df = None
        if df is not None and not rebuilt:  # (rebuilt: every record is in it already)
            df = _with_newer_jobs(root, df, notes)
        if df is None:
            df = _jobs_table(root, notes)
            if df is None:
                notes.append(f"{root}: no results.csv and no finished jobs: run 'atombench run SUITE' "
                             f"(with this folder as its output) first")
        if df is not None and len(df):
            frames.append(_checked(df, store.results_csv, notes).assign(results_dir=str(root)))
        elif df is not None:
            notes.append(f"{root}: results.csv has no rows: the suite ran no job")
        suites[root] = _suite_as_run(root)
        for path, out in ((store.nas_csv, nas), (store.nas_summary_csv, nas_summary)):
            t = _read_csv(path, notes)
            if t is not None and len(t):
                out.append(t.assign(results_dir=str(root)))
    results = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if "job_key" in results and len(roots) > 1:  # a job shared by two protocols is one row per protocol
        # of a job's rows in several folders, a finished one stands (a run with --only writes the jobs it left
        # out as pending, under the keys another folder may hold results of)
        unfinished = (results["status"].astype(str) != "ok") if "status" in results else pd.Series(False, results.index)
        ranked = results.assign(_unfinished=unfinished).sort_values("_unfinished", kind="stable")
        # (a job reported as the rows of two dataset entries or labels is one row of each, in every folder)
        dup = ranked["job_key"].notna() & ranked.duplicated(
            [c for c in ("job_key", "protocol", "dataset", "distiller") if c in ranked])
        if dup.any():
            notes.append(f"{int(dup.sum())} job(s) appear in more than one results folder; each is counted once "
                         f"(a finished row over a pending or failed one)")
            results = results.loc[sorted(ranked.index[~dup])].reset_index(drop=True)
    if len(results) and "status" in results:
        from ..summary import status_rows

        failed, pending = status_rows(results)
        if len(failed):
            notes.append(f"{len(failed)} job(s) failed and are left out of the tables; their reasons are in "
                         f"the 'error' column of results.csv")
        if len(pending):
            from ..summary import pending_text

            notes.append(pending_text(pending) + "; they are left out of the tables")
    return Inputs(roots, _with_made_by(results, suites), pd.concat(nas, ignore_index=True) if nas else None,
                  pd.concat(nas_summary, ignore_index=True) if nas_summary else None, suites, notes)


def _with_made_by(results: pd.DataFrame, suites: dict) -> pd.DataFrame:
    """``results`` with ``made_by``: the method that made each row's set, its plug-in (``method``), or for a set
    read from files (the ``files`` distiller) the method its suite entry declares (``options.method``), so that
    the method's published numbers and kind apply to it as to the method's own sets."""
    if not len(results) or "method" not in results or "distiller" not in results:
        return results
    from .entries import distiller_entries

    declared = {label: str(options["method"]) for label, (name, options) in distiller_entries(suites).items()
                if name == "files" and options.get("method")}
    return results.assign(made_by=[declared.get(str(d), m) if m == "files" else m
                                   for d, m in zip(results["distiller"], results["method"])])


# -- filters -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Filter:
    column: str
    values: tuple[str, ...]
    negate: bool = False

    def __str__(self) -> str:
        return f"{self.column}{'!=' if self.negate else '='}{','.join(self.values)}"


def parse_filter(text: str) -> Filter:
    """``column=v1,v2`` (keep rows whose column is one of the values) or ``column!=v1,v2`` (drop them)."""
    negate = "!=" in text
    column, sep, values = text.partition("!=" if negate else "=")
    column = column.strip()
    vals = tuple(v.strip() for v in values.split(",") if v.strip())
    if not sep or not column or not vals:
        raise UsageError(f"--where '{text}': expected COLUMN=VALUE[,VALUE...] or COLUMN!=VALUE[,VALUE...], "
                         f"e.g. --where ipc=1,10 or --where distiller!=random")
    return Filter(column, vals, negate)


def _mask(series: pd.Series, f: Filter) -> pd.Series:
    if pd.api.types.is_bool_dtype(series):
        wanted = {v.lower() for v in f.values}
        bad = wanted - {"true", "false"}
        if bad:
            raise UsageError(f"--where {f}: '{f.column}' is true/false, got {sorted(bad)[0]!r}")
        return series.map(lambda x: str(x).lower() in wanted)
    if pd.api.types.is_numeric_dtype(series):
        try:
            nums = [float(v) for v in f.values]
        except ValueError:
            raise UsageError(f"--where {f}: '{f.column}' holds numbers; give numbers, e.g. "
                             f"--where {f.column}=1") from None
        return series.map(lambda x: any(np.isclose(x, n) for n in nums) if pd.notna(x) else False)
    return series.astype(str).isin(f.values)


def apply_filters(inputs: Inputs, filters: list[Filter]) -> Inputs:
    """Keep the rows every filter accepts. A filter applies to each table that has its column (results, NAS);
    a column no table has is a usage error naming the columns there are."""
    tables = {"results": inputs.results, "nas": inputs.nas, "nas_summary": inputs.nas_summary}
    for f in filters:
        have = [n for n, t in tables.items() if t is not None and f.column in t]
        if not have:
            columns = sorted(set().union(*(set(t.columns) for t in tables.values() if t is not None)))
            if not columns:
                raise UsageError(f"--where {f}: there are no results to filter (no results.csv); run the suite "
                                 f"first or drop --where")
            raise UsageError(f"--where {f}: no column '{f.column}' in the results{suggest(f.column, columns)}; "
                             f"columns: {', '.join(columns)}")
        before = {name: tables[name] for name in have}
        for name in have:
            t = tables[name]
            keep = _mask(t[f.column], f)
            tables[name] = t[~keep if f.negate else keep].reset_index(drop=True)
        if all(len(before[n]) for n in have) and not any(len(tables[n]) for n in have):
            seen = sorted({str(v) for n in have for v in before[n][f.column].dropna().unique()})
            raise UsageError(f"--where {f} leaves no row: '{f.column}' has the values "
                             f"{', '.join(seen[:20]) + (', ...' if len(seen) > 20 else '') or '(none)'}")
    inputs.results, inputs.nas, inputs.nas_summary = tables["results"], tables["nas"], tables["nas_summary"]
    if filters and not len(inputs.ok) and len(inputs.results.columns):
        inputs.notes.append(f"no finished job matches the filters ({'; '.join(map(str, filters))})")
    return inputs
