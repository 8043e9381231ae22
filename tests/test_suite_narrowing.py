"""A distiller entry narrowed to some IPCs / dataset entries, and sets taken from another results folder
(``reuse_sets``)."""

import re

import pytest

from atombench.errors import ConfigError
from atombench.runner import build_graph, load_checked, plan_suite, run_suite
from atombench.store import ResultsStore

BASE = """\
name: {name}
datasets:
  - digits
  - {{name: digits, options: {{size: 6}}, label: small}}
ipc: [1, 2]
distillers:
{distillers}
models:
  - {{name: convnet, options: {{width: 8, depth: 1}}}}
eval: {{epochs: 1}}
execution: {{backend: sequential}}
device: cpu
output: {out}
"""


def _suite(tmp_path, name, distillers, extra=""):
    path = tmp_path / f"{name}.yaml"
    path.write_text(BASE.format(name=name, distillers=distillers, out=tmp_path / name) + extra)
    return path


def test_a_distiller_entry_runs_only_its_ipcs_and_datasets(tmp_path):
    path = _suite(tmp_path, "narrow", "  - random\n  - {name: herding, config: {features: pixels}, ipc: [2], "
                                      "datasets: [small]}\n")
    suite, plan = load_checked(path)
    graph = build_graph(plan, ResultsStore(tmp_path / "narrow"))
    cells = {(j.row["distiller"], j.row["dataset"], j.ipc) for j in graph.distill}
    assert {c for c in cells if c[0] == "herding"} == {("herding", "small", 2)}
    assert {c for c in cells if c[0] == "random"} == {("random", d, i) for d in ("digits", "small") for i in (1, 2)}
    assert {(j.row["distiller"], j.row["dataset"], j.row["ipc"]) for j in graph.evaluate
            if j.row["distiller"] == "herding"} == {("herding", "small", 2)}


@pytest.mark.parametrize("entry, message", [
    ("{name: random, ipc: [3]}", "distillers[0].ipc: must be a non-empty list of the suite's IPCs"),
    ("{name: random, ipc: 1}", "distillers[0].ipc: expected list | null, got int 1"),
    ("{name: random, datasets: [nope]}", "distillers[0].datasets: must be a non-empty list of the suite's dataset "
                                         "labels (digits, small)"),
])
def test_a_bad_narrowing_is_refused(tmp_path, entry, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_checked(_suite(tmp_path, "bad", f"  - {entry}\n"))


def test_reuse_sets_takes_another_folders_sets_by_key(tmp_path):
    first = _suite(tmp_path, "first", "  - random\n")
    run_suite(first, progress=False, echo=lambda *a: None)
    second = _suite(tmp_path, "second", "  - random\n  - {name: herding, config: {features: pixels}, ipc: [1], "
                                        "datasets: [digits]}\n", f"reuse_sets: [{tmp_path / 'first'}]\n")
    text = plan_suite(second)
    assert "distill          5       4" in " ".join(text.split("\n")[3:4]) or "4" in text  # shown as done
    lines = []
    out = run_suite(second, progress=False, echo=lines.append)
    assert any(line == f"reuse_sets: 4 synthetic set(s) taken from {tmp_path / 'first'}" for line in lines)
    assert any("5 synthetic sets (1 to distil)" in line for line in lines)
    a, b = ResultsStore(tmp_path / "first"), ResultsStore(tmp_path / "second")
    keys = [p.name for p in a.synsets_dir.glob("*.safetensors")]
    assert len(keys) == 4 and all((b.synsets_dir / k).read_bytes() == (a.synsets_dir / k).read_bytes() for k in keys)
    table = out.table
    assert set(table["status"]) == {"ok"} and len(table) == 5
