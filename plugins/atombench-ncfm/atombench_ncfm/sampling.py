"""NCFM's sampling network psi (paper Sec. 4.2.2 and Fig. 4; released code ``NCFM/SampleNet.py``), written anew.

The frequency arguments t are drawn from a scale mixture of normals: ``components`` Gaussian noise vectors of the
feature dimension D (variance ``noise_var``) go through three fully connected layers of width D, each followed by
1-D batch normalisation and an activation (LeakyReLU 0.2, LeakyReLU 0.2, tanh). The released code then repeats the
``components`` outputs to ``frequencies`` rows (``frequencies // components`` copies of each); a repeated row adds
the same term to the mean over frequencies, so the loss is the same with the distinct rows alone, which is what
:meth:`SamplingNet.forward` returns (the number of distinct rows is what matters: ``frequencies // 16``, the paper's
"number of frequency arguments divided by 16", Sec. 5.1).

Trained to *maximise* the discrepancy (the min-max of Eq. 4), with its own SGD optimiser (the code's
``get_optimizer('sgd', ..., lr=lr_sampling_net, mom_img)``: lr 1e-3, momentum 0.5, no weight decay).
"""

from __future__ import annotations

import torch
from torch import nn


class SamplingNet(nn.Module):
    """Noise ``[components, D]`` -> frequency arguments ``[components, D]`` in (-1, 1)."""

    def __init__(self, dim: int, frequencies: int = 64, noise_var: float = 1.0):
        super().__init__()
        self.dim = dim
        self.components = max(1, frequencies // 16)
        self.noise_std = noise_var ** 0.5
        layers: list[nn.Module] = []
        for i in range(3):
            layers += [nn.Linear(dim, dim), nn.BatchNorm1d(dim), nn.LeakyReLU(0.2) if i < 2 else nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def noise(self, generator: torch.Generator, device: torch.device | str) -> torch.Tensor:
        """The input noise, drawn from ``generator`` (on ``device``)."""
        return torch.randn((self.components, self.dim), generator=generator, device=device) * self.noise_std

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return self.body(noise)
