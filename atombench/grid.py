"""The grid a suite evaluates: typed cells, the axes that span them, and the schema of a results row.

* A :class:`Cell` names one point of the grid: the synthetic set (dataset, distiller and its plug-in ``method``,
  IPC, seed, and for a snapshot its ``iteration``) and how it is evaluated (``model`` label and its plug-in
  ``model_name``, ``eval_index``, ``protocol``, ``labels``, ``augment``). Cells are frozen and hashable; a field that
  does not apply (the IPC of a whole-dataset reference) is None and is not a column of the cell's row.
* An :class:`Axis` owns one dimension of the grid: its values for a partial cell (:meth:`Axis.expand`, from the
  suite), its override of the training config (:meth:`Axis.override`), its part of the job key beyond what the
  training config carries (:meth:`Axis.key_part`), its results column (:attr:`Axis.column`, :attr:`Axis.dtype`)
  and how the report splits or filters by it (:attr:`Axis.splits_report`, :attr:`Axis.prefer`,
  :attr:`Axis.identifies`). :data:`AXES` lists them in expansion order; :func:`expand` composes them. An axis
  without a field of :class:`Cell` keeps its value in :attr:`Cell.extra`, so a new axis is one new :class:`Axis`
  appended to :data:`AXES` and nothing else: its column appears in the rows, its values in the job keys (through
  its override or key part), and the report splits by it when it says so.
* A results row (``results.csv``, ``jobs/<key>.json``) is the cell's row plus the training columns and what was
  measured: :data:`RESULT_COLUMNS` is its one schema, checked by :func:`check_row` when a job writes its row and
  by :func:`check_table` when a report reads ``results.csv`` back.
* :class:`FrozenTrain` is a resolved training config (a read-only dict, as stored); :func:`train_config` is the
  one place a :class:`~atombench.train.TrainConfig` is built from one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterable, Mapping, Optional

from .errors import AtombenchError


# -- the cell ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    """One point of the grid (see the module docstring); None: the field does not apply to this cell."""

    #: the dataset's label in tables (its suite ``label``, else its name)
    dataset: Optional[str] = None
    #: the distiller's label in tables (``whole`` for a whole-dataset reference)
    distiller: Optional[str] = None
    #: the distiller's registered plug-in name
    method: Optional[str] = None
    ipc: Optional[int] = None
    #: the suite seed of the synthetic set (0 for a whole-dataset reference)
    seed: Optional[int] = None
    #: the key of the synthetic set the cell evaluates (a snapshot's own key for a snapshot)
    synset_key: Optional[str] = None
    #: the distiller's iteration count of the set (the final one, or the snapshot's)
    iteration: Optional[int] = None
    #: the evaluation model's label in tables
    model: Optional[str] = None
    #: the evaluation model's registered plug-in name
    model_name: Optional[str] = None
    #: which of the ``models_per_set`` models trained on the set
    eval_index: Optional[int] = None
    #: ``common`` or ``paper`` (:mod:`atombench.protocols`)
    protocol: Optional[str] = None
    #: ``hard`` or ``soft``
    labels: Optional[str] = None
    #: the augmentation the models trained with (as resolved: a paper protocol's own)
    augment: Optional[str] = None
    #: True for the evaluation of a snapshot (an intermediate set of the distillation)
    snapshot: Optional[bool] = None
    #: ``(column, value)`` pairs of the axes that have no field of their own, sorted by column
    extra: tuple = ()

    def get(self, name: str, default: Any = None) -> Any:
        if name in _FIELDS:
            value = getattr(self, name)
            return default if value is None else value
        return dict(self.extra).get(name, default)

    def but(self, **values) -> "Cell":
        """This cell with ``values`` changed (fields, or the columns of axes without a field)."""
        fields = {k: v for k, v in values.items() if k in _FIELDS}
        rest = {k: v for k, v in values.items() if k not in _FIELDS}
        if rest:
            fields["extra"] = tuple(sorted({**dict(self.extra), **rest}.items()))
        return dataclasses.replace(self, **fields)

    def row(self) -> dict:
        """The cell's columns of a results row: every field that applies, and the extra axes' columns."""
        out = {f: getattr(self, f) for f in _FIELDS if getattr(self, f) is not None}
        out.update(self.extra)
        return out


_FIELDS = tuple(f.name for f in dataclasses.fields(Cell) if f.name != "extra")


# -- the resolved training config ----------------------------------------------------------------------------
class FrozenTrain(dict):
    """A resolved training config (``TrainConfig``'s fields as a dict, the job's values concrete): read-only, so
    the config a job's key was computed from is the config it trains with. It is a ``dict`` for JSON, hashing and
    ``dict(train, **changes)``."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("a job's training config is frozen: build a new one with dict(train, **changes)")

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]

    def __reduce__(self):
        return FrozenTrain, (dict(self),)

    def __hash__(self) -> int:  # type: ignore[override]
        from .runtime import stable_hash

        return hash(stable_hash(dict(self)))


def common_train(eval_grid) -> dict:
    """The training config every evaluation of a suite starts from: the training fields of its ``eval:`` section
    (:class:`~atombench.suite.EvalGrid`, the fields of :class:`~atombench.train.TrainConfig`), before the axes'
    overrides; the one place it is read off the section."""
    from .train import TrainConfig

    return {f.name: getattr(eval_grid, f.name) for f in dataclasses.fields(TrainConfig)}


def train_config(train: Mapping, synset=None):
    """The :class:`~atombench.train.TrainConfig` of a resolved training config: the one place one is built from a
    dict. With ``synset``, ``lr: learned`` becomes the step size the distiller learned (``syn_lr`` in its metadata,
    MTT's paper protocol)."""
    from .train import TrainConfig

    values = dict(train)
    if values.get("lr") == "learned" and synset is not None:
        from .errors import UsageError

        lr = synset.meta.get("syn_lr")
        if not isinstance(lr, (int, float)) or not lr > 0:
            raise UsageError(f"the protocol trains with the learned step size, but the synthetic set records none "
                             f"usable (syn_lr = {lr!r}); evaluate it with a fixed lr (eval.protocol: common)")
        values["lr"] = float(lr)
    return TrainConfig(**values)


# -- axes ----------------------------------------------------------------------------------------------------
class Point:
    """A partial cell during the expansion, with what the axes resolved for it (specs, data, the distiller) in
    ``facts``: what later axes and the jobs need, not part of the cell's identity."""

    __slots__ = ("cell", "facts")

    def __init__(self, cell: Cell, facts: Optional[dict] = None):
        self.cell = cell
        self.facts = facts or {}

    def but(self, facts: Optional[dict] = None, **values) -> "Point":
        return Point(self.cell.but(**values) if values else self.cell, {**self.facts, **(facts or {})})


@dataclass(frozen=True)
class Axis:
    """One dimension of the grid (see the module docstring). Subclasses override what they own."""

    #: the results column (a field of :class:`Cell`, or a column of :attr:`Cell.extra`)
    column: str
    #: the column's type(s) in a results row
    dtype: tuple = (str,)
    #: what the column means (the schema's documentation)
    doc: str = ""
    #: ``set``: a dimension of the synthetic sets (distillation jobs); ``eval``: of their evaluations
    level: str = "eval"
    #: the report draws one table per value when the results hold several (an evaluation setting)
    splits_report: bool = False
    #: the value the report's main tables show when the results hold several (else the first)
    prefer: Optional[str] = None
    #: the order of the report's split dimensions (its table titles, its default view)
    report_rank: int = 100
    #: part of what identifies a table cell (rows of one cell differing in a split axis mean the axis varies)
    identifies: bool = False
    #: overrides are applied in this order (a paper protocol, late, replaces what it names)
    override_order: ClassVar[int] = 50
    #: expanded after every other axis of its level (the snapshot axis)
    expands_last: ClassVar[bool] = False

    def row_columns(self, point: Point, train: dict) -> dict:
        """Columns of the results row beyond the cell's that this axis adds (default: none)."""
        return {}

    def expand(self, ctx: "GridContext", point: Point) -> Iterable[Point]:
        raise NotImplementedError

    def override(self, point: Point, train: dict) -> dict:
        """The training config with this axis's setting (default: unchanged); for a ``set`` axis, the distiller's
        options (:func:`resolve_set`)."""
        return train

    def key_part(self, point: Point, train: dict) -> dict:
        """What this axis adds to the job key (a ``set`` axis: to the synthetic set's key) beyond the training
        config or the distiller's options (default: nothing, and the keys are what they were without the axis)."""
        return {}

    def in_main_view(self, point: Point) -> bool:
        """Whether ``point`` is in this axis's main view (its first value, say): the snapshots of an iterative
        distillation, the budget curves' points, are evaluated where every axis says so (default: every value)."""
        return True


@dataclass(frozen=True)
class ValuesAxis(Axis):
    """An axis with a list of values: fixed, a function of the suite giving them, or (``values=None``) the list
    the suite gives under its ``grid:`` section (``grid: {COLUMN: [v1, v2]}``; a suite that does not name the axis
    leaves it out: no column, keys unchanged). ``train_key``: the training option the value sets (a ``set``
    axis: the distiller's option), entering the key through the config; else the value enters the key under the
    column's name (a ``set`` axis sets the option of the distillers that have it, and leaves the others as they
are). Its main view (where snapshots are evaluated) is its first value."""

    values: Any = ()
    train_key: Optional[str] = None

    def _values(self, suite) -> list:
        if self.values is None:
            return list((getattr(suite, "grid", None) or {}).get(self.column) or [])
        return list(self.values(suite) if callable(self.values) else self.values)

    def expand(self, ctx, point):
        values = self._values(ctx.suite)
        if not values:  # not named by the suite: the axis is not part of its grid
            return [point]
        return [point.but({f"first_{self.column}": values[0]}, **{self.column: v}) for v in values]

    def _value(self, point):
        return point.cell.get(self.column)

    def override(self, point, train):
        value = self._value(point)
        if not self.train_key or value is None:
            return train
        if self.level == "set" and not hasattr(getattr(point.facts.get("distiller"), "config", None), self.train_key):
            return train  # a distiller without that option (random, say) distils as it would without the axis
        return dict(train, **{self.train_key: value})

    def key_part(self, point, train):
        value = self._value(point)
        return {} if self.train_key or value is None else {self.column: value}

    def in_main_view(self, point):
        return point.facts.get(f"first_{self.column}") == self._value(point)


@dataclass
class GridContext:
    """What the axes expand from: the checked plan (suite, data, distillers) and the graph being built."""

    plan: Any
    #: registers a reference job (teacher / whole-dataset): ``(dataset spec, dargs, real, model, label, name) -> key``
    reference: Callable
    #: the device the speed options (``compile``/``amp: auto``) are resolved for
    speed_device: str = "cpu"

    @property
    def suite(self):
        return self.plan.suite


def axes(level: Optional[str] = None) -> list[Axis]:
    """The registered axes (of one level), in expansion order (the snapshot axis last: it asks every other axis
    whether a point is in its main view)."""
    return sorted((a for a in AXES if level is None or a.level == level), key=lambda a: a.expands_last)


def value_problems(suite, distillers: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What the values of the axes that set an option (``ValuesAxis(train_key=...)``) would break, found before
    any work: a set axis whose option no distiller of the suite has (its values would all distil the same sets), a
    value a distiller or the training config refuses. ``distillers``: the suite's, by label, as the preflight
    built them. ``(where, message)``, located under ``grid.<column>``."""
    from .errors import AtombenchError
    from .factories import make_distiller
    from .train import TrainConfig

    out = []
    for axis in (a for a in AXES if isinstance(a, ValuesAxis) and a.train_key):
        values, where = axis._values(suite), f"grid.{axis.column}"
        if not values:
            continue
        if axis.level == "set":
            have = [s for s in suite.distillers if hasattr(getattr(distillers.get(s.display), "config", None),
                                                            axis.train_key)]
            if not have:
                out.append((where, f"sets the distillers' option '{axis.train_key}', which none of the suite's "
                                   f"distillers has: every value would distil the same sets"))
            for spec in have:
                for v in values:
                    try:
                        make_distiller(spec.name, dict(spec.options, **{axis.train_key: v}))
                    except AtombenchError as err:
                        out.append((where, f"{v!r} for {spec.display}: {str(err).splitlines()[0]}"))
        else:
            base = common_train(suite.eval)
            for v in values:
                try:
                    TrainConfig(**dict(base, **{axis.train_key: v}))
                except (AtombenchError, TypeError, ValueError) as err:
                    out.append((where, f"{v!r}: {str(err).splitlines()[0]}"))
    return out


def suite_axes() -> dict[str, "ValuesAxis"]:
    """The axes whose values a suite gives under ``grid:`` (``ValuesAxis(values=None)``), by column."""
    return {a.column: a for a in AXES if isinstance(a, ValuesAxis) and a.values is None}


def grid_problems(grid_section) -> list[tuple[str, str]]:
    """What is wrong with a suite's ``grid:`` section: ``(where, message)`` for a name that is no registered axis
    taking values from the suite, or values that are not a non-empty list of distinct values of the axis's type."""
    if grid_section is None:
        return []
    if not isinstance(grid_section, dict):
        return [("grid", f"must map axis names to lists of values, got {type(grid_section).__name__}")]
    known, out = suite_axes(), []
    for name, values in grid_section.items():
        if name not in known:
            have = f"those registered: {', '.join(sorted(known))}" if known else "none is registered"
            out.append((f"grid.{name}", f"no axis of the grid takes values from the suite under this name "
                                        f"({have}; atombench.grid.register adds one: CONTRIBUTING.md)"))
            continue
        axis = known[name]
        want = " or ".join(t.__name__ for t in axis.dtype)
        if not isinstance(values, list) or not values:
            out.append((f"grid.{name}", f"must be a non-empty list of {want} values, got {values!r}"[:200]))
        elif not all(v is not None and _type_ok(v, axis.dtype) for v in values):
            bad = next(v for v in values if v is None or not _type_ok(v, axis.dtype))
            out.append((f"grid.{name}", f"values must be {want}, got {bad!r}"[:200]))
        elif len({repr(v) for v in values}) != len(values):
            out.append((f"grid.{name}", f"lists a value twice: {values!r}"[:200]))
    return out


def expand(ctx: GridContext, points: list[Point], chosen: Iterable[Axis]) -> list[Point]:
    """Every point of ``points`` expanded along each axis of ``chosen`` in turn (the first axis outermost)."""
    for axis in chosen:
        points = [q for p in points for q in axis.expand(ctx, p)]
    return points


def resolve_train(point: Point, base: dict) -> dict:
    """The training config of an evaluation point: ``base`` with each axis's override, in override order."""
    train = dict(base)
    for axis in sorted(axes("eval"), key=lambda a: a.override_order):
        train = axis.override(point, train)
    return train


def key_parts(point: Point, train: dict) -> dict:
    """What the axes add to an evaluation's keyed training config."""
    out: dict = {}
    for axis in axes("eval"):
        out.update(axis.key_part(point, train))
    return out


# -- what the report reads from the axes -----------------------------------------------------------------------
def report_dimensions() -> list[str]:
    """The evaluation settings the report and ``summary.md`` split by, in axis order."""
    return [a.column for a in sorted(axes(), key=lambda a: a.report_rank) if a.splits_report]


def value_text(value) -> Optional[str]:
    """A results value as text that compares alike wherever it was read (``results.csv``, a job's JSON, the
    command line: ``--only``): numbers as numbers (``1.0``, ``1`` and ``"1"`` alike, ``0.010`` as ``0.01``),
    booleans in any case (``true``, ``True``); None for a column the row leaves empty."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("true", "false"):
            return text.capitalize()
        try:
            value = float(text)
        except ValueError:
            return text
        if value != value:
            return text
    if isinstance(value, (int, float)):
        value = float(value)
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def cell_identity() -> list[str]:
    """The columns that identify one table cell (a split dimension varies when it differs within one)."""
    return [a.column for a in axes() if a.identifies]


def preferred() -> dict[str, str]:
    """The value each split dimension's main tables show when the results hold it."""
    return {a.column: a.prefer for a in axes() if a.splits_report and a.prefer is not None}


# -- the schema of a results row -----------------------------------------------------------------------------
NUMBER = (int, float)


@dataclass(frozen=True)
class Column:
    """One column of a results row: its type(s), whether every row has it, and what it means."""

    name: str
    dtype: tuple
    doc: str
    #: ``always``: every row; ``ok``: every row of a finished job; ``""``: when it applies
    required: str = ""


#: the columns of a results row besides the axes' (measured, or describing how the job ran)
MEASURED = [
    Column("job_key", (str,), "the evaluation's content hash (jobs/<key>.json)", "always"),
    Column("status", (str,), "ok, failed or pending (--no-distill)", "always"),
    Column("error", (str,), "why the job failed (one line); empty when ok"),
    Column("epochs", (int,), "training epochs of the evaluation (as resolved by the protocol)"),
    Column("batch_size", (int,), "training batch size"),
    Column("lr", (int, float, str), "learning rate, or 'learned' (the distiller's, MTT)"),
    Column("protocol_declared", (bool,), "paper protocol rows: whether the method declares its own"),
    Column("checkpoint_rule", (str,), "paper protocol rows: the set the paper reports (final or best)"),
    Column("accuracy", NUMBER, "top-1 test accuracy (%)", "ok"),
    Column("top5_accuracy", NUMBER, "top-5 test accuracy (%), datasets of more than 10 classes"),
    Column("final_train_loss", NUMBER, "the last epoch's training loss"),
    Column("train_time_s", NUMBER, "seconds of training"),
    Column("eval_time_s", NUMBER, "seconds of testing"),
    Column("peak_mem_mb", NUMBER, "peak memory of the training (MB)"),
    Column("distill_time_s", NUMBER, "the synthetic set's distillation wall time (s)"),
    Column("distill_peak_mem_mb", NUMBER, "the distillation's peak memory (MB)"),
    Column("num_images", (int,), "training images (the synthetic set's, or the reference's)"),
    Column("eval_seed", (int,), "the seed of the trained model"),
    Column("ensemble_size", (int,), "models trained together with this one"),
    Column("lr_used", NUMBER, "the learning rate used (the learned one resolved)"),
    Column("compile", (bool,), "whether the training step was compiled"),
    Column("amp", (str,), "mixed precision: none or bf16"),
    Column("device", (str,), "the device the job ran on"),
    Column("threads", (int,), "torch threads of the job's slot"),
    Column("model_options", (str,), "the model's options (JSON)"),
    Column("train_config", (str,), "the resolved training config (JSON)"),
    Column("started_at", NUMBER, "Unix time the job started"),
    Column("finished_at", NUMBER, "Unix time the job finished"),
    Column("host", (str,), "the machine that ran the job"),
    Column("pid", (int,), "the worker process"),
    Column("kind", (str,), "the job's kind (reference rows)"),
]

#: the columns of an architecture-search row (``jobs/<key>.json`` of a NAS job, the rows ``nas.csv`` is made of)
#: besides its cell's: its own measurements, under :func:`nas_columns`
NAS_MEASURED = [
    Column("job_key", (str,), "the job's content hash (jobs/<key>.json)", "always"),
    Column("status", (str,), "ok or failed", "always"),
    Column("kind", (str,), "ground_truth (the whole training split), proxy (a synthetic set) or early_stop", "always"),
    Column("proxy", (str,), "the proxy's label (a distiller's, early_stop, or whole)", "always"),
    Column("candidate", (str,), "the candidate architecture's name", "always"),
    Column("epochs", (int,), "training epochs"),
    Column("batch_size", (int,), "training batch size"),
    Column("val_accuracy", NUMBER, "accuracy (%) on the search's validation split", "ok"),
    Column("test_accuracy", NUMBER, "test accuracy (%), ground-truth jobs only (reporting, never selection)"),
    Column("num_train_images", (int,), "training images"),
    Column("val_time_s", NUMBER, "seconds of validation"),
    Column("test_time_s", NUMBER, "seconds of testing"),
    Column("model_options", (str,), "the candidate's options (JSON)"),
    # how the job ran: as in a results row
    *(c for c in MEASURED if c.name in ("error", "final_train_loss", "train_time_s", "device", "threads",
                                        "train_config", "started_at", "finished_at")),
]

#: the cell's columns every results row has (a whole-dataset reference row lacks ``ipc``, ``eval_index``, ...)
CELL_REQUIRED = ("dataset", "distiller", "method", "seed", "model", "model_name", "labels", "augment")


def result_columns() -> dict[str, Column]:
    """The schema of a results row: the axes' columns, then :data:`MEASURED` (other columns, such as the
    ``*_version`` ones, are free-form)."""
    cols = {a.column: Column(a.column, a.dtype, a.doc, "always" if a.column in CELL_REQUIRED else "")
            for a in axes()}
    for name, dtype, doc in (("method", (str,), "the distiller's registered plug-in name"),
                             ("model_name", (str,), "the evaluation model's registered plug-in name"),
                             ("synset_key", (str,), "the key of the synthetic set evaluated"),
                             ("snapshot", (bool,), "True for a snapshot's evaluation")):
        cols.setdefault(name, Column(name, dtype, doc, "always" if name in CELL_REQUIRED else ""))
    for c in MEASURED:
        cols.setdefault(c.name, c)
    return cols


def nas_columns() -> dict[str, Column]:
    """The schema of an architecture-search row: its cell's columns (dataset, IPC, seed, ``model`` the candidate's
    name and ``model_name`` the plug-in that builds it), then :data:`NAS_MEASURED`."""
    cell = [Column("dataset", (str,), "the dataset's label", "always"),
            Column("ipc", (int,), "the proxy's images per class (none for the ground truth)"),
            Column("seed", (int,), "the candidate's training seed", "always"),
            Column("model", (str,), "the candidate's name (as in candidate)", "always"),
            Column("model_name", (str,), "the model plug-in that builds the candidates", "always")]
    return {c.name: c for c in [*cell, *NAS_MEASURED]}


def schema_markdown() -> str:
    """``docs/results_schema.md``: the schema of a results row as a page (``tests/test_grid.py`` keeps the page in
    step with :func:`result_columns`)."""
    req = {"always": "every row", "ok": "every finished job", "": "when it applies"}
    lines = ["# The results row: `results.csv` and `jobs/<key>.json`", "",
             "Generated from `atombench.grid.result_columns()` (the axes' columns first, then what was measured);",
             "`check_row` enforces it when a job writes its row and when `results.csv` is assembled, and the report",
             "checks it again when it reads `results.csv` back (a bad column is noted, not fatal). Other columns (the",
             "`*_version` ones, a plug-in's own) are free-form. A new axis of the grid adds its column here.", "",
             "One evaluation job can be two rows: a method whose own protocol is the common one trains one model,",
             "reported under both protocols. Its `jobs/<key>.json` is the row it ran as, with `reported_as`: the",
             "other rows' identity columns (`protocol`, `protocol_declared`, ...); `results.csv` has one row per",
             "identity and no `reported_as` column.", "",
             "| column | type | present in | meaning |", "|---|---|---|---|"]
    table = lambda cols: [f"| `{c.name}` | {' or '.join(t.__name__ for t in c.dtype)} | "  # noqa: E731
                          f"{req.get(c.required, c.required)} | {c.doc} |" for c in cols]
    lines += table(result_columns().values())
    lines += ["", "## An architecture-search row: `jobs/<key>.json` of a search job", "",
              "Generated from `atombench.grid.nas_columns()`, enforced by `check_row` when a search job writes its",
              "row; `nas.csv` and `nas_summary.csv` are tabulated from these rows (`docs/nas.md`).", "",
              "| column | type | present in | meaning |", "|---|---|---|---|"]
    lines += table(nas_columns().values())
    return "\n".join(lines) + "\n"


class RowSchemaError(AtombenchError):
    """A results row that does not follow :func:`result_columns`."""


def _type_ok(value, dtype: tuple) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return bool in dtype
    if bool in dtype and not {int, float} & set(dtype):
        return False
    if isinstance(value, int) and float in dtype:
        return True
    try:
        import numpy as np

        if isinstance(value, np.generic):
            value = value.item()
    except ImportError:  # pragma: no cover
        pass
    return isinstance(value, dtype) and not isinstance(value, bool)


def row_problems(row: Mapping, required: Optional[Iterable[str]] = None,
                 schema: Optional[Mapping[str, Column]] = None) -> list[str]:
    """What is wrong with a results row (empty: nothing): a column it must have and lacks, a column of the wrong
    type. ``required``: the cell's columns the row must have (default :data:`CELL_REQUIRED`, a ``results.csv``
    row's; a job's stored row has its own cell's). ``schema``: :func:`result_columns` (default) or
    :func:`nas_columns`."""
    schema = result_columns() if schema is None else schema
    needed = {n for n, c in schema.items() if c.required == "always" and n not in CELL_REQUIRED}
    needed |= {n for n, c in schema.items() if c.required == "ok" and row.get("status") == "ok"}
    needed |= set(CELL_REQUIRED if required is None else required)
    problems = [f"column '{name}' is missing" + (f" ({schema[name].doc})" if name in schema else "")
                for name in sorted(needed) if name not in row]
    for name, value in row.items():
        col = schema.get(name)
        if col is not None and not _type_ok(value, col.dtype):
            want = " or ".join(t.__name__ for t in col.dtype)
            problems.append(f"column '{name}' must be {want}, got {type(value).__name__} {value!r}")
    return problems


def check_row(row: Mapping, required: Optional[Iterable[str]] = None,
              schema: Optional[Mapping[str, Column]] = None) -> Mapping:
    """``row`` when it follows the results schema (:func:`row_problems`; ``schema``: :func:`result_columns`, or
    :func:`nas_columns` for a search row), else :class:`RowSchemaError` naming each bad column."""
    problems = row_problems(row, required, schema)
    if problems:
        which = "nas_columns" if schema is not None and "val_accuracy" in schema else "result_columns"
        raise RowSchemaError(f"results row does not follow the schema (atombench.grid.{which}): "
                             + "; ".join(problems))
    return row


def check_table(df) -> list[tuple[str, str]]:
    """What is wrong with a results table read back (``results.csv``): ``(column, message)`` for a column every
    row has that is missing, or a column of numbers holding something else. Empty when it follows the schema."""
    import pandas as pd

    if not len(df):
        return []
    problems = []
    for name, col in result_columns().items():
        if name not in df:
            if col.required == "always" and name in ("job_key", "status", "dataset", "distiller", "model"):
                problems.append((name, f"column '{name}' is missing ({col.doc})"))
            continue
        values = df[name].dropna()
        if not len(values) or str in col.dtype or not {int, float} & set(col.dtype):
            continue
        if not pd.api.types.is_numeric_dtype(values):
            bad = values[pd.to_numeric(values, errors="coerce").isna()]
            if len(bad):
                problems.append((name, f"column '{name}' must hold numbers ({col.doc}), got {str(bad.iloc[0])!r}"))
    return problems


AXES: list[Axis] = []


def register(axis: Axis) -> Axis:
    """Add ``axis`` to the grid (last in expansion order) and return it. Registering an equal axis again (a module
    imported twice) changes nothing; another axis under a column already taken is refused."""
    for known in AXES:
        if known.column == axis.column:
            if known == axis:
                return known
            raise ValueError(f"the grid already has an axis with column '{axis.column}' ({type(known).__name__}); "
                             f"give the new axis another column")
    AXES.append(axis)
    return axis


# -- the built-in axes ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetAxis(Axis):
    def expand(self, ctx, point):
        return [point.but({"ds": ds}, dataset=ds.display) for ds in ctx.suite.datasets]


@dataclass(frozen=True)
class DistillerAxis(Axis):
    """The distiller's label (``distiller``) and plug-in name (``method``)."""

    def expand(self, ctx, point):
        ds = point.facts["ds"]
        return [point.but({"spec": s, "distiller": ctx.plan.distillers[s.display]}, distiller=s.display, method=s.name)
                for s in ctx.suite.distillers if s.runs_on(ds.display)]


@dataclass(frozen=True)
class SeedAxis(Axis):
    def expand(self, ctx, point):
        return [point.but(seed=seed) for seed in ctx.suite.seed_list]


@dataclass(frozen=True)
class IpcAxis(Axis):
    """Images per class (those the distiller entry runs at)."""

    def expand(self, ctx, point):
        return [point.but(ipc=ipc) for ipc in point.facts["spec"].ipcs(ctx.suite.ipc)]


def resolve_set(ctx: GridContext, point: Point) -> Point:
    """The synthetic set of a point every ``set`` axis has expanded: the distiller with the set axes' overrides of
    its options (a set axis's :meth:`Axis.override` receives the distiller's options, not a training config), the
    real data it distils (the preflight's, through the plan), its key (with what the set axes add:
    :meth:`Axis.key_part`), its iterations and snapshots."""
    from .keys import synset_key
    from .factories import dataset_args

    f, c = point.facts, point.cell
    spec, distiller, options, extra = f["spec"], f["distiller"], dict(f["spec"].options), {}
    for axis in sorted(axes("set"), key=lambda a: a.override_order):
        options = axis.override(point, options)
        extra.update(axis.key_part(point, options))
    if options != spec.options:  # a set axis changed the distiller's options: the distiller they make
        from .factories import make_distiller

        distiller = make_distiller(spec.name, options)
    dargs = dataset_args(f["ds"], distiller, c.ipc)
    real = ctx.plan.real(dargs)
    key = synset_key(real, distiller, c.ipc, c.seed, extra)
    iterations = getattr(distiller.config, "iterations", None)
    snaps = ctx.suite.snapshots_of(distiller)
    return point.but({"dargs": dargs, "real": real, "set": key, "snaps": snaps, "distiller": distiller,
                      "options": options}, synset_key=key, iteration=iterations if isinstance(iterations, int) else None)


@dataclass(frozen=True)
class ModelAxis(Axis):
    """The evaluation model's label (``model``) and plug-in name (``model_name``)."""

    def expand(self, ctx, point):
        return [point.but({"model_spec": m}, model=m.display, model_name=m.name) for m in ctx.suite.models]


@dataclass(frozen=True)
class EvalIndexAxis(Axis):
    """Which of the ``models_per_set`` models; its seed is part of the key (the same seeds under every protocol:
    a paired comparison)."""

    def expand(self, ctx, point):
        from .runtime import derive_seed

        f, c = point.facts, point.cell
        m = f["model_spec"]
        start = f["distiller"].eval_seed_key(f["real"], c.ipc, c.seed) or f["set"]
        return [point.but({"eval_seed": derive_seed("eval", start, m.name, m.options, k)}, eval_index=k)
                for k in range(ctx.suite.eval.models_per_set)]


@dataclass(frozen=True)
class ProtocolAxis(Axis):
    """``common`` (the suite's ``eval:``) or ``paper`` (the method's own, :mod:`atombench.protocols`)."""

    override_order: ClassVar[int] = 90

    def expand(self, ctx, point):
        from .factories import paper_dataset
        from .protocols import ModelName, expand

        f, out = point.facts, []
        names = expand(ctx.suite.eval.protocol)
        for name in names:
            own = f["distiller"].paper_protocol(paper_dataset(f["ds"].name), ModelName(
                f["model_spec"].name, f["model_spec"].options), point.cell.ipc) if name == "paper" else None
            out.append(point.but({"own": own, "main_protocol": name == names[-1]}, protocol=name))
        return out

    def in_main_view(self, point):
        return point.facts.get("main_protocol", True)

    def override(self, point, train):
        from .protocols import resolve_train

        return resolve_train(train, point.facts.get("own"))

    def row_columns(self, point, train):
        if point.cell.protocol != "paper":
            return {}
        own = point.facts.get("own")
        return {"protocol_declared": own is not None, "checkpoint_rule": own.checkpoint if own is not None else "final"}


@dataclass(frozen=True)
class AugmentAxis(Axis):
    """Each augmentation the suite lists (``auto``: the method's), or the paper protocol's own."""

    def expand(self, ctx, point):
        f = point.facts
        listed = [("dsa" if f["distiller"].eval_with_dsa else "none") if a == "auto" else a
                  for a in ctx.suite.eval.augment_list]
        return [point.but({"augment": a, "augments": listed}, augment=a)
                for a in ([None] if f.get("own") is not None else listed)]

    def override(self, point, train):
        return dict(train, augment=point.facts["augment"] or point.facts["augments"][0])

    def in_main_view(self, point):
        f = point.facts
        return f.get("augment") is None or f.get("augment") == f["augments"][0]


@dataclass(frozen=True)
class LabelsAxis(Axis):
    """``hard`` or ``soft`` (a teacher's, trained on the real set, or the distiller's own)."""

    override_order: ClassVar[int] = 95

    def expand(self, ctx, point):
        ev, f, out = ctx.suite.eval, point.facts, []
        m = f["model_spec"]
        for labels in ev.label_list:
            teacher = None
            if labels == "soft" and ev.soft_labels == "teacher":
                model = (ev.teacher["name"], ev.teacher["options"]) if ev.teacher else (m.name, m.options)
                teacher = (ctx.reference(f["ds"], f["dargs"], f["real"], model, model[0], model[0]), model)
            out.append(point.but({"teacher": teacher, "main_labels": labels == ev.label_list[0]}, labels=labels))
        return out

    def in_main_view(self, point):
        return point.facts.get("main_labels", True)

    def override(self, point, train):
        return dict(train, labels="soft") if point.cell.labels == "soft" else train

    def key_part(self, point, train):
        if point.cell.labels != "soft":
            return {}
        teacher = point.facts.get("teacher")
        return {"teacher": teacher[0] if teacher else "distiller"}


@dataclass(frozen=True)
class SnapshotAxis(Axis):
    """The final set, and under the main view (:meth:`Axis.in_main_view` of every other axis: the protocol listed
    last, the first labels, the first augmentation, the first value of an added axis) each snapshot of an
    iterative distillation: one budget curve per method."""

    expands_last: ClassVar[bool] = True

    def expand(self, ctx, point):
        from .keys import snapshot_key

        f = point.facts
        main = all(axis.in_main_view(point) for axis in axes() if axis is not self)
        return [point] + [point.but({"producer": f["set"]}, iteration=it, synset_key=snapshot_key(f["set"], it),
                                    snapshot=True) for it in (f["snaps"] if main else ())]


DATASET = register(DatasetAxis("dataset", doc="the dataset's label", level="set", identifies=True))
DISTILLER = register(DistillerAxis("distiller", doc="the distiller's label ('whole': the whole-dataset reference)",
                                   level="set", identifies=True))
SEED = register(SeedAxis("seed", (int,), "the suite seed of the synthetic set", level="set"))
IPC = register(IpcAxis("ipc", (int,), "images per class (none for a whole-dataset reference)", level="set",
                       identifies=True))
MODEL = register(ModelAxis("model", doc="the evaluation model's label", identifies=True))
EVAL_INDEX = register(EvalIndexAxis("eval_index", (int,), "which of the models trained on the set"))
PROTOCOL = register(ProtocolAxis("protocol", doc="evaluation protocol: common or paper", splits_report=True,
                                 prefer="common", identifies=True, report_rank=1))
AUGMENT = register(AugmentAxis("augment", doc="the training augmentation", splits_report=True, report_rank=3))
LABELS = register(LabelsAxis("labels", doc="hard or soft labels", splits_report=True, prefer="hard", report_rank=2))
ITERATION = register(SnapshotAxis("iteration", (int,), "the distiller's iterations of the set evaluated"))
