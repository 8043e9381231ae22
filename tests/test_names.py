"""One name per concept (issue 28), and the former names still working: ``options`` for a plug-in's keyword arguments
(a distiller's ``config:`` before), ``engine`` for what runs the jobs (``backend:`` before), ``EvalGrid`` for the
``eval:`` section (``EvalConfig``), ``EngineSpec`` (``BackendSpec``), :mod:`atombench.factories`
(:mod:`atombench.plugins`), ``ATOMBENCH_UPDATE_GOLDEN`` (``ATOMBENCH_REGEN``). A suite written either way parses to
the same suite and the same job keys; writing both names of one setting is one error line (exit 2: the bad-input
corpus holds ``engine_and_backend`` and ``options_and_config``)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from atombench.errors import ConfigError
from atombench.suite import parse_suite

from .conftest import TINY_SUITE

ROOT = Path(__file__).resolve().parents[1]
BASE = {"name": "t", "datasets": ["digits"], "ipc": [1], "models": ["convnet"]}


def _named(text: str, options: str, engine: str) -> str:
    """A suite's text with a distiller's keyword arguments under ``options`` and the execution engine under
    ``engine`` (whichever of the two names each had)."""
    doc = yaml.safe_load(text)
    for d in doc["distillers"]:
        if isinstance(d, dict) and ({"options", "config"} & set(d)):
            d[options] = d.pop("options") if "options" in d else d.pop("config")
    ex = doc.setdefault("execution", {})
    ex[engine] = ex.pop("engine") if "engine" in ex else ex.pop("backend", "sequential")
    return yaml.safe_dump(doc, sort_keys=False)


def former(text: str) -> str:
    """A suite's text with the former key names: ``config:`` for a distiller, ``backend:`` for the engine."""
    return _named(text, "config", "backend")


def current(text: str) -> str:
    return _named(text, "options", "engine")


def problems(doc) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_suite(doc)
    return [str(p) for p in exc.value.problems]


# -- the same suite under either name ---------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["sequential", {"name": "dask", "address": "tcp://h:8786"}])
def test_former_and_current_keys_parse_to_the_same_suite(engine):
    spec = {"name": "herding", "label": "h", "options": {"features": "pixels"}}
    new = parse_suite({**BASE, "distillers": ["random", spec], "execution": {"engine": engine, "workers": 2}})
    old_spec = {("config" if k == "options" else k): v for k, v in spec.items()}
    old = parse_suite({**BASE, "distillers": ["random", old_spec], "execution": {"backend": engine, "workers": 2}})
    assert new == old
    assert new.distillers[1].options == {"features": "pixels"} and new.execution.engine == old.execution.engine
    # where the options were written, for problems found later (the preflight)
    assert (new.distillers[1].options_key, old.distillers[1].options_key) == ("options", "config")


def test_shipped_suites_use_the_current_names():
    for path in sorted((ROOT / "suites").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        assert not any(isinstance(d, dict) and "config" in d for d in doc["distillers"]), path
        assert "backend" not in (doc.get("execution") or {}), path


def test_the_same_job_keys_under_either_name(tmp_path):
    from atombench.runner import build_graph, load_checked
    from atombench.store import ResultsStore

    def keys(text: str, name: str) -> list[str]:
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        suite, plan = load_checked(path, device="cpu", output=str(tmp_path / name))
        return sorted(j.key for j in build_graph(plan, ResultsStore(suite.output_dir())).jobs)

    assert "config:" in TINY_SUITE and "backend:" in TINY_SUITE  # conftest's suite: the former names
    old, new = keys(TINY_SUITE, "old"), keys(current(TINY_SUITE), "new")
    assert "config" not in current(TINY_SUITE) and "backend" not in current(TINY_SUITE)
    assert len(new) > 10 and new == old
    assert keys(former(current(TINY_SUITE)), "again") == old


# -- both names at once: one line --------------------------------------------------------------------------------
@pytest.mark.parametrize("doc, expected", [
    ({**BASE, "distillers": [{"name": "herding", "options": {}, "config": {}}]},
     "distillers[0]: gives both 'options' and 'config', one setting under two names ('config' is the former name "
     "of 'options'): keep 'options' only"),
    ({**BASE, "distillers": ["random"], "execution": {"engine": "loky", "backend": "loky"}},
     "execution: gives both 'engine' and 'backend', one setting under two names ('backend' is the former name of "
     "'engine'): keep 'engine' only"),
])
def test_both_names_of_one_setting_is_one_problem(doc, expected):
    assert problems(doc) == [expected]


def test_both_names_is_one_line_and_exit_2_from_the_command_line():
    corpus = ROOT / "tests" / "bad_inputs"  # run by test_bad_inputs.py, with validate and plan
    for case in ("engine_and_backend", "options_and_config"):
        lines = (corpus / f"{case}.expected").read_text().splitlines()
        assert len(lines) == 1 and "gives both" in lines[0] and lines[0].startswith("error: "), case


# -- problems located and worded as the suite wrote them -----------------------------------------------------------
@pytest.mark.parametrize("key, word", [("engine", "engines"), ("backend", "backends")])
def test_engine_problems_are_located_under_the_key_as_written(key, word):
    msgs = problems({**BASE, "distillers": ["random"], "execution": {key: {"name": "dask", "partition": "gpu"}}})
    assert msgs == [f"execution.{key}: ['partition'] only apply to the slurm/submitit {word}, not to 'dask'"]
    msgs = problems({**BASE, "distillers": ["random"], "execution": {key: {"name": "slrum"}}})
    assert msgs[0].startswith(f"execution.{key}.name: must be one of 'loky'")


@pytest.mark.parametrize("key", ["options", "config"])
def test_distiller_option_problems_are_located_under_the_key_as_written(key):
    msgs = problems({**BASE, "distillers": ["random", {"name": "herding", key: {"featurs": "pixels"}}]})
    assert len(msgs) == 1 and msgs[0].startswith(f"distillers[1].{key}.featurs: unknown key (did you mean "
                                                 f"'features'?)")


# -- the former Python names -------------------------------------------------------------------------------------
def test_former_python_names_still_import():
    import atombench.factories as factories
    import atombench.plugins as plugins
    from atombench.suite import BackendSpec, EngineSpec, EvalConfig, EvalGrid
    from atombench.train import TrainConfig

    assert EvalConfig is EvalGrid and issubclass(EvalGrid, TrainConfig)
    assert BackendSpec is EngineSpec
    for name in ("load_dataset", "make_distiller", "build_model", "dataset_args", "load_data", "paper_dataset",
                 "_DATA_CACHE"):
        assert getattr(plugins, name) is getattr(factories, name), name
    from atombench.runner import build_model, load_dataset, make_distiller  # noqa: F401 - still exported there


def test_former_attribute_names_read_the_current_values():
    suite = parse_suite({**BASE, "distillers": [{"name": "herding", "options": {"features": "pixels"}}],
                         "execution": {"engine": "sequential"}})
    assert suite.execution.backend is suite.execution.engine and suite.execution.backend.name == "sequential"
    assert suite.distillers[0].config is suite.distillers[0].options
    with pytest.raises(AttributeError):  # read-only: one value, one name to set it by
        suite.execution.backend = None


def test_a_job_built_by_hand_with_the_former_keyword_names_its_set(tmp_path):
    from atombench.jobs import EvalJob

    old = EvalJob("k", {"distiller": "random"}, str(tmp_path), synset="x")
    assert old.synset_key == "x" and old.deps == ("x",)
    assert EvalJob("k", {}, str(tmp_path), synset_key="y").synset_key == "y"
    import pickle

    assert pickle.loads(pickle.dumps(old)).synset_key == "x"


# -- the golden-file switch ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("var", ["ATOMBENCH_UPDATE_GOLDEN", "ATOMBENCH_REGEN", None])
def test_either_name_of_the_golden_file_switch_is_read(var):
    env = {k: v for k, v in os.environ.items() if k not in ("ATOMBENCH_UPDATE_GOLDEN", "ATOMBENCH_REGEN")}
    if var:
        env[var] = "1"
    out = subprocess.run([sys.executable, "-c", "import tests.test_bad_inputs as t; print(bool(t.UPDATE_GOLDEN))"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == str(var is not None), out.stderr
    report = (ROOT / "tests" / "test_report.py").read_text()
    assert 'os.environ.get("ATOMBENCH_UPDATE_GOLDEN") or os.environ.get("ATOMBENCH_REGEN")' in report
