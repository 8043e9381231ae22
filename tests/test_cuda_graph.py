"""``cuda_graph``: the fixed-shape distillation iteration (every draw on the device, the network re-initialised in
place). Its pieces are checked on the CPU against the default path's; the capture itself runs where CUDA is."""

import pytest
import torch

from atombench.augment import DSA, FixedDraw, _draw
from atombench.config import ConfigError
from atombench.data.base import ClassSampler
from atombench.distillers.base import DistillContext
from atombench.distillers.matching import reinit_reproduces_builder
from atombench.errors import AtombenchError
from atombench.models.base import reinitialise_
from atombench.factories import build_model, load_dataset, make_distiller


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", {"size": 8})


def _as_fixed(dsa: DSA, seeds: list[int], h: int, w: int) -> FixedDraw:
    """The seeded draws of :meth:`DSA.siamese` as a FixedDraw (families not chosen get random values)."""
    family, params = [], {f: {} for f in dsa.families}
    g = torch.Generator().manual_seed(0)
    filler = {f: _draw(f, len(seeds), h, w, dsa.params, g) for f in dsa.families}
    for i, s in enumerate(seeds):
        chosen, draw = dsa._seeded(s, h, w)
        family.append(dsa.families.index(chosen))
        for f in dsa.families:
            for name, v in filler[f].items():
                params[f].setdefault(name, v.clone())
        for name, value in draw.items():
            params[chosen][name][i] = value
    return FixedDraw(torch.tensor(family), params)


@pytest.mark.parametrize("digits_flag", [False, True])
def test_fixed_siamese_gives_the_seeded_siamese_images(digits_flag):
    dsa = DSA(digits=digits_flag)
    seeds = list(range(40, 52))  # twelve groups: every family appears
    x = torch.randn(12 * 3, 3, 16, 16, requires_grad=True)
    draw = _as_fixed(dsa, seeds, 16, 16)
    assert {dsa.families[int(i)] for i in draw.family} == set(dsa.families)
    fixed, seeded = dsa.siamese_fixed(x, draw), dsa.siamese(x, seeds)
    assert torch.allclose(fixed, seeded, atol=1e-6)
    # the gradient reaches the images through the chosen family only, as with the seeded call
    g1, = torch.autograd.grad(fixed.square().sum(), x)
    g2, = torch.autograd.grad(seeded.square().sum(), x)
    assert torch.allclose(g1, g2, atol=1e-5)
    # a class chunk of the real batch gets its classes' draws
    part = dsa.siamese_fixed(x[6:15], draw.groups(2, 5))
    assert torch.allclose(part, seeded[6:15], atol=1e-6)


def test_fixed_draws_cover_every_family_and_stay_on_the_device():
    dsa = DSA()
    torch.manual_seed(3)
    draw = dsa.draw_fixed(600, 32, 32, None)
    counts = torch.bincount(draw.family, minlength=len(dsa.families))
    assert (counts > 60).all()  # uniform over the six families (100 expected each)
    assert set(draw.params) == set(dsa.families) and all(len(v) == 600 for q in draw.params.values()
                                                         for v in q.values())
    with pytest.raises(ValueError, match="equal groups"):
        dsa.siamese_fixed(torch.randn(7, 3, 8, 8), dsa.draw_fixed(2, 8, 8, None))


def test_class_sampler_draws_distinct_indices_of_each_class():
    sizes = [5, 9, 7]
    labels = torch.cat([torch.full((s,), c) for c, s in enumerate(sizes)])[torch.randperm(sum(sizes))]
    classes = [torch.nonzero(labels == c).flatten() for c in range(3)]
    sample = ClassSampler(classes, 5, "cpu")
    seen = set()
    for _ in range(50):
        idx = sample().view(3, 5)
        for c in range(3):
            assert (labels[idx[c]] == c).all() and len(set(idx[c].tolist())) == 5
        seen.update(idx.flatten().tolist())
    assert seen == set(range(sum(sizes)))  # the padding is never drawn; every image is
    with pytest.raises(ValueError, match="smallest class has 5"):
        ClassSampler(classes, 6, "cpu")


@pytest.mark.parametrize("norm", ["instancenorm", "batchnorm", "layernorm", "none"])
def test_in_place_reinitialisation_reproduces_building_the_network(norm, digits):
    opts = {"width": 8, "norm": norm}
    assert reinit_reproduces_builder("convnet", opts, digits, seed=5)
    net = build_model("convnet", opts, digits, 1)
    where = [p.data_ptr() for p in net.state_dict().values()]
    before = [t.clone() for t in net.state_dict().values()]
    reinitialise_(net)
    assert [p.data_ptr() for p in net.state_dict().values()] == where
    assert any(not torch.equal(a, b) for a, b in zip(before, net.state_dict().values()))


def test_a_network_with_its_own_initialisation_is_refused():
    digits32 = load_dataset("digits", {"size": 32})
    assert reinit_reproduces_builder("resnet18", {}, digits32)  # the papers' ResNet-18: plain torch layers
    # timm's ResNet draws its convolutions with kaiming_normal_ (its own init_weights), not reset_parameters()
    assert not reinit_reproduces_builder("timm:resnet18", {}, digits32)
    d = make_distiller("dm", {"iterations": 2, "batch_real": 4, "cuda_graph": True, "net": "timm:resnet18"})
    with pytest.raises(AtombenchError, match="cuda_graph re-initialises the network in place.*cuda_graph: false"):
        d.run(digits32, 1, DistillContext("cpu", 0, False))


@pytest.mark.parametrize("bad, msg", [({"compile": "default"}, "compile: none"),
                                      ({"batched": False}, "batched: true")])
def test_cuda_graph_options_that_cannot_go_together(bad, msg):
    with pytest.raises(ConfigError, match=msg):
        make_distiller("atom", {"cuda_graph": True, **bad})


@pytest.mark.parametrize("name", ["dm", "datadam", "atom"])
def test_the_fixed_iteration_distils_and_resumes_exactly(name, digits, tmp_path):
    cfg = {"iterations": 8, "batch_real": 8, "cuda_graph": True}
    seen = {}
    full = make_distiller(name, cfg).run(digits, 2, DistillContext(
        "cpu", 7, False, cache_dir=tmp_path, snapshots=[4], on_snapshot=lambda i, s, st: seen.update({i: st})))
    again = make_distiller(name, cfg).run(digits, 2, DistillContext("cpu", 7, False, cache_dir=tmp_path))
    assert torch.equal(full.images, again.images)  # a function of the seed
    curve = [v for _, v in full.meta["loss_curve"]]
    assert len(curve) == 8 and curve[-1] < curve[0]
    resumed = make_distiller(name, cfg).run(digits, 2, DistillContext("cpu", 7, False, cache_dir=tmp_path,
                                                                      resume=seen[4]))
    assert resumed.meta["resumed_from_iteration"] == 4
    assert torch.allclose(resumed.images, full.images, atol=1e-6)
    assert [v for _, v in resumed.meta["loss_curve"]] == pytest.approx(curve)
    # another random stream than the default path's, so another synthetic set
    default = make_distiller(name, {**cfg, "cuda_graph": False}).run(digits, 2, DistillContext("cpu", 7, False))
    assert not torch.equal(default.images, full.images)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", ["dm", "atom"])
def test_the_captured_iteration_replays_on_cuda(name, digits, tmp_path):
    cfg = {"iterations": 12, "batch_real": 16, "cuda_graph": True, "net_options": {"width": 16}}
    seen = {}
    full = make_distiller(name, cfg).run(digits, 2, DistillContext(
        "cuda", 7, False, cache_dir=tmp_path, snapshots=[8], on_snapshot=lambda i, s, st: seen.update({i: st})))
    curve = [v for _, v in full.meta["loss_curve"]]
    assert len(curve) == 12 and all(torch.isfinite(torch.tensor(curve))) and len(set(curve)) == 12
    # replays continue the eager warm-up: the loss keeps falling as on the CPU
    assert sum(curve[-3:]) < sum(curve[:3])
    resumed = make_distiller(name, cfg).run(digits, 2, DistillContext("cuda", 7, False, cache_dir=tmp_path,
                                                                      resume=seen[8]))
    assert len(resumed.meta["loss_curve"]) == 12
    # the replays draw what eager iterations with the same seeds draw (torch.cuda.manual_seed between replays
    # takes effect), so a resumed run and an all-eager run give the captured run's images up to float rounding
    assert torch.allclose(resumed.images, full.images, atol=1e-4)
    eager = make_distiller(name, cfg)
    eager.GRAPH_WARMUP = cfg["iterations"]  # never captured
    alone = eager.run(digits, 2, DistillContext("cuda", 7, False))
    assert torch.allclose(alone.images, full.images, atol=1e-4)


def test_a_suite_with_a_network_cuda_graph_cannot_reinitialise_fails_before_any_work(tmp_path):
    from .conftest import run_cli

    suite = tmp_path / "bad.yaml"
    suite.write_text("name: bad\ndatasets:\n  - name: digits\n    options: {size: 32}\nipc: [1]\n"
                     "distillers:\n  - name: dm\n    config: {iterations: 2, cuda_graph: true, net: 'timm:resnet18'}\n"
                     "models: [convnet]\n")
    res = run_cli("run", str(suite), "--output", str(tmp_path / "out"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "distillers[0].config: dm on digits: cuda_graph re-initialises the network in place" in res.stderr
    assert not (tmp_path / "out").exists()
