r"""The neural characteristic function discrepancy (NCFD) of NCFM, written from the paper's equations.

For features :math:`f(x) \in \mathbb{R}^D` and a frequency argument :math:`t \in \mathbb{R}^D` the empirical
characteristic function (CF) of a batch is :math:`\Phi(t) = \frac1N \sum_i e^{j \langle t, f(x_i) \rangle}`
(paper, Sec. 4.2.1, after Eq. 5): its real part is the batch mean of :math:`\cos \langle t, f \rangle`, its
imaginary part the mean of :math:`\sin \langle t, f \rangle`. Between the real CF :math:`\Phi_x` and the synthetic
:math:`\Phi_{\tilde x}`, Eq. 7 splits the squared modulus of the difference into

* amplitude: :math:`(|\Phi_x(t)| - |\Phi_{\tilde x}(t)|)^2`,
* phase: :math:`2 |\Phi_x(t)| |\Phi_{\tilde x}(t)| (1 - \cos(a_x(t) - a_{\tilde x}(t)))
  = 2 (|\Phi_x| |\Phi_{\tilde x}| - \mathrm{Re}\,\Phi_x \mathrm{Re}\,\Phi_{\tilde x}
  - \mathrm{Im}\,\Phi_x \mathrm{Im}\,\Phi_{\tilde x})`,

and Eq. 8 weighs them and averages the square root over the sampled frequencies:
:math:`\mathbb{E}_t \sqrt{\alpha \cdot \text{amplitude} + \beta \cdot \text{phase}}` (the paper writes
:math:`1 - \alpha` for the phase weight; the released code's ``alpha_for_loss``/``beta_for_loss`` are two weights,
0.5 and 0.5 in every config, the same thing at 0.5). The phase term is floored at ``eps`` before the square root,
as the released code does (``NCFM/NCFM.py``, ``clamp(min=1e-12)``): identical distributions then give
:math:`\sqrt{\beta \cdot \mathrm{eps}}` per frequency, not 0 (0 with ``eps=0``).

These functions take plain tensors: they are the hand-checkable core that ``atombench_ncfm.distiller`` calls and
``tests/test_loss.py`` checks.
"""

from __future__ import annotations

import torch


def cf_features(features: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Per-sample CF terms: ``features`` ``[N, D]``, ``freqs`` ``[M, D]`` -> ``[N, 2M]`` = ``[cos(f t), sin(f t)]``;
    their mean over the N samples is the empirical CF at the M frequencies (real parts, then imaginary parts)."""
    proj = features @ freqs.t()
    return torch.cat([proj.cos(), proj.sin()], dim=-1)


def empirical_cf(features: torch.Tensor, freqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The empirical characteristic function of ``features`` ``[N, D]`` at ``freqs`` ``[M, D]``: ``(real, imag)``,
    each ``[M]``."""
    m = freqs.shape[0]
    mean = cf_features(features, freqs).mean(0)
    return mean[:m], mean[m:]


def cf_discrepancy(real_re: torch.Tensor, real_im: torch.Tensor, syn_re: torch.Tensor, syn_im: torch.Tensor,
                   alpha: float = 0.5, beta: float = 0.5, eps: float = 1e-12) -> torch.Tensor:
    """Eq. 8 of the paper for CFs given as real and imaginary parts ``[..., M]``: the mean over the last axis (the
    frequencies) of ``sqrt(alpha * amplitude + beta * max(phase, eps))``; shape ``[...]``."""
    real_amp = torch.sqrt(real_re * real_re + real_im * real_im)
    syn_amp = torch.sqrt(syn_re * syn_re + syn_im * syn_im)
    amplitude = (real_amp - syn_amp) ** 2
    phase = 2 * (real_amp * syn_amp - real_re * syn_re - real_im * syn_im)
    phase = phase.clamp(min=eps)
    return torch.sqrt(alpha * amplitude + beta * phase).mean(-1)


def amplitude_phase(real_re: torch.Tensor, real_im: torch.Tensor, syn_re: torch.Tensor,
                    syn_im: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two terms of Eq. 7 (amplitude difference, phase difference) per frequency, unweighted and unfloored."""
    real_amp = torch.sqrt(real_re * real_re + real_im * real_im)
    syn_amp = torch.sqrt(syn_re * syn_re + syn_im * syn_im)
    return (real_amp - syn_amp) ** 2, 2 * (real_amp * syn_amp - real_re * syn_re - real_im * syn_im)


def ncfd(real_features: torch.Tensor, syn_features: torch.Tensor, freqs: torch.Tensor, alpha: float = 0.5,
         beta: float = 0.5, eps: float = 1e-12, normalise: bool = True, scale: float = 1.0) -> torch.Tensor:
    """The discrepancy between two feature batches ``[N1, D]`` and ``[N2, D]`` at ``freqs`` ``[M, D]``: features
    L2-normalised per sample first when ``normalise`` (the released code's ``match_loss``), times ``scale``
    (the code's 300)."""
    if normalise:
        real_features = torch.nn.functional.normalize(real_features, dim=1)
        syn_features = torch.nn.functional.normalize(syn_features, dim=1)
    rr, ri = empirical_cf(real_features, freqs)
    sr, si = empirical_cf(syn_features, freqs)
    return scale * cf_discrepancy(rr, ri, sr, si, alpha, beta, eps)
