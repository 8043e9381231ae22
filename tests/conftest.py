import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _on(name: str) -> bool:
    """An environment switch: set and not 0/false/no/off/empty."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


#: Tests moved out of the default run into the ``slow`` tier (CI still runs them), by node id (``*``: any text),
#: with their time in a full run on the 2-core machine (shared, so inflated) and the quicker test that keeps
#: their feature in the default run.
SLOW_TESTS = {
    "tests/test_execution.py::test_sigkill_mid_run_then_rerun_completes_without_recomputing":
        "167 s; default: test_harness.py's resume test, test_first_hour.py's atomic_write/clean_stale_tmp tests",
    "tests/test_execution.py::test_every_engine_gives_the_same_results_as_sequential[submitit_local]":
        "117 s; default: the loky engine's test and test_backend_options_are_validated",
    "tests/test_execution.py::test_every_engine_gives_the_same_results_as_sequential[dask]":
        "17 s; default: the loky engine's test",
    "tests/test_execution.py::test_every_engine_gives_the_same_results_as_sequential[ray]":
        "14 s; default: the loky engine's test",
    "tests/test_reliability.py::test_damaged_artifacts_are_detected_and_recomputed_with_a_warning":
        "92 s; default: test_harness.py's tamper-detection test",
    "tests/test_execution.py::test_a_timm_model_no_suite_names_trains_at_28_and_32_px_from_a_suite_file":
        "49 s; default: test_models.py::test_timm_model_trains_a_step_at_28px_one_channel",
    # one timm family at one size each: 5-11 s; every family keeps a test in the default run (the other size, or
    # test_models.py::test_timm_models_honour_the_hook)
    "tests/test_execution.py::test_timm_family_trains_one_step_at_small_sizes[resnet18-1x28x28]": "5 s",
    "tests/test_execution.py::test_timm_family_trains_one_step_at_small_sizes[convnext_atto-3x32x32]": "6 s",
    "tests/test_execution.py::test_timm_family_trains_one_step_at_small_sizes[efficientnet_b0-*]": "10 s each",
    "tests/test_execution.py::test_timm_family_trains_one_step_at_small_sizes[mobilenetv3_small_050-*]": "7 s each",
    "tests/test_execution.py::test_timm_family_trains_one_step_at_small_sizes[regnetx_002-*]": "9 s each",
    "tests/test_execution.py::test_timm_family_trains_one_step_at_small_sizes[vit_tiny_patch16_224-3x32x32]":
        "7 s",
    "tests/test_execution.py::test_timm_family_trains_one_step_at_small_sizes[deit_tiny_patch16_224-*]":
        "5-8 s each",
    "tests/test_first_hour.py::test_the_plugin_example_installs_and_passes_its_own_tests":
        "pip install + a suite; default: test_contributing_shows_the_whole_plugin_example_as_shipped and "
        "test_registry.py's installed outside package",
}


def _listed_slow(nodeid: str) -> bool:
    import re

    return any(re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), nodeid) for pattern in SLOW_TESTS)


def pytest_collection_modifyitems(config, items):
    """Three tiers, so that ``python -m pytest -q`` (the README's command) takes minutes, not half an hour:

    * unmarked tests always run;
    * ``@pytest.mark.slow`` or listed in :data:`SLOW_TESTS` (tens of seconds each, with a quicker test of the
      same feature in the default run): skipped by default, run in CI (``CI=true``) and with ``ATOMBENCH_HEAVY=1``;
    * ``@pytest.mark.heavy`` (minutes each): run only with ``ATOMBENCH_HEAVY=1``, in CI too.
    """
    heavy, ci = _on("ATOMBENCH_HEAVY"), _on("CI")
    skip_heavy = pytest.mark.skip(reason="heavy test (minutes): run it with ATOMBENCH_HEAVY=1")
    skip_slow = pytest.mark.skip(reason="slow test: run it with ATOMBENCH_HEAVY=1 (CI=true runs it too)")
    for item in items:
        if _listed_slow(item.nodeid):
            item.add_marker(pytest.mark.slow)
        if "heavy" in item.keywords and not heavy:
            item.add_marker(skip_heavy)
        elif "slow" in item.keywords and not (heavy or ci):
            item.add_marker(skip_slow)


def run_cli(*args, cwd=None, env=None, timeout=600):
    """Run ``python -m atombench ARGS`` in a subprocess, as a user would; returns CompletedProcess."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "atombench", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory):
    """The outside test package tests/plugin_pkg, really installed (pip) into a folder put on PYTHONPATH."""
    import shutil

    target = tmp_path_factory.mktemp("plugin_site")
    # built from a copy: pip's build/ and egg-info stay out of the repository (and no stale build is installed)
    source = tmp_path_factory.mktemp("plugin_src") / "plugin_pkg"
    shutil.copytree(ROOT / "tests" / "plugin_pkg", source,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(source)], check=True)
    return target


TINY_SUITE = """\
name: tiny
datasets:
  - name: digits
ipc: [1, 2]
distillers:
  - random
  - name: herding
    config: {features: pixels}
models:
  - name: convnet
    options: {width: 16, depth: 2}
seeds: 2
eval: {epochs: 4, batch_size: 64, models_per_set: 2}
execution: {backend: sequential}
device: cpu
"""


@pytest.fixture
def tiny_suite(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SUITE + f"output: {tmp_path / 'out'}\n")
    return path
