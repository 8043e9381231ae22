r"""MTT: Dataset Distillation by Matching Training Trajectories (Cazenavette et al., CVPR 2022).

Two steps.

**1. Expert trajectories** (the MTT code's ``buffer.py``), a cached, resumable step of its own: ``num_experts``
ConvNets, each trained from its own random initialisation on the real training set for ``expert_train_epochs``
epochs (SGD ``expert_lr`` 0.01, no momentum, no weight decay, batch 256, per-sample DSA, no lr decay: the
code's defaults; the readme: "50 epochs with the default learning rate", 100 experts). The flattened parameters
after initialisation and after every epoch form the trajectory :math:`\theta^*_0 .. \theta^*_E`. Each expert is
stored as ``<cache>/mtt_experts/<key>/expert_NNNN.safetensors``, keyed by the dataset fingerprint, the network and
the expert settings (not the run's seed nor the IPC: every IPC and every run shares them), written atomically;
an expert interrupted mid-training resumes from its last finished epoch (``expert_NNNN.partial.safetensors``
holds the trajectory so far, the optimiser's momentum and the batch generator's state). Experts can be trained
ahead of the distillations with ``python -m atombench.distillers.mtt SUITE.yaml``.

**2. Trajectory matching** (``distill.py``). Every iteration picks an expert (cycling through a shuffled list) and a
start epoch :math:`t \sim U\{0, .., T^+ - 1\}` (``max_start_epoch``), starts a student at :math:`\theta^*_t` and
takes ``syn_steps`` N SGD steps on mini-batches (``batch_syn``; all synthetic images by default) of the
synthetic set, per-sample DSA, with the **learnable** step size :math:`\alpha` (initialised to ``lr_teacher``):

.. math::
    \hat\theta_{n+1} = \hat\theta_n - \alpha \nabla_\theta \ell(\hat\theta_n; \tilde X_n), \qquad
    L = \frac{\| \hat\theta_N - \theta^*_{t+M} \|^2}{\| \theta^*_t - \theta^*_{t+M} \|^2}

with M = ``expert_epochs``. The pixels and :math:`\alpha` take one SGD step each (momentum 0.5, learning rates
``lr_img`` and ``lr_lr``). Initialisation: real images (``--pix_init real``).

**Memory** (``memory``). Back-propagating through N unrolled steps keeps every step's activations and their
second-order graph: the method's known problem. Three ways to get the gradients, chosen per run:

* ``unrolled`` (default): the paper's computation, memory grows with N times the activations of a step;
* ``checkpoint``: each step is one autograd node that keeps only its input parameters and (augmented) batch and
  recomputes the step's graph during the backward pass: the **same gradients** (tested), memory N times the
  parameter vector plus one step's graph, about 1.3-1.6x the compute;
* ``tesla``: the constant-memory gradient of TESLA (Cui et al., ICML 2023): a first pass computes
  :math:`\hat\theta_N` and :math:`\sum_n g_n`; a second pass recomputes each step and back-propagates
  :math:`-\alpha \langle \partial L / \partial \hat\theta_N, g_n(\hat\theta_n, \tilde X_n) \rangle` to the step's
  images. It leaves out the terms through which earlier images change later steps' parameters (equal to the
  unrolled gradient for N = 1, tested), with memory independent of N.

The peak memory of the distillation is recorded by :meth:`Distiller.run` (``peak_mem_mb``), with the mode.

**Presets** (``PRESETS``): N, M, :math:`T^+`, ``batch_syn``, ``lr_img``, ``lr_lr``, ``lr_teacher`` per dataset and
IPC, from the text transcription of MTT's hyper-parameter table that DC-BENCH publishes as the author's (the
official table is an image; ``PRESETS`` cites the sources, ``docs/methods.md#mtt``). Any option set in the suite
overrides its preset. Other datasets (Fashion-MNIST, MNIST, SVHN, digits: MTT did not report them) take the
CIFAR-10 row of the nearest IPC, other IPCs the nearest listed IPC's row. The paper chose ZCA per setting
(``zca`` in the preset): a suite's ``zca: paper`` applies it (on [0, 1] images, MTT's space) to MTT's sets of the
datasets MTT reported; ``zca: true`` whitens every method's sets alike.

**Evaluation.** The MTT code trains its evaluation models with the learned :math:`\alpha` as learning rate:
``MTT_PROTOCOL`` declares ``lr: learned``, so ``eval.protocol: paper`` (or ``both``) does the same, reading the
``syn_lr`` this distiller stores in the synthetic set's metadata; the common protocol uses the suite's lr.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import torch
import torch.nn.functional as F

from .. import registry
from ..augment import DSA, parse_strategy
from ..config import check
from ..data.base import RealData
from ..errors import UsageError
from ..protocols import Protocol
from ..runtime import atomic_write, derive_seed, stable_hash
from .base import DistillContext, Distiller, class_balanced_labels

#: (dataset, IPC) -> the MTT paper's hyper-parameters; batch_syn None = all images. Source of every row: the text
#: transcription of MTT's hyper-parameter table in DC-BENCH (``methods/tm/readme.md``: "all the sota parameters are
#: provided by the author"), which agrees with the MTT readme's one command (CIFAR-100 IPC 1) and, for the rows
#: that differed in atombench before (CIFAR-10 IPC 1 lr_img, CIFAR-100 IPC 50 batch_syn, Tiny-ImageNet IPC 50
#: syn_steps), with two more independent scripts; the official table is an image (``docs/methods.md#mtt``).
#: CIFAR-10 IPC 10's lr_img in the official table is a typo the author confirmed (MTT issue #31) without giving
#: the value; 100 is DC-BENCH's.
PRESETS: dict[tuple[str, int], dict] = {
    ("cifar10", 1): dict(syn_steps=50, expert_epochs=2, max_start_epoch=2, batch_syn=None, lr_img=100.0,
                         lr_lr=1e-7, lr_teacher=0.01, zca=True),
    ("cifar10", 10): dict(syn_steps=30, expert_epochs=2, max_start_epoch=20, batch_syn=None, lr_img=100.0,
                          lr_lr=1e-5, lr_teacher=0.001, zca=True),
    ("cifar10", 50): dict(syn_steps=30, expert_epochs=2, max_start_epoch=40, batch_syn=None, lr_img=1000.0,
                          lr_lr=1e-5, lr_teacher=0.001, zca=False),
    ("cifar100", 1): dict(syn_steps=20, expert_epochs=3, max_start_epoch=20, batch_syn=None, lr_img=1000.0,
                          lr_lr=1e-5, lr_teacher=0.01, zca=True),
    ("cifar100", 10): dict(syn_steps=20, expert_epochs=2, max_start_epoch=20, batch_syn=None, lr_img=1000.0,
                           lr_lr=1e-5, lr_teacher=0.01, zca=False),
    ("cifar100", 50): dict(syn_steps=80, expert_epochs=2, max_start_epoch=40, batch_syn=125, lr_img=1000.0,
                           lr_lr=1e-5, lr_teacher=0.01, zca=True),
    ("tiny_imagenet", 1): dict(syn_steps=10, expert_epochs=2, max_start_epoch=10, batch_syn=None, lr_img=1e4,
                               lr_lr=1e-4, lr_teacher=0.01, zca=False, net="convnet_d4"),
    ("tiny_imagenet", 10): dict(syn_steps=20, expert_epochs=2, max_start_epoch=40, batch_syn=200, lr_img=1e4,
                                lr_lr=1e-4, lr_teacher=0.01, zca=False, net="convnet_d4"),
    ("tiny_imagenet", 50): dict(syn_steps=20, expert_epochs=2, max_start_epoch=40, batch_syn=300, lr_img=1e4,
                                lr_lr=1e-4, lr_teacher=0.01, zca=False, net="convnet_d4"),
}

#: MTT's evaluation (``docs/evaluation_protocols.md#per-method``): the evaluation networks train with the step
#: size the distillation learned
MTT_PROTOCOL = Protocol(
    epochs=1000, batch_size=256, lr="learned", lr_decay=True, augment="dsa", checkpoint="best",
    sources=(("epochs", "MTT code distill.py: epoch_eval_train 1000"),
             ("batch_size", "MTT code: batch_train 256"),
             ("lr", "MTT code distill.py: args.lr_net = syn_lr (the learned step size), x0.1 after Epoch//2+1"),
             ("augment", "MTT code: DSA when training evaluation models"),
             ("checkpoint", "MTT code distill.py: evaluates every eval_it iterations, keeps best_acc and saves "
                            "images_best.pt; the author (mtt-distillation issue #23): the max over the evaluations "
                            "is reported"),
             ("zca", "MTT paper/README: ZCA per setting (PRESETS), on [0, 1] images (ToTensor only)")))

PRESET_KEYS = ("syn_steps", "expert_epochs", "max_start_epoch", "batch_syn", "lr_img", "lr_lr", "lr_teacher", "net")


def preset_for(dataset: str, ipc: int) -> tuple[tuple[str, int], dict]:
    """The preset row for ``dataset`` and ``ipc``: its own dataset's nearest IPC, else CIFAR-10's."""
    name = dataset if any(d == dataset for d, _ in PRESETS) else "cifar10"
    ipcs = sorted(i for d, i in PRESETS if d == name)
    nearest = min(ipcs, key=lambda i: (abs(i - ipc), i))
    return (name, nearest), dict(PRESETS[(name, nearest)])


@dataclass
class MTTConfig:
    """MTT hyper-parameters. ``null`` = the preset of the dataset and IPC (module docstring, ``PRESETS``)."""

    iterations: int = 5000
    syn_steps: Optional[int] = None
    expert_epochs: Optional[int] = None
    max_start_epoch: Optional[int] = None
    #: synthetic images per student step; null = the preset (all images unless the paper batched)
    batch_syn: Optional[int] = None
    lr_img: Optional[float] = None
    #: learning rate of the learnable step size alpha
    lr_lr: Optional[float] = None
    #: the initial step size alpha of the student updates
    lr_teacher: Optional[float] = None
    #: momentum of the pixels' and the step size's SGD (the code: 0.5 for both)
    momentum: float = 0.5
    init: Literal["real", "noise"] = "real"
    #: the network of experts and students; null = the preset's (ConvNet-3; ConvNetD4 on Tiny-ImageNet)
    net: Optional[str] = None
    net_options: dict = field(default_factory=dict)
    dsa: bool = True
    dsa_strategy: str = "color_crop_cutout_flip_scale_rotate"
    #: how the unrolled steps are differentiated (module docstring)
    memory: Literal["unrolled", "checkpoint", "tesla"] = "unrolled"
    # -- expert trajectories (buffer.py defaults) --
    num_experts: int = 100
    expert_train_epochs: int = 50
    expert_lr: float = 0.01
    expert_batch: int = 256
    expert_momentum: float = 0.0
    expert_weight_decay: float = 0.0
    expert_dsa: bool = True
    #: train experts on this many random images per class (null = all): a cost reduction for CPU runs
    expert_per_class: Optional[int] = None

    def __post_init__(self) -> None:
        check(self.iterations >= 0, f"iterations must be >= 0, got {self.iterations}")
        for name in ("syn_steps", "expert_epochs", "max_start_epoch", "batch_syn", "expert_per_class"):
            v = getattr(self, name)
            check(v is None or v >= 1, f"{name} must be >= 1, got {v}")
        for name in ("lr_img", "lr_lr", "lr_teacher"):
            v = getattr(self, name)
            check(v is None or v > 0, f"{name} must be > 0, got {v}")
        check(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        check(self.num_experts >= 1, f"num_experts must be >= 1, got {self.num_experts}")
        check(self.expert_train_epochs >= 1, f"expert_train_epochs must be >= 1, got {self.expert_train_epochs}")
        check(self.expert_lr > 0, f"expert_lr must be > 0, got {self.expert_lr}")
        check(self.expert_batch >= 1, f"expert_batch must be >= 1, got {self.expert_batch}")
        check(0 <= self.expert_momentum < 1, f"expert_momentum must be in [0, 1), got {self.expert_momentum}")
        check(self.expert_weight_decay >= 0, f"expert_weight_decay must be >= 0, got {self.expert_weight_decay}")
        try:
            parse_strategy(self.dsa_strategy)
        except ValueError as exc:
            check(False, f"dsa_strategy: {exc}")


# -- flat parameters and the functional student ------------------------------------------------------------------
class FlatModel:
    """A network run with its parameters given as one flat vector (the MTT code's ``ReparamModule``)."""

    def __init__(self, net: torch.nn.Module):
        self.net = net
        self.names = [n for n, _ in net.named_parameters()]
        self.shapes = [p.shape for _, p in net.named_parameters()]
        self.sizes = [p.numel() for _, p in net.named_parameters()]
        self.num_params = sum(self.sizes)

    def flat(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.net.parameters()])

    def __call__(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        from torch.func import functional_call

        parts = torch.split(theta, self.sizes)
        params = {n: t.view(s) for n, t, s in zip(self.names, parts, self.shapes)}
        return functional_call(self.net, params, (x,))

    def grad(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor, create_graph: bool) -> torch.Tensor:
        """``grad_theta CE(model(theta; x), y)``; ``theta`` must require grad."""
        loss = F.cross_entropy(self(theta, x), y)
        return torch.autograd.grad(loss, theta, create_graph=create_graph)[0]


def trajectory_loss(student_end: torch.Tensor, start: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MTT's normalised parameter matching loss ``||student_end - target||^2 / ||start - target||^2`` (the code
    divides both by the number of parameters, which cancels)."""
    return ((student_end - target) ** 2).sum() / ((start - target) ** 2).sum()


class _CheckpointedStep(torch.autograd.Function):
    """``theta - lr * grad CE(theta; x)`` as one autograd node that recomputes its graph in the backward pass."""

    @staticmethod
    def forward(ctx, theta, x, lr, model, y):
        with torch.enable_grad():
            t = theta.detach().requires_grad_(True)
            g = model.grad(t, x.detach(), y, create_graph=False)
        ctx.save_for_backward(theta, x, lr)
        ctx.model, ctx.y = model, y
        return theta.detach() - lr.detach() * g

    @staticmethod
    def backward(ctx, grad_out):
        theta, x, lr = ctx.saved_tensors
        with torch.enable_grad():
            t = theta.detach().requires_grad_(True)
            xx = x.detach().requires_grad_(ctx.needs_input_grad[1])
            ll = lr.detach().requires_grad_(True)
            out = t - ll * ctx.model.grad(t, xx, ctx.y, create_graph=True)
            inputs = [t, ll] + ([xx] if ctx.needs_input_grad[1] else [])
            grads = torch.autograd.grad(out, inputs, grad_out, allow_unused=True)
        g_x = grads[2] if ctx.needs_input_grad[1] else None
        return grads[0], g_x, grads[1], None, None


@dataclass
class Step:
    """One student step: which synthetic images and the seed of their per-sample augmentation."""

    index: torch.Tensor
    seed: int


def _batch(syn: torch.Tensor, step: Step, dsa: DSA | None) -> torch.Tensor:
    x = syn[step.index]
    return dsa(x, torch.Generator().manual_seed(step.seed)) if dsa else x


def matching_gradients(model: FlatModel, start: torch.Tensor, target: torch.Tensor, syn: torch.Tensor,
                       labels: torch.Tensor, syn_lr: torch.Tensor, steps: list[Step], dsa: DSA | None,
                       memory: str = "unrolled") -> tuple[float, torch.Tensor, torch.Tensor]:
    """One MTT iteration's ``(loss, dL/dsyn, dL/dsyn_lr)`` for the student started at ``start`` and matched to
    ``target`` after ``len(steps)`` steps; ``memory`` picks how they are computed (module docstring)."""
    start, target = start.detach(), target.detach()
    if memory in ("unrolled", "checkpoint"):
        theta = start.clone().requires_grad_(True)
        for step in steps:
            x, y = _batch(syn, step, dsa), labels[step.index]
            if memory == "unrolled":
                theta = theta - syn_lr * model.grad(theta, x, y, create_graph=True)
            else:
                theta = _CheckpointedStep.apply(theta, x, syn_lr, model, y)
        loss = trajectory_loss(theta, start, target)
        g_syn, g_lr = torch.autograd.grad(loss, [syn, syn_lr], allow_unused=True)
        return float(loss.detach()), _zero_if_none(g_syn, syn), _zero_if_none(g_lr, syn_lr)
    if memory != "tesla":
        raise ValueError(f"unknown memory mode {memory!r}")
    lr = syn_lr.detach()
    theta = start.clone()
    total = torch.zeros_like(start)
    with torch.no_grad():
        for step in steps:  # pass 1: the end point and the sum of the steps' gradients, no graph kept
            with torch.enable_grad():
                t = theta.requires_grad_(True)
                g = model.grad(t, _batch(syn.detach(), step, dsa), labels[step.index], create_graph=False)
            theta = theta.detach() - lr * g
            total += g
        denom = ((start - target) ** 2).sum()
        loss = ((theta - target) ** 2).sum() / denom
        v = 2 * (theta - target) / denom  # dL / d theta_N
        g_lr = -(v * total).sum().reshape(syn_lr.shape)
    g_syn = torch.zeros_like(syn)
    theta = start.clone()
    for step in steps:  # pass 2: recompute each step, back-propagate its contribution to the images
        t = theta.detach().requires_grad_(True)
        x = _batch(syn, step, dsa)
        g = model.grad(t, x, labels[step.index], create_graph=True)
        contribution = -(lr * (v * g).sum())
        g_syn += torch.autograd.grad(contribution, syn, allow_unused=True)[0] if syn.requires_grad else 0
        theta = theta.detach() - lr * g.detach()
    return float(loss), g_syn, g_lr


def _zero_if_none(g: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(like) if g is None else g


# -- expert trajectories -----------------------------------------------------------------------------------------
@dataclass
class ExpertSpec:
    """What an expert trajectory depends on (its cache key)."""

    net: str
    net_options: dict
    train_epochs: int
    lr: float
    batch: int
    momentum: float
    weight_decay: float
    dsa: bool
    dsa_strategy: str
    per_class: Optional[int]

    @classmethod
    def from_config(cls, cfg: MTTConfig, net: str) -> "ExpertSpec":
        return cls(net, dict(cfg.net_options), cfg.expert_train_epochs, cfg.expert_lr, cfg.expert_batch,
                   cfg.expert_momentum, cfg.expert_weight_decay, cfg.expert_dsa, cfg.dsa_strategy,
                   cfg.expert_per_class)

    def key(self, data: RealData) -> str:
        return stable_hash(["mtt-experts", data.fingerprint, self.__dict__])


def build_net(name: str, options: dict, data: RealData, seed: int) -> torch.nn.Module:
    family = registry.models.get(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return family.build(family.parse(options), data.channels, data.num_classes, data.image_size)


class ExpertStore:
    """Expert trajectories of one :class:`ExpertSpec` on one dataset: on disk under ``root`` (when given) and
    in memory otherwise. ``trajectory(i, a, b)`` reads epochs ``a..b-1`` of expert ``i``."""

    def __init__(self, data: RealData, spec: ExpertSpec, root: Path | None, device: torch.device,
                 show_progress: bool = False):
        self.data, self.spec, self.device, self.show_progress = data, spec, device, show_progress
        self.key = spec.key(data)
        self.folder = root / "mtt_experts" / self.key if root is not None else None
        self._memory: dict[int, torch.Tensor] = {}
        self.trained_now = 0
        self.resumed = 0
        self.train_seconds = 0.0

    def path(self, i: int) -> Path:
        return self.folder / f"expert_{i:04d}.safetensors"

    def has(self, i: int) -> bool:
        if self.folder is None:
            return i in self._memory
        return self.path(i).exists()

    def ensure(self, n: int) -> None:
        """Train every missing expert among the first ``n`` (each resumes from its partial file if any)."""
        for i in range(n):
            if not self.has(i):
                self._train(i)

    def trajectory(self, i: int, a: int, b: int) -> torch.Tensor:
        if self.folder is None:
            return self._memory[i][a:b]
        from safetensors import safe_open

        with safe_open(str(self.path(i)), framework="pt") as fh:
            return fh.get_slice("trajectory")[a:b]

    def _train(self, i: int) -> None:
        from safetensors.torch import load_file, save
        from tqdm.auto import tqdm

        spec, data, device = self.spec, self.data, self.device
        net = build_net(spec.net, spec.net_options, data, derive_seed("mtt-expert", self.key, i)).to(device)
        flat = FlatModel(net)
        g = torch.Generator().manual_seed(derive_seed("mtt-expert-batches", self.key, i))
        if spec.per_class is None:
            index = torch.arange(len(data.train_y))
        else:
            index = torch.cat([idx[torch.randperm(len(idx), generator=g)[:spec.per_class]]
                               for idx in data.class_indices]).sort().values
        x, y = data.train_x[index].to(device), data.train_y[index].to(device)
        opt = torch.optim.SGD(net.parameters(), lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
        dsa = DSA(spec.dsa_strategy, digits=bool(data.tags.get("digits"))) if spec.dsa else None
        dsa = dsa if dsa else None
        snapshots = [flat.flat().cpu()]
        partial = self.folder / f"expert_{i:04d}.partial.safetensors" if self.folder is not None else None
        if partial is not None and partial.exists():
            try:
                state = load_file(partial)
                snapshots = list(state["trajectory"].unbind(0))
                _load_flat(net, snapshots[-1].to(device))
                g.set_state(state["generator"])
                if spec.momentum > 0 and "momentum" in state:
                    _set_momentum(opt, net, state["momentum"].to(device))
                self.resumed += 1
            except Exception:  # noqa: BLE001 - a damaged partial file: start this expert again
                snapshots = [flat.flat().cpu()]
        start = time.perf_counter()
        done = len(snapshots) - 1
        bar = tqdm(range(done, spec.train_epochs), desc=f"mtt expert {i}", leave=False,
                   disable=not self.show_progress, dynamic_ncols=True)
        net.train()
        for _ in bar:
            perm = torch.randperm(len(x), generator=g).to(device)
            for s in range(0, len(x), spec.batch):
                idx = perm[s:s + spec.batch]
                xb = dsa(x[idx], g) if dsa else x[idx]
                loss = F.cross_entropy(net(xb), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            snapshots.append(flat.flat().cpu())
            if partial is not None and len(snapshots) <= spec.train_epochs:
                tensors = {"trajectory": torch.stack(snapshots), "generator": g.get_state()}
                if spec.momentum > 0:
                    tensors["momentum"] = _get_momentum(opt, net).cpu()
                with atomic_write(partial) as fh:
                    fh.write(save(tensors))
        bar.close()
        self.train_seconds += time.perf_counter() - start
        self.trained_now += 1
        trajectory = torch.stack(snapshots)
        if self.folder is None:
            self._memory[i] = trajectory
            return
        with atomic_write(self.path(i)) as fh:
            fh.write(save({"trajectory": trajectory.contiguous()},
                          metadata={"dataset": data.name, "fingerprint": data.fingerprint, "expert": str(i),
                                    "spec": str(sorted(spec.__dict__.items()))}))
        if partial is not None and partial.exists():
            partial.unlink()


def _load_flat(net: torch.nn.Module, theta: torch.Tensor) -> None:
    with torch.no_grad():
        offset = 0
        for p in net.parameters():
            p.copy_(theta[offset:offset + p.numel()].view_as(p))
            offset += p.numel()


def _get_momentum(opt: torch.optim.Optimizer, net: torch.nn.Module) -> torch.Tensor:
    parts = []
    for p in net.parameters():
        buf = opt.state.get(p, {}).get("momentum_buffer")
        parts.append((buf if buf is not None else torch.zeros_like(p)).reshape(-1))
    return torch.cat(parts)


def _set_momentum(opt: torch.optim.Optimizer, net: torch.nn.Module, flat: torch.Tensor) -> None:
    offset = 0
    for p in net.parameters():
        opt.state[p]["momentum_buffer"] = flat[offset:offset + p.numel()].view_as(p).clone()
        offset += p.numel()


# -- the distiller ---------------------------------------------------------------------------------------------
class MTTDistiller(Distiller):
    """MTT: match expert training trajectories with unrolled student steps, learnable step size"""

    iterative = True  # snapshots and resume (DistillContext.step_done / restore)
    makes_soft_labels = False

    shares_cache_across_ipcs = True  # the expert trajectories (keyed by the expert settings, not the seed)
    shares_cache_across_seeds = True

    Config = MTTConfig
    eval_with_dsa = True
    protocol = MTT_PROTOCOL

    def paper_zca(self, dataset: str, ipc: int) -> Optional[str]:
        """ZCA on [0, 1] images where the paper's row of this dataset and IPC used it (``PRESETS``); none for
        datasets MTT did not report."""
        if not any(d == dataset for d, _ in PRESETS):
            return None
        _, row = preset_for(dataset, ipc)
        return "unit_interval" if row.get("zca") else None

    def resolved(self, data: RealData, ipc: int) -> tuple[dict, tuple[str, int]]:
        """The settings for ``data`` and ``ipc``: the preset's, overridden by every option set in the config."""
        from ..factories import paper_dataset

        preset, row = preset_for(paper_dataset(data.name), ipc)
        out = {k: row.get(k) for k in PRESET_KEYS}
        out["net"] = out["net"] or "convnet"
        for k in PRESET_KEYS:
            v = getattr(self.config, k)
            if v is not None:
                out[k] = v
        out["zca_in_paper"] = row.get("zca")
        return out, preset

    def shared_cache_ready(self, data: RealData, ipc: int, cache_dir: Path) -> bool:
        """Every expert of this configuration is already trained under ``cache_dir``."""
        s, _ = self.resolved(data, ipc)
        store = ExpertStore(data, ExpertSpec.from_config(self.config, s["net"]), Path(cache_dir), torch.device("cpu"))
        return all(store.has(i) for i in range(self.config.num_experts))

    def experts(self, data: RealData, ctx: DistillContext, net: str) -> ExpertStore:
        return ExpertStore(data, ExpertSpec.from_config(self.config, net), ctx.cache_dir, ctx.device,
                           ctx.show_progress)

    def distill(self, data: RealData, ipc: int, ctx: DistillContext):
        cfg = self.config
        s, preset = self.resolved(data, ipc)
        if s["max_start_epoch"] + s["expert_epochs"] > cfg.expert_train_epochs:
            raise UsageError(f"{self.name}: max_start_epoch {s['max_start_epoch']} + expert_epochs "
                             f"{s['expert_epochs']} exceed expert_train_epochs {cfg.expert_train_epochs}")
        k = data.num_classes
        labels = class_balanced_labels(k, ipc)
        store = self.experts(data, ctx, s["net"])
        store.ensure(cfg.num_experts)
        model = FlatModel(build_net(s["net"], cfg.net_options, data, ctx.next_seed()).to(ctx.device).train())
        if cfg.init == "real":
            syn = torch.cat([data.sample_class(c, ipc, ctx.generator) for c in range(k)])
        else:
            syn = torch.randn((k * ipc, *data.train_x.shape[1:]), generator=ctx.generator)
        syn = syn.to(ctx.device).requires_grad_(True)
        syn_lr = torch.tensor(float(s["lr_teacher"]), device=ctx.device).requires_grad_(True)
        opt_img = torch.optim.SGD([syn], lr=s["lr_img"], momentum=cfg.momentum)
        opt_lr = torch.optim.SGD([syn_lr], lr=s["lr_lr"], momentum=cfg.momentum)
        dsa = DSA(cfg.dsa_strategy, digits=bool(data.tags.get("digits"))) if cfg.dsa else None
        dsa = dsa if dsa else None
        y = labels.to(ctx.device)
        n = len(syn)
        batch = min(s["batch_syn"] or n, n)
        order: list[int] = []
        start, state = ctx.resume_into(syn, opt_img)  # an interrupted run continues from its last snapshot
        if state is not None:
            with torch.no_grad():
                syn_lr.fill_(float(state["syn_lr"]))
            opt_lr.load_state_dict(state["opt_lr"])
            order = list(state["order"])
        bar = ctx.progress(range(start, cfg.iterations), total=cfg.iterations - start, desc=self.name)
        try:
            for it in bar:
                if not order:  # cycle through the experts in a shuffled order, as the code's buffer
                    order = torch.randperm(cfg.num_experts, generator=ctx.generator).tolist()
                expert = order.pop()
                t0 = int(torch.randint(s["max_start_epoch"], (1,), generator=ctx.generator))
                traj = store.trajectory(expert, t0, t0 + s["expert_epochs"] + 1).to(ctx.device)
                steps, chunks = [], []
                for _ in range(s["syn_steps"]):
                    if not chunks:
                        chunks = list(torch.randperm(n, generator=ctx.generator).to(ctx.device).split(batch))
                    steps.append(Step(chunks.pop(), ctx.next_seed()))
                loss, g_syn, g_lr = matching_gradients(model, traj[0], traj[-1], syn, y, syn_lr, steps, dsa,
                                                       cfg.memory)
                opt_img.zero_grad(set_to_none=True)
                opt_lr.zero_grad(set_to_none=True)
                syn.grad, syn_lr.grad = g_syn, g_lr
                opt_img.step()
                opt_lr.step()
                bar.report(it, loss)
                if not math.isfinite(float(syn_lr.detach())):
                    bar.report(it, float("nan"))
                ctx.step_done(it + 1, syn, labels, {
                    "images": syn.detach().cpu(), "syn_lr": float(syn_lr.detach()), "opt": opt_img.state_dict(),
                    "opt_lr": opt_lr.state_dict(), "order": list(order)}, {"syn_lr": float(syn_lr.detach())})
        finally:
            bar.close()
        return syn.detach(), labels, {
            "syn_lr": float(syn_lr.detach()), "memory_mode": cfg.memory, "preset": list(preset),
            "resolved": {k: v for k, v in s.items()}, "experts_key": store.key,
            "experts_trained_now": store.trained_now, "experts_resumed": store.resumed,
            "experts_train_seconds": store.train_seconds, "num_params": model.num_params}


def _main(argv: list[str] | None = None) -> int:
    """``python -m atombench.distillers.mtt SUITE.yaml``: train the expert trajectories every ``mtt`` entry of
    the suite needs, into the suite's results cache, before (or apart from) ``atombench run``."""
    import argparse

    from ..factories import dataset_args, load_dataset, make_distiller
    from ..runtime import resolve_device
    from ..store import ResultsStore
    from ..suite import load_suite

    p = argparse.ArgumentParser(prog="python -m atombench.distillers.mtt", description=_main.__doc__)
    p.add_argument("suite")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    args = p.parse_args(argv)
    suite = load_suite(args.suite)
    device = resolve_device(args.device or suite.device)
    cache = ResultsStore(suite.output_dir()).cache_dir
    for ds in suite.datasets:
        for spec in suite.distillers:
            if spec.name != "mtt" or not spec.runs_on(ds.display):
                continue
            d = make_distiller(spec.name, spec.options)
            # one expert set per (data space, network): with zca: paper the IPCs may differ in their whitening
            needs = {}
            for ipc in spec.ipcs(suite.ipc):
                args_ = dataset_args(ds, d, ipc)
                net = d.resolved(load_dataset(*args_), ipc)[0]["net"]
                needs[repr((args_, net))] = (args_, net)
            for args_, net in needs.values():
                data = load_dataset(*args_)
                store = ExpertStore(data, ExpertSpec.from_config(d.config, net), cache, device, True)
                store.ensure(d.config.num_experts)
                print(f"{spec.display} on {ds.display} ({net}): {d.config.num_experts} experts in {store.folder} "
                      f"({store.trained_now} trained now, {store.resumed} resumed)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main())
