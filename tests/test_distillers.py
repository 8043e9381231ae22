"""DM, DataDAM and ATOM: losses equal their formulas, gradients reach the synthetic images, the batched
iteration equals the per-class reference, the objective decreases, seeded runs reproduce."""

import pytest
import torch

from atombench.data.base import RealData
from atombench.distillers.base import DistillContext
from atombench.distillers.matching import Stats, channel_attention, spatial_attention
from atombench.runner import make_distiller

METHODS = ["dm", "datadam", "atom"]
TINY_NET = {"width": 8, "depth": 3}


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(4).repeat_interleave(12)
    x = torch.randn(48, 1, 16, 16, generator=g) + y.view(-1, 1, 1, 1).float()
    return RealData("toy", x, y, x[:8], y[:8], list("abcd"), [0.0], [1.0], tags={"digits": True})


def test_attention_definitions():
    f = torch.randn(2, 3, 4, 5)
    s = spatial_attention(f, 4)
    c = channel_attention(f, 2)
    expect_s = (f.abs() ** 4).sum(1).flatten(1)
    expect_c = (f.abs() ** 2).sum((2, 3))
    assert torch.allclose(s, expect_s / expect_s.norm(dim=1, keepdim=True))
    assert torch.allclose(c, expect_c / expect_c.norm(dim=1, keepdim=True))
    assert s.shape == (2, 20) and c.shape == (2, 3)


def test_losses_equal_their_formulas():
    r = Stats([torch.ones(2, 4)], [torch.zeros(2, 3)], torch.zeros(2, 5))
    s = Stats([torch.zeros(2, 4)], [torch.ones(2, 3)], torch.ones(2, 5))
    assert float(make_distiller("dm", {}).loss_from_stats(r, s)) == pytest.approx(10.0)
    # DataDAM: 100 * spatial (8) + 100 * 0.01 * embedding (10)
    assert float(make_distiller("datadam", {}).loss_from_stats(r, s)) == pytest.approx(800 + 10)
    atom = make_distiller("atom", {"spatial_weight": 0.5, "channel_weight": 2.0})
    # ATOM: 100 * (0.5 * 8 + 2 * 6) + 100 * 0.01 * 10
    assert float(atom.loss_from_stats(r, s)) == pytest.approx(1600 + 10)
    only_c = make_distiller("atom", {"attention": "channel"})
    assert not only_c.uses_spatial and only_c.uses_channel


def test_datadam_layers_default_to_all_but_last(data):
    d = make_distiller("datadam", {})
    assert d.layers(3) == [0, 1]
    d = make_distiller("datadam", {"layers": [2]})
    assert d.layers(3) == [2]


def _setup(method, data, **cfg):
    d = make_distiller(method, {"net_options": TINY_NET, "batch_real": 6, **cfg})
    ctx = DistillContext("cpu", seed=3, show_progress=False)
    net = ctx.fresh_net("convnet", TINY_NET, data)
    real = torch.cat([data.train_x[data.train_y == c][:6] for c in range(4)])
    syn = torch.cat([data.train_x[data.train_y == c][6:8] for c in range(4)]).clone().requires_grad_(True)
    return d, net, real, syn


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dsa", [False, True])
@pytest.mark.parametrize("chunk", [12, 4])  # chunks of two classes; pieces smaller than a class (6 images)
def test_batched_loss_equals_per_class_reference(method, data, dsa, chunk):
    from atombench.augment import DSA

    aug = DSA(digits=True) if dsa else None
    d, net, real, syn = _setup(method, data, real_chunk=chunk)
    seeds = [1, 2, 3, 4]
    batched = d.iteration_loss(net, real, syn, 4, seeds, aug)
    d.config.batched = False
    loop = d.iteration_loss(net, real, syn, 4, seeds, aug)
    assert torch.allclose(batched, loop, rtol=1e-5, atol=1e-6)
    g1, = torch.autograd.grad(batched, syn)
    g2, = torch.autograd.grad(d.iteration_loss(net, real, syn, 4, seeds, aug), syn)
    assert torch.allclose(g1, g2, rtol=1e-4, atol=1e-5 * float(g1.abs().max()))


@pytest.mark.parametrize("method", METHODS)
def test_real_bf16_and_channels_last_stay_close(method, data):
    """The speed-up options: bf16 autocast of the real forward changes the matched statistics at bf16 precision
    only; channels_last is a memory layout (the same loss)."""
    d, net, real, syn = _setup(method, data)
    base = d.iteration_loss(net, real, syn, 4, [1, 2, 3, 4], None)
    d.config.real_amp = "bf16"
    amp = d.iteration_loss(net, real, syn, 4, [1, 2, 3, 4], None)
    assert torch.allclose(amp, base, rtol=0.05), (float(amp), float(base))
    assert not torch.equal(amp, base), "real_amp: bf16 changed nothing (was it applied?)"
    d.config.real_amp = "none"
    cl = net.to(memory_format=torch.channels_last)
    last = d.iteration_loss(cl, real.contiguous(memory_format=torch.channels_last), syn, 4, [1, 2, 3, 4], None)
    assert torch.allclose(last, base, rtol=1e-4)


@pytest.mark.parametrize("method", METHODS)
def test_gradient_reaches_the_synthetic_images(method, data):
    from atombench.augment import DSA

    d, net, real, syn = _setup(method, data)
    loss = d.iteration_loss(net, real, syn, 4, [1, 2, 3, 4], DSA(digits=True))
    loss.backward()
    assert syn.grad is not None and syn.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())  # the network is frozen


@pytest.mark.parametrize("method", METHODS + ["atom_channel"])
def test_each_distiller_improves_its_own_objective(method, data):
    extra = {"attention": "channel"} if method == "atom_channel" else {}
    d = make_distiller(method.split("_")[0], {"net_options": TINY_NET, "batch_real": 12, "iterations": 30,
                                              "dsa": False, **extra})
    # a fixed network and real batch isolate the objective from the per-iteration resampling
    ctx = DistillContext("cpu", seed=0, show_progress=False)
    net = ctx.fresh_net("convnet", TINY_NET, data)
    real = torch.cat([data.train_x[data.train_y == c][:12] for c in range(4)])
    syn = torch.randn(8, 1, 16, 16, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    opt = torch.optim.SGD([syn], lr=0.1, momentum=0.5)  # attention power 1 (the default): DM-sized gradients
    losses = []
    for _ in range(30):
        loss = d.iteration_loss(net, real, syn, 4, [0] * 4, None)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("method", METHODS)
def test_seeded_runs_reproduce_on_cpu(method, data):
    cfg = {"net_options": TINY_NET, "batch_real": 6, "iterations": 3}
    a = make_distiller(method, cfg).run(data, 2, DistillContext("cpu", seed=5, show_progress=False))
    b = make_distiller(method, cfg).run(data, 2, DistillContext("cpu", seed=5, show_progress=False))
    c = make_distiller(method, cfg).run(data, 2, DistillContext("cpu", seed=6, show_progress=False))
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert len(a.meta["loss_curve"]) == 3 and a.meta["lr_img"] == 1.0


def test_nan_loss_stops_with_a_clear_error(data):
    from atombench.distillers.base import DistillationDiverged

    d = make_distiller("dm", {"net_options": TINY_NET, "batch_real": 6, "iterations": 3, "lr_img": 1e30})
    with pytest.raises(DistillationDiverged, match=r"dm: the distillation loss became .* at iteration \d+; lower"):
        d.run(data, 2, DistillContext("cpu", seed=0, show_progress=False))


def test_zca_whitens_and_inverts():
    from atombench.data.zca import ZCA

    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 2, 3, 3, generator=g) @ torch.randn(3, 3, generator=g)
    z = ZCA.fit(x, eps=1e-6)
    w = z(x).reshape(500, -1)
    cov = torch.cov(w.T)
    assert torch.allclose(cov, torch.eye(18), atol=2e-2)
    assert torch.allclose(z.inverse(z(x)), x, atol=1e-3)
    assert ZCA.fit(x).eps == 0.1
