r"""Feature-matching distillers in randomly initialised networks: DM, DataDAM and ATOM.

All three share one iteration (``docs/methods.md#feature-matching``):

1. sample a fresh, randomly initialised network :math:`\phi_\theta` (frozen, train mode);
2. for every class k take a real batch :math:`B_T^k` and the class's synthetic images :math:`B_S^k`, and apply
   siamese DSA with one seed per class (the same transformation for both batches);
3. compute per-class batch means of feature statistics and their squared L2 distances; sum over classes;
4. one SGD step (momentum 0.5) on the synthetic pixels.

With :math:`f^l \in \mathbb{R}^{B \times C_l \times H_l \times W_l}` the post-activation output of block l (the
intermediate blocks: all but the last, as DataDAM hooks them) and :math:`e` the final flattened embedding:

* spatial attention :math:`a_s(f) = \mathrm{vec}(\sum_c |f_c|^{p_s}) / \| \cdot \|_2` (one ``H*W`` vector per image);
* channel attention :math:`a_c(f) = (\sum_{h,w} |f_{:,h,w}|^{p_c}) / \| \cdot \|_2` (one ``C`` vector per image);
* :math:`D(k, v) = \| \mathrm{mean}_{x \in B_T^k} v(x) - \mathrm{mean}_{s \in B_S^k} v(s) \|_2^2`.

The losses (sums over classes k and layers l):

* **DM**: :math:`L = \sum_k D(k, e)`;
* **DataDAM**: :math:`L = w \sum_{k,l} D(k, a_s(f^l)) + w \lambda \sum_k D(k, e)`;
* **ATOM**: :math:`L = w \sum_{k,l} [\,w_s D(k, a_s(f^l)) + w_c D(k, a_c(f^l))\,] + w \lambda \sum_k D(k, e)`,

where ``w = 100`` is the released DataDAM code's per-layer scale (the image learning rate 1 assumes it) and
:math:`\lambda` the task balance. ATOM's exact equations could not be read (no code was released; see
``docs/open_questions.md``): this is the reconstruction of ``docs/methods.md#atom-loss``.

**Batched iteration.** The reference loops over classes, one forward pass per class (DM) or concatenates all
classes (DataDAM's code). With a per-sample normalisation (instance/group/layer norm, or none) both give the same
loss; ``batched: true`` (default) pushes all classes through in a few large passes (real images in chunks of
``real_chunk``, under ``no_grad``, never in the synthetic images' graph) and takes the per-class means by
reshaping. With BatchNorm the statistics depend on the batch, so ``batched`` follows the reference of each
method: DM's ``ConvNetBN`` branch and DataDAM's code both run all classes in one pass (batched). The per-class
loop (``batched: false``) is the correctness reference for per-sample normalisations only: with BatchNorm it is
neither reference (its gradients differ from both by about a quarter to a third) and is not a setting to use.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Literal, Optional

import torch

from ..augment import DSA
from ..config import check
from ..data.base import ClassSampler, RealData
from ..errors import AtombenchError, UsageError
from ..models.base import reinitialise_
from .base import DistillContext, Distiller, class_balanced_labels


@dataclass
class MatchingConfig:
    """Options shared by DM, DataDAM and ATOM."""

    #: outer iterations (one fresh network each)
    iterations: int = 20000
    #: image learning rate; null = 1 for IPC <= 50 and 10 above (DM and DataDAM papers)
    lr_img: Optional[float] = None
    momentum: float = 0.5
    #: real images per class per iteration
    batch_real: int = 256
    init: Literal["real", "noise"] = "real"
    #: the randomly initialised network (any registered model name) and its options
    net: str = "convnet"
    net_options: dict = field(default_factory=dict)
    dsa: bool = True
    dsa_strategy: str = "color_crop_cutout_flip_scale_rotate"
    #: all classes in a few forward passes (see the module docstring); false = the per-class reference loop
    batched: bool = True
    #: real images per forward pass in the batched iteration; null = 256 on CPU (larger chunks were slower
    #: than the per-class loop there: benchmarks/README.md) and the whole real batch on a GPU
    real_chunk: Optional[int] = None
    #: bf16 autocast for the real images' forward pass (under no_grad, never in the synthetic images' graph);
    #: changes the matched statistics at bf16 precision, so it is part of the set's key when on
    real_amp: Literal["none", "bf16"] = "none"
    #: channels_last memory format for the networks and batches (a layout, not a change of results)
    channels_last: bool = False
    #: ``torch.compile`` the statistics of a batch (the network's forward and the attention maps, what an
    #: iteration spends its time in) with this mode: ``auto`` (the default: ``default`` for a distillation of at
    #: least :data:`COMPILE_MIN_ITERATIONS` iterations on the CPU, ``none`` elsewhere, made concrete before any key
    #: by :func:`concrete_compile`), ``none`` (eager), ``default``, ``reduce-overhead`` (on CUDA: CUDA graphs of the
    #: fixed-shape passes; the network is then re-initialised in place each iteration, so its parameters keep their
    #: addresses) or ``max-autotune``. Float rounding may differ from eager, so the mode is part of the set's key
    #: when on. The first iterations pay the compilation.
    compile: Literal["auto", "none", "default", "reduce-overhead", "max-autotune"] = "auto"
    #: one fixed-shape iteration with every random draw made on the device (the real batch, the network's
    #: re-initialisation in place, the siamese augmentation), so that on CUDA the whole iteration (both forward
    #: passes, the backward pass and the optimiser step) is captured once as a CUDA graph and replayed: one launch
    #: per iteration instead of one per operation. On the CPU the same iteration runs eagerly. Its random stream
    #: differs from the default path's (so it is part of the set's key when on); a resumed run continues exactly
    #: (each iteration is seeded from the run's generator). Needs a network initialised by its modules'
    #: ``reset_parameters`` (ConvNet and torchvision-style layers; checked before the first iteration).
    cuda_graph: bool = False

    def __post_init__(self) -> None:
        check(self.iterations >= 0, f"iterations must be >= 0, got {self.iterations}")
        check(self.lr_img is None or self.lr_img > 0, f"lr_img must be > 0, got {self.lr_img}")
        check(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        check(self.batch_real >= 1, f"batch_real must be >= 1, got {self.batch_real}")
        check(self.real_chunk is None or self.real_chunk >= 1, f"real_chunk must be >= 1, got {self.real_chunk}")
        check(not (self.cuda_graph and self.compile not in ("none", "auto")),
              f"cuda_graph captures the whole iteration itself: use it with compile: none (got {self.compile!r})")
        check(not self.cuda_graph or self.batched,
              "cuda_graph runs the batched iteration: use it with batched: true")
        from ..augment import parse_strategy

        try:
            parse_strategy(self.dsa_strategy)
        except ValueError as exc:
            check(False, f"dsa_strategy: {exc}")


#: ``compile: auto`` compiles a CPU distillation of at least this many iterations: compilation costs 20-40 s
#: once per process and shape, an iteration saves 0.3 s (Intel Xeon, AMX) to 0.6-1.7 s (AMD EPYC, AVX2) compiled
#: (benchmarks/bench_batched.py, benchmarks/README.md), so it pays back after about 100 iterations; shorter runs
#: (the quickstart, the tests) stay eager
COMPILE_MIN_ITERATIONS = 200


def concrete_compile(config, device: str) -> str:
    """``config.compile`` with ``auto`` made concrete for ``device`` (``cpu``, ``cuda``, or ``remote`` for a cluster
    engine whose workers the launching machine cannot see): ``default`` for a CPU distillation of at least
    :data:`COMPILE_MIN_ITERATIONS` iterations (1.25-2.2x per iteration measured for DM, DataDAM and ATOM at IPC 1
    and 10, the images equal to eager ones up to float rounding), ``none`` elsewhere (GPUs keep the eager path their
    figures were measured with; ``reduce-overhead`` and ``cuda_graph`` are a suite's choice there)."""
    mode = getattr(config, "compile", "none")
    if mode != "auto":
        return mode
    long_cpu = device == "cpu" and int(getattr(config, "iterations", 0)) >= COMPILE_MIN_ITERATIONS
    return "default" if long_cpu and not getattr(config, "cuda_graph", False) else "none"


@dataclass
class Stats:
    """Per-class means of the matched statistics: ``spatial[l]``, ``channel[l]`` are ``[K, dim]``, ``embed``
    ``[K, D]``."""

    spatial: list[torch.Tensor]
    channel: list[torch.Tensor]
    embed: torch.Tensor

    def float(self) -> "Stats":
        return Stats([t.float() for t in self.spatial], [t.float() for t in self.channel], self.embed.float())


def reinit_reproduces_builder(name: str, options: dict | None, data: RealData, seed: int = 0) -> bool:
    """Whether :func:`~atombench.models.base.reinitialise_` draws the same weights as building the network
    ``name`` does, from the same seed (checked on the CPU: what ``cuda_graph`` relies on)."""
    from ..factories import build_model

    built = build_model(name, options, data, seed)
    other = build_model(name, options, data, seed + 1)
    where = [t.data_ptr() for t in other.state_dict().values()]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        reinitialise_(other)
    a, b = built.state_dict(), other.state_dict()
    return (a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)  # drawn in place, as built
            and [t.data_ptr() for t in b.values()] == where)


def _has_batchnorm(net: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())


def abs_pow(f: torch.Tensor, p: float) -> torch.Tensor:
    """``|f|^p``, with the common integer powers as multiplications (a float ``pow`` dominated the CPU profile)."""
    if p == 1:
        return f.abs()
    if p == 2:
        return f * f
    if p == 4:
        return (f * f).square()
    if float(p).is_integer() and p % 2 == 0:
        return (f * f).pow(int(p) // 2)
    return f.abs().pow(p)


def spatial_attention(f: torch.Tensor, p: float, powered: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, H*W]``: sum over channels of ``|f|^p``, L2-normalised per image."""
    a = (abs_pow(f, p) if powered is None else powered).sum(1).flatten(1)
    return torch.nn.functional.normalize(a, p=2, dim=1)


def channel_attention(f: torch.Tensor, p: float, powered: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, C]``: sum over spatial positions of ``|f|^p``, L2-normalised per image."""
    a = (abs_pow(f, p) if powered is None else powered).sum((2, 3))
    return torch.nn.functional.normalize(a, p=2, dim=1)


class FeatureMatchingDistiller(Distiller):
    """The shared iteration; subclasses say which statistics they match and how they weigh them."""

    iterative = True  # snapshots and resume (DistillContext.step_done / restore)
    makes_soft_labels = False  # a subclass that stores extras["soft_labels"] says True

    Config = MatchingConfig
    eval_with_dsa = True
    #: which kinds of statistics the loss uses
    uses_spatial = False
    uses_channel = False

    # -- what is matched ------------------------------------------------------------------------------------
    def layers(self, num_maps: int) -> list[int]:
        return []

    def powers(self) -> tuple[float, float]:
        return 1.0, 1.0

    def loss_from_stats(self, real: Stats, syn: Stats) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def embedding_statistic(self, e: torch.Tensor) -> torch.Tensor:
        """The per-image statistic of the flattened final embedding ``e`` ``[B, D]`` whose class means
        :attr:`Stats.embed` holds: the embedding itself (DM, DataDAM, ATOM). A method that matches the class means
        of another function of the embedding overrides it (an outside plug-in: NCFM's ``[cos(e t), sin(e t)]``,
        the empirical characteristic function); it runs inside :meth:`stats`, so ``compile`` traces it with the
        network's forward pass, and under ``real_amp`` with the real images' pass."""
        return e

    def stats(self, net, x: torch.Tensor, k: int) -> Stats:
        """Per-class means of the statistics of ``x`` (``k`` equal contiguous class groups)."""
        mode = self.config.compile
        if mode in ("none", "auto"):  # auto never made concrete (a distiller built outside a suite): eager
            return Stats(*self._stats(net, x, k))
        compiled = self.__dict__.get("_compiled_stats")
        if compiled is None:  # one compiled function per distiller; a new network of the same shapes reuses it
            # every (shape, grad mode, distiller) is one compiled entry of the same code: a worker running several
            # distillations needs more than dynamo's default 8, past which it silently falls back to eager
            from ..runtime import raise_recompile_limit

            raise_recompile_limit(64)
            compiled = self.__dict__["_compiled_stats"] = torch.compile(self._stats, mode=mode, dynamic=False)
        return Stats(*compiled(net, x, k))

    def _stats(self, net, x: torch.Tensor, k: int) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """:meth:`stats` as plain tensors (what ``compile`` traces)."""
        if not (self.uses_spatial or self.uses_channel):  # DM: the embedding only, no block output kept alive
            e = self.embedding_statistic(net.embed(x).flatten(1))
            return [], [], e.reshape(k, -1, e.shape[-1]).mean(1)
        feats = net.extract(x)
        ps, pc = self.powers()
        layers = self.layers(len(feats.maps))

        def means(v: torch.Tensor) -> torch.Tensor:
            return v.reshape(k, -1, v.shape[-1]).mean(1)

        spatial, channel = [], []
        for l in layers:
            f = feats.maps[l]
            powered = abs_pow(f, ps) if self.uses_spatial else None
            if self.uses_spatial:
                spatial.append(means(spatial_attention(f, ps, powered)))
            if self.uses_channel:  # |f|^p is shared when both terms use the same power
                channel.append(means(channel_attention(f, pc, powered if pc == ps else None)))
        return spatial, channel, means(self.embedding_statistic(feats.embedding.flatten(1)))

    # -- the iteration --------------------------------------------------------------------------------------
    def real_stats(self, net, real_x: torch.Tensor, k: int, seeds: list[int], dsa: DSA | None) -> Stats:
        """Stats of the real batch, augmented and forwarded in chunks of whole classes, without autograd."""
        return self._real_stats(net, real_x, k, (lambda x, c0, c1: dsa.siamese(x, seeds[c0:c1])) if dsa else None)

    def _autocast(self, device_type: str):
        # no cast cache inside a CUDA graph capture (torch's advice; the frozen network's casts are not cached anyway)
        return torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.config.real_amp == "bf16",
                              cache_enabled=not self.config.cuda_graph)

    def _real_stats(self, net, real_x: torch.Tensor, k: int, augment) -> Stats:
        """:meth:`real_stats` with ``augment(x, c0, c1)`` augmenting the images ``x`` of classes ``c0:c1`` (None:
        no augmentation)."""
        cfg = self.config
        per = len(real_x) // k
        chunk = cfg.real_chunk or (256 if real_x.device.type == "cpu" else len(real_x))
        if _has_batchnorm(net):
            chunk = len(real_x)  # BatchNorm statistics must see all classes at once, as the reference
        if chunk < per:  # pieces smaller than a class: each class's means are the size-weighted means of its pieces
            return self._real_stats_split(net, real_x, k, augment, chunk)
        classes_per_chunk = max(1, chunk // max(per, 1))
        parts = []
        with torch.no_grad(), self._autocast(real_x.device.type):
            for c0 in range(0, k, classes_per_chunk):
                c1 = min(k, c0 + classes_per_chunk)
                x = real_x[c0 * per:c1 * per]
                parts.append(self.stats(net, augment(x, c0, c1) if augment else x, c1 - c0).float())
        return Stats([torch.cat([p.spatial[i] for p in parts]) for i in range(len(parts[0].spatial))],
                     [torch.cat([p.channel[i] for p in parts]) for i in range(len(parts[0].channel))],
                     torch.cat([p.embed for p in parts]))

    def _real_stats_split(self, net, real_x: torch.Tensor, k: int, augment, chunk: int) -> Stats:
        """:meth:`real_stats` with each class forwarded in pieces of at most ``chunk`` images (smaller live
        tensors; the same class-wide DSA transformation on every piece)."""
        per = len(real_x) // k
        classes = []
        with torch.no_grad(), self._autocast(real_x.device.type):
            for c in range(k):
                acc = None
                for s0 in range(0, per, chunk):
                    x = real_x[c * per + s0:c * per + min(per, s0 + chunk)]
                    st = self.stats(net, augment(x, c, c + 1) if augment else x, 1).float()
                    w = len(x) / per  # the class mean is the size-weighted mean of its pieces' means
                    part = Stats([w * t for t in st.spatial], [w * t for t in st.channel], w * st.embed)
                    acc = part if acc is None else Stats([a + b for a, b in zip(acc.spatial, part.spatial)],
                                                         [a + b for a, b in zip(acc.channel, part.channel)],
                                                         acc.embed + part.embed)
                classes.append(acc)
        return Stats([torch.cat([c.spatial[i] for c in classes]) for i in range(len(classes[0].spatial))],
                     [torch.cat([c.channel[i] for c in classes]) for i in range(len(classes[0].channel))],
                     torch.cat([c.embed for c in classes]))

    def iteration_loss(self, net, real_x: torch.Tensor, syn: torch.Tensor, k: int, seeds: list[int],
                       dsa: DSA | None) -> torch.Tensor:
        """The loss of one iteration. ``real_x``: ``k`` contiguous class groups; ``syn``: likewise."""
        if self.config.batched:
            xs = dsa.siamese(syn, seeds) if dsa else syn
            return self.loss_from_stats(self.real_stats(net, real_x, k, seeds, dsa), self.stats(net, xs, k))
        per_r, per_s = len(real_x) // k, len(syn) // k
        loss = syn.new_zeros(())
        for c in range(k):  # the reference loop: one class per forward pass
            xr, xs = real_x[c * per_r:(c + 1) * per_r], syn[c * per_s:(c + 1) * per_s]
            if dsa:
                xr, xs = dsa.siamese(xr, seeds[c:c + 1]), dsa.siamese(xs, seeds[c:c + 1])
            with torch.no_grad():
                rs = self.stats(net, xr, 1)
            loss = loss + self.loss_from_stats(rs, self.stats(net, xs, 1))
        return loss

    def distill(self, data: RealData, ipc: int, ctx: DistillContext):
        cfg = self.config
        k = data.num_classes
        self.__dict__.pop("_net_slot", None)  # a network kept in place belongs to one run
        labels = class_balanced_labels(k, ipc)
        if cfg.init == "real":
            syn = torch.cat([data.sample_class(c, ipc, ctx.generator) for c in range(k)])
        else:
            syn = torch.randn((k * ipc, *data.train_x.shape[1:]), generator=ctx.generator)
        extras = self.prepare(data, ipc)
        syn = self.initial_transform(syn, data).to(ctx.device).requires_grad_(True)
        lr = cfg.lr_img if cfg.lr_img is not None else (1.0 if ipc <= 50 else 10.0)
        opt = torch.optim.SGD([syn], lr=lr, momentum=cfg.momentum)
        dsa = DSA(cfg.dsa_strategy, digits=bool(data.tags.get("digits"))) if cfg.dsa else None
        train_x = data.train_x.to(ctx.device) if ctx.device.type == "cuda" else data.train_x
        # equal class groups; the reference takes the whole class when it is smaller than batch_real
        n_real = min(cfg.batch_real, data.min_class_size)
        start, _ = ctx.resume_into(syn, opt)  # an interrupted run continues from its last snapshot
        if cfg.cuda_graph:
            self._distill_fixed(data, ctx, syn, opt, labels, start, lr, extras, dsa, n_real, train_x)
        else:
            self._distill_eager(data, ctx, syn, opt, labels, start, lr, extras, dsa, n_real, train_x)
        # the images' scale against the real images' (the attention-power pitfall: docs/pitfalls.md)
        scale = {"pixel_std": float(syn.detach().std()), "real_pixel_std": float(train_x[:2048].std())}
        return syn.detach(), labels, {"lr_img": lr, **extras, **scale}

    def _distill_eager(self, data, ctx, syn, opt, labels, start, lr, extras, dsa, n_real, train_x) -> None:
        """The iterations from ``start``: a fresh network per iteration, the random draws on the CPU."""
        cfg = self.config
        k = data.num_classes
        bar = ctx.progress(range(start, cfg.iterations), total=cfg.iterations - start, desc=self.name)
        try:
            for it in bar:
                net = ctx.fresh_net(cfg.net, cfg.net_options, data)
                idx = torch.cat([self._real_index(data, c, n_real, ctx.generator) for c in range(k)])
                real_x = train_x[idx.to(train_x.device)].to(ctx.device)
                if cfg.channels_last:
                    net = net.to(memory_format=torch.channels_last)
                    real_x = real_x.contiguous(memory_format=torch.channels_last)
                if cfg.compile == "reduce-overhead":  # CUDA graphs replay fixed addresses: re-initialise in place
                    net = self._in_place(net)
                seeds = [ctx.next_seed() for _ in range(k)]
                loss = self.iteration_loss(net, real_x, syn, k, seeds, dsa)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                bar.report(it, loss.detach())
                ctx.step_done(it + 1, syn, labels, lambda: {"images": syn.detach().cpu(), "opt": opt.state_dict()},
                              {"lr_img": lr, **extras})
        finally:
            bar.close()

    def check_net(self, data: RealData) -> str | None:
        """A message when the configured network cannot serve this configuration on ``data`` (the suite check
        calls it before any work), else None."""
        cfg = self.config
        if cfg.cuda_graph and not reinit_reproduces_builder(cfg.net, cfg.net_options, data):
            return (f"cuda_graph re-initialises the network in place with its modules' reset_parameters(), which "
                    f"does not reproduce how '{cfg.net}' is built; use net: convnet (or another such network) or "
                    f"set cuda_graph: false")
        return None

    #: eager iterations before the capture (on a side stream, as torch's CUDA-graph notes ask)
    GRAPH_WARMUP = 3

    def _distill_fixed(self, data, ctx, syn, opt, labels, start, lr, extras, dsa, n_real, train_x) -> None:
        """The iterations from ``start`` as one fixed-shape step (``cuda_graph``): one network re-initialised in
        place, every draw on the device from its default generator, seeded per iteration from the run's seeds;
        on CUDA captured after :attr:`GRAPH_WARMUP` eager iterations and replayed."""
        cfg = self.config
        k = data.num_classes
        device = ctx.device
        cuda = device.type == "cuda"
        from ..factories import build_model

        # built once; every step overwrites its weights, so the seed drawn here is no part of the result (and none
        # is taken from the run's seeds: a resumed run draws the same per-iteration seeds as an uninterrupted one)
        net = build_model(cfg.net, cfg.net_options, data, 0).to(device).train()
        for p in net.parameters():
            p.requires_grad_(False)
        problem = self.check_net(data)
        if problem:
            raise UsageError(f"{self.name}: {problem}")
        if cfg.channels_last:
            net = net.to(memory_format=torch.channels_last)
        sample = ClassSampler(data.class_indices, n_real, train_x.device)
        h, w = syn.shape[-2:]

        def step() -> torch.Tensor:
            reinitialise_(net)
            real_x = train_x[sample()].to(device)
            if cfg.channels_last:
                real_x = real_x.contiguous(memory_format=torch.channels_last)
            draw = dsa.draw_fixed(k, h, w, None, device) if dsa else None
            xs = dsa.siamese_fixed(syn, draw) if dsa else syn
            real = self._real_stats(net, real_x, k,
                                    (lambda x, c0, c1: dsa.siamese_fixed(x, draw.groups(c0, c1))) if dsa else None)
            loss = self.loss_from_stats(real, self.stats(net, xs, k))
            loss.backward()
            opt.step()
            return loss.detach()

        graph, captured, side = None, None, torch.cuda.Stream(device) if cuda else None
        bar = ctx.progress(range(start, cfg.iterations), total=cfg.iterations - start, desc=self.name)
        # the run's GPU as the current one (cuda:N of a multi-GPU engine): its generator, streams and capture
        on_device = torch.cuda.device(device) if cuda else contextlib.nullcontext()
        try:
            with torch.random.fork_rng(devices=[]), on_device:  # the CPU's global generator is left as it was
                for it in bar:
                    seed = ctx.next_seed()  # each iteration a function of the run's seeds: resume is exact
                    if cuda:
                        torch.cuda.manual_seed(seed)
                    else:
                        torch.random.default_generator.manual_seed(seed)
                    if not cuda:
                        opt.zero_grad(set_to_none=True)
                        loss = step()
                    elif it - start < self.GRAPH_WARMUP:
                        side.wait_stream(torch.cuda.current_stream())
                        with torch.cuda.stream(side):
                            opt.zero_grad(set_to_none=True)
                            loss = step()
                        torch.cuda.current_stream().wait_stream(side)
                    else:
                        if graph is None:
                            graph, captured = self._capture(step, opt, side)
                        graph.replay()
                        loss = captured.clone()  # the captured tensor is overwritten by the next replay
                    bar.report(it, loss)
                    ctx.step_done(it + 1, syn, labels,
                                  lambda: {"images": syn.detach().cpu(), "opt": opt.state_dict()},
                                  {"lr_img": lr, **extras})
        finally:
            bar.close()
            syn.grad = None  # on CUDA a block of the graph's private memory pool

    def _capture(self, step, opt, side):
        """``step`` recorded as a CUDA graph (recording runs nothing); the gradient is left unset before, so the
        graph's backward writes it afresh on every replay instead of accumulating."""
        opt.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        current = torch.cuda.current_stream(side.device)
        try:
            # on the run's own (warmed-up) stream: torch's default capture stream is made once per process, on
            # whichever GPU was current then, and a worker may run its next job on another GPU
            with torch.cuda.graph(graph, stream=side):
                loss = step()
        except torch.cuda.OutOfMemoryError:
            raise
        except RuntimeError as exc:
            cause = f"; first: {exc.__context__}" if exc.__context__ is not None else ""
            raise AtombenchError(f"{self.name}: capturing the iteration as a CUDA graph failed ({exc}{cause}); "
                                 f"set cuda_graph: false (and restart the run: its worker's GPU state is "
                                 f"unreliable after a failed capture)") from exc
        finally:
            torch.cuda.set_stream(current)  # a capture that failed on exit leaves its stream current
        return graph, loss

    def _in_place(self, net):
        """The first network of the run, its parameters and buffers overwritten with ``net``'s (the same random
        initialisation, kept at the same addresses)."""
        slot = self.__dict__.get("_net_slot")
        if slot is None:
            self.__dict__["_net_slot"] = net
            return net
        with torch.no_grad():
            for dst, src in zip(slot.state_dict().values(), net.state_dict().values()):
                dst.copy_(src)
        return slot

    def __getstate__(self) -> dict:  # compiled functions and the kept network stay in the process
        return {k: v for k, v in self.__dict__.items() if k not in ("_compiled_stats", "_net_slot")}

    def prepare(self, data: RealData, ipc: int) -> dict:
        """Settings that depend on the data, resolved before the first iteration; returns what to record in the
        synthetic set's metadata."""
        return {}

    def initial_transform(self, syn: torch.Tensor, data: RealData) -> torch.Tensor:
        """The initial synthetic images as the method's code leaves them before optimising (identity here)."""
        return syn

    @staticmethod
    def _real_index(data: RealData, c: int, n: int, g: torch.Generator) -> torch.Tensor:
        """``n`` distinct random training indices of class ``c``."""
        idx = data.class_indices[c]
        return idx[torch.randperm(len(idx), generator=g)[:n]]
