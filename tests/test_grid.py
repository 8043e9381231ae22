"""The typed grid (atombench.grid): cells, axes, the results schema, and job keys kept as they were."""

import dataclasses
import json

import pandas as pd
import pytest

from atombench import grid
from atombench.grid import Cell, FrozenTrain, RowSchemaError, ValuesAxis
from atombench.jobs import EvalJob, write_result
from atombench.runner import build_graph, preflight
from atombench.store import ResultsStore
from atombench.suite import load_suite

SUITE = """name: grid_keys
datasets: [{name: digits, options: {size: 8}}]
ipc: [1, 2]
distillers: [random, {name: dc, config: {iterations: 2, batch_real: 8}}]
models: [{name: convnet, options: {width: 8, depth: 1}}]
snapshots: [1]
eval: {epochs: 2, protocol: both, labels: both, augment: [none, dsa], whole: true, reference: {epochs: 1}}
execution: {backend: sequential}
device: cpu
"""

#: the keys of SUITE's jobs (graph order) and of its results rows, captured before the grid was typed
#: (atombench before atombench.grid): existing results folders keep being found by key
JOB_KEYS = [
    "66ebd57d3a23e4eb", "7b626380ecddcba2", "0bc322ba55963901", "6329b3fde1ad9e71", "3196acb7973d141c",
    "c3319ebe997609f9", "6fde606574f13044", "ffd64629962f43a3", "ca8b29efd48f8e4f", "f480f069b71c6dde",
    "9519c3ca49481779", "b93ab44415af2da6", "80ee2069c596d3a2", "5a9c744b292ebab0", "896490fb560bed64",
    "ab1f2976a71f2dce", "e23df9197ba611d9", "9e0e5f2543ee60fb", "59c9dde34b92a577", "cc01c08e1f15f56d",
    "041f876eb25e1dcd", "f37c8c68a1fe677a", "9e438a4335815c0a", "3168f1eced00e0d5", "399fc3de75c8f419",
    "eac1b7eac260579d", "12eb05bef64ca769", "12462239d2e7221e", "d32692036e910c80", "fe527532b8a8e3bd",
    "51dca70f534d7d4d",
]
ROW_KEYS = [
    "3196acb7973d141c", "c3319ebe997609f9", "6fde606574f13044", "ffd64629962f43a3", "ca8b29efd48f8e4f",
    "f480f069b71c6dde", "9519c3ca49481779", "b93ab44415af2da6", "80ee2069c596d3a2", "5a9c744b292ebab0",
    "896490fb560bed64", "ab1f2976a71f2dce", "e23df9197ba611d9", "9e0e5f2543ee60fb", "59c9dde34b92a577",
    "cc01c08e1f15f56d", "041f876eb25e1dcd", "f37c8c68a1fe677a", "9e438a4335815c0a", "3168f1eced00e0d5",
    "399fc3de75c8f419", "eac1b7eac260579d", "12eb05bef64ca769", "12462239d2e7221e", "d32692036e910c80",
    "fe527532b8a8e3bd", "51dca70f534d7d4d",
]


@pytest.fixture(autouse=True)
def _keys_as_captured(monkeypatch):
    """The keys above were captured on a CPU without bf16 units. On one with them (AVX512-BF16, AMX) the long
    evaluations' ``amp: auto`` is bf16, a setting that changes results and so enters their keys
    (:func:`atombench.train.resolve_speed`): the same suite has other keys there, by design."""
    monkeypatch.setattr("atombench.train.bf16_fast", lambda device: False)


def _graph(tmp_path, text=SUITE):
    tmp_path.mkdir(parents=True, exist_ok=True)
    p = tmp_path / "s.yaml"
    p.write_text(text + f"output: {tmp_path / 'out'}\n")
    return build_graph(preflight(load_suite(p)), ResultsStore(tmp_path / "out"))


def test_keys_of_a_small_digits_suite_are_unchanged(tmp_path):
    graph = _graph(tmp_path)
    assert [j.key for j in graph.jobs] == JOB_KEYS
    assert [k for k, _ in graph.rows] == ROW_KEYS
    # every axis has a column in the rows, and the jobs carry their cells
    rows = pd.DataFrame([r for _, r in graph.rows])
    assert {"dataset", "distiller", "method", "ipc", "seed", "model", "model_name", "eval_index", "protocol",
            "labels", "augment", "iteration", "snapshot"} <= set(rows.columns)
    for job in graph.evaluate:
        assert job.cell is not None and job.cell.row().items() <= job.row.items()
        assert isinstance(job.train, FrozenTrain)
    assert graph.references and all(isinstance(j.reference, FrozenTrain) and j.cell is not None
                                    for j in graph.references)


def test_a_cell_is_frozen_and_hashable():
    cell = Cell(dataset="digits", distiller="dc", method="dc", ipc=1, seed=0, model="convnet", protocol="common")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cell.ipc = 2
    assert hash(cell) == hash(Cell(**{f.name: getattr(cell, f.name) for f in dataclasses.fields(cell)}))
    assert len({cell, cell.but(ipc=2), cell.but(ipc=1)}) == 2
    assert cell.row() == {"dataset": "digits", "distiller": "dc", "method": "dc", "ipc": 1, "seed": 0,
                          "model": "convnet", "protocol": "common"}  # fields that do not apply are no columns
    extra = cell.but(width=2)  # an axis without a field of its own
    assert extra.get("width") == 2 and extra.row()["width"] == 2 and hash(extra) != hash(cell)


def test_a_frozen_training_config_refuses_changes():
    train = FrozenTrain({"epochs": 2, "lr": 0.01})
    with pytest.raises(TypeError, match="frozen"):
        train["epochs"] = 3
    with pytest.raises(TypeError, match="frozen"):
        train |= {"epochs": 3}
    for change in (lambda t: t.update(epochs=3), lambda t: t.pop("lr"), lambda t: t.setdefault("amp", "bf16"),
                   lambda t: t.clear(), lambda t: t.popitem()):
        with pytest.raises(TypeError, match="frozen"):
            change(train)
    assert train == {"epochs": 2, "lr": 0.01}
    assert dict(train, epochs=3)["epochs"] == 3 and json.loads(json.dumps(train)) == {"epochs": 2, "lr": 0.01}
    import pickle

    assert pickle.loads(pickle.dumps(train)) == train
    assert grid.train_config(train).epochs == 2


def _row(**changes):
    cell = Cell(dataset="digits", distiller="random", method="random", ipc=1, seed=0, model="convnet",
                model_name="convnet", eval_index=0, protocol="common", labels="hard", augment="none")
    row = dict(cell.row(), job_key="k", status="ok", error="", accuracy=50.0, epochs=2)
    row.update(changes)
    return cell, {k: v for k, v in row.items() if v is not ...}


def test_a_row_that_breaks_the_schema_is_refused_when_written(tmp_path):
    cell, row = _row()
    job = EvalJob("k", row, str(tmp_path), cell=cell)
    write_result(job, row)  # a good row is stored
    assert ResultsStore(tmp_path).read_job("k")["accuracy"] == 50.0
    cell, missing = _row(accuracy=...)
    with pytest.raises(RowSchemaError, match="column 'accuracy' is missing"):
        write_result(EvalJob("k2", missing, str(tmp_path), cell=cell), missing)
    cell, wrong = _row(ipc="one")
    with pytest.raises(RowSchemaError, match="column 'ipc' must be int, got str 'one'"):
        write_result(EvalJob("k3", wrong, str(tmp_path), cell=cell), wrong)
    cell, no_cell_column = _row(model=...)
    with pytest.raises(RowSchemaError, match="column 'model' is missing"):
        write_result(EvalJob("k4", no_cell_column, str(tmp_path), cell=cell), no_cell_column)
    assert ResultsStore(tmp_path).read_job("k2") is None and ResultsStore(tmp_path).read_job("k3") is None


def test_the_report_flags_a_malformed_results_column(tmp_path):
    from atombench.report.inputs import read_inputs

    rows = [_row()[1], _row(seed=1, accuracy="high", job_key="k2")[1]]
    root = tmp_path / "res"
    root.mkdir()
    pd.DataFrame(rows).to_csv(ResultsStore(root).results_csv, index=False)
    inputs = read_inputs([root])
    assert any("column 'accuracy' must hold numbers" in n and "'high'" in n for n in inputs.notes), inputs.notes
    assert pd.api.types.is_numeric_dtype(inputs.results["accuracy"]) and inputs.results["accuracy"].isna().sum() == 1
    pd.DataFrame(rows).drop(columns="distiller").to_csv(ResultsStore(root).results_csv, index=False)
    assert any("lacks the column(s) distiller: it is not a results table" in n for n in read_inputs([root]).notes)


def test_a_new_axis_is_the_axis_alone(tmp_path, monkeypatch):
    """A toy axis registered here (nothing else changed) expands the grid, enters the keys and is a column."""
    small = SUITE.replace("protocol: both, labels: both, augment: [none, dsa], whole: true, reference: {epochs: 1}",
                          "protocol: common").replace("snapshots: [1]\n", "")
    before = _graph(tmp_path / "a", small)
    width = ValuesAxis("width_scale", (int,), "a toy axis", values=[1, 2], splits_report=True)
    monkeypatch.setattr(grid, "AXES", [*grid.AXES, width])
    after = _graph(tmp_path / "b", small)
    assert len(after.rows) == 2 * len(before.rows) and len(after.evaluate) == 2 * len(before.evaluate)
    assert [r["width_scale"] for _, r in after.rows] == [1, 2] * len(before.rows)
    assert len({k for k, _ in after.rows}) == len(after.rows)  # its values are in the keys
    assert {j.key for j in after.distill} == {j.key for j in before.distill}  # an evaluation axis: same sets
    assert "width_scale" in grid.report_dimensions() and "width_scale" in grid.result_columns()
    from atombench.summary import summary_markdown

    table = pd.DataFrame([dict(r, job_key=k, status="ok", accuracy=50.0 + r["width_scale"]) for k, r in after.rows])
    text = summary_markdown(table)
    assert "width_scale 1" in text and "width_scale 2" in text  # the summary splits by it


def test_an_axis_the_suite_gives_values_to_is_the_axis_alone(tmp_path, monkeypatch):
    """A ValuesAxis(values=None) takes its values from the suite's grid: section; the snapshots are evaluated
    under its first value only (its main view); a suite that does not name it keeps its keys; bad values are one
    problem each, located under grid."""
    from atombench.errors import ConfigError

    width = ValuesAxis("width_scale", (int,), "a toy axis", values=None, splits_report=True)
    monkeypatch.setattr(grid, "AXES", [*grid.AXES, width])
    assert [j.key for j in _graph(tmp_path / "a").jobs] == JOB_KEYS  # not named: not part of the grid
    small = SUITE.replace("protocol: both, labels: both, augment: [none, dsa], whole: true, reference: {epochs: 1}",
                          "protocol: common")
    plain = _graph(tmp_path / "p", small)
    swept = _graph(tmp_path / "b", small + "grid: {width_scale: [1, 2]}\n")
    final = [r for _, r in swept.rows if not r.get("snapshot")]
    snaps = [r for _, r in swept.rows if r.get("snapshot")]
    assert len(final) == 2 * len([r for _, r in plain.rows if not r.get("snapshot")])
    assert snaps and {r["width_scale"] for r in snaps} == {1}  # budget curves under the main view only
    assert len(snaps) == len([r for _, r in plain.rows if r.get("snapshot")])
    assert len({k for k, _ in swept.rows}) == len(swept.rows)
    for bad, where, what in (("{nope: [1]}", "grid.nope", "those registered: width_scale"),
                             ("{width_scale: [1, x]}", "grid.width_scale", "values must be int, got 'x'"),
                             ("{width_scale: []}", "grid.width_scale", "non-empty list"),
                             ("{width_scale: [1, 1]}", "grid.width_scale", "lists a value twice")):
        p = tmp_path / "bad.yaml"
        p.write_text(small + f"grid: {bad}\n")
        with pytest.raises(ConfigError) as err:
            load_suite(p)
        assert where in str(err.value) and what in str(err.value), str(err.value)


def test_a_new_set_axis_is_the_axis_alone(tmp_path, monkeypatch):
    """A toy axis of the synthetic sets (level set) registered here: more sets, each with its own key, its column in
    every row; one that overrides a distiller option distils the sets a suite naming that option would."""
    small = SUITE.replace("protocol: both, labels: both, augment: [none, dsa], whole: true, reference: {epochs: 1}",
                          "protocol: common").replace("snapshots: [1]\n", "")
    before = _graph(tmp_path / "a", small)
    scale = ValuesAxis("scale", (int,), "a toy set axis", level="set", values=[1, 2])
    monkeypatch.setattr(grid, "AXES", [*grid.AXES, scale])
    after = _graph(tmp_path / "b", small)
    assert len(after.distill) == 2 * len(before.distill) and len(after.rows) == 2 * len(before.rows)
    assert len({j.key for j in after.distill}) == len(after.distill)  # its values are in the set keys
    assert not {j.key for j in after.distill} & {j.key for j in before.distill}
    assert all(j.cell.get("scale") in (1, 2) for j in after.distill) and "scale" in grid.result_columns()
    assert {r["scale"] for _, r in after.rows} == {1, 2}
    for job in after.evaluate:  # each evaluation trains on the set of its own cell
        assert job.synset_key in {d.key for d in after.distill if d.cell.get("scale") == job.cell.get("scale")}

    # an axis that sets a distiller option: the sets (and keys) of a suite that names the option itself
    # DC's option; random has none and distils as it would without the axis
    iters = ValuesAxis("dc_iterations", (int,), "a toy set axis", level="set", values=[1, 2], train_key="iterations")
    base_axes = grid.AXES[:-1]
    monkeypatch.setattr(grid, "AXES", base_axes)
    named = {n: _graph(tmp_path / f"n{n}", small.replace("iterations: 2,", f"iterations: {n},")) for n in (1, 2)}
    monkeypatch.setattr(grid, "AXES", [*base_axes, iters])
    swept = _graph(tmp_path / "c", small)
    for n in (1, 2):
        dc = {j.key: j for j in named[n].distill if j.cell.method == "dc"}
        mine = {j.key: j for j in swept.distill if j.cell.method == "dc" and j.cell.get("dc_iterations") == n}
        assert set(mine) == set(dc) and all(j.distiller[1]["iterations"] == n for j in mine.values())
        assert all(j.cell.iteration == n for j in mine.values())
    assert {j.key for j in swept.distill if j.cell.method == "random"} == \
        {j.key for j in named[1].distill if j.cell.method == "random"}


def test_axis_values_that_would_break_or_do_nothing_are_refused_before_any_work(tmp_path, monkeypatch):
    """A set axis setting an option no distiller of the suite has, a value a distiller or the training config
    refuses: one problem each under grid.<column>, from the preflight (validate, plan and run)."""
    from atombench.errors import ConfigError

    small = SUITE.replace("protocol: both, labels: both, augment: [none, dsa], whole: true, reference: {epochs: 1}",
                          "protocol: common").replace("snapshots: [1]\n", "")
    monkeypatch.setattr(grid, "AXES", [*grid.AXES,
                                       ValuesAxis("nothing", (int,), "t", level="set", values=None, train_key="ipc_x"),
                                       ValuesAxis("dc_iters", (int,), "t", level="set", values=None,
                                                  train_key="iterations"),
                                       ValuesAxis("epochs_sweep", (int,), "t", values=None, train_key="epochs")])
    for section, where, what in (("{nothing: [1, 2]}", "grid.nothing", "none of the suite's distillers has"),
                                 ("{dc_iters: [2, -1]}", "grid.dc_iters", "-1 for dc:"),
                                 ("{epochs_sweep: [2, -3]}", "grid.epochs_sweep", "-3: epochs must be >= 0")):
        with pytest.raises(ConfigError) as err:
            _graph(tmp_path / where, small + f"grid: {section}\n")
        assert where in str(err.value) and what in str(err.value), str(err.value)
        assert len(err.value.problems) == 1, str(err.value)
    assert len(_graph(tmp_path / "ok", small + "grid: {dc_iters: [1, 2], epochs_sweep: [1, 2]}\n").distill) == 6


def test_an_axis_is_registered_once_per_column(monkeypatch):
    monkeypatch.setattr(grid, "AXES", list(grid.AXES))
    axis = ValuesAxis("width_scale", (int,), "t", values=None)
    assert grid.register(axis) is axis and grid.register(ValuesAxis("width_scale", (int,), "t", values=None)) is axis
    with pytest.raises(ValueError, match="already has an axis with column 'width_scale'"):
        grid.register(ValuesAxis("width_scale", (float,), "another", values=None))
    with pytest.raises(ValueError, match="column 'ipc'"):
        grid.register(ValuesAxis("ipc", (int,), "t", values=[1]))


def test_a_search_row_follows_the_search_schema(tmp_path):
    """An architecture-search job's row is checked against grid.nas_columns when written, as results rows are."""
    from atombench.nas import NASJob

    cell = Cell(dataset="digits", ipc=1, seed=3, model="c1", model_name="convnet")
    job = NASJob("k", {"dataset": "digits", "kind": "proxy", "proxy": "dm", "ipc": 1, "candidate": "c1"},
                 str(tmp_path), cell=cell)
    row = dict(job.row, **cell.row(), job_key="k", status="ok", error="", val_accuracy=40.0)
    write_result(job, row)
    assert ResultsStore(tmp_path).read_job("k")["val_accuracy"] == 40.0
    with pytest.raises(RowSchemaError, match="nas_columns.*val_accuracy"):
        write_result(job, {k: v for k, v in row.items() if k != "val_accuracy"})
    with pytest.raises(RowSchemaError, match="column 'test_accuracy' must be"):
        write_result(job, dict(row, test_accuracy="high"))


def test_the_documented_schema_is_the_schema():
    """docs/results_schema.md is generated from the schema (regenerate it with ATOMBENCH_UPDATE_GOLDEN=1)."""
    import os
    from pathlib import Path

    from atombench.grid import schema_markdown

    page = Path(__file__).resolve().parents[1] / "docs" / "results_schema.md"
    if os.environ.get("ATOMBENCH_UPDATE_GOLDEN") and page.read_text() != schema_markdown():
        page.write_text(schema_markdown())
    assert page.read_text() == schema_markdown(), "docs/results_schema.md is stale: rerun with ATOMBENCH_UPDATE_GOLDEN=1"


def test_the_contributing_example_of_a_new_axis_runs(tmp_path, monkeypatch):
    """CONTRIBUTING.md's "A new dimension of the grid" registers two axes; a suite naming them under grid:
    distils one set per value for the distillers with the option, and trains each evaluation per epochs value."""
    import re
    from pathlib import Path

    monkeypatch.setattr(grid, "AXES", list(grid.AXES))
    text = (Path(__file__).resolve().parents[1] / "CONTRIBUTING.md").read_text()
    exec(re.search(r"```python\n(.*?)```", text[text.index("## A new dimension of the grid"):], re.S).group(1), {})
    graph = _graph(tmp_path, SUITE.replace("snapshots: [1]\n", "").replace(
        "protocol: both, labels: both, augment: [none, dsa], whole: true, reference: {epochs: 1}", "protocol: common")
        .replace("ipc: [1, 2]", "ipc: [1]") + "grid: {eval_epochs: [1, 2], real_batch: [4, 8]}\n")
    assert sorted((j.cell.method, j.distiller[1].get("batch_real")) for j in graph.distill) == \
        [("dc", 4), ("dc", 8), ("random", None)]
    assert sorted({(r["eval_epochs"], r["epochs"]) for _, r in graph.rows}) == [(1, 1), (2, 2)]
    assert len(graph.evaluate) == 2 * len(graph.distill)
