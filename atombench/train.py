"""The evaluation protocol: train a freshly initialised model on a (synthetic) set, test it on the real test set.

Follows ``evaluate_synset`` of the DC/DM/DataDAM code (``docs/evaluation_protocols.md``): SGD with lr 0.01,
momentum 0.9, weight decay 5e-4, cross-entropy on hard labels, shuffled mini-batches; ``epochs + 1`` passes, and
after pass ``epochs // 2 + 1`` the learning rate is multiplied by 0.1 and the optimiser re-created (which also
clears the momentum buffers), exactly as the reference does. Testing uses ``net.eval()``, no augmentation.

Other papers' evaluations (NCFM's, for one) are expressed with ``optimizer: adamw``, a multi-step schedule
(``lr_milestones``, ``lr_gamma``: :func:`pass_lrs`) and a mixing augmentation after the base one (``mix``,
``mix_prob``: :class:`~atombench.augment.Compose`); at their defaults training is the reference's, as above.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Literal, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from .config import check

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass
class TrainConfig:
    """Evaluation training. Defaults: DM/DSA protocol (1000 epochs, batch 256); the DataDAM code uses 1800 epochs
    with batch 64 [docs/evaluation_protocols.md#epochs-and-batch-sizes]."""

    epochs: int = 1000
    batch_size: int = 256
    lr: float = 0.01
    #: ``sgd`` (the reference: ``lr``, ``momentum``, ``weight_decay``) or ``adamw`` (``torch.optim.AdamW`` with ``lr``
    #: and ``weight_decay``, torch's betas (0.9, 0.999) and eps 1e-8; ``momentum`` unused). AdamW's weight decay is
    #: decoupled: every step multiplies the weights by ``1 - lr * weight_decay`` apart from the Adam update, where
    #: SGD adds ``weight_decay * w`` to the gradient; the same number means a different regularisation, and torch's
    #: AdamW default (0.01) is not the SGD default (5e-4): set ``weight_decay`` with the optimiser
    optimizer: Literal["sgd", "adamw"] = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    #: lr x0.1 after pass ``epochs // 2 + 1`` (reference, the optimiser re-created); false keeps the lr constant
    lr_decay: bool = True
    #: a multi-step schedule instead of ``lr_decay`` (which a non-empty list turns off): fractions f of ``epochs``,
    #: increasing, in (0, 1]; pass p (0-based, of the ``epochs + 1``) trains with ``lr * lr_gamma ** k``, k the number
    #: of milestones ``m = floor(f * epochs)`` (exact: 0.6 of 5 epochs is 3) with ``m <= p``, the lr changed in place
    #: in the one optimiser (its momentum / moments kept): torch's ``MultiStepLR(milestones, lr_gamma)`` stepped after
    #: every pass (a milestone of 0, under 1 / epochs, applies from the first pass, as torch's does).
    #: NCFM: [0.2, 0.4, 0.6, 0.8] with 0.5 (:func:`pass_lrs`)
    lr_milestones: tuple[float, ...] = ()
    #: the factor of each milestone of ``lr_milestones`` (torch's ``MultiStepLR`` default, 0.1)
    lr_gamma: float = 0.1
    test_batch_size: int = 256
    #: augmentation of training batches: DSA per-sample (DSA/DM/DataDAM/ATOM protocol), DC's per-image
    #: augmentation (``dc``, :class:`~atombench.augment.DCAugment`), none, or auto = DSA for the distillers whose
    #: papers evaluate with it (``Distiller.eval_with_dsa``) and none for the others
    augment: Literal["auto", "none", "dsa", "dc", "crop_flip", "mixup", "cutmix"] = "auto"
    dsa_strategy: str = "color_crop_cutout_flip_scale_rotate"
    #: the operations of ``augment: dc`` (DC's ``crop_scale_rotate`` on MNIST, ``crop_noise`` for ConvNetBN)
    dc_strategy: str = "crop_scale_rotate"
    #: ``augment: mixup``'s Beta(alpha, alpha) and ``augment: cutmix``'s Beta(beta, beta) (DD-Ranking: 0.8, 1.0)
    mixup_alpha: float = 0.8
    cutmix_beta: float = 1.0
    #: a mixing augmentation applied to each training batch **after** ``augment`` (:class:`~atombench.augment.Compose`):
    #: ``none``, ``mixup`` or ``cutmix`` (``mixup_alpha`` / ``cutmix_beta``, targets mixed as under ``augment:
    #: cutmix``), with probability ``mix_prob`` per batch (one uniform draw from the training generator after the base
    #: augmentation's; NCFM: DSA then CutMix with probability 0.5). Not with ``augment: mixup`` or ``cutmix``
    mix: Literal["none", "mixup", "cutmix"] = "none"
    mix_prob: float = 1.0
    #: ``hard`` (cross-entropy on the class labels) or ``soft``: KL divergence to soft labels (a teacher's logits on
    #: the same augmented batch at every step, or the distiller's own per-image soft labels)
    labels: Literal["hard", "soft"] = "hard"
    #: the temperature T of the soft-label loss ``KL(softmax(t/T) || softmax(s/T))``, batch mean, not scaled by T^2
    #: (DD-Ranking's ``KLDivergenceLoss`` default 1.2 with ``scale_loss: false``)
    temperature: float = 1.2
    #: train the seeds of one architecture on one synthetic set together, with stacked parameters
    #: (``torch.func``), equal to separate runs to float tolerance; ``auto`` = on for CUDA, off on CPU (slower
    #: there); architectures with random layers (dropout, drop-path) always train one by one
    ensemble: Literal["auto", "on", "off"] = "auto"
    #: ``torch.compile`` the training step and the test pass (recorded with the results); ``auto`` = on for a CPU
    #: evaluation of at least :data:`COMPILE_MIN_STEPS` steps (where the compile time pays back), off elsewhere
    #: (``benchmarks/bench_eval.py``)
    compile: Union[bool, Literal["auto"]] = "auto"
    #: mixed precision for training and testing: ``bf16`` autocast, ``none`` (float32), or ``auto`` = bf16 for a
    #: CPU evaluation of at least :data:`COMPILE_MIN_STEPS` steps on a CPU with bf16 matrix units (AMX or
    #: AVX512-BF16), float32 elsewhere (``benchmarks/bench_eval.py``: same accuracy within noise, 1.7x faster per
    #: step; GPUs keep the papers' float32)
    amp: Literal["auto", "none", "bf16"] = "auto"

    def __post_init__(self) -> None:
        check(self.epochs >= 0, f"epochs must be >= 0, got {self.epochs}")
        check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        check(self.test_batch_size >= 1, f"test_batch_size must be >= 1, got {self.test_batch_size}")
        check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        check(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        check(self.optimizer in ("sgd", "adamw"), f"optimizer must be sgd or adamw, got {self.optimizer!r}")
        ms = self.lr_milestones
        check(isinstance(ms, (list, tuple)) and all(isinstance(f, (int, float)) and not isinstance(f, bool)
                                                    for f in ms),
              f"lr_milestones must be a list of fractions of the epochs, e.g. [0.5, 0.75], got {ms!r}")
        self.lr_milestones = tuple(float(f) for f in ms)
        ms = self.lr_milestones
        check(all(0 < f <= 1 for f in ms) and all(a < b for a, b in zip(ms, ms[1:])),
              f"lr_milestones must be increasing fractions of the epochs in (0, 1], e.g. [0.5, 0.75], got {list(ms)}")
        check(self.lr_gamma > 0, f"lr_gamma must be > 0, got {self.lr_gamma}")
        if ms:  # the multi-step schedule replaces the halfway decay
            self.lr_decay = False
        check(self.mix in ("none", "mixup", "cutmix"), f"mix must be none, mixup or cutmix, got {self.mix!r}")
        check(0 < self.mix_prob <= 1, f"mix_prob must be in (0, 1], got {self.mix_prob}")
        check(self.mix != "none" or self.mix_prob == 1,
              f"mix_prob {self.mix_prob} applies to mix, which is none; set mix: mixup or cutmix")
        augs = self.augment if isinstance(self.augment, (list, tuple)) else [self.augment]
        mixed = [a for a in augs if a in ("mixup", "cutmix")]
        check(self.mix == "none" or not mixed,
              f"mix: {self.mix} is applied after augment, which cannot itself mix (augment: {self.augment}); "
              f"combine mix with none, dsa, dc or crop_flip")
        check(self.compile in (True, False, "auto"), f"compile must be true, false or auto, got {self.compile!r}")
        check(self.amp in ("auto", "none", "bf16"), f"amp must be auto, none or bf16, got {self.amp!r}")
        check(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")
        check(self.mixup_alpha > 0 and self.cutmix_beta > 0,
              f"mixup_alpha and cutmix_beta must be > 0, got {self.mixup_alpha}, {self.cutmix_beta}")
        from .augment import DC_OPERATIONS, FAMILIES

        ops = [o for o in self.dc_strategy.split("_") if o]
        check(bool(ops) and all(o in DC_OPERATIONS for o in ops),
              f"dc_strategy must be operations from {', '.join(DC_OPERATIONS)} joined by '_' (e.g. "
              f"crop_scale_rotate), got {self.dc_strategy!r}")
        fams = [f for f in self.dsa_strategy.split("_") if f]
        check(all(f in FAMILIES for f in fams),
              f"dsa_strategy must be operations from {', '.join(FAMILIES)} joined by '_' (e.g. "
              f"color_crop_cutout_flip_scale_rotate), got {self.dsa_strategy!r}")


#: ``compile: auto`` and ``amp: auto`` speed up a CPU evaluation of at least this many training steps: a cold
#: compile costs about 10-30 s per shape (1-2 s from inductor's on-disk cache), a step of ConvNet-3 at IPC 10 about
#: 0.2 s; below it (smoke runs, the tests) float32 eager keeps results as they were and pays no compilation
COMPILE_MIN_STEPS = 300


def bf16_fast(device: torch.device | str) -> bool:
    """Whether bf16 autocast is the fast path on ``device``: a CPU with AMX tiles or AVX512-BF16 (oneDNN's bf16
    kernels). False for other devices (GPUs keep float32, the papers' precision, unless a suite says ``bf16``)."""
    if torch.device(device).type != "cpu":
        return False
    cpu = torch.cpu
    return bool(getattr(cpu, "_is_amx_tile_supported", lambda: False)()
                or getattr(cpu, "_is_avx512_bf16_supported", lambda: False)())


#: the architectures whose CPU evaluation ``compile: auto`` / ``amp: auto`` speed up (measured with
#: ``benchmarks/bench_eval.py``: the ConvNet family, 1.65-2.1x per step, same accuracy); other models (timm's
#: MobileNetV3 ran 0.72x in bf16 and compiled for 95 s to gain nothing) keep float32 eager unless a suite says
#: otherwise. A prefix of the registered model name.
FAST_EVAL_MODELS = ("convnet",)


def resolve_speed(train: dict, device: torch.device | str, num_images: Optional[int] = None,
                  model: Optional[str] = None) -> dict:
    """``train`` (a :class:`TrainConfig` as a dict) with ``compile: auto`` and ``amp: auto`` made concrete for
    ``device``, ``num_images`` training images and the registered ``model`` name: both on for a CPU evaluation of
    at least :data:`COMPILE_MIN_STEPS` training steps of a model of :data:`FAST_EVAL_MODELS` (``model`` None: not
    checked; bf16 only where the CPU has bf16 matrix units), both off otherwise (GPUs, short runs such as smoke
    tests, an unknown image count, other architectures). The concrete values enter job keys (bf16 and compilation
    change results beyond float tolerance), so ``auto`` itself never does."""
    out = dict(train)
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):  # "auto" on a cluster engine: resolved on the worker; keep the papers' float32
        kind = "unknown"
    steps = 0
    if num_images:
        per_epoch = -(-int(num_images) // int(out.get("batch_size", 256)))
        steps = (int(out.get("epochs", 1000)) + 1) * per_epoch
    measured = model is None or str(model).startswith(FAST_EVAL_MODELS)
    long_cpu = kind == "cpu" and steps >= COMPILE_MIN_STEPS and measured
    if out.get("amp", "auto") == "auto":
        out["amp"] = "bf16" if long_cpu and bf16_fast(device) else "none"
    if out.get("compile", "auto") == "auto":
        out["compile"] = long_cpu
    return out


def make_optimizer(params, cfg: TrainConfig, lr: float) -> torch.optim.Optimizer:
    """``cfg.optimizer`` over ``params`` at ``lr``: SGD (momentum, weight decay added to the gradient) or AdamW
    (torch's betas and eps, decoupled weight decay)."""
    params = list(params)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def milestone_passes(cfg: TrainConfig) -> list[int]:
    """The passes ``floor(f * epochs)`` of ``cfg.lr_milestones``, computed exactly from the fractions as written;
    a product within 1e-9 below a whole pass reaches it (1/120 written to float precision, 0.008333333333333333,
    times 1800 is pass 15, not 14: DataDAM's table's StepLR every 15 of 1800 epochs as fractions)."""
    out = []
    for f in cfg.lr_milestones:
        m = Fraction(repr(float(f))) * cfg.epochs
        n = int(m)
        out.append(n + 1 if m - n > 1 - Fraction(1, 10 ** 9) else n)
    return out


def pass_lrs(cfg: TrainConfig, lr: Optional[float] = None) -> list[float]:
    """The learning rate of each of the ``epochs + 1`` training passes (``lr``, default ``cfg.lr``): with
    ``lr_milestones``, torch's ``MultiStepLR`` stepped after every pass (the lr multiplied by ``lr_gamma`` once per
    milestone ``m`` reached, ``m <= p``; torch applies a milestone 0 when it is created); else, with ``lr_decay``,
    x0.1 from pass ``epochs // 2 + 2`` on (after pass ``epochs // 2 + 1``, the reference's); else constant."""
    lr = cfg.lr if lr is None else lr
    passes = range(cfg.epochs + 1)
    if cfg.lr_milestones:
        from collections import Counter

        count, out, cur = Counter(milestone_passes(cfg)), [], lr
        for p in passes:
            if count.get(p):  # as MultiStepLR: the group's lr times gamma ** (the milestones at this step)
                cur = cur * cfg.lr_gamma ** count[p]
            out.append(cur)
        return out
    decay_after = cfg.epochs // 2 + 1
    return [lr * 0.1 if cfg.lr_decay and p > decay_after else lr for p in passes]


def _next_lr(opt: torch.optim.Optimizer, cfg: TrainConfig, lrs: list[float], ep: int, make) -> torch.optim.Optimizer:
    """The optimiser for pass ``ep``: the halfway decay re-creates it at the new lr (the reference); a milestone
    changes the lr of the one optimiser in place (``MultiStepLR``)."""
    if ep == 0 or lrs[ep] == lrs[ep - 1]:
        return opt
    if not cfg.lr_milestones:
        return make(lrs[ep])
    for group in opt.param_groups:
        group["lr"] = lrs[ep]
    return opt


def _autocast(cfg: TrainConfig, device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp == "bf16")


def _concrete(cfg: TrainConfig, device: torch.device, num_images: int, net: nn.Module) -> TrainConfig:
    """``cfg`` with its ``auto`` speed settings resolved (:func:`resolve_speed`; the ConvNet class stands for the
    ConvNet family), for callers of the Python API."""
    from dataclasses import replace

    if cfg.compile != "auto" and cfg.amp != "auto":
        return cfg
    model = "convnet" if type(net).__name__ == "ConvNet" else type(net).__name__
    r = resolve_speed({"compile": cfg.compile, "amp": cfg.amp, "epochs": cfg.epochs, "batch_size": cfg.batch_size},
                      device, num_images, model)
    return replace(cfg, compile=r["compile"], amp=r["amp"])


def soft_label_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """DD-Ranking's soft-label loss: ``KL(softmax(t / T) || softmax(s / T))`` summed over classes and averaged over
    the batch (``F.kl_div(log_softmax(s / T), softmax(t / T), reduction='batchmean')``), not multiplied by T^2."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, dim=1), F.softmax(teacher_logits.detach() / t, dim=1),
                    reduction="batchmean")


class Targets:
    """What a training batch is fitted to: hard labels (mixed when MixUp/CutMix mixed the images), or soft labels
    from a ``teacher`` network run on the same augmented batch, or from per-image ``soft`` logits (mixed like the
    images)."""

    def __init__(self, cfg: TrainConfig, teacher: Optional[nn.Module] = None, soft: Optional[torch.Tensor] = None):
        if cfg.labels == "soft" and teacher is None and soft is None:
            raise ValueError("soft labels need a teacher network or per-image soft labels")
        self.cfg, self.teacher, self.soft = cfg, teacher, soft
        if teacher is not None:
            teacher.eval()
            for p in teacher.parameters():
                p.requires_grad_(False)

    def loss(self, logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, augment) -> torch.Tensor:
        mix = getattr(augment, "last", None)
        if self.cfg.labels == "soft":
            if self.teacher is not None:
                with torch.no_grad():
                    target = self.teacher(x).float()
            else:
                target = self.soft[idx]
                if mix is not None:
                    perm, lam = mix
                    target = lam * target + (1 - lam) * target[perm]
            return soft_label_loss(logits, target, self.cfg.temperature)
        if mix is not None:
            perm, lam = mix
            return lam * F.cross_entropy(logits, y) + (1 - lam) * F.cross_entropy(logits, y[perm])
        return F.cross_entropy(logits, y)


def train_model(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig,
                generator: torch.Generator, augment: Optional[Augment] = None,
                targets: Optional[Targets] = None) -> list[float]:
    """Train ``net`` in place on ``images``/``labels`` (already on the net's device); returns per-pass losses.
    ``targets`` (:class:`Targets`) for soft labels; hard labels by default."""
    device = images.device
    cfg = _concrete(cfg, device, len(images), net)
    net.train()
    # one graph per batch shape (the last, smaller batch of an epoch gets its own), reused by every later model of
    # the same architecture in this process: dynamo caches on the forward's code, not on the module
    forward = compiled(net) if cfg.compile else net
    lrs = pass_lrs(cfg)

    def make(lr: float) -> torch.optim.Optimizer:
        return make_optimizer(net.parameters(), cfg, lr)

    opt = make(lrs[0]) if lrs else None
    n = len(images)
    targets = targets or Targets(cfg)
    losses = []
    for ep in range(cfg.epochs + 1):
        opt = _next_lr(opt, cfg, lrs, ep, make)
        perm = torch.randperm(n, generator=generator).to(device)
        total = torch.zeros((), device=device)
        for start in range(0, n, cfg.batch_size):
            idx = perm[start:start + cfg.batch_size]
            x, y = images[idx], labels[idx]
            if augment is not None:
                x = augment(x, generator)
            with _autocast(cfg, device):
                loss = targets.loss(forward(x).float(), x, y, idx, augment)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
        losses.append(total)
    # one device sync at the end instead of one per step (a GPU step on a tiny set is launch-bound)
    return (torch.stack(losses) / max(n, 1)).tolist() if losses else []


def ensemble_exact(net: nn.Module) -> bool:
    """Whether training copies of ``net`` with stacked parameters reproduces separate runs: no layer draws
    random numbers in training (dropout, drop-path, stochastic depth)."""
    for m in net.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0:
            return False
        # timm: DropPath modules (drop_prob) and functional dropout in heads (drop_rate)
        if any(isinstance(getattr(m, a, None), float) and getattr(m, a) > 0 for a in ("drop_prob", "drop_rate")):
            return False
    return True


def train_ensemble(nets: list[nn.Module], images: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig,
                   generators: list[torch.Generator], augment: Optional[Augment] = None) -> list[list[float]]:
    """Train ``K = len(nets)`` models of one architecture at once, each as :func:`train_model` would with its own
    generator (same batches, same augmentations, same optimiser and schedule), by stacking their parameters and
    buffers and running the forward pass under ``torch.func.vmap``.

    Exact: SGD with momentum and weight decay, and AdamW (its moments, bias corrections and decoupled decay), are
    element-wise, so one optimiser over the stacked parameters is K optimisers; the loss is the sum of the K models'
    mean losses, so each slice gets its own model's gradient. BatchNorm running statistics are stacked buffers
    updated per model. The parameters are copied back into ``nets`` at the end. Returns each model's per-pass
    losses. With AdamW, a parameter whose true gradient is zero (a convolution's bias before a norm that subtracts
    the mean) receives float noise, which Adam's normalisation turns into steps of about ``lr``: such a parameter may
    differ between the ensemble and separate runs (as between two machines), without changing any output. Mixed
    batches (``mix``, an augmentation that mixes targets) are not supported: their targets differ per model; train
    those with :func:`train_model`.
    """
    import copy

    from torch.func import functional_call, stack_module_state, vmap

    if cfg.mix != "none" or cfg.augment in ("mixup", "cutmix") or hasattr(augment, "last"):
        raise ValueError("train_ensemble does not mix targets: train models with mixed batches one by one "
                         "(train_model)")
    k = len(nets)
    device = images.device
    cfg = _concrete(cfg, device, len(images), nets[0])
    for net in nets:
        net.train()
    params, buffers = stack_module_state(nets)
    skeleton = copy.deepcopy(nets[0]).to("meta")

    def fmodel(p, b, x):
        return functional_call(skeleton, (p, b), (x,))

    step = vmap(fmodel)
    if cfg.compile:
        step = compiled(step)
    lrs = pass_lrs(cfg)

    def make(lr: float) -> torch.optim.Optimizer:
        return make_optimizer(params.values(), cfg, lr)

    opt = make(lrs[0]) if lrs else None
    n = len(images)
    losses = []
    many = getattr(augment, "many", None)  # all models' augmentations in a few calls (DSA), else one per model
    for ep in range(cfg.epochs + 1):
        opt = _next_lr(opt, cfg, lrs, ep, make)
        # every model's order, drawn from its own generator as train_model draws it, moved in one copy
        perms = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(device)
        total = torch.zeros(k, device=device)
        for start in range(0, n, cfg.batch_size):
            idx = perms[:, start:start + cfg.batch_size]
            x, y = images[idx], labels[idx]
            if many is not None:
                x = many(x, generators)
            elif augment is not None:
                x = torch.stack([augment(xi, g) for xi, g in zip(x, generators)])
            with _autocast(cfg, device):
                logits = step(params, buffers, x).float()
            per_model = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(k, -1).mean(1)
            opt.zero_grad(set_to_none=True)
            per_model.sum().backward()
            opt.step()
            total += per_model.detach() * y.shape[1]
        losses.append(total)
    with torch.no_grad():
        for i, net in enumerate(nets):
            for name, t in list(net.named_parameters()) + list(net.named_buffers()):
                src = params.get(name, buffers.get(name))
                if src is not None:
                    t.copy_(src[i])
    curves = (torch.stack(losses) / max(n, 1)).T.tolist() if losses else [[] for _ in nets]
    return curves


def compiled(net):
    """``torch.compile(net)`` (a module or a function; static shapes) with dynamo's recompile limit raised to 64: every (architecture,
    batch shape, train / eval mode) is one compiled entry of the same ``forward``, and a worker evaluating several
    IPCs (training and test batches of each) needs more than the default 8, past which dynamo silently falls back to
    eager. The graphs are cached on the forward's code: a later network of the same architecture reuses them."""
    from .runtime import raise_recompile_limit

    raise_recompile_limit(64)
    return torch.compile(net, dynamic=False)


def evaluate(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256,
             device: torch.device | str = "cpu", amp: str = "none", compile: bool | str = False) -> dict:
    """Top-1 (and top-5 when there are more than 10 classes) accuracy on ``images``, in percent. Under
    ``inference_mode``, in batches of ``batch_size`` (the result does not depend on it: ``net.eval()``), with the
    correct counts summed on the device and read back once. ``compile: true`` (the evaluation job's training was
    compiled: its resolved ``TrainConfig.compile``) runs the test pass compiled too, one graph per batch shape
    reused by every later network of the architecture in the process (1.6x on a CPU, ``bench_eval.py testpass``);
    ``auto`` or false: eager."""
    device = torch.device(device)
    if amp == "auto":
        amp = "bf16" if bf16_fast(device) else "none"
    net.eval()
    forward = compiled(net) if compile is True else net
    correct1 = torch.zeros((), dtype=torch.long, device=device)
    correct5 = torch.zeros((), dtype=torch.long, device=device)
    num_classes = None
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp == "bf16"):
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size].to(device, non_blocking=True)
            y = labels[start:start + batch_size].to(device, non_blocking=True)
            logits = forward(x).float()
            num_classes = logits.shape[1]
            correct1 += (logits.argmax(1) == y).sum()
            if num_classes > 10:
                top5 = logits.topk(5, dim=1).indices
                correct5 += (top5 == y[:, None]).any(1).sum()
    n = max(len(images), 1)
    return {"accuracy": 100.0 * int(correct1) / n,
            "top5_accuracy": 100.0 * int(correct5) / n if num_classes and num_classes > 10 else None}
