import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# what atombench keeps once per machine (decoded image folders, fitted whitenings: ``cache_root``) goes to a folder
# of this test session, inherited by the command-line runs the tests start, never to the user's
# ~/.cache/atombench: a test does not read what another run left there, nor leave anything behind
_CACHE = tempfile.mkdtemp(prefix="atombench-test-cache-")
os.environ["ATOMBENCH_CACHE"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, True)


def _on(name: str) -> bool:
    """An environment switch: set and not 0/false/no/off/empty."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


#: the longest a test of the default tier may take (its call phase, wall-clock seconds) before it fails, telling the
#: author to mark it ``slow``; ``ATOMBENCH_TIER_LIMIT_S`` changes it (0: no limit). Default-tier tests take 3 to
#: 15 s at most on 2 idle cores, and up to 34 s were measured on the shared 2-core machine under load (the bad-input
#: corpus: three command-line runs per case), hence 60 s, which the longest slow tests (49-167 s) still exceed
DEFAULT_TIER_LIMIT_S = 60.0


def _tier_limit() -> float:
    try:
        return float(os.environ.get("ATOMBENCH_TIER_LIMIT_S", DEFAULT_TIER_LIMIT_S))
    except ValueError:
        return DEFAULT_TIER_LIMIT_S


def pytest_collection_modifyitems(config, items):
    """Three tiers, so that ``python -m pytest -q`` (the README's command) takes minutes, not half an hour; each test
    says its tier by a marker in its own file (a renamed test keeps it):

    * unmarked tests always run, and each must finish within :data:`DEFAULT_TIER_LIMIT_S` (else it fails:
      :func:`pytest_runtest_makereport`);
    * ``@pytest.mark.slow`` (tens of seconds each, with a quicker test of the same feature in the default run; the
      marker's ``reason`` or a comment gives its time and that test; a parametrised case is marked with
      ``pytest.param(..., marks=pytest.mark.slow)``): skipped by default, run in CI (``CI=true``) and with
      ``ATOMBENCH_HEAVY=1``;
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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test of the default tier (neither ``slow`` nor ``heavy``) whose call phase took longer than the limit fails,
    with the fix in its message: make it quicker, or mark it ``slow`` with a quicker test of its feature left in the
    default run."""
    outcome = yield
    report = outcome.get_result()
    limit = _tier_limit()
    if (call.when != "call" or not report.passed or limit <= 0 or "slow" in item.keywords
            or "heavy" in item.keywords or call.duration <= limit):
        return
    report.outcome = "failed"
    report.longrepr = (f"{item.nodeid} took {call.duration:.1f} s, over the default tier's {limit:g} s: make it "
                       f"quicker, or mark it @pytest.mark.slow (pytest.param(..., marks=pytest.mark.slow) for one "
                       f"case) with its time and the quicker test that keeps its feature in the default run "
                       f"(CONTRIBUTING.md, 'Set up'); ATOMBENCH_TIER_LIMIT_S changes the limit")


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
