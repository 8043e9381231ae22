"""The tests a new distiller (and its model and dataset) should have. Run them with the package installed
(pip install -e .): python -m pytest -q tests/"""

import subprocess
import sys

import pytest
import torch

from atombench import registry
from atombench.distillers.base import DistillContext, class_balanced_labels
from atombench.errors import ConfigError

from my_atombench_plugin.dataset import Blobs
from my_atombench_plugin.distiller import ClassMeanDistiller


@pytest.fixture(scope="module")
def data():
    return Blobs.load(Blobs.Config(per_class=12))


def test_the_plugins_are_registered_and_listed():
    done = subprocess.run([sys.executable, "-m", "atombench", "list"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("class_mean", "tiny_mlp", "small_mlp", "blobs"):
        assert name in done.stdout
    assert registry.distillers.get("class_mean") is ClassMeanDistiller


def test_impossible_options_are_config_errors_naming_the_key():
    with pytest.raises(ConfigError, match="noise must be >= 0"):
        ClassMeanDistiller({"noise": -1})
    with pytest.raises(ConfigError, match=r"unknown key \(did you mean 'iterations'\?\)"):
        ClassMeanDistiller({"iteration": 5})
    with pytest.raises(ConfigError, match="hidden must be >= 1"):
        registry.models.get("tiny_mlp").parse({"hidden": 0})


def test_the_dataset_is_normalised_and_complete(data):
    assert data.train_x.dtype == torch.float32 and data.train_x.shape == (36, 1, 8, 8)
    assert data.num_classes == 3 and data.image_size == (8, 8) and data.min_class_size == 12
    assert abs(float(data.denormalise(data.train_x).mean()) - 0.2) < 0.15   # back in [0, 1] with the mean


@pytest.mark.parametrize("ipc", [1, 3])
def test_distill_returns_the_contract(data, ipc):
    out = ClassMeanDistiller({"iterations": 3}).run(data, ipc, DistillContext("cpu", seed=0, show_progress=False))
    assert out.images.shape == (3 * ipc, 1, 8, 8) and out.images.dtype == torch.float32
    assert torch.equal(out.labels, class_balanced_labels(3, ipc)) and torch.isfinite(out.images).all()
    assert len(out.meta["loss_curve"]) == 3 and out.meta["init"] == "class means"


def test_the_same_seed_gives_the_same_set_and_another_seed_another(data):
    def run(seed):
        return ClassMeanDistiller({"iterations": 2}).run(data, 2, DistillContext("cpu", seed=seed,
                                                                                 show_progress=False)).images
    assert torch.equal(run(0), run(0)) and not torch.equal(run(0), run(1))


def test_a_suite_runs_on_the_plugins(tmp_path):
    from atombench.runner import run_suite

    suite = tmp_path / "suite.yaml"
    suite.write_text("name: t\ndatasets: [{name: blobs, options: {per_class: 12}}]\nipc: [1]\n"
                     "distillers: [random, {name: class_mean, options: {iterations: 3}}]\n"
                     "models: [tiny_mlp, small_mlp]\nseeds: 1\neval: {epochs: 5, models_per_set: 1}\n"
                     f"execution: {{engine: sequential}}\ndevice: cpu\noutput: {tmp_path / 'out'}\n")
    table = run_suite(suite, progress=False, echo=lambda *a, **k: None).table
    assert (table["status"] == "ok").all() and set(table["distiller"]) == {"random", "class_mean"}
    assert set(table["model"]) == {"tiny_mlp", "small_mlp"}
