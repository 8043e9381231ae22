import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    """Heavy tests (minutes) are skipped in CI unless ATOMBENCH_HEAVY=1."""
    if os.environ.get("CI") and not os.environ.get("ATOMBENCH_HEAVY"):
        skip = pytest.mark.skip(reason="heavy test: set ATOMBENCH_HEAVY=1 to run it in CI")
        for item in items:
            if "heavy" in item.keywords:
                item.add_marker(skip)


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
