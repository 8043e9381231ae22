r"""Gradient matching: DC (Zhao, Mopuri & Bilen, ICLR 2021) and DSA (Zhao & Bilen, ICML 2021).

The bi-level loop of the DC code (``main.py``; ``docs/methods.md#dc``). Each of ``iterations`` outer
iterations samples a fresh, randomly initialised network :math:`\theta` (plain SGD, ``lr_net`` 0.01, no momentum)
and runs ``outer_loop`` steps of:

1. if the network has BatchNorm: one train-mode forward pass of ``bn_images_per_class`` (16) real images per
   class updates the running statistics, then every BatchNorm layer is put in eval mode, so the real and the
   synthetic batches below are normalised with the same (frozen) statistics (``docs/methods.md#dc``);
2. for every class c: the cross-entropy gradients of the network on a real batch :math:`B_T^c` (``batch_real``
   256) and on the class's synthetic images :math:`S_c`, and their distance; the loss sums over classes::

       L = sum_c D( grad_theta CE(theta; S_c), grad_theta CE(theta; B_T^c) )

3. one SGD step (``lr_img`` 0.1, momentum 0.5) on the synthetic pixels;
4. except after the last outer step: ``inner_loop`` epochs of training the network on the (detached) synthetic
   set (batch ``batch_train`` 256).

The distance (``match: ours``, the paper's): for every parameter tensor, reshape both gradients to
``[out, rest]`` and sum over output units :math:`i` of :math:`1 - \cos(g^s_i, g^r_i)`, with ``1e-6`` added to the
product of norms; bias and normalisation tensors (1-D) contribute 0. ``mse`` (sum of squared differences) and
``cos`` (one cosine distance of the concatenated gradients) are the code's alternatives.

``(outer_loop, inner_loop)`` by IPC (the DC code's ``get_loops``): 1 -> (1, 1), 10 -> (10, 50), 20 -> (20, 25),
30 -> (30, 20), 40 -> (40, 15), 50 -> (50, 10). The code has no values for other IPCs; here they take those of
the nearest listed IPC (the lower one on a tie), recorded in the metadata, and ``outer_loop``/``inner_loop``
override them.

**DSA** is the same loop with differentiable siamese augmentation: the real and synthetic batches of a class get
one shared transformation (one seed per class and outer step), the inner-loop training augments per sample;
real-image initialisation (DSA's readme: ``--init real``) instead of DC's Gaussian noise.

Evaluation (``DC_PROTOCOL``, ``DSA_PROTOCOL``, used by ``eval.protocol: paper | both``): the DC code trains
evaluation models 300 epochs without augmentation, or 1000 epochs with its own per-image augmentation
(``crop_scale_rotate`` on MNIST, ``crop_noise`` for ConvNetBN: :meth:`DCDistiller.paper_protocol`); DSA 1000
epochs with DSA. Hence ``eval_with_dsa`` (what ``eval.augment: auto`` follows) False for ``dc``, True for ``dsa``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

import torch
import torch.nn.functional as F

from ..augment import DSA, parse_strategy
from ..config import check
from ..data.base import RealData
from ..protocols import Protocol, with_
from .base import DistillContext, Distiller, class_balanced_labels

#: ``get_loops`` of the DC code: IPC -> (outer_loop, inner_loop)
LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


def loops_for(ipc: int) -> tuple[int, int, int]:
    """``(outer_loop, inner_loop, listed_ipc)``: the DC code's loops for ``ipc``, or the nearest listed IPC's."""
    listed = min(LOOPS, key=lambda i: (abs(i - ipc), i))
    return (*LOOPS[listed], listed)


def layerwise_cosine_distance(g_syn: torch.Tensor, g_real: torch.Tensor) -> torch.Tensor:
    """DC's distance of one parameter tensor's gradients: ``sum_i (1 - cos(g_syn[i], g_real[i]))`` over output
    units i (rows of the ``[out, rest]`` reshape), ``1e-6`` added to the norms' product; 0 for 1-D tensors."""
    if g_syn.ndim <= 1:
        return g_syn.new_zeros(())
    gs, gr = g_syn.reshape(g_syn.shape[0], -1), g_real.reshape(g_real.shape[0], -1)
    cos = (gs * gr).sum(-1) / (gs.norm(dim=-1) * gr.norm(dim=-1) + 1e-6)
    return (1 - cos).sum()


def gradient_distance(g_syn: list[torch.Tensor], g_real: list[torch.Tensor],
                      metric: str = "ours") -> torch.Tensor:
    """The DC code's ``match_loss``: ``ours`` (layer-wise, per output unit), ``mse`` or ``cos`` (whole vector)."""
    if metric == "ours":
        return sum((layerwise_cosine_distance(s, r) for s, r in zip(g_syn, g_real)), g_syn[0].new_zeros(()))
    vs = torch.cat([g.reshape(-1) for g in g_syn])
    vr = torch.cat([g.reshape(-1) for g in g_real])
    if metric == "mse":
        return ((vs - vr) ** 2).sum()
    if metric == "cos":
        return 1 - (vs * vr).sum() / (vs.norm() * vr.norm() + 1e-6)
    raise ValueError(f"unknown gradient distance {metric!r}")


@dataclass
class GradientMatchingConfig:
    """DC hyper-parameters; every default is the DC code's (``main.py``, ``docs/methods.md#dc``)."""

    #: outer iterations, one fresh network each
    iterations: int = 1000
    lr_img: float = 0.1
    momentum: float = 0.5
    #: the network's SGD learning rate in the inner loop (no momentum, as the code)
    lr_net: float = 0.01
    #: real images per class per outer step
    batch_real: int = 256
    #: mini-batch of the inner-loop training on the synthetic set
    batch_train: int = 256
    init: Literal["real", "noise"] = "noise"
    #: null = the DC code's value for the IPC (module docstring)
    outer_loop: Optional[int] = None
    inner_loop: Optional[int] = None
    match: Literal["ours", "mse", "cos"] = "ours"
    net: str = "convnet"
    net_options: dict = field(default_factory=dict)
    #: real images per class whose statistics BatchNorm layers are frozen to (``BNSizePC``); unused without BN
    bn_images_per_class: int = 16
    dsa: bool = False
    dsa_strategy: str = "color_crop_cutout_flip_scale_rotate"

    def __post_init__(self) -> None:
        check(self.iterations >= 0, f"iterations must be >= 0, got {self.iterations}")
        check(self.lr_img > 0, f"lr_img must be > 0, got {self.lr_img}")
        check(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        check(self.lr_net > 0, f"lr_net must be > 0, got {self.lr_net}")
        for name in ("batch_real", "batch_train", "bn_images_per_class"):
            check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        check(self.outer_loop is None or self.outer_loop >= 1, f"outer_loop must be >= 1, got {self.outer_loop}")
        check(self.inner_loop is None or self.inner_loop >= 0, f"inner_loop must be >= 0, got {self.inner_loop}")
        try:
            parse_strategy(self.dsa_strategy)
        except ValueError as exc:
            check(False, f"dsa_strategy: {exc}")


@dataclass
class DCConfig(GradientMatchingConfig):
    """DC: noise initialisation, no augmentation (DC code defaults)."""


@dataclass
class DSAConfig(GradientMatchingConfig):
    """DSA: DC's loop with siamese augmentation and real initialisation (DSA readme:
    ``--method DSA --init real --dsa_strategy color_crop_cutout_flip_scale_rotate``; no flip on digit sets)."""

    init: Literal["real", "noise"] = "real"
    dsa: bool = True


def _batchnorms(net: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


#: DC's evaluation (``docs/evaluation_protocols.md#per-method``); :meth:`DCDistiller.paper_protocol` adds the
#: dataset and model rule of its augmentation
DC_PROTOCOL = Protocol(
    epochs=300, batch_size=256, lr=0.01, lr_decay=True, augment="none", checkpoint="final",
    sources=(("epochs", "DC code main.py: epoch_eval_train 300, 1000 when DC augmentation is on"),
             ("batch_size", "DC code: batch_train 256"),
             ("lr", "DC code utils.evaluate_synset: lr_net 0.01, x0.1 after epoch Epoch//2+1"),
             ("augment", "DC code utils.get_daparam: crop_scale_rotate on MNIST, crop_noise for ConvNetBN, "
                         "else none (crop 4, scale 0.2, rotate 45, noise 0.001)"),
             ("checkpoint", "DC code: the final synthetic set")))
#: DSA's evaluation: DC's training with DSA and 1000 epochs
DSA_PROTOCOL = Protocol(
    epochs=1000, batch_size=256, lr=0.01, lr_decay=True, augment="dsa", checkpoint="final",
    sources=(("epochs", "DSA code main.py (method DSA): epoch_eval_train 1000"),
             ("batch_size", "DC/DSA code: batch_train 256"),
             ("lr", "DC/DSA code utils.evaluate_synset: lr_net 0.01, x0.1 after epoch Epoch//2+1"),
             ("augment", "DSA code: DSA (color_crop_cutout_flip_scale_rotate) when training evaluation models"),
             ("checkpoint", "DSA code: the final synthetic set")))


class GradientMatchingDistiller(Distiller):
    """DC: match the network gradients of synthetic and real batches per class, bi-level with network training"""

    iterative = True  # snapshots and resume (DistillContext.step_done / restore)
    makes_soft_labels = False

    Config = DCConfig
    eval_with_dsa = False

    def class_loss(self, net, params: list[torch.Tensor], real_x: torch.Tensor, syn_x: torch.Tensor,
                   c: int) -> torch.Tensor:
        """``D(grad CE(syn), grad CE(real))`` of one class; the real gradients are constants."""
        y_real = torch.full((len(real_x),), c, dtype=torch.long, device=real_x.device)
        y_syn = torch.full((len(syn_x),), c, dtype=torch.long, device=syn_x.device)
        g_real = torch.autograd.grad(F.cross_entropy(net(real_x), y_real), params)
        g_real = [g.detach() for g in g_real]
        g_syn = torch.autograd.grad(F.cross_entropy(net(syn_x), y_syn), params, create_graph=True)
        return gradient_distance(list(g_syn), g_real, self.config.match)

    def outer_loss(self, net, syn: torch.Tensor, real: list[torch.Tensor], seeds: list[int] | None,
                   dsa: DSA | None) -> torch.Tensor:
        """The loss of one outer step: the sum over classes; ``real[c]`` is class c's real batch, ``syn`` the
        class-balanced synthetic images, ``seeds[c]`` the class's siamese augmentation seed."""
        k = len(real)
        per = len(syn) // k
        params = [p for p in net.parameters() if p.requires_grad]
        loss = syn.new_zeros(())
        for c in range(k):
            xr, xs = real[c], syn[c * per:(c + 1) * per]
            if dsa:
                xr, xs = dsa.siamese(xr, seeds[c:c + 1]), dsa.siamese(xs, seeds[c:c + 1])
            loss = loss + self.class_loss(net, params, xr, xs, c)
        return loss

    def distill(self, data: RealData, ipc: int, ctx: DistillContext):
        cfg = self.config
        k = data.num_classes
        labels = class_balanced_labels(k, ipc)
        outer, inner, listed = loops_for(ipc)
        outer = cfg.outer_loop if cfg.outer_loop is not None else outer
        inner = cfg.inner_loop if cfg.inner_loop is not None else inner
        if cfg.init == "real":
            syn = torch.cat([data.sample_class(c, ipc, ctx.generator) for c in range(k)])
        else:
            syn = torch.randn((k * ipc, *data.train_x.shape[1:]), generator=ctx.generator)
        syn = syn.to(ctx.device).requires_grad_(True)
        opt_img = torch.optim.SGD([syn], lr=cfg.lr_img, momentum=cfg.momentum)
        dsa = DSA(cfg.dsa_strategy, digits=bool(data.tags.get("digits"))) if cfg.dsa else None
        dsa = dsa if dsa else None
        train_x = data.train_x.to(ctx.device) if ctx.device.type == "cuda" else data.train_x
        n_real = min(cfg.batch_real, data.min_class_size)
        labels_dev = labels.to(ctx.device)

        def real_batch(c: int, n: int) -> torch.Tensor:
            idx = data.class_indices[c]
            idx = idx[torch.randperm(len(idx), generator=ctx.generator)[:n]]
            return train_x[idx.to(train_x.device)].to(ctx.device)

        start, _ = ctx.resume_into(syn, opt_img)  # an interrupted run continues from its last snapshot
        extras = {"outer_loop": outer, "inner_loop": inner, "loops_of_ipc": listed, "lr_img": cfg.lr_img}
        bar = ctx.progress(range(start, cfg.iterations), total=cfg.iterations - start, desc=self.name)
        try:
            for it in bar:
                net = ctx.fresh_net(cfg.net, cfg.net_options, data, frozen=False)
                opt_net = torch.optim.SGD(net.parameters(), lr=cfg.lr_net)
                bns = _batchnorms(net)
                total = 0.0
                for ol in range(outer):
                    if bns:  # running statistics of 16 real images per class, then frozen (eval mode)
                        net.train()
                        with torch.no_grad():
                            net(torch.cat([real_batch(c, cfg.bn_images_per_class) for c in range(k)]))
                        for m in bns:
                            m.eval()
                    real = [real_batch(c, n_real) for c in range(k)]
                    seeds = [ctx.next_seed() for _ in range(k)] if dsa else None
                    loss = self.outer_loss(net, syn, real, seeds, dsa)
                    opt_img.zero_grad(set_to_none=True)
                    loss.backward(inputs=[syn])
                    opt_img.step()
                    total += float(loss.detach())
                    if ol == outer - 1:
                        break
                    self._train_net(net, opt_net, syn.detach(), labels_dev, inner, ctx, dsa)
                bar.report(it, total / (k * outer))
                ctx.step_done(it + 1, syn, labels, lambda: {"images": syn.detach().cpu(), "opt": opt_img.state_dict()},
                              extras)
        finally:
            bar.close()
        return syn.detach(), labels, extras

    def _train_net(self, net, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, epochs: int,
                   ctx: DistillContext, dsa: DSA | None) -> None:
        """The inner loop: ``epochs`` shuffled passes over the synthetic set (per-sample DSA when on)."""
        net.train()
        bs = self.config.batch_train
        for _ in range(epochs):
            perm = torch.randperm(len(x), generator=ctx.generator).to(x.device)
            for start in range(0, len(x), bs):
                idx = perm[start:start + bs]
                xb = dsa(x[idx], ctx.generator) if dsa else x[idx]
                loss = F.cross_entropy(net(xb), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()


class DCDistiller(GradientMatchingDistiller):
    """DC: match the network gradients of synthetic and real batches per class, bi-level with network training"""

    Config = DCConfig
    eval_with_dsa = False
    protocol = DC_PROTOCOL

    def paper_protocol(self, dataset: str, model: str, ipc: int) -> Protocol:
        """DC's code chooses its evaluation augmentation by dataset and model (``get_daparam``) and trains 1000
        epochs instead of 300 when one is chosen: ``crop_scale_rotate`` on MNIST, ``crop_noise`` for ConvNetBN
        (which wins when both apply), none otherwise (Fashion-MNIST included: the code tests ``== 'MNIST'``).
        ConvNetBN is the network, not the name: a ConvNet with batch norm, ``convnet_bn`` or ``convnet`` with ``norm:
        batchnorm`` alike (``model`` carries the entry's options, :class:`~atombench.protocols.ModelName`)."""
        return dc_paper_protocol(self.protocol, dataset, model)


def dc_paper_protocol(protocol: Protocol, dataset: str, model: str) -> Protocol:
    """``protocol`` (DC's evaluation) with the DC code's dataset and model rule applied: ``crop_noise`` and 1000
    epochs for a ConvNet with batch norm, ``crop_scale_rotate`` and 1000 epochs on MNIST, unchanged otherwise
    (:meth:`DCDistiller.paper_protocol`); the coresets, evaluated as DC evaluates, share it."""
    strategy = "crop_noise" if _convnet_bn(model) else "crop_scale_rotate" if dataset == "mnist" else None
    if strategy is None:
        return protocol
    return with_(protocol, epochs=1000, augment="dc", strategy=strategy)


def _convnet_bn(model: str) -> bool:
    """Whether ``model`` (a plug-in name, with its options when it is a :class:`~atombench.protocols.ModelName`) is
    a ConvNet with batch norm, whatever it is called."""
    from ..errors import AtombenchError
    from ..models.convnet import ConvNetConfig
    from ..registry import models

    if not model:
        return False
    try:
        cfg = models.parse_options(str(model), getattr(model, "options", None) or {})
    except AtombenchError:
        return str(model) == "convnet_bn"
    return isinstance(cfg, ConvNetConfig) and cfg.norm == "batchnorm"


class DSADistiller(GradientMatchingDistiller):
    """DSA: DC's gradient matching with differentiable siamese augmentation, real initialisation"""

    Config = DSAConfig
    eval_with_dsa = True
    protocol = DSA_PROTOCOL
