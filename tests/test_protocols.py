"""Evaluation protocols (own vs common), the formulas they rest on (DSA scale/rotate, the lr decay pass, DC's
augmentation), ZCA in both spaces, lambda by resolution, MTT's presets and learned step size, the fairness table."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from atombench.augment import DSA, DCAugment, DSAParams, _apply, _draw
from atombench.data.zca import ZCA
from atombench.distillers.base import DistillContext
from atombench.distillers.datadam import task_balance_for
from atombench.distillers.mtt import PRESETS, preset_for
from atombench.jobs import TRAIN_KEYED_UNLESS_DEFAULT, train_key_config
from atombench.factories import load_dataset, make_distiller
from atombench.protocols import Protocol, resolve_train
from atombench.report.inputs import Inputs
from atombench.report.fairness import fairness_tables
from atombench.report.views import default_view
from atombench.report.tables import TableOptions
from atombench.runner import build_graph, preflight, run_suite
from atombench.store import ResultsStore
from atombench.suite import load_suite
from atombench.train import TrainConfig, train_model


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", {"size": 8})


# -- formulas ------------------------------------------------------------------------------------------------
def _reference_affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, align_corners=True)


def test_dsa_scale_follows_the_reference_formula():
    """rand_scale: sx, sy ~ U(1/ratio, ratio) independently, theta = [[sx, 0, 0], [0, sy, 0]]."""
    p = DSAParams()
    g = torch.Generator().manual_seed(3)
    q = _draw("scale", 500, 8, 8, p, g)
    assert float(q["sx"].min()) >= 1 / 1.2 - 1e-6 and float(q["sx"].max()) <= 1.2 + 1e-6
    assert float(q["sx"].min()) < 0.86 and float(q["sx"].max()) > 1.17  # the whole range is used
    assert not torch.allclose(q["sx"], q["sy"])  # independent per axis
    x = torch.randn(4, 3, 8, 8)
    q = {"sx": torch.tensor([0.9, 1.1, 1.2, 1 / 1.2]), "sy": torch.tensor([1.15, 0.85, 1.0, 1.2])}
    theta = torch.tensor([[[sx, 0.0, 0.0], [0.0, sy, 0.0]] for sx, sy in zip(q["sx"].tolist(), q["sy"].tolist())])
    assert torch.allclose(_apply("scale", x, q, p), _reference_affine(x, theta), atol=1e-6)


def test_dsa_rotate_follows_the_reference_formula():
    """rand_rotate: t ~ U(-15, 15) degrees in radians, theta = [[cos t, sin(-t), 0], [sin t, cos t, 0]]."""
    p = DSAParams()
    q = _draw("rotate", 500, 8, 8, p, torch.Generator().manual_seed(4))
    bound = 15 / 180 * math.pi
    assert float(q["t"].abs().max()) <= bound + 1e-6 and float(q["t"].abs().max()) > 0.9 * bound
    x = torch.randn(3, 2, 8, 8)
    t = torch.tensor([0.2, -0.1, bound])
    theta = torch.stack([torch.tensor([[math.cos(a), math.sin(-a), 0.0], [math.sin(a), math.cos(a), 0.0]])
                         for a in t.tolist()])
    out = _apply("rotate", x, {"t": t}, p)
    assert torch.allclose(out, _reference_affine(x, theta), atol=1e-6)
    # a quarter turn (beyond the range, to check the direction): theta = [[0, -1], [1, 0]] samples the input at
    # (-y, x), so the top-right pixel lands in the top-left corner (index 0), not the bottom-right (24)
    img = torch.zeros(1, 1, 5, 5)
    img[0, 0, 0, 4] = 1.0
    turned = _apply("rotate", img, {"t": torch.tensor([math.pi / 2])}, p)
    assert int(turned.flatten().argmax()) == 0 and float(turned.max()) == pytest.approx(1.0, abs=1e-5)


def test_lr_decays_after_pass_epochs_over_2_plus_1():
    """The reference: ``epochs + 1`` passes; after pass ``epochs // 2 + 1`` (0-based) lr x 0.1."""
    net = torch.nn.Linear(4, 2)
    x, y = torch.randn(4, 4), torch.tensor([0, 1, 0, 1])
    lrs = []
    orig = torch.optim.SGD.step

    def spy(self, *a, **kw):
        lrs.append(self.param_groups[0]["lr"])
        return orig(self, *a, **kw)

    torch.optim.SGD.step = spy
    try:
        train_model(net, x, y, TrainConfig(epochs=9, batch_size=4), torch.Generator().manual_seed(0))
    finally:
        torch.optim.SGD.step = orig
    # one step per pass: passes 0..5 at 0.01 (the decay comes after pass 9 // 2 + 1 = 5), passes 6..9 at 0.001
    assert lrs == pytest.approx([0.01] * 6 + [0.001] * 4)


def test_dsa_is_really_applied_while_training_under_augment_dsa(tmp_path, monkeypatch):
    """Not only recorded in a column: the training batches go through DSA under ``augment: dsa`` (and through
    DC's augmentation under ``augment: dc``), and through nothing under ``augment: none``."""
    calls = {"dsa": 0, "dc": 0}
    dsa_call, dc_call = DSA.__call__, DCAugment.__call__

    def count(kind, fn):
        def wrapper(self, x, g):
            calls[kind] += 1
            return fn(self, x, g)
        return wrapper

    monkeypatch.setattr(DSA, "__call__", count("dsa", dsa_call))
    monkeypatch.setattr(DCAugment, "__call__", count("dc", dc_call))
    for augment, expect in (("dsa", {"dsa": 4, "dc": 0}), ("dc", {"dsa": 0, "dc": 4}), ("none", {"dsa": 0, "dc": 0})):
        calls.update(dsa=0, dc=0)
        suite = tmp_path / f"{augment}.yaml"
        suite.write_text(f"name: aug_{augment}\ndatasets: [{{name: digits, options: {{size: 8}}}}]\nipc: [1]\n"
                         f"distillers: [random]\nmodels: [{{name: convnet, options: {{width: 8, depth: 1}}}}]\n"
                         f"eval: {{epochs: 3, augment: {augment}}}\nexecution: {{backend: sequential}}\n"
                         f"device: cpu\noutput: {tmp_path / augment}\n")
        out = run_suite(suite, progress=False, echo=lambda *a: None)
        assert calls == expect, augment  # epochs + 1 = 4 batches of 10 images
        assert set(out.table["augment"]) == {augment}


def test_dc_augmentation_operations():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 1, 12, 12)
    # noise: a small perturbation of every pixel
    out = DCAugment("noise")(x, g)
    assert 0 < float((out - x).abs().max()) < 0.01
    # crop: each image is the mean-padded image shifted by -4..3 pixels in each axis
    out = DCAugment("crop")(x, g)
    mean = x.mean(dim=(0, 2, 3))
    for i in range(len(x)):
        canvas = torch.full((1, 20, 20), float(mean[0]))
        canvas[:, 4:16, 4:16] = x[i]
        assert any(torch.equal(out[i], canvas[:, r:r + 12, c:c + 12]) for r in range(8) for c in range(8))
    # rotate keeps the centre pixel of a constant image and fills corners with the mean
    const = torch.ones(2, 1, 9, 9)
    out = DCAugment("rotate")(const, g)
    assert torch.allclose(out[:, :, 4, 4], torch.ones(2, 1), atol=1e-5)
    # scale: same shape, one op per image
    assert DCAugment("crop_scale_rotate")(x, g).shape == x.shape
    with pytest.raises(ValueError, match="unknown DC augmentation"):
        DCAugment("crop_flip")


# -- declared protocols --------------------------------------------------------------------------------------
def test_each_distiller_declares_its_protocol_with_sources():
    own = {name: make_distiller(name, {}) for name in ("dc", "dsa", "dm", "mtt", "datadam", "atom")}
    for name, d in own.items():
        p = d.paper_protocol("cifar10", "convnet", 10)
        assert isinstance(p, Protocol), name
        sourced = dict(p.sources)
        for field in ("epochs", "batch_size", "lr", "augment", "checkpoint"):
            assert field in sourced and sourced[field], (name, field)
    assert own["datadam"].protocol.epochs == 1800 and own["datadam"].protocol.batch_size == 64
    assert own["datadam"].protocol.checkpoint == "best"
    assert own["atom"].protocol.epochs == 1800 and own["atom"].paper_zca("cifar10", 1) == "unit_interval"
    assert own["datadam"].paper_zca("cifar10", 1) == "normalised" and own["dm"].paper_zca("cifar10", 1) is None
    assert own["mtt"].protocol.lr == "learned"
    # DC's rule: 300 epochs without augmentation; 1000 with crop_scale_rotate on MNIST, crop_noise for ConvNetBN
    dc = own["dc"]
    assert resolve_train({}, dc.paper_protocol("fashion_mnist", "convnet", 1)) == \
        {"epochs": 300, "batch_size": 256, "lr": 0.01, "lr_decay": True, "augment": "none"}
    assert dc.paper_protocol("mnist", "convnet", 1).train_overrides()["dc_strategy"] == "crop_scale_rotate"
    assert dc.paper_protocol("mnist", "convnet_bn", 1).train_overrides() == \
        {"epochs": 1000, "batch_size": 256, "lr": 0.01, "lr_decay": True, "augment": "dc", "dc_strategy": "crop_noise"}
    # the coresets are evaluated as the DC paper evaluated its coreset rows: DC's protocol and rule
    for name in ("random", "herding", "kcenter", "forgetting"):
        coreset = make_distiller(name, {})
        assert resolve_train({}, coreset.paper_protocol("cifar10", "convnet", 1)) == \
            {"epochs": 300, "batch_size": 256, "lr": 0.01, "lr_decay": True, "augment": "none"}, name
        assert coreset.paper_protocol("cifar10", "convnet_bn", 10).train_overrides()["dc_strategy"] == "crop_noise"


#: MTT's hyper-parameter table, as transcribed from the author's values (see atombench.distillers.mtt.PRESETS)
MTT_TABLE = {
    ("cifar10", 1): (50, 2, 2, None, 100, 1e-7, 0.01, True),
    ("cifar10", 10): (30, 2, 20, None, 100, 1e-5, 0.001, True),
    ("cifar10", 50): (30, 2, 40, None, 1000, 1e-5, 0.001, False),
    ("cifar100", 1): (20, 3, 20, None, 1000, 1e-5, 0.01, True),
    ("cifar100", 10): (20, 2, 20, None, 1000, 1e-5, 0.01, False),
    ("cifar100", 50): (80, 2, 40, 125, 1000, 1e-5, 0.01, True),
    ("tiny_imagenet", 1): (10, 2, 10, None, 1e4, 1e-4, 0.01, False),
    ("tiny_imagenet", 10): (20, 2, 40, 200, 1e4, 1e-4, 0.01, False),
    ("tiny_imagenet", 50): (20, 2, 40, 300, 1e4, 1e-4, 0.01, False),
}


@pytest.mark.parametrize("setting", sorted(MTT_TABLE))
def test_every_mtt_preset(setting):
    keys = ("syn_steps", "expert_epochs", "max_start_epoch", "batch_syn", "lr_img", "lr_lr", "lr_teacher", "zca")
    row = PRESETS[setting]
    assert tuple(row[k] for k in keys) == pytest.approx(MTT_TABLE[setting])
    assert row.get("net", "convnet") == ("convnet_d4" if setting[0] == "tiny_imagenet" else "convnet")
    assert preset_for(*setting) == (setting, row)
    mtt = make_distiller("mtt", {})
    assert mtt.paper_zca(*setting) == ("unit_interval" if MTT_TABLE[setting][-1] else None)
    assert mtt.paper_zca("fashion_mnist", setting[1]) is None  # MTT did not report it: no whitening of its own


def test_preset_fallback_for_other_datasets_and_ipcs():
    assert preset_for("fashion_mnist", 1)[0] == ("cifar10", 1)
    assert preset_for("cifar100", 20)[0] == ("cifar100", 10)


# -- ZCA -----------------------------------------------------------------------------------------------------
def _kornia_reference(u: torch.Tensor, eps: float) -> torch.Tensor:
    """Kornia's ZCAWhitening written out: unbiased covariance, SVD, eps added to the singular values."""
    flat = u.reshape(len(u), -1).double()
    mean = flat.mean(0)
    cov = torch.cov(flat.T, correction=1)
    U, S, _ = torch.linalg.svd(cov)
    W = U @ torch.diag((S + eps).rsqrt()) @ U.T
    return ((flat - mean) @ W).reshape(u.shape).float()


def test_zca_in_both_spaces_with_eps_0_1(digits):
    x = digits.train_x[:400]
    mean = torch.tensor(digits.mean).view(1, -1, 1, 1)
    std = torch.tensor(digits.std).view(1, -1, 1, 1)
    unit = ZCA.fit(x, 0.1, "unit_interval", digits.mean, digits.std)
    normed = ZCA.fit(x, 0.1, "normalised")
    # each equals kornia's definition applied in its own space
    assert torch.allclose(unit(x), _kornia_reference(x * std + mean, 0.1), atol=1e-3)
    assert torch.allclose(normed(x), _kornia_reference(x, 0.1), atol=1e-3)
    # the inverses return the dataset's normalised images
    assert torch.allclose(unit.inverse(unit(x)), x, atol=1e-3)
    assert torch.allclose(normed.inverse(normed(x)), x, atol=1e-3)
    # not an affine map of each other: eps damps different directions. The whitened images' overall scale
    # differs by a large factor (here std differs ~0.3 on digits, so eps 0.1 is large against the [0, 1] variances)
    a, b = unit(x).flatten(), normed(x).flatten()
    slope, intercept = np.polyfit(b.numpy(), a.numpy(), 1)
    residual = (a - (slope * b + intercept)).std() / a.std()
    assert residual > 0.05, "unit_interval and normalised ZCA must differ beyond a global affine map"
    assert abs(float(unit(x).std() / normed(x).std()) - 1) > 0.2


def test_zca_settings_from_the_suite(tmp_path):
    base = "name: z\nipc: [1]\ndistillers: [dm, mtt, random]\nmodels: [convnet]\n"
    cases = {"true": ("unit_interval", 0.1), "{kind: normalised, eps: 0.05}": ("normalised", 0.05),
             "false": None}
    for text, want in cases.items():
        p = tmp_path / "s.yaml"
        p.write_text(base + f"datasets: [{{name: digits, zca: {text}}}]\n")
        spec = load_suite(p).datasets[0]
        assert spec.zca_setting() == want, text
    p.write_text(base + "datasets: [{name: cifar10, zca: paper}]\n")
    spec = load_suite(p).datasets[0]
    from atombench.factories import dataset_args

    args = {name: dataset_args(spec, make_distiller(name, {}), 1)[2] for name in ("dm", "mtt", "atom", "datadam")}
    assert args == {"dm": None, "mtt": "unit_interval", "atom": "unit_interval", "datadam": "normalised"}
    assert dataset_args(spec, make_distiller("mtt", {}), 50)[2] is None  # MTT's CIFAR-10 IPC 50 row: no ZCA


def test_whitened_sets_record_their_space_and_display_de_whitened(tmp_path):
    """A set distilled in a whitened space records it (so the report reloads that space), and de-whitening brings
    the images back to the real ones in [0, 1]."""
    suite = tmp_path / "z.yaml"
    suite.write_text(f"name: z\ndatasets: [{{name: digits, options: {{size: 8}}, zca: {{kind: unit_interval}}}}]\n"
                     f"ipc: [1]\ndistillers: [random]\nmodels: [{{name: convnet, options: {{width: 8, depth: 1}}}}]\n"
                     f"eval: {{epochs: 1}}\nexecution: {{backend: sequential}}\ndevice: cpu\n"
                     f"output: {tmp_path / 'out'}\n")
    run_suite(suite, progress=False, echo=lambda *a: None)
    store = ResultsStore(tmp_path / "out")
    meta = next(iter(json_metas(store)))
    assert meta["dataset_args"][2] == "unit_interval" and meta["dataset_options"]["zca"] == "unit_interval"
    from atombench.distillers.base import SyntheticSet

    key = meta["synset_key_for_test"]
    synset = SyntheticSet.load(store.synset_path(key))
    data = load_dataset(*meta["dataset_args"])
    shown = data.denormalise(data.zca.inverse(synset.images))
    plain = load_dataset("digits", {"size": 8})
    # random picks real images: de-whitened they are real digits again, in [0, 1]
    assert float(shown.min()) > -0.01 and float(shown.max()) < 1.01
    assert any(torch.allclose(shown[0], plain.denormalise(plain.train_x[i:i + 1])[0], atol=1e-3)
               for i in range(len(plain.train_x)))


def json_metas(store):
    import json

    for path in sorted(store.synsets_dir.glob("*.json")):
        meta = json.loads(path.read_text())
        meta["synset_key_for_test"] = path.name.split(".")[0]
        yield meta


# -- lambda by resolution ------------------------------------------------------------------------------------
def test_lambda_by_resolution(digits):
    assert task_balance_for((32, 32)) == 0.01 and task_balance_for((63, 63)) == 0.01
    assert task_balance_for((64, 64)) == 0.02 and task_balance_for((128, 128)) == 0.02
    for name in ("datadam", "atom"):
        d = make_distiller(name, {"iterations": 1, "batch_real": 4})
        assert d.config.task_balance is None
        out = d.run(digits, 1, DistillContext("cpu", 0, show_progress=False))
        assert out.meta["task_balance"] == 0.01
        big = load_dataset("digits", {"size": 64})
        assert d.prepare(big, 1)["task_balance"] == 0.02
        fixed = make_distiller(name, {"task_balance": 0.05})
        assert fixed.prepare(big, 1)["task_balance"] == 0.05


def test_zca_refit_of_the_initialisation():
    data = load_dataset("digits", {"size": 8}, "normalised", 0.1)
    d = make_distiller("datadam", {"iterations": 0, "zca_refit_init": True})
    out = d.run(data, 3, DistillContext("cpu", 0, show_progress=False))
    plain = make_distiller("datadam", {"iterations": 0}).run(data, 3, DistillContext("cpu", 0, show_progress=False))
    assert out.meta["zca_refit_init"] is True and plain.meta["zca_refit_init"] is False
    # the same real images, whitened a second time with a ZCA fitted on them
    assert torch.allclose(out.images, ZCA.fit(plain.images, 0.1)(plain.images), atol=1e-4)


# -- the graph and the results -------------------------------------------------------------------------------
PROTO_SUITE = """name: proto
datasets: [{{name: digits, options: {{size: 8}}}}]
ipc: [1]
distillers: [random, {{name: dc, config: {{iterations: 1, batch_real: 8}}}},
             {{name: mtt, config: {{iterations: 2, num_experts: 1, expert_train_epochs: 2, max_start_epoch: 1,
                                  expert_epochs: 1, syn_steps: 2}}}}]
models: [{{name: convnet, options: {{width: 8, depth: 1}}}}]
eval: {{epochs: 2, protocol: {protocol}}}
execution: {{backend: sequential}}
device: cpu
output: {out}
"""


def _graph(tmp_path, protocol):
    p = tmp_path / f"{protocol}.yaml"
    p.write_text(PROTO_SUITE.format(protocol=protocol, out=tmp_path / "out"))
    plan = preflight(load_suite(p))
    return build_graph(plan, ResultsStore(tmp_path / "out"))


def test_protocol_both_rows_and_keys(tmp_path):
    common = _graph(tmp_path, "common")
    both = _graph(tmp_path, "both")
    paper = _graph(tmp_path, "paper")
    # the common protocol's keys are unchanged by asking for both (the cache of earlier runs stays valid)
    assert {j.key for j in common.evaluate} <= {j.key for j in both.evaluate}
    assert len(both.rows) == 2 * len(common.rows)
    rows = pd.DataFrame([dict(r, key=k) for k, r in both.rows])
    assert set(rows["protocol"]) == {"paper", "common"}
    by = rows.set_index(["distiller", "protocol"])
    # random is evaluated as the DC paper evaluated its coreset rows: a distinct job, 300 epochs, no augmentation
    assert by.loc[("random", "paper"), "key"] != by.loc[("random", "common"), "key"]
    assert (by.loc[("random", "paper"), "epochs"], by.loc[("random", "paper"), "augment"]) == (300, "none")
    assert bool(by.loc[("random", "paper"), "protocol_declared"])
    # DC and MTT: distinct jobs with their papers' settings
    assert by.loc[("dc", "paper"), "key"] != by.loc[("dc", "common"), "key"]
    assert (by.loc[("dc", "paper"), "epochs"], by.loc[("dc", "paper"), "augment"]) == (300, "none")
    assert by.loc[("mtt", "paper"), "lr"] == "learned" and by.loc[("mtt", "common"), "lr"] == 0.01
    assert len(both.evaluate) == len({k for k, _ in both.rows}) == 6
    assert {r["protocol"] for _, r in paper.rows} == {"paper"}
    # a new training option at its default stays out of the keys
    assert "dc_strategy" not in train_key_config(dict(TrainConfig().__dict__))
    assert "dc_strategy" in TRAIN_KEYED_UNLESS_DEFAULT


def test_a_method_without_a_protocol_gets_the_common_job_under_both(tmp_path, monkeypatch):
    """A method that declares no protocol (an outside plug-in that does not) is trained once under ``both`` and
    reported under both, with ``protocol_declared`` false."""
    from atombench.distillers.coreset import RandomDistiller

    monkeypatch.setattr(RandomDistiller, "protocol", None)
    monkeypatch.setattr(RandomDistiller, "paper_protocol", lambda self, dataset, model, ipc: None)
    rows = pd.DataFrame([dict(r, key=k) for k, r in _graph(tmp_path, "both").rows]).set_index(["distiller", "protocol"])
    assert rows.loc[("random", "paper"), "key"] == rows.loc[("random", "common"), "key"]
    assert not bool(rows.loc[("random", "paper"), "protocol_declared"])


def test_a_shared_job_read_from_jobs_alone_is_reported_under_both_protocols(tmp_path, monkeypatch):
    """A run stopped before it wrote results.csv: the report reads jobs/. A job both protocols share is one record;
    it lists the other row it is reported as, so the report shows it under both (not under one, which dropped the
    method from the common protocol's tables). results.csv has no such column."""
    from atombench.distillers.coreset import RandomDistiller
    from atombench.report.inputs import read_inputs

    monkeypatch.setattr(RandomDistiller, "protocol", None)
    monkeypatch.setattr(RandomDistiller, "paper_protocol", lambda self, dataset, model, ipc: None)
    p = tmp_path / "s.yaml"
    p.write_text(f"""name: shared
datasets: [{{name: digits, options: {{size: 8}}}}]
ipc: [1]
distillers: [random]
models: [{{name: convnet, options: {{width: 8, depth: 1}}}}]
eval: {{epochs: 2, protocol: both}}
execution: {{backend: sequential}}
device: cpu
output: {tmp_path / "out"}
""")
    out = run_suite(p, progress=False, echo=lambda *a: None)
    assert "reported_as" not in out.table and set(out.table["protocol"]) == {"common", "paper"}
    store = ResultsStore(tmp_path / "out")
    store.results_csv.unlink()
    df = read_inputs([tmp_path / "out"]).results.set_index("protocol")
    assert sorted(df.index) == ["common", "paper"] and df["accuracy"].nunique() == 1
    assert "reported_as" not in df and df["job_key"].nunique() == 1
    # the paper row's own columns stay its own: the common row has none, as in results.csv
    assert df.loc["paper", "protocol_declared"] in (False, "False") and pd.isna(df.loc["common", "protocol_declared"])


@pytest.mark.slow
def test_mtt_paper_protocol_trains_with_the_learned_step_size(tmp_path):
    p = tmp_path / "both.yaml"
    p.write_text(PROTO_SUITE.format(protocol="both", out=tmp_path / "out").replace("{name: dc, config: {iterations: 1, batch_real: 8}},", ""))
    # keep the paper protocols short for the test: MTT's own is 1000 epochs
    from atombench.distillers import mtt as mtt_mod

    short = Protocol(epochs=3, batch_size=256, lr="learned", augment="dsa", sources=(("epochs", "test"),))
    orig = mtt_mod.MTTDistiller.protocol
    mtt_mod.MTTDistiller.protocol = short
    try:
        out = run_suite(p, progress=False, echo=lambda *a: None)
    finally:
        mtt_mod.MTTDistiller.protocol = orig
    t = out.table.set_index(["distiller", "protocol"])
    store = ResultsStore(tmp_path / "out")
    import json

    key = t.loc[("mtt", "paper"), "synset_key"]
    syn_lr = json.loads(store.synset_meta_path(key).read_text())["syn_lr"]
    assert t.loc[("mtt", "paper"), "lr_used"] == pytest.approx(syn_lr)
    assert t.loc[("mtt", "common"), "lr_used"] == pytest.approx(0.01)
    assert syn_lr != pytest.approx(0.01)  # it was learned (two steps of lr_lr)
    assert (t["status"] == "ok").all()


def test_learned_lr_without_a_recorded_step_size_is_one_line():
    from atombench.errors import UsageError
    from atombench.jobs import resolve_lr

    class S:
        meta = {}

    with pytest.raises(UsageError, match="records none usable"):
        resolve_lr({"lr": "learned"}, S())
    assert resolve_lr({"lr": 0.01}, S()) == {"lr": 0.01}


# -- the fairness table --------------------------------------------------------------------------------------
def _results():
    rows = []
    own = {"a": [80, 82, 81], "b": [70, 71, 72], "c": [60, 61, 59]}
    common = {"a": [60, 61, 62], "b": [70, 71, 72], "c": [65, 66, 64]}
    for method in own:
        for seed in range(3):
            for protocol, table in (("paper", own), ("common", common)):
                rows.append({"dataset": "d", "distiller": method, "method": method, "ipc": 1, "seed": seed,
                             "model": "convnet", "model_name": "convnet", "status": "ok", "protocol": protocol,
                             "accuracy": float(table[method][seed]), "epochs": 1800 if method == "a" else 1000,
                             "batch_size": 64 if method == "a" else 256, "lr": 0.01, "augment": "dsa",
                             "protocol_declared": method != "b", "checkpoint_rule": "final"})
    return pd.DataFrame(rows)


def test_fairness_table_cells_ranks_and_tau():
    inputs = Inputs([], _results())
    assert default_view(inputs)[0] == {"protocol": "common"}
    main, ranks = fairness_tables(inputs, TableOptions())
    cells = {r.labels[0]: r.cells[0] for r in main.rows}
    assert cells == {"a": "81.0 ± 0.8 / 61.0 ± 0.8 (+20.0)", "b": "71.0 ± 0.8 / 71.0 ± 0.8 (+0.0)",
                     "c": "60.0 ± 0.8 / 65.0 ± 0.8 (-5.0)"}
    settings = {r.labels[0]: r.labels[1] for r in main.rows}
    assert settings["a"].startswith("1800 epochs, batch 64") and "none declared" in settings["b"]
    rank = {r.labels[0]: r.cells for r in ranks.rows}
    assert rank["a"] == ["1 / 3", "1.0 / 3.0"] and rank["c"] == ["3 / 2", "3.0 / 2.0"]
    assert "Kendall's tau" in ranks.caption and "-0.33" in ranks.caption
    f = main.frame.set_index("method")
    assert f.loc["a", "change"] == pytest.approx(20.0) and f.loc["c", "rank_common"] == 2
    # one trained model per set and protocol (b's shared job is listed under both protocols, still one model)
    assert "each seed the mean of 1 trained" in main.caption or "over 3 trained" in main.caption
    assert "of 2 trained" not in main.caption


def test_a_method_alone_in_its_column_has_no_rank():
    """A dataset entry only one method runs on (DM's ZCA space, say) ranks it against nothing: no rank there, and
    its mean rank is over the other columns."""
    df = _results()
    alone = df[df["distiller"] == "a"].assign(dataset="d_zca", accuracy=lambda t: t["accuracy"] - 50)
    main, ranks = fairness_tables(Inputs([], pd.concat([df, alone], ignore_index=True)), TableOptions())
    rank = {r.labels[0]: r.cells for r in ranks.rows}
    assert rank["a"] == ["1 / 3", None, "1.0 / 3.0"] and rank["b"] == ["2 / 1", None, "2.0 / 1.0"]
    assert "alone in its column, or without results under one of the two, has none" in ranks.caption
    f = main.frame.set_index(["method", "dataset"])
    assert pd.isna(f.loc[("a", "d_zca"), "rank_own"]) and f.loc[("a", "d_zca"), "own_mean"] == pytest.approx(31.0)


def test_the_change_is_over_the_sets_both_protocols_have():
    """A run in progress: method a's seed-2 set is evaluated under its own protocol only so far. The cell is over
    seeds 0 and 1 under both protocols (paired), not seeds 0-2 against 0-1, which read seed 2's better set as the
    protocol's effect."""
    df = _results()
    df.loc[(df["distiller"] == "a") & (df["seed"] == 2) & (df["protocol"] == "paper"), "accuracy"] = 90.0
    df = df[~((df["distiller"] == "a") & (df["seed"] == 2) & (df["protocol"] == "common"))]
    main, _ = fairness_tables(Inputs([], df), TableOptions())
    f = main.frame.set_index("method")
    assert f.loc["a", "change"] == pytest.approx(np.mean([80, 82]) - np.mean([60, 61]))
    assert f.loc["a", "own_n"] == 2 and f.loc["a", "common_n"] == 2 and f.loc["b", "own_n"] == 3
    assert "both sides are over the sets they share" in main.caption


def test_one_protocol_gives_no_fairness_table():
    df = _results()
    assert fairness_tables(Inputs([], df[df["protocol"] == "common"]), TableOptions()) == []
    assert default_view(Inputs([], df.drop(columns="protocol"))) == ({}, [])


def test_dc_protocol_follows_the_network_not_its_name(tmp_path):
    """DC's rule (1000 epochs with crop_noise for ConvNetBN) applies to convnet with norm: batchnorm, the same
    network as convnet_bn, and not to convnet_bn with its norm set back to instance norm."""
    p = tmp_path / "bn.yaml"
    p.write_text(PROTO_SUITE.format(protocol="paper", out=tmp_path / "out")
                 .replace("models: [{name: convnet, options: {width: 8, depth: 1}}]",
                          "models: [{name: convnet, options: {width: 8, depth: 1, norm: batchnorm}, label: a},\n"
                          "         {name: convnet_bn, options: {width: 8, depth: 1}, label: b},\n"
                          "         {name: convnet, options: {width: 8, depth: 1}, label: c},\n"
                          "         {name: convnet_bn, options: {width: 8, depth: 1, norm: instancenorm}, label: d}]"))
    graph = build_graph(preflight(load_suite(p)), ResultsStore(tmp_path / "out"))
    rows = pd.DataFrame([r for _, r in graph.rows])
    dc = rows[rows["distiller"] == "dc"].set_index("model")
    assert dc.loc["a", "epochs"] == dc.loc["b", "epochs"] == 1000
    assert dc.loc["a", "augment"] == dc.loc["b", "augment"] == "dc"
    assert (dc.loc["c", "epochs"], dc.loc["c", "augment"]) == (300, "none")
    assert (dc.loc["d", "epochs"], dc.loc["d", "augment"]) == (300, "none")
    jobs = {j.key: j for j in graph.evaluate}
    a, b = (jobs[k] for k, r in graph.rows if r["distiller"] == "dc" and r["model"] in ("a", "b"))
    assert a.train["dc_strategy"] == b.train["dc_strategy"] == "crop_noise"


def test_whitened_data_is_keyed_by_what_it_was_whitened_from_not_by_its_rounding(monkeypatch):
    """The ZCA fit's float rounding depends on the thread count and the CPU (a 3,072-dimensional eigendecomposition
    on CIFAR): the fingerprint, and so every set's key, of whitened data comes from the unwhitened data and the
    ZCA settings, so a run with other workers or on another machine finds the sets a first one made."""
    import torch

    from atombench import factories

    def load(zca, eps=0.1):
        factories._DATA_CACHE.clear()
        return factories.load_dataset("digits", {}, zca, eps)

    a = load("unit_interval")
    original = ZCA.__call__
    monkeypatch.setattr(ZCA, "__call__", lambda self, x, batch=4096: torch.nextafter(original(self, x, batch),
                                                                                     torch.tensor(float("inf"))))
    b = load("unit_interval")  # every whitened value one ulp away: another machine's rounding
    assert not torch.equal(a.train_x, b.train_x) and a.fingerprint == b.fingerprint
    monkeypatch.undo()
    prints = {load(None).fingerprint, a.fingerprint, load("normalised").fingerprint, load("unit_interval", 0.2).fingerprint}
    assert len(prints) == 4  # the space and eps still tell sets apart, and from the unwhitened data's
    factories._DATA_CACHE.clear()


def test_a_fitted_whitening_is_kept_on_disk_and_reused(tmp_path, monkeypatch):
    """Every worker of a run used to fit the same ZCA again (about 35 s of one core on CIFAR), each with its own
    rounding: the fit is now written once under the cache, keyed like the whitened data, and read by the others; a
    damaged file or one of other settings is fitted again."""
    import torch

    from atombench import factories
    from atombench.data import zca as zca_mod

    monkeypatch.setenv("ATOMBENCH_CACHE", str(tmp_path))
    fits = []
    real_fit = ZCA.fit.__func__
    monkeypatch.setattr(ZCA, "fit", classmethod(lambda cls, *a, **k: fits.append(a[2:3]) or real_fit(cls, *a, **k)))

    def load(kind="unit_interval", eps=0.1):
        factories._DATA_CACHE.clear()  # a new process: only the disk remembers
        return factories.load_dataset("digits", {}, kind, eps)

    a = load()
    path = tmp_path / "zca" / f"{a.fingerprint}.v{zca_mod.FIT_VERSION}.pt"
    assert len(fits) == 1 and path.is_file()
    b = load()
    assert len(fits) == 1  # read, not fitted
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.zca.inverse_transform, b.zca.inverse_transform)
    assert torch.equal(a.zca.scale, b.zca.scale)  # unit_interval's de-normalisation travels with it
    load("normalised"), load("unit_interval", 0.2)
    assert len(fits) == 3 and len(list((tmp_path / "zca").glob("*.pt"))) == 3  # other settings, other files
    path.write_bytes(b"not a tensor file")
    c = load()
    assert len(fits) == 4 and torch.allclose(c.train_x, a.train_x) and path.stat().st_size > 1000  # replaced
    # a file under the key that does not fit the data (another dimension) is not used either
    other = zca_mod.fit_cached("k", torch.randn(20, 1, 2, 2), directory=tmp_path)
    again = zca_mod.fit_cached("k", torch.randn(20, 1, 3, 3), directory=tmp_path)
    assert other.transform.shape == (4, 4) and again.transform.shape == (9, 9)
    # nor one fitted on other data under the same key (the fingerprint samples the data; the mean reads it all)
    x = torch.randn(50, 1, 3, 3)
    first = zca_mod.fit_cached("k", x, directory=tmp_path)
    assert torch.equal(zca_mod.fit_cached("k", x, directory=tmp_path).transform, first.transform)
    y = x.clone()
    y[7, 0, 1, 1] += 1.0  # one pixel of one image
    assert not torch.allclose(zca_mod.fit_cached("k", y, directory=tmp_path).mean, first.mean)
    # an unwritable folder costs the time only, and leaves no temporary file
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert zca_mod.fit_cached("k", x, directory=blocker / "sub").transform.shape == (9, 9)
    assert not list(tmp_path.rglob("*.tmp"))
    factories._DATA_CACHE.clear()


def test_the_search_view_of_whitened_data_is_identified_by_its_source_not_its_floats():
    """The architecture search's view of a ZCA-whitened dataset: its fingerprint (so its keys) comes from the data
    it was whitened from and the split, not from whitened pixels that round with the thread count."""
    import dataclasses

    from atombench.data.views import selection_view
    from atombench.factories import load_dataset

    data = load_dataset("digits", {}, "normalised")
    view = selection_view(data, 0.1, 0)
    nudged = dataclasses.replace(data, train_x=data.train_x + 1e-6)  # another rounding of the same whitening
    nudged.__dict__["fingerprint"] = data.fingerprint
    assert selection_view(nudged, 0.1, 0).fingerprint == view.fingerprint
    assert selection_view(data, 0.2, 0).fingerprint != view.fingerprint != selection_view(data, 0.1, 1).fingerprint


def test_a_papers_protocol_keeps_its_momentum_decay_and_dsa_strategy_under_another_common_one():
    """A common protocol with momentum 0.5, no weight decay and DSA without cutout (an NCFM-like recipe) passed all
    three silently to every paper protocol; the papers' evaluate_synset hard-codes 0.9 / 5e-4 and DSA with
    cutout."""
    import dataclasses

    from atombench.train import TrainConfig

    ref = TrainConfig()
    common = {**dataclasses.asdict(ref), "momentum": 0.5, "weight_decay": 0.0,
              "dsa_strategy": "color_crop_flip_scale_rotate"}
    for name in ("dm", "datadam", "atom", "dsa"):
        got = resolve_train(common, make_distiller(name, {}).paper_protocol("cifar10", "convnet", 1))
        assert (got["momentum"], got["weight_decay"], got["dsa_strategy"]) == \
            (ref.momentum, ref.weight_decay, ref.dsa_strategy), name
    assert resolve_train(dataclasses.asdict(ref), make_distiller("dm", {}).paper_protocol("cifar10", "convnet", 1)) \
        == {**dataclasses.asdict(ref), **make_distiller("dm", {}).protocol.train_overrides()}  # defaults: as before
    own = Protocol(epochs=10, optimizer="adamw", lr=0.001, weight_decay=0.01, augment="dsa",
                   strategy="color_crop_flip_scale_rotate")
    got = resolve_train(common, own)
    assert got["momentum"] == 0.5 and got["dsa_strategy"] == "color_crop_flip_scale_rotate"  # AdamW: no momentum
