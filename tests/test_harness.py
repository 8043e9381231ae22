"""Evaluation protocol, distillers' interface, the runner end to end on tiny settings."""

import json

import pandas as pd
import pytest
import torch

from atombench import registry
from atombench.distillers.base import DistillContext, SyntheticSet
from atombench.distillers.coreset import herd
from atombench.runner import load_dataset, make_distiller, run_suite
from atombench.train import TrainConfig, evaluate, train_model


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", {})


def test_protocol_schedule_runs_epochs_plus_one_passes_and_decays_once():
    net = torch.nn.Linear(4, 2)
    x, y = torch.randn(8, 4), torch.tensor([0, 1] * 4)
    seen = []
    orig = torch.optim.SGD

    class Spy(orig):
        def __init__(self, params, lr, **kw):
            seen.append(lr)
            super().__init__(params, lr=lr, **kw)

    torch.optim.SGD = Spy
    try:
        losses = train_model(net, x, y, TrainConfig(epochs=6, batch_size=4), torch.Generator().manual_seed(0))
    finally:
        torch.optim.SGD = orig
    assert len(losses) == 7  # epochs + 1 passes, as the reference
    assert seen == pytest.approx([0.01, 0.001])  # one decay, optimiser re-created


def test_training_learns_and_evaluate_counts(digits):
    net = registry.models.get("convnet").build({"width": 16, "depth": 2}, digits.channels, 10, digits.image_size)
    before = evaluate(net, digits.test_x, digits.test_y)["accuracy"]
    idx = torch.arange(0, len(digits.train_x), 3)
    train_model(net, digits.train_x[idx], digits.train_y[idx], TrainConfig(epochs=20, batch_size=64),
                torch.Generator().manual_seed(0))
    after = evaluate(net, digits.test_x, digits.test_y)
    assert after["accuracy"] > 80 > before + 30
    assert after["top5_accuracy"] is None  # only reported with more than 10 classes


def test_the_test_pass_is_compiled_exactly_when_the_training_was(digits, monkeypatch):
    """``evaluate(..., compile=True)`` (an evaluation job passes its resolved ``TrainConfig.compile``) runs the test
    pass through :func:`atombench.train.compiled`; ``auto`` and false stay eager. (That the compiled pass gives
    eager's predictions is measured by ``benchmarks/bench_eval.py testpass``: 0 of 10,000 changed.)"""
    import atombench.train as train_mod
    from atombench.jobs import scores_row

    calls = []

    def spy(net):
        calls.append(type(net).__name__)
        return net  # the wiring, not inductor: a real compilation costs seconds here

    monkeypatch.setattr(train_mod, "compiled", spy)
    net = registry.models.get("convnet").build({"width": 16, "depth": 2}, digits.channels, 10, digits.image_size)
    eager = evaluate(net, digits.test_x, digits.test_y)
    assert evaluate(net, digits.test_x, digits.test_y, compile="auto") == eager and calls == []
    assert evaluate(net, digits.test_x, digits.test_y, compile=True) == eager and calls == ["ConvNet"]
    synset = SyntheticSet(digits.train_x[:10], digits.train_y[:10], {"num_images": 10})
    row = scores_row({}, net, digits, synset, TrainConfig(compile=True, amp="none"), "cpu", [0.1], 1.0, 1.0)
    assert calls == ["ConvNet", "ConvNet"] and row["accuracy"] == eager["accuracy"]


@pytest.mark.slow  # 20-50 s: inductor compiles the training step and the test pass
def test_a_real_compiled_test_pass_after_compiled_training_gives_the_eager_predictions(digits):
    from torch._dynamo.utils import counters

    net = registry.models.get("convnet").build({"width": 16, "depth": 2}, digits.channels, 10, digits.image_size)
    idx = torch.arange(0, len(digits.train_x), 3)
    train_model(net, digits.train_x[idx], digits.train_y[idx], TrainConfig(epochs=2, batch_size=64, compile=True,
                                                                           amp="none"),
                torch.Generator().manual_seed(0))
    eager = evaluate(net, digits.test_x, digits.test_y)
    assert evaluate(net, digits.test_x, digits.test_y, compile=True) == eager
    graphs = counters["stats"]["unique_graphs"]
    other = registry.models.get("convnet").build({"width": 16, "depth": 2}, digits.channels, 10, digits.image_size)
    evaluate(other, digits.test_x, digits.test_y, compile=True)  # a second network of the architecture: no new graph
    assert counters["stats"]["unique_graphs"] == graphs


def test_random_distiller_is_seeded_balanced_and_real(digits):
    d = make_distiller("random", {})
    a = d.run(digits, 3, DistillContext("cpu", seed=1, show_progress=False))
    b = d.run(digits, 3, DistillContext("cpu", seed=1, show_progress=False))
    c = d.run(digits, 3, DistillContext("cpu", seed=2, show_progress=False))
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert a.labels.tolist() == sum(([k] * 3 for k in range(10)), [])
    idx = torch.tensor(a.meta["indices"])
    assert torch.equal(digits.train_x[idx], a.images) and torch.equal(digits.train_y[idx], a.labels)
    for key in ("method", "config", "dataset", "ipc", "seed", "wall_time_s", "peak_mem_mb", "versions"):
        assert key in a.meta


def test_impossible_ipc_is_refused(digits):
    d = make_distiller("random", {})
    assert "exceeds the smallest class" in d.check_ipc(digits, 10_000)
    assert "must be >= 1" in d.check_ipc(digits, 0)


def test_herd_tracks_the_mean():
    torch.manual_seed(0)
    feats = torch.randn(200, 5)
    chosen = herd(feats, 10)
    assert len(set(chosen.tolist())) == 10
    first = ((feats - feats.mean(0)) ** 2).sum(1).argmin()
    assert chosen[0] == first
    herd_err = (feats[chosen].mean(0) - feats.mean(0)).norm()
    rand_err = torch.stack([(feats[torch.randperm(200)[:10]].mean(0) - feats.mean(0)).norm() for _ in range(50)])
    assert herd_err < rand_err.median() / 2


def test_herding_trained_features_run(digits):
    d = make_distiller("herding", {"train_epochs": 1, "net_options": {"width": 8, "depth": 1}})
    out = d.run(digits, 2, DistillContext("cpu", seed=0, show_progress=False))
    assert out.images.shape == (20, 1, 8, 8)


def test_synthetic_set_round_trip_and_tamper_detection(tmp_path):
    s = SyntheticSet(torch.randn(4, 1, 8, 8), torch.tensor([0, 0, 1, 1]), {"method": "x"})
    path = tmp_path / "s.safetensors"
    s.save(path)
    back = SyntheticSet.load(path)
    assert torch.equal(back.images, s.images) and back.meta["method"] == "x"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="checksum"):
        SyntheticSet.load(path)


def test_run_end_to_end_resume_and_reproducibility(tiny_suite, tmp_path):
    out = tmp_path / "out"
    first = run_suite(tiny_suite, progress=False, echo=lambda *a: None)
    df = pd.read_csv(out / "results.csv")
    # datasets x distillers x ipc x seeds x models x models_per_set
    assert len(df) == 1 * 2 * 2 * 2 * 1 * 2 and (df["status"] == "ok").all()
    assert first.distilled == 8 and first.evaluated == 16
    assert set(df.columns) >= {"dataset", "distiller", "ipc", "model", "seed", "eval_seed", "accuracy",
                               "train_time_s", "device", "threads", "torch_version", "timm_version"}
    summary = (out / "summary.md").read_text()
    assert "| random |" in summary and "digits IPC 1" in summary
    # a second run does no work and gives the same table
    again = run_suite(tiny_suite, progress=False, echo=lambda *a: None)
    assert again.distilled == 0 and again.evaluated == 0
    pd.testing.assert_frame_equal(df, pd.read_csv(out / "results.csv"))
    # recomputing everything gives the same synthetic sets and accuracies (seeded, CPU)
    forced = run_suite(tiny_suite, force=True, progress=False, echo=lambda *a: None)
    assert forced.distilled == 8 and forced.evaluated == 16
    df2 = pd.read_csv(out / "results.csv")
    assert df2["accuracy"].tolist() == df["accuracy"].tolist()
    meta = json.loads(next((out / "synsets").glob("*.json")).read_text())
    assert meta["dataset"] == "digits" and len(meta["sha256"]) == 64


def test_adding_a_seed_runs_only_the_new_jobs(tiny_suite):
    run_suite(tiny_suite, progress=False, echo=lambda *a: None)
    tiny_suite.write_text(tiny_suite.read_text().replace("seeds: 2", "seeds: 3"))
    more = run_suite(tiny_suite, progress=False, echo=lambda *a: None)
    assert more.distilled == 4 and more.evaluated == 8
