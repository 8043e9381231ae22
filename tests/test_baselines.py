"""The paper's other baselines: k-center and forgetting coresets, DC/DSA gradient matching, MTT.

Losses equal their formulas on hand-made inputs, gradients reach the synthetic images (and MTT's learnable step
size), the memory-saving MTT gradients equal the unrolled ones, expert trajectories and the trained coreset
network are reused (not retrained) on a second run, and every method runs through the runner at tiny settings.
"""

import pytest
import torch
import torch.nn.functional as F

from atombench import registry
from atombench.data.base import RealData
from atombench.distillers import coreset, mtt
from atombench.distillers.base import DistillContext
from atombench.distillers.gradient_matching import gradient_distance, layerwise_cosine_distance, loops_for
from atombench.runner import make_distiller
from atombench.train import TrainConfig, train_model

TINY_NET = {"width": 8, "depth": 2}
TINY_MTT = {"net_options": TINY_NET, "num_experts": 2, "expert_train_epochs": 3, "max_start_epoch": 1,
            "expert_epochs": 2, "syn_steps": 3, "iterations": 2, "expert_batch": 32}


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(4).repeat_interleave(12)
    x = torch.randn(48, 1, 8, 8, generator=g) + y.view(-1, 1, 1, 1).float()
    return RealData("toy", x, y, x[:8], y[:8], list("abcd"), [0.0], [1.0], tags={"digits": True})


def ctx(seed=0, cache=None):
    return DistillContext("cpu", seed=seed, show_progress=False, cache_dir=cache)


# -- registration ----------------------------------------------------------------------------------------------
def test_registered_with_their_evaluation_augmentation():
    names = registry.distillers.names()
    for name in ("kcenter", "forgetting", "dc", "dsa", "mtt"):
        assert name in names
    dsa_eval = {n: registry.distillers.get(n).eval_with_dsa for n in ("kcenter", "forgetting", "dc", "dsa", "mtt")}
    assert dsa_eval == {"kcenter": False, "forgetting": False, "dc": False, "dsa": True, "mtt": True}
    assert make_distiller("dc", {}).config.init == "noise" and not make_distiller("dc", {}).config.dsa
    assert make_distiller("dsa", {}).config.init == "real" and make_distiller("dsa", {}).config.dsa


# -- DC / DSA ----------------------------------------------------------------------------------------------------
def test_gradient_distance_equals_the_formula():
    gs = [torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([1.0, 2.0])]
    gr = [torch.tensor([[3.0, 0.0], [1.0, 0.0]]), torch.tensor([3.0, 5.0])]
    # row 0 parallel (cos 1), row 1 orthogonal (cos 0); the bias contributes 0
    expect = (1 - 3 / (1 * 3 + 1e-6)) + (1 - 0 / (2 * 1 + 1e-6))
    assert float(gradient_distance(gs, gr, "ours")) == pytest.approx(expect, abs=1e-6)
    assert float(layerwise_cosine_distance(gs[1], gr[1])) == 0.0
    # a conv gradient [out, in, h, w] is compared per output unit
    conv_s, conv_r = torch.randn(3, 2, 3, 3), torch.randn(3, 2, 3, 3)
    rows = F.cosine_similarity(conv_s.flatten(1), conv_r.flatten(1), dim=1, eps=0)
    assert float(layerwise_cosine_distance(conv_s, conv_r)) == pytest.approx(float((1 - rows).sum()), abs=1e-4)
    vs, vr = torch.cat([g.flatten() for g in gs]), torch.cat([g.flatten() for g in gr])
    assert float(gradient_distance(gs, gr, "mse")) == pytest.approx(float(((vs - vr) ** 2).sum()))
    cos = float((vs @ vr) / (vs.norm() * vr.norm() + 1e-6))
    assert float(gradient_distance(gs, gr, "cos")) == pytest.approx(1 - cos, abs=1e-6)


def test_dc_loops_per_ipc():
    assert loops_for(1) == (1, 1, 1) and loops_for(10) == (10, 50, 10) and loops_for(50) == (50, 10, 50)
    assert loops_for(20)[:2] == (20, 25) and loops_for(30)[:2] == (30, 20) and loops_for(40)[:2] == (40, 15)
    assert loops_for(2) == (1, 1, 1) and loops_for(15) == (10, 50, 10) and loops_for(100) == (50, 10, 50)


@pytest.mark.parametrize("method", ["dc", "dsa"])
def test_gradient_matching_reaches_the_synthetic_images(method, data):
    from atombench.augment import DSA

    d = make_distiller(method, {"net_options": TINY_NET})
    c = ctx()
    net = c.fresh_net("convnet", TINY_NET, data, frozen=False)
    real = [data.train_x[data.train_y == k][:6] for k in range(4)]
    syn = torch.randn(8, 1, 8, 8).requires_grad_(True)
    dsa = DSA(digits=True) if method == "dsa" else None
    loss = d.outer_loss(net, syn, real, [1, 2, 3, 4] if dsa else None, dsa)
    # the hand computation for class 0 only
    params = list(net.parameters())
    gr = torch.autograd.grad(F.cross_entropy(net(real[0] if not dsa else dsa.siamese(real[0], [1])),
                                             torch.zeros(6, dtype=torch.long)), params)
    xs = syn[:2] if not dsa else dsa.siamese(syn[:2], [1])
    gs = torch.autograd.grad(F.cross_entropy(net(xs), torch.zeros(2, dtype=torch.long)), params)
    assert float(d.class_loss(net, params, real[0] if not dsa else dsa.siamese(real[0], [1]), xs, 0).detach()) == \
        pytest.approx(float(gradient_distance(list(gs), list(gr))), rel=1e-5)
    loss.backward(inputs=[syn])
    assert syn.grad is not None and (syn.grad.abs().sum((1, 2, 3)) > 0).all()


def test_dc_freezes_batchnorm_statistics_on_real_images(data, monkeypatch):
    d = make_distiller("dc", {"net": "convnet_bn", "net_options": TINY_NET, "iterations": 1, "outer_loop": 2,
                              "inner_loop": 1, "batch_real": 4, "bn_images_per_class": 3})
    seen = []
    original = d.outer_loss

    def spy(net, syn, real, seeds, dsa):
        bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        seen.append((all(not m.training for m in bns), float(bns[0].running_mean.abs().sum())))
        return original(net, syn, real, seeds, dsa)

    monkeypatch.setattr(d, "outer_loss", spy)
    out = d.run(data, 2, ctx())
    assert len(seen) == 2 and all(frozen and moved > 0 for frozen, moved in seen)
    assert out.meta["outer_loop"] == 2 and out.meta["inner_loop"] == 1


@pytest.mark.parametrize("method", ["dc", "dsa"])
def test_gradient_matching_improves_its_objective_on_a_fixed_network(method, data):
    d = make_distiller(method, {"net_options": TINY_NET, "dsa": False})
    net = ctx().fresh_net("convnet", TINY_NET, data, frozen=False)
    real = [data.train_x[data.train_y == k][:12] for k in range(4)]
    syn = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    opt = torch.optim.SGD([syn], lr=0.1, momentum=0.5)
    losses = []
    for _ in range(40):
        loss = d.outer_loss(net, syn, real, None, None)
        opt.zero_grad()
        loss.backward(inputs=[syn])
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0], losses


# -- MTT ---------------------------------------------------------------------------------------------------------
def test_trajectory_loss_equals_the_formula():
    end, start, target = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0]), torch.tensor([2.0, 2.0])
    assert float(mtt.trajectory_loss(end, start, target)) == pytest.approx(1.0 / 8.0)


def test_one_student_step_is_sgd_with_the_learnable_step_size():
    torch.manual_seed(0)
    model = mtt.FlatModel(torch.nn.Linear(3, 2))
    start, target = torch.randn(model.num_params), torch.randn(model.num_params)
    syn = torch.randn(4, 3).requires_grad_(True)
    y = torch.tensor([0, 1, 0, 1])
    lr = torch.tensor(0.5, requires_grad=True)
    loss, g_syn, g_lr = mtt.matching_gradients(model, start, target, syn, y, lr, [mtt.Step(torch.arange(4), 0)],
                                               None)
    w, b = start[:6].view(2, 3), start[6:]
    p = torch.softmax(syn.detach() @ w.T + b, 1) - F.one_hot(y, 2).float()  # dCE/dlogits * batch size
    grad = torch.cat([(p.T @ syn.detach() / 4).reshape(-1), p.mean(0)])
    end = start - 0.5 * grad
    assert loss == pytest.approx(float(((end - target) ** 2).sum() / ((start - target) ** 2).sum()), rel=1e-5)
    # dL/dalpha = <dL/d end, -grad>
    expect_lr = float((2 * (end - target) / ((start - target) ** 2).sum() * -grad).sum())
    assert float(g_lr) == pytest.approx(expect_lr, rel=1e-4)
    assert g_syn.abs().sum() > 0


def _mtt_case(data, steps=3):
    from atombench.augment import DSA

    torch.manual_seed(0)
    net = mtt.build_net("convnet", TINY_NET, data, 0)
    model = mtt.FlatModel(net)
    start = model.flat()
    target = start + 0.01 * torch.randn_like(start)
    syn = data.train_x[::6][:8].clone().requires_grad_(True)
    y = torch.arange(4).repeat_interleave(2)
    lr = torch.tensor(0.01, requires_grad=True)
    plan = [mtt.Step(torch.randperm(8, generator=torch.Generator().manual_seed(i))[:6], 100 + i)
            for i in range(steps)]
    return model, start, target, syn, y, lr, plan, DSA(digits=True)


def test_gradients_reach_images_and_step_size_in_every_memory_mode(data):
    for mode in ("unrolled", "checkpoint", "tesla"):
        model, start, target, syn, y, lr, plan, dsa = _mtt_case(data)
        loss, g_syn, g_lr = mtt.matching_gradients(model, start, target, syn, y, lr, plan, dsa, mode)
        assert loss > 0 and g_syn.abs().sum() > 0 and float(g_lr) != 0, mode


def test_checkpointed_gradients_equal_the_unrolled_ones(data):
    out = {}
    for mode in ("unrolled", "checkpoint"):
        model, start, target, syn, y, lr, plan, dsa = _mtt_case(data)
        out[mode] = mtt.matching_gradients(model, start, target, syn, y, lr, plan, dsa, mode)
    (l1, s1, r1), (l2, s2, r2) = out["unrolled"], out["checkpoint"]
    assert l1 == pytest.approx(l2, rel=1e-5)
    assert torch.allclose(s1, s2, rtol=1e-4, atol=1e-6 * float(s1.abs().max()))
    assert float(r1) == pytest.approx(float(r2), rel=1e-4)


def test_tesla_equals_unrolled_for_one_step(data):
    out = {}
    for mode in ("unrolled", "tesla"):
        model, start, target, syn, y, lr, plan, dsa = _mtt_case(data, steps=1)
        out[mode] = mtt.matching_gradients(model, start, target, syn, y, lr, plan, dsa, mode)
    (l1, s1, r1), (l2, s2, r2) = out["unrolled"], out["tesla"]
    assert l1 == pytest.approx(l2, rel=1e-5)
    assert torch.allclose(s1, s2, rtol=1e-4, atol=1e-6 * float(s1.abs().max()))
    assert float(r1) == pytest.approx(float(r2), rel=1e-4)


def test_presets_and_overrides(data):
    key, row = mtt.preset_for("cifar100", 1)  # the MTT readme's command
    assert key == ("cifar100", 1) and (row["syn_steps"], row["expert_epochs"], row["max_start_epoch"]) == (20, 3, 20)
    assert (row["lr_img"], row["lr_lr"], row["lr_teacher"]) == (1000.0, 1e-5, 0.01)
    assert mtt.preset_for("fashion_mnist", 1)[0] == ("cifar10", 1)
    assert mtt.preset_for("cifar10", 20)[0] == ("cifar10", 10)
    assert mtt.preset_for("tiny_imagenet", 10)[1]["net"] == "convnet_d4"
    d = make_distiller("mtt", {"syn_steps": 7})
    s, _ = d.resolved(data, 1)
    assert s["syn_steps"] == 7 and s["expert_epochs"] == 2 and s["net"] == "convnet"


def test_expert_trajectories_are_reused_not_retrained(data, tmp_path, monkeypatch):
    first = make_distiller("mtt", TINY_MTT).run(data, 1, ctx(0, tmp_path))
    assert first.meta["experts_trained_now"] == 2
    files = sorted((tmp_path / "mtt_experts").rglob("expert_*.safetensors"))
    assert len(files) == 2 and not list(tmp_path.rglob("*.partial.*"))

    def no_training(self, i):
        raise AssertionError("an expert was retrained")

    monkeypatch.setattr(mtt.ExpertStore, "_train", no_training)
    again = make_distiller("mtt", TINY_MTT).run(data, 2, ctx(1, tmp_path))  # another IPC and seed
    assert again.meta["experts_trained_now"] == 0 and again.meta["experts_key"] == first.meta["experts_key"]
    assert again.meta["syn_lr"] > 0


def test_an_interrupted_expert_resumes_where_it_stopped(data, tmp_path, monkeypatch):
    cfg = make_distiller("mtt", {**TINY_MTT, "expert_momentum": 0.9}).config
    spec = mtt.ExpertSpec.from_config(cfg, "convnet")
    full = mtt.ExpertStore(data, spec, None, torch.device("cpu"))
    full.ensure(1)
    reference = full.trajectory(0, 0, 4)

    calls = {"n": 0}
    step = torch.optim.SGD.step

    def dying_step(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] > 3:  # 2 batches per epoch: dies during the second epoch
            raise KeyboardInterrupt
        return step(self, *a, **kw)

    store = mtt.ExpertStore(data, spec, tmp_path, torch.device("cpu"))
    monkeypatch.setattr(torch.optim.SGD, "step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        store.ensure(1)
    monkeypatch.setattr(torch.optim.SGD, "step", step)
    assert list(tmp_path.rglob("*.partial.safetensors")) and not store.has(0)
    resumed = mtt.ExpertStore(data, spec, tmp_path, torch.device("cpu"))
    resumed.ensure(1)
    assert resumed.resumed == 1 and not list(tmp_path.rglob("*.partial.safetensors"))
    assert torch.allclose(resumed.trajectory(0, 0, 4), reference, atol=1e-6)


def test_mtt_refuses_start_epochs_beyond_the_experts(data):
    from atombench.errors import UsageError

    with pytest.raises(UsageError, match="exceed expert_train_epochs"):
        make_distiller("mtt", {**TINY_MTT, "max_start_epoch": 3}).run(data, 1, ctx())


# -- coresets ----------------------------------------------------------------------------------------------------
def test_k_center_is_greedy_farthest_point():
    pts = torch.tensor([[0.0], [1.0], [10.0], [4.0], [6.0]])
    # from 0: farthest 10; then the point farthest from {0, 10}: 4 or 6 (distance 4) -> the first, 4
    assert coreset.k_center(pts, 3, 0).tolist() == [0, 2, 3]
    assert coreset.k_center(pts, 9, 0).sort().values.tolist() == [0, 1, 2, 3, 4]


def test_kcenter_at_ipc_1_is_herdings_first_pick(data):
    cfg = {"features": "pixels"}
    h = make_distiller("herding", cfg).run(data, 1, ctx())
    k = make_distiller("kcenter", cfg).run(data, 1, ctx())
    assert h.meta["indices"] == k.meta["indices"]
    k3 = make_distiller("kcenter", cfg).run(data, 3, ctx())
    assert len(set(k3.meta["indices"])) == 12


def test_forgetting_order_and_counts():
    events = torch.tensor([0, 3, 1, 3, 0])
    learned = torch.tensor([True, True, True, False, True])
    order = coreset.forgetting_order(events, learned, "first", torch.Generator().manual_seed(0))
    assert order[:3].tolist() == [3, 1, 2] and set(order[3:].tolist()) == {0, 4}
    order = coreset.forgetting_order(events, learned, "last", torch.Generator().manual_seed(0))
    assert order[0] == 1 and order[-1] == 3


def test_forgetting_training_equals_the_protocol_and_counts_events(data):
    cfg = TrainConfig(epochs=3, batch_size=16, augment="none")
    torch.manual_seed(0)
    a = mtt.build_net("convnet", TINY_NET, data, 0)
    b = mtt.build_net("convnet", TINY_NET, data, 0)
    train_model(a, data.train_x, data.train_y, cfg, torch.Generator().manual_seed(1))
    events, learned = coreset.train_tracking_forgetting(b, data.train_x, data.train_y, cfg,
                                                        torch.Generator().manual_seed(1))
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert events.shape == (48,) and (events >= 0).all() and events.max() <= 3 and learned.any()
    # an event needs a correct presentation before it
    assert not (events[~learned] > 0).any()


def test_trained_network_is_cached_and_shared(data, tmp_path, monkeypatch):
    cfg = {"train_epochs": 1, "batch_size": 16, "net_options": TINY_NET}
    coreset._MEMO.clear()
    h = make_distiller("herding", cfg).run(data, 2, ctx(0, tmp_path))
    files = list((tmp_path / "trained_nets").glob("*.safetensors"))
    assert len(files) == 1 and h.meta["trained_net_reused"] is False

    def no_training(*a, **kw):
        raise AssertionError("the network was retrained")

    monkeypatch.setattr(coreset, "_train", no_training)
    coreset._MEMO.clear()
    coreset._FEATURES.clear()
    k = make_distiller("kcenter", cfg).run(data, 2, ctx(0, tmp_path))  # read back from the file
    f = make_distiller("forgetting", cfg).run(data, 2, ctx(0, tmp_path))
    assert k.meta["trained_net_reused"] and f.meta["trained_net_reused"]
    assert k.meta["trained_net_key"] == h.meta["trained_net_key"] == f.meta["trained_net_key"]
    # features from the cached weights equal the ones the trained network gave
    coreset._FEATURES.clear()
    h2 = make_distiller("herding", cfg).run(data, 2, ctx(0, tmp_path))
    assert h2.meta["indices"] == h.meta["indices"]
    # a damaged file is retrained and replaced
    monkeypatch.undo()
    files[0].write_bytes(files[0].read_bytes()[:100])
    coreset._MEMO.clear()
    again = make_distiller("herding", cfg).run(data, 2, ctx(0, tmp_path))
    assert again.meta["trained_net_reused"] is False and again.meta["indices"] == h.meta["indices"]


def test_every_new_method_runs_through_the_runner(tmp_path):
    from atombench.runner import run_suite

    suite = tmp_path / "s.yaml"
    suite.write_text(f"""\
name: baselines_tiny
datasets: [{{name: digits}}]
ipc: [1]
distillers:
  - name: kcenter
    config: {{train_epochs: 1, net_options: {{width: 8, depth: 2}}}}
  - name: forgetting
    config: {{train_epochs: 1, net_options: {{width: 8, depth: 2}}}}
  - name: dc
    config: {{iterations: 2, batch_real: 16, net_options: {{width: 8, depth: 2}}}}
  - name: dsa
    config: {{iterations: 2, batch_real: 16, net_options: {{width: 8, depth: 2}}}}
  - name: mtt
    config: {{iterations: 2, num_experts: 1, expert_train_epochs: 2, max_start_epoch: 1, expert_epochs: 1,
             syn_steps: 2, net_options: {{width: 8, depth: 2}}}}
models: [{{name: convnet, options: {{width: 8, depth: 2}}}}]
eval: {{epochs: 2, batch_size: 64}}
execution: {{backend: sequential}}
device: cpu
output: {tmp_path / 'out'}
""")
    report = run_suite(suite, progress=False, echo=lambda *a: None)
    df = report.table
    assert set(df["distiller"]) == {"kcenter", "forgetting", "dc", "dsa", "mtt"} and (df["status"] == "ok").all()
    assert set(df.loc[df["distiller"].isin(["dsa", "mtt"]), "augment"]) == {"dsa"}
    assert set(df.loc[df["distiller"].isin(["dc", "kcenter"]), "augment"]) == {"none"}
    assert df["distill_time_s"].notna().all() and df["distill_peak_mem_mb"].notna().all()
    assert list((tmp_path / "out" / "cache" / "mtt_experts").rglob("expert_0000.safetensors"))
    assert list((tmp_path / "out" / "cache" / "trained_nets").glob("*.safetensors"))
