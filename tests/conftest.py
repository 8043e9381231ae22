import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _on(name: str) -> bool:
    """An environment switch: set and not 0/false/no/off/empty."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def pytest_collection_modifyitems(config, items):
    """Three tiers, so that ``python -m pytest -q`` (the README's command) takes minutes, not half an hour:

    * unmarked tests always run;
    * ``@pytest.mark.slow`` (tens of seconds each, with a quicker test of the same feature in the default run):
      skipped by default, run in CI (``CI=true``, as ``.ci/run`` runs) and with ``ATOMBENCH_HEAVY=1``;
    * ``@pytest.mark.heavy`` (minutes each): run only with ``ATOMBENCH_HEAVY=1``, in CI too.
    """
    heavy, ci = _on("ATOMBENCH_HEAVY"), _on("CI")
    skip_heavy = pytest.mark.skip(reason="heavy test (minutes): run it with ATOMBENCH_HEAVY=1")
    skip_slow = pytest.mark.skip(reason="slow test: run it with ATOMBENCH_HEAVY=1 (CI=true runs it too)")
    for item in items:
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
    target = tmp_path_factory.mktemp("plugin_site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(ROOT / "tests" / "plugin_pkg")], check=True)
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
