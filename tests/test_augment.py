"""DSA: parameter values, siamese sharing, per-sample mode, gradients to the pixels, seeded reproducibility."""

import pytest
import torch

from atombench.augment import DSA, DSAParams, _apply, _draw, parse_strategy

FAMS = ["color", "crop", "cutout", "flip", "scale", "rotate"]


def test_strategy_and_digit_datasets_drop_flip():
    assert parse_strategy("color_crop_cutout_flip_scale_rotate") == tuple(FAMS)
    assert "flip" not in parse_strategy("color_crop_cutout_flip_scale_rotate", digits=True)
    with pytest.raises(ValueError, match="unknown DSA operation"):
        parse_strategy("color_blur")


def test_reference_parameter_values():
    p = DSAParams()
    assert (p.prob_flip, p.ratio_scale, p.ratio_rotate, p.ratio_crop_pad, p.ratio_cutout) == (0.5, 1.2, 15.0, 0.125, 0.5)
    assert (p.brightness, p.saturation, p.contrast) == (1.0, 2.0, 0.5)


@pytest.mark.parametrize("family", FAMS)
def test_siamese_gives_one_shared_transform(family):
    dsa = DSA(family)
    real, syn = torch.randn(6, 3, 16, 16), torch.randn(2, 3, 16, 16)
    # the same seed gives the same transform to the real and the synthetic batch: compare on identical images
    same = torch.randn(1, 3, 16, 16)
    a = dsa.siamese(same.repeat(6, 1, 1, 1), [7])
    b = dsa.siamese(same.repeat(2, 1, 1, 1), [7])
    assert torch.allclose(a, a[:1].expand_as(a)) and torch.allclose(a[:2], b)
    assert dsa.siamese(real, [7]).shape == real.shape and dsa.siamese(syn, [7]).shape == syn.shape
    # and it is a transform: over a few seeds, the images change at least once
    assert any(not torch.allclose(dsa.siamese(real, [s]), real) for s in range(10))


def test_grouped_siamese_equals_one_call_per_group():
    dsa = DSA()
    x = torch.randn(12, 3, 16, 16)
    seeds = [11, 12, 13, 14]
    together = dsa.siamese(x, seeds)
    apart = torch.cat([dsa.siamese(x[3 * i:3 * i + 3], [s]) for i, s in enumerate(seeds)])
    assert torch.allclose(together, apart, atol=1e-6)


def test_a_seeds_draw_is_remembered_and_gives_what_a_fresh_draw_gives(monkeypatch):
    import atombench.augment as augment

    calls = []
    real_draw = augment._draw
    monkeypatch.setattr(augment, "_draw", lambda *a, **kw: calls.append(a[0]) or real_draw(*a, **kw))
    dsa = DSA()
    seeds = list(range(40, 50))  # several families among ten seeds: the pieces are put back in place
    real, syn = torch.randn(30, 3, 16, 16), torch.randn(10, 3, 16, 16)
    assert len({dsa._seeded(s, 16, 16)[0] for s in seeds}) > 2
    calls.clear()
    a, b = dsa.siamese(real, seeds), dsa.siamese(syn, seeds)
    assert calls == []  # the synthetic batch (and the real one) reused the remembered draws
    fresh = torch.cat([DSA().siamese(real[3 * i:3 * i + 3], [s]) for i, s in enumerate(seeds)])
    assert torch.equal(a, fresh)
    assert torch.equal(b, torch.cat([DSA().siamese(syn[i:i + 1], [s]) for i, s in enumerate(seeds)]))
    # what is remembered is what the seed's generator draws
    g = torch.Generator().manual_seed(43)
    family = dsa.families[int(torch.randint(len(dsa.families), (1,), generator=g))]
    assert dsa._seeded(43, 16, 16) == (family, {k: v.item() for k, v in _draw(family, 1, 16, 16, dsa.params, g).items()})
    # gradients reach every image through the pieces put back in place
    x = real.clone().requires_grad_(True)
    dsa.siamese(x, seeds).square().sum().backward()
    assert (x.grad.flatten(1).abs().sum(1) > 0).all()
    dsa.SEED_MEMORY = 5
    for s in range(100, 120):
        dsa._seeded(s, 16, 16)
    assert len(dsa._seen) <= 5
    dsa.siamese(torch.randn(16, 3, 16, 16), list(range(200, 216)))  # more classes than the memory: all kept
    assert all((s, 16, 16) in dsa._seen for s in range(200, 216))


def test_seeds_not_the_clock():
    # two instances (one instance remembers its draws): the same seeds give the same images, other seeds others
    x = torch.randn(4, 3, 16, 16)
    first = DSA().siamese(x, [5, 6])
    assert torch.equal(first, DSA().siamese(x, [5, 6]))
    assert not torch.equal(first, DSA().siamese(x, [8, 9]))


@pytest.mark.parametrize("family", FAMS)
def test_gradients_reach_the_pixels(family):
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    g = torch.Generator().manual_seed(0)
    out = _apply(family, x, _draw(family, 4, 16, 16, DSAParams(), g), DSAParams())
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_per_sample_mode_varies_within_the_batch():
    dsa = DSA("rotate")
    same = torch.randn(1, 3, 16, 16).repeat(8, 1, 1, 1)
    out = dsa(same, torch.Generator().manual_seed(0))
    assert not torch.allclose(out[0], out[1])


def test_operations_follow_the_reference_formulas():
    p = DSAParams()
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    # brightness then saturation then contrast with known draws
    q = {"b": torch.tensor([0.75, 0.25]), "s": torch.tensor([0.5, 0.5]), "c": torch.tensor([0.5, 0.5])}
    y = x + (q["b"] - 0.5).view(-1, 1, 1, 1)
    m = y.mean(1, keepdim=True)
    y = (y - m) * 1.0 + m  # u * 2.0 = 1.0
    m = y.mean([1, 2, 3], keepdim=True)
    y = (y - m) * 1.0 + m  # u + 0.5 = 1.0
    assert torch.allclose(_apply("color", x, q, p), y)
    # crop: a shift of +1 row reads the next row; beyond the 1-pixel border, zeros
    out = _apply("crop", x, {"tx": torch.tensor([1, 2]), "ty": torch.tensor([0, 0])}, p)
    assert torch.equal(out[0, :, :7], x[0, :, 1:]) and torch.equal(out[0, :, 7], torch.zeros(3, 8))
    assert torch.equal(out[1, :, 7], torch.zeros(3, 8)) and torch.equal(out[1, :, 6], torch.zeros(3, 8))
    # cutout: a 4x4 square (0.5 * 8) of zeros
    out = _apply("cutout", x + 1, {"ox": torch.tensor([4, 0]), "oy": torch.tensor([4, 0])}, p)
    assert int((out[0, 0] == 0).sum()) == 16 and int((out[1, 0] == 0).sum()) == 4  # clamped at the corner
    # flip when u < 0.5
    out = _apply("flip", x, {"u": torch.tensor([0.1, 0.9])}, p)
    assert torch.equal(out[0], x[0].flip(2)) and torch.equal(out[1], x[1])


@pytest.mark.parametrize("digits", [False, True])
def test_many_models_augmented_at_once_get_what_one_call_each_gives(digits):
    dsa = DSA(digits=digits)
    x = torch.randn(9, 5, 3, 16, 16, requires_grad=True)
    together = dsa.many(x, [torch.Generator().manual_seed(30 + i) for i in range(9)])
    gens = [torch.Generator().manual_seed(30 + i) for i in range(9)]
    apart = torch.stack([dsa(x[i], g) for i, g in enumerate(gens)])
    assert torch.allclose(together, apart, atol=1e-6)
    # the generators are left where one call each leaves them
    after = [torch.Generator().manual_seed(30 + i) for i in range(9)]
    dsa.many(x.detach(), after)
    assert all(torch.equal(a.get_state(), b.get_state()) for a, b in zip(after, gens))
    # nine models draw several families, so the regrouping is exercised
    picks = {dsa._pick(torch.Generator().manual_seed(30 + i)) for i in range(9)}
    assert len(picks) > 1
    g1, = torch.autograd.grad(together.square().sum(), x)
    g2, = torch.autograd.grad(apart.square().sum(), x)
    assert torch.allclose(g1, g2, atol=1e-5)
