"""The NCFD against hand computations and its behaviour on known distributions (paper Eqs. 6-8)."""

from __future__ import annotations

import cmath
import math

import pytest
import torch

from atombench_ncfm.loss import amplitude_phase, cf_discrepancy, empirical_cf, ncfd


def test_a_quarter_turn_of_phase_by_hand():
    # one real feature 0 and one synthetic feature pi/2 at the frequency t = 1: Phi_real = 1, Phi_syn = j.
    # Both amplitudes are 1 (amplitude term 0); phase term 2 * (1 * 1 - (1 * 0 + 0 * 1)) = 2; sqrt(0.5 * 0 + 0.5 * 2) = 1
    real, syn, t = torch.tensor([[0.0]]), torch.tensor([[math.pi / 2]]), torch.tensor([[1.0]])
    rr, ri = empirical_cf(real, t)
    sr, si = empirical_cf(syn, t)
    assert (rr.item(), ri.item()) == pytest.approx((1.0, 0.0), abs=1e-7)
    assert (sr.item(), si.item()) == pytest.approx((0.0, 1.0), abs=1e-7)
    amp, phase = amplitude_phase(rr, ri, sr, si)
    assert amp.item() == pytest.approx(0.0, abs=1e-7) and phase.item() == pytest.approx(2.0, abs=1e-6)
    assert cf_discrepancy(rr, ri, sr, si, 0.5, 0.5, eps=0.0).item() == pytest.approx(1.0, abs=1e-6)


def test_a_cancelled_cf_by_hand():
    # real features {0, pi} at t = 1: Phi_real = (1 + (-1)) / 2 = 0; synthetic {0}: Phi_syn = 1.
    # amplitude (0 - 1)^2 = 1, phase 2 * (0 * 1 - 0) = 0 floored at eps; sqrt(0.5 * 1 + 0.5 * eps)
    real, syn, t = torch.tensor([[0.0], [math.pi]]), torch.tensor([[0.0]]), torch.tensor([[1.0]])
    rr, ri = empirical_cf(real, t)
    sr, si = empirical_cf(syn, t)
    assert cf_discrepancy(rr, ri, sr, si, 0.5, 0.5, eps=1e-12).item() == pytest.approx(math.sqrt(0.5), abs=1e-6)


def test_equal_weights_give_the_modulus_of_the_cf_difference():
    # Eq. 7: amplitude + phase = |Phi_x - Phi_y|^2, so alpha = beta = 1 (no floor) gives mean_t |Phi_x(t) - Phi_y(t)|,
    # computed here with Python's complex numbers, sample by sample
    g = torch.Generator().manual_seed(0)
    real, syn, t = torch.randn(5, 3, generator=g), torch.randn(4, 3, generator=g), torch.randn(6, 3, generator=g)
    expected = 0.0
    for m in range(len(t)):
        phi = [sum(cmath.exp(1j * float(x @ t[m])) for x in batch) / len(batch) for batch in (real, syn)]
        expected += abs(phi[0] - phi[1]) / len(t)
    got = ncfd(real, syn, t, alpha=1.0, beta=1.0, eps=0.0, normalise=False)
    assert got.item() == pytest.approx(expected, abs=1e-5)
    # and the code's scale multiplies it
    assert ncfd(real, syn, t, 1.0, 1.0, 0.0, normalise=False, scale=300.0).item() == pytest.approx(300 * expected,
                                                                                                   rel=1e-5)


def _sample(n=4000, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randn(256, d, generator=g)


def test_identical_distributions_give_zero():
    x, t = _sample()
    # 0 up to float32 rounding of |Phi|^2 - Re^2 - Im^2 (about 1e-5 here, against about 1 for a unit shift)
    assert ncfd(x, x.clone(), t, eps=0.0, normalise=False).item() == pytest.approx(0.0, abs=1e-4)
    # with the code's floor on the phase term: at least sqrt(beta * eps) per frequency, and no more than rounding
    floored = ncfd(x, x.clone(), t, eps=1e-12, normalise=False).item()
    assert math.sqrt(0.5 * 1e-12) * (1 - 1e-6) <= floored < 1e-4
    # in double precision the rounding is gone: exactly the floor
    xd, td = x.double(), t.double()
    assert ncfd(xd, xd.clone(), td, eps=0.0, normalise=False).item() == pytest.approx(0.0, abs=1e-7)
    assert ncfd(xd, xd.clone(), td, eps=1e-12, normalise=False).item() == pytest.approx(math.sqrt(0.5e-12), rel=1e-3)


def test_a_shift_of_the_mean_moves_the_loss_and_more_for_a_larger_shift():
    x, t = _sample()
    losses = [ncfd(x, x + shift, t, normalise=False).item() for shift in (0.0, 0.1, 0.5, 1.0)]
    assert losses[0] < 1e-3
    assert losses[0] < losses[1] < losses[2] < losses[3]


def test_a_change_of_spread_moves_the_loss_with_the_mean_unchanged():
    x, t = _sample()
    x = x - x.mean(0)
    losses = [ncfd(x, x * s, t, normalise=False).item() for s in (1.0, 1.2, 1.5, 2.0)]
    assert losses[0] < 1e-3 and losses[0] < losses[1] < losses[2] < losses[3]
    # the mean-embedding distance (DM's) does not see a pure change of spread
    assert ((x.mean(0) - (2 * x).mean(0)) ** 2).sum().item() < 1e-9


def test_the_phase_term_reacts_to_a_sign_flip_the_amplitude_term_does_not():
    # a skewed distribution and its mirror image: their CFs are complex conjugates (Phi_{-x}(t) = conj Phi_x(t)),
    # equal amplitudes, opposite phases
    g = torch.Generator().manual_seed(1)
    x = torch.empty(4000, 3).exponential_(generator=g)
    t = torch.randn(128, 3, generator=g)
    amplitude_only = ncfd(x, -x, t, alpha=1.0, beta=0.0, eps=0.0, normalise=False).item()
    phase_only = ncfd(x, -x, t, alpha=0.0, beta=1.0, eps=0.0, normalise=False).item()
    assert amplitude_only < 1e-5
    assert phase_only > 0.1
    # the mirror image of a symmetric distribution is the distribution itself: no phase difference
    sym = torch.cat([x, -x])
    assert ncfd(sym, -sym, t, alpha=0.0, beta=1.0, eps=0.0, normalise=False).item() < 1e-3


def test_minimising_the_loss_matches_the_mean_and_the_spread():
    # 20 synthetic points near 0, real N((1, -1), I): descending the NCFD moves their mean to (1, -1) and spreads
    # them to unit std (matching mean embeddings alone would pull them all to the mean)
    g = torch.Generator().manual_seed(2)
    real = torch.randn(2000, 2, generator=g) + torch.tensor([1.0, -1.0])
    syn = (0.1 * torch.randn(20, 2, generator=g)).requires_grad_(True)
    opt = torch.optim.SGD([syn], lr=2.0)
    t = torch.randn(512, 2, generator=g)
    first = ncfd(real, syn.detach(), t, normalise=False).item()
    for _ in range(200):
        loss = ncfd(real, syn, torch.randn(64, 2, generator=g), normalise=False)
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = syn.detach()
    assert (out.mean(0) - torch.tensor([1.0, -1.0])).abs().max() < 0.2
    assert (out.std(0) - 1.0).abs().max() < 0.2
    assert ncfd(real, out, t, normalise=False).item() < first / 3
