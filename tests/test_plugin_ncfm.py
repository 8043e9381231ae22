"""The NCFM plug-in (plugins/atombench-ncfm), an outside package: it uses atombench's public API only, CI installs
it, its own tests pass; and the public hook it needed (FeatureMatchingDistiller.embedding_statistic) works."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "plugins" / "atombench-ncfm"


def _private_uses(path: Path) -> list[str]:
    """Imports of atombench names (or modules) that start with an underscore, and attribute reads of private
    names on atombench objects imported by the file."""
    tree = ast.parse(path.read_text())
    found, atombench_names = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "atombench":
            if any(part.startswith("_") for part in node.module.split(".")):
                found.append(f"{path.name}:{node.lineno} from {node.module}")
            for alias in node.names:
                atombench_names.add(alias.asname or alias.name)
                if alias.name.startswith("_"):
                    found.append(f"{path.name}:{node.lineno} {node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "atombench":
                    atombench_names.add((alias.asname or alias.name).split(".")[0])
                    if any(part.startswith("_") for part in alias.name.split(".")):
                        found.append(f"{path.name}:{node.lineno} import {alias.name}")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name) and node.value.id in atombench_names):
            found.append(f"{path.name}:{node.lineno} {node.value.id}.{node.attr}")
    return found


def test_the_ncfm_plugin_uses_only_atombench_public_names():
    files = sorted(PLUGIN.rglob("*.py"))
    assert len(files) >= 5
    assert [u for f in files for u in _private_uses(f)] == []
    # nor does it override a private method of the atombench classes it subclasses
    sys.path.insert(0, str(PLUGIN))
    try:
        from atombench_ncfm.distiller import NCFMDistiller
    finally:
        sys.path.remove(str(PLUGIN))
    from atombench.distillers.matching import FeatureMatchingDistiller

    inherited = {n for n in dir(FeatureMatchingDistiller) if n.startswith("_") and not n.startswith("__")}
    overridden = {n for n in vars(NCFMDistiller) if n in inherited}
    assert overridden == set()


def test_the_private_name_check_catches_a_private_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from atombench.distillers.matching import _has_batchnorm\nfrom atombench import train\n"
                   "x = train._sgd\n")
    assert len(_private_uses(bad)) == 2


def test_ci_installs_the_ncfm_plugin():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install --quiet -e plugins/atombench-ncfm" in ci
    assert ci.index("-e plugins/atombench-ncfm") < ci.index("python -m pytest")


def test_embedding_statistic_is_what_feature_matching_averages():
    from atombench.distillers.dm import DMDistiller
    from atombench.distillers.matching import Stats
    from atombench.factories import build_model, load_dataset

    data = load_dataset("digits", {"size": 8})
    net = build_model("convnet", {"width": 8}, data, 0)
    x = data.train_x[:6]

    class Squared(DMDistiller):
        def embedding_statistic(self, e):
            return e * e

    plain = DMDistiller({"iterations": 0}).stats(net, x, 2)
    squared = Squared({"iterations": 0}).stats(net, x, 2)
    e = net.embed(x).flatten(1)
    assert torch.allclose(plain.embed, e.view(2, 3, -1).mean(1), atol=1e-6)  # DM: the embedding itself
    assert torch.allclose(squared.embed, (e * e).view(2, 3, -1).mean(1), atol=1e-6)
    assert isinstance(squared, Stats)


@pytest.mark.slow
def test_the_ncfm_plugin_passes_its_own_tests(tmp_path):
    """Its tests (the loss against hand computations, resume, options, a suite) against the installed package: the
    one .ci/run installs, else a fresh install into a folder of this test (30-70 s on a shared core)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if "ncfm" not in {e.name for e in entry_points(group="atombench.distillers")}:
        site = tmp_path / "site"
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                        "--no-index", "--target", str(site), str(PLUGIN)], check=True, timeout=300)
        env["PYTHONPATH"] = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=PLUGIN,
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout and "failed" not in done.stdout


def test_the_plan_sizes_evaluations_by_the_images_a_set_decodes_to(tmp_path):
    """NCFM's multi-formation stores IPC images per class that decode to IPC x factor^2: its evaluations train on
    those, and the plan's cost of them counts them (the public hook ``decoded_per_class``); factor 1 is the IPC."""
    from atombench.runner import build_graph, preflight
    from atombench.store import ResultsStore
    from atombench.suite import load_suite

    sizes = {}
    for factor in (1, 2):
        p = tmp_path / f"f{factor}.yaml"
        p.write_text(f"""name: f{factor}
datasets: [{{name: digits, options: {{size: 8}}}}]
ipc: [2]
distillers: [{{name: ncfm, options: {{iterations: 1, factor: {factor}}}}}]
models: [{{name: convnet, options: {{width: 8, depth: 1}}}}]
eval: {{epochs: 9}}
device: cpu
output: {tmp_path / f"out{factor}"}
""")
        graph = build_graph(preflight(load_suite(p)), ResultsStore(tmp_path / f"out{factor}"))
        sizes[factor] = {j.cost_size() for j in graph.evaluate}
    assert sizes == {1: {10.0 * 2}, 2: {10.0 * 2 * 4}}
