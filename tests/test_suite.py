"""Suite validation: every problem at once, with its key path and a suggestion; exit 2; nothing written."""

import pytest

from atombench.errors import ConfigError
from atombench.suite import load_suite, parse_suite

from .conftest import TINY_SUITE, run_cli

BASE = {"name": "t", "datasets": ["digits"], "ipc": [1], "distillers": ["random"], "models": ["convnet"]}


def problems(doc):
    with pytest.raises(ConfigError) as exc:
        parse_suite(doc, "s.yaml")
    return [str(p) for p in exc.value.problems]


def test_minimal_suite_gets_defaults():
    suite = parse_suite(dict(BASE))
    assert suite.seed_list == [0] and suite.eval.epochs == 1000 and suite.eval.lr == 0.01
    assert suite.eval.momentum == 0.9 and suite.eval.weight_decay == 5e-4 and suite.eval.batch_size == 256
    assert suite.distillers[0].name == "random" and suite.device == "auto"


def test_shipped_suites_are_valid():
    from pathlib import Path

    for path in sorted(Path(__file__).resolve().parents[1].glob("suites/*.yaml")):
        load_suite(path)


@pytest.mark.parametrize("change, expected", [
    ({"distillers": ["randm"]}, "distillers[0].name: unknown distiller 'randm' (did you mean 'random'?)"),
    ({"models": ["convnett"]}, "models[0].name: unknown model 'convnett' (did you mean 'convnet'?)"),
    ({"datasets": ["digit"]}, "datasets[0].name: unknown dataset 'digit' (did you mean 'digits'?)"),
    ({"ipc": [0]}, "ipc[0]: images per class must be >= 1, got 0"),
    ({"ipc": "ten"}, "ipc: expected a list, got str 'ten'"),
    ({"models": []}, "models: must list at least one entry"),
    ({"eval": {"epochs": -5}}, "eval: epochs must be >= 0, got -5"),
    ({"eval": {"epochz": 5}}, "eval.epochz: unknown key (did you mean 'epochs'?)"),
    ({"seeds": 0}, "seeds: must be >= 1 (a count) or a list of seeds, got 0"),
    ({"device": "gpu"}, "device: must be one of 'auto', 'cpu', 'cuda', got 'gpu'"),
    ({"distillers": [{"name": "herding", "config": {"featurs": "pixels"}}]},
     "distillers[0].config.featurs: unknown key (did you mean 'features'?)"),
    ({"models": [{"name": "convnet", "options": {"depth": "3"}}]},
     "models[0].options.depth: expected int, got str '3'"),
    ({"datasets": [{"name": "digits", "options": {"sise": 16}}]},
     "datasets[0].options.sise: unknown key (did you mean 'size'?)"),
    ({"distillers": ["random", "random"]}, "distillers: names ['random'] more than once"),
    ({"datasets": ["digits", {"name": "digits", "options": {"size": 16}}]}, "datasets: names ['digits'] more than"),
    ({"name": "../escape"}, "name: must be letters, digits"),
    ({"extra_key": 1}, "extra_key: unknown key"),
])
def test_bad_values_are_located_and_explained(change, expected):
    msgs = problems({**BASE, **change})
    assert any(m.startswith(expected) for m in msgs), msgs


def test_labels_let_a_plugin_appear_twice():
    suite = parse_suite({**BASE, "datasets": ["digits", {"name": "digits", "options": {"size": 16}, "label": "d16"}],
                         "distillers": ["atom", {"name": "atom", "label": "atom_c", "config": {"attention": "channel"}}]})
    assert [d.display for d in suite.datasets] == ["digits", "d16"]
    assert [d.display for d in suite.distillers] == ["atom", "atom_c"]


def test_all_problems_reported_at_once():
    msgs = problems({**BASE, "distillers": ["atomm"], "ipc": [0], "eval": {"epochs": -1}, "models": ["convnett"]})
    assert len(msgs) == 4


def test_cli_reports_malformed_yaml_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndatasets: [digits\nipc: 1\n")
    res = run_cli("run", bad, cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.startswith(f"error: {bad}: not valid YAML at line")
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("text, expected", [
    ("", "the file is empty"),
    ("- just\n- a list\n", "a suite file must be a YAML mapping at the top level"),
    (TINY_SUITE.replace("ipc: [1, 2]", "ipc: [1, 500]"),
     "ipc[1]: random on digits: IPC 500 exceeds the smallest class of 'digits'"),
    (TINY_SUITE.replace("  - random\n", "  - {name: atom, config: {net: convnett}}\n"),
     "distillers[0].config: atom on digits: unknown model 'convnett' (did you mean 'convnet'?)"),
    (TINY_SUITE.replace("  - random\n", "  - {name: datadam, config: {layers: [7]}}\n"),
     "distillers[0].config: datadam on digits: layers [7] do not exist: the network has 3 blocks"),
])
def test_cli_bad_suites_exit_2_and_write_nothing(tmp_path, text, expected):
    suite = tmp_path / "s.yaml"
    suite.write_text(text + (f"output: {tmp_path / 'out'}\n" if text.startswith("name") else ""))
    res = run_cli("run", suite, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert expected in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "results").exists()


def test_cli_debug_shows_the_traceback(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("name: x\n")
    res = run_cli("--debug", "validate", suite)
    assert res.returncode != 0 and "Traceback" in res.stderr


def test_cli_missing_suite_file(tmp_path):
    res = run_cli("run", tmp_path / "nope.yaml")
    assert res.returncode == 2 and "suite file" in res.stderr and "not found" in res.stderr


def test_cli_validate_ok():
    from pathlib import Path

    res = run_cli("validate", Path(__file__).resolve().parents[1] / "suites" / "quickstart.yaml")
    assert res.returncode == 0 and ": ok (" in res.stdout


def test_random_documents_only_ever_raise_config_errors():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True),
                        st.text(max_size=8), st.sampled_from(["digits", "random", "atom", "convnet", "timm:x"]))
    docs = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=3),
                                                     st.dictionaries(st.sampled_from(
                                                         ["name", "datasets", "ipc", "distillers", "models", "eval",
                                                          "seeds", "config", "options", "epochs", "device", "x"]),
                                                         c, max_size=5)), max_leaves=12)

    @settings(max_examples=200, deadline=None)
    @given(docs)
    def check(doc):
        try:
            parse_suite(doc, "fuzz.yaml")
        except ConfigError:
            pass

    check()
