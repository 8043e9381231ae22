"""``run --only COLUMN=V1[,V2]`` / ``plan --only``: a part of a suite's grid, the rest pending, reused later."""

import pandas as pd
import pytest

from atombench.errors import UsageError
from atombench.runner import parse_only, plan_suite, run_suite

from .conftest import run_cli

QUIET = dict(progress=False, echo=lambda *a: None)

SUITE = """name: only
datasets: [{name: digits, options: {size: 8}}]
ipc: [1, 2]
distillers:
  - random
  - name: dm
    options: {iterations: 4}
models: [convnet]
seeds: 2
snapshots: [2]
eval: {epochs: 2}
execution: {engine: sequential}
"""


@pytest.fixture
def suite(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(SUITE + f"output: {tmp_path / 'out'}\n")
    return path


def test_parse_only():
    assert parse_only(["ipc=1", "distiller=dm, atom"]) == [("ipc", frozenset({"1"})),
                                                         ("distiller", frozenset({"dm", "atom"}))]
    assert parse_only(None) == []
    for bad in ("ipc", "=1", "ipc="):
        with pytest.raises(UsageError, match="COLUMN=V1"):
            parse_only([bad])


def test_a_selection_runs_its_part_leaves_the_rest_pending_and_a_later_run_reuses_it(suite, tmp_path):
    text = plan_suite(suite, only=["ipc=1", "seed=0"])
    assert "--only: 6 distillation(s)" in text
    table = run_suite(suite, only=["ipc=1", "seed=0"], **QUIET).table
    ran = table[table["status"] == "ok"]
    assert len(ran) and set(ran["ipc"]) == {1} and set(ran["seed"]) == {0}
    assert set(table["status"]) == {"ok", "pending"}
    left = table[table["status"] == "pending"]
    assert set(zip(left["ipc"], left["seed"])) == {(1, 1), (2, 0), (2, 1)}
    assert left["error"].str.contains("outside this run's --only selection").all()
    summary = (tmp_path / "out" / "summary.md").read_text()  # the reason said, not "--no-distill"
    assert f"{len(left)} job(s) pending: {len(left)} outside a run's --only selection" in summary
    assert "--no-distill" not in summary
    # only the chosen sets were distilled (final and snapshot of DM, the random selection)
    assert len(list((tmp_path / "out" / "synsets").glob("*.json"))) == 3
    # the same suite without a selection reuses all of it
    lines = []
    table = run_suite(suite, progress=False, echo=lines.append).table
    assert f"({len(ran)} already done" in lines[0] and (table["status"] == "ok").all()


def test_a_selected_evaluation_brings_the_distillation_it_needs(suite):
    """``iteration=2`` names only the evaluations of DM's snapshots: the distillations that write them run too,
    and neither the final sets' evaluations nor random's (no iteration 2) do."""
    table = run_suite(suite, only=["iteration=2", "ipc=1"], **QUIET).table
    ok = table[table["status"] == "ok"]
    assert set(ok["distiller"]) == {"dm"} and set(ok["iteration"]) == {2}
    assert len(ok) == 2  # two seeds
    assert not (table["distiller"] == "random").any() or \
        (table.loc[table["distiller"] == "random", "status"] == "pending").all()
    finals = table[(table["distiller"] == "dm") & (table["iteration"] == 4) & (table["ipc"] == 1)]
    assert (finals["status"] == "pending").all()


def test_a_selection_that_names_nothing_is_one_line_exit_2_and_writes_nothing(suite, tmp_path):
    for arg, message in (("ipc=3", "no job of this suite has ipc 3; ipc values: 1, 2"),
                         ("modl=convnet", "no job of this suite has a column 'modl'; columns: "),
                         ("ipc", "give COLUMN=V1[,V2]")):
        done = run_cli("run", suite, "--only", arg, "--quiet")
        assert done.returncode == 2, done.stderr
        assert message in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "out").exists()
    done = run_cli("plan", suite, "--only", "distiller=dm,herding")
    assert done.returncode == 2 and "no job of this suite has distiller herding" in done.stderr
    assert not (tmp_path / "out").exists()


def test_filters_that_no_job_meets_together_are_refused(suite, tmp_path):
    with pytest.raises(UsageError, match="no job of this suite meets all of these together.*COLUMN=V1,V2"):
        run_suite(suite, only=["ipc=1", "ipc=2"], **QUIET)
    with pytest.raises(UsageError, match="meets all of these together"):
        plan_suite(suite, only=["distiller=random", "iteration=2"])
    assert not (tmp_path / "out").exists()


def test_values_compare_as_numbers_and_booleans():
    from atombench.grid import value_text as _text

    assert parse_only(["lr=0.010", "ipc=1.0", "flag=true"]) == [("lr", frozenset({"0.01"})), ("ipc", frozenset({"1"})),
                                                                ("flag", frozenset({"True"}))]
    assert (_text(0.01), _text(1.0), _text(1), _text(True), _text(float("nan")), _text("dm")) == \
        ("0.01", "1", "1", "True", None, "dm")


def test_an_architecture_search_is_left_whole_and_pending_not_failed(tmp_path):
    """A selection never takes part of a ``nas:`` search (its ranking needs every candidate and the ground
    truth): the search's jobs stay pending, the run reports no failure, and a run without --only does the search."""
    from .test_nas import TINY_NAS

    path = tmp_path / "n.yaml"
    path.write_text(TINY_NAS.replace("DATASET", "digits").replace("BACKEND", "sequential")
                    + f"output: {tmp_path / 'out'}\n")
    lines = []
    outcome = run_suite(path, only=["distiller=random"], progress=False, echo=lines.append)
    assert outcome.failed == 0 and outcome.nas is not None and outcome.nas.failed == 0, lines
    assert not any("failed" in line for line in lines), lines
    assert set(outcome.table.loc[outcome.table["distiller"] == "random", "status"]) == {"ok"}
    assert set(outcome.table.loc[outcome.table["distiller"] == "herding", "status"]) == {"pending"}
    assert outcome.nas.evaluated == 0  # no job of the search ran
