"""The distiller interface: real training set + IPC + seeded context -> :class:`SyntheticSet`.

A distiller is a class registered in the entry-point group ``atombench.distillers`` with

* ``Config``: a dataclass of its hyper-parameters with their paper defaults (suite files override them; unknown
  keys are errors);
* ``distill(self, data, ipc, ctx) -> (images, labels)`` or ``(images, labels, extras)``: images in the dataset's
  normalised space ``[num_classes * ipc, C, H, W]``; ``extras`` is a dict stored in the metadata (e.g. the loss
  curve), except ``extras["soft_labels"]``, per-image soft labels (logits ``[N, num_classes]``) stored with the
  images, which ``eval.soft_labels: distiller`` trains on.

Everything a distiller needs that must be reproducible comes from the :class:`DistillContext`: the device, a
seeded ``torch.Generator`` (real-batch sampling, initialisation), :meth:`DistillContext.fresh_net` (a newly,
randomly initialised network per iteration, as DM/DataDAM/ATOM need), :meth:`DistillContext.next_seed` (seeds
for siamese augmentation) and :meth:`DistillContext.progress` (a progress bar that shows the current loss and
records the loss curve). :meth:`Distiller.run` wraps ``distill`` with timing, peak memory and metadata.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, ClassVar, Iterable, Iterator, Optional

import torch

from .. import config as cfgmod
from ..data.base import RealData
from ..errors import AtombenchError, UsageError
from ..models.base import FeatureNet
from ..protocols import Protocol
from ..runtime import PeakMemory, derive_seed, timer, versions
from ..store import SyntheticSet


class DistillationDiverged(AtombenchError):
    """The distillation loss became NaN or inf."""


class DistillContext:
    """Device, seeds and progress reporting for one distillation (one dataset, distiller, IPC and seed)."""

    def __init__(self, device: torch.device | str = "cpu", seed: int = 0, show_progress: bool = True,
                 label: str = "", cache_dir: str | Path | None = None, snapshots: Iterable[int] = (),
                 on_snapshot=None, resume: dict | None = None, suite_seed: int | None = None,
                 checkpoint_s: float | None = None, on_checkpoint=None):
        self.device = torch.device(device)
        #: the suite's seed of this set (``seed`` is derived from it): what selects a file for ``files``
        self.suite_seed = suite_seed
        #: iteration counts at which an iterative distiller saves an intermediate synthetic set (a snapshot)
        self.snapshots = frozenset(int(s) for s in snapshots)
        #: ``on_snapshot(iteration, synset, state)``: stores a snapshot and the state to resume from (the job's)
        self.on_snapshot = on_snapshot
        #: ``on_checkpoint(iteration, state)``: keeps the state to resume from, without a set, at least every
        #: ``checkpoint_s`` seconds of distillation (besides the snapshots); None: at the snapshots only
        self.on_checkpoint = on_checkpoint
        self.checkpoint_s = checkpoint_s
        self._checkpointer = None
        self._last_saved = time.monotonic()
        #: the state of the last snapshot or checkpoint of an interrupted run, to continue from (:meth:`restore`)
        self.resume = resume
        #: seconds spent before this process (a resumed run adds them to its wall time)
        self.elapsed_before = float(resume["elapsed"]) if resume else 0.0
        self._writer = None
        #: folder for artifacts shared across runs and IPCs (trained feature networks, expert trajectories);
        #: the run passes ``<results>/cache``; None means: compute, do not cache
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.show_progress = show_progress
        self.label = label
        self.loss_curve: list[tuple[int, float]] = []
        #: losses reported as tensors are read back (one device synchronisation) every this many iterations, and
        #: at every snapshot and at the end: reading each one at once would stall a GPU every iteration, the
        #: processor waiting for it instead of queueing the next iteration. 1 = at once (the default on a CPU,
        #: where reading costs nothing); a non-finite loss is then detected at most this many iterations late.
        self.loss_flush_every = 1 if self.device.type == "cpu" else 50
        self._progress: "LossProgress | None" = None
        self._seed_counter = 0

    def next_seed(self) -> int:
        """A fresh deterministic seed (for one network init or one siamese augmentation draw)."""
        self._seed_counter += 1
        return derive_seed(self.seed, self._seed_counter)

    def fresh_net(self, name: str, options: dict | None, data: RealData, frozen: bool = True) -> FeatureNet:
        """A newly, randomly initialised network (seeded), on the context's device, in train mode."""
        from ..factories import build_model  # the builder evaluation uses

        net = build_model(name, options, data, self.next_seed()).to(self.device).train()
        if frozen:
            for p in net.parameters():
                p.requires_grad_(False)
        return net

    def progress(self, iterable: Iterable[int], total: int | None = None, desc: str = "") -> "LossProgress":
        self._progress = LossProgress(self, iterable, total, desc or self.label)
        return self._progress

    def flush_losses(self) -> None:
        """Read back the losses the progress bar still holds as tensors (see :attr:`loss_flush_every`)."""
        if self._progress is not None:
            self._progress.flush()

    # -- snapshots and resume: what an iterative distiller calls ---------------------------------------------
    def restore(self) -> dict | None:
        """The state saved with the last snapshot of an interrupted run (``iteration``, and what the distiller
        put in it: images, optimiser state...), or None to start from iteration 0. Restores the context's own
        random state and loss curve, so the run continues exactly as an uninterrupted one would."""
        if self.resume is None:
            return None
        self.generator.set_state(self.resume["generator"])
        self._seed_counter = int(self.resume["seed_counter"])
        self.loss_curve = [tuple(x) for x in self.resume["loss_curve"]]
        return self.resume

    def resume_into(self, images: torch.Tensor, opt: torch.optim.Optimizer) -> tuple[int, dict | None]:
        """:meth:`restore`, then the saved images and optimiser state put back into ``images`` and ``opt``: the
        iteration to start from (0 for a fresh run) and the state (for what else a distiller saved)."""
        state = self.restore()
        if state is None:
            return 0, None
        with torch.no_grad():
            images.copy_(state["images"].to(images.device))
        opt.load_state_dict(state["opt"])
        return int(state["iteration"]), state

    def saves_at(self, iteration: int) -> bool:
        """Whether :meth:`step_done` after ``iteration`` iterations saves something (a snapshot, or a checkpoint
        that is due): for a distiller whose arguments to it cost something to build."""
        return self._snapshot_at(iteration) or (self._checkpointer is not None and self.checkpoint_s is not None
                                                and time.monotonic() - self._last_saved >= self.checkpoint_s)

    def _snapshot_at(self, iteration: int) -> bool:
        return iteration in self.snapshots and self._writer is not None

    def step_done(self, iteration: int, images: torch.Tensor, labels: torch.Tensor, state,
                  extras: dict | None = None) -> None:
        """Call after every iteration with the number of iterations done: at a snapshot iteration the current
        images are saved as a synthetic set of their own, with ``state`` (what the distiller needs to continue:
        optimiser state, learned step sizes...) to resume from. ``state`` may be a function returning that dict:
        it is then called at snapshot iterations only (building it every iteration, e.g. ``images.cpu()``,
        would synchronise a GPU each time). Between snapshots, once :attr:`checkpoint_s` seconds have passed since
        the last save, the same state is kept as a checkpoint (no set): what a killed run resumes from."""
        if not self.saves_at(iteration):
            return
        import copy

        self.flush_losses()  # the snapshot carries the loss curve so far
        state = state() if callable(state) else state

        # copies: the distiller goes on updating its tensors (and optimiser buffers) in place
        full = copy.deepcopy(dict(state, iteration=int(iteration), generator=self.generator.get_state(),
                                  seed_counter=self._seed_counter, loss_curve=list(self.loss_curve)))
        if self._snapshot_at(iteration):
            self._writer(int(iteration), images.detach().clone(), labels.detach().clone(), full, dict(extras or {}))
        else:
            self._checkpointer(int(iteration), full)
        self._last_saved = time.monotonic()


class LossProgress:
    """Iterates like ``tqdm``; ``report(it, loss)`` records the loss curve, shows it and stops on NaN/inf."""

    def __init__(self, ctx: DistillContext, iterable: Iterable[int], total: int | None, desc: str):
        from tqdm.auto import tqdm

        self.ctx = ctx
        self.bar = tqdm(iterable, total=total, desc=desc, leave=False, disable=not ctx.show_progress,
                        dynamic_ncols=True)
        self.distiller = desc
        self._pending: list[tuple[int, float | torch.Tensor]] = []

    def __iter__(self) -> Iterator[int]:
        return iter(self.bar)

    def report(self, iteration: int, loss: float | torch.Tensor) -> None:
        """Record the loss of ``iteration``; a tensor is kept as it is and read back with the next
        ``ctx.loss_flush_every - 1`` ones (one synchronisation for all)."""
        if isinstance(loss, torch.Tensor):
            self._pending.append((int(iteration), loss.detach()))
        else:
            self._pending.append((int(iteration), float(loss)))
        if len(self._pending) >= self.ctx.loss_flush_every:
            self.flush()

    def flush(self) -> None:
        """Read back the held losses (in order), extend the loss curve, stop at the first non-finite one."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        held = [v.reshape(()).float() for _, v in pending if isinstance(v, torch.Tensor)]
        read = iter(torch.stack(held).cpu().tolist() if held else [])
        for iteration, v in pending:
            value = next(read) if isinstance(v, torch.Tensor) else v
            if not math.isfinite(value):
                self.bar.close()
                raise DistillationDiverged(
                    f"{self.distiller}: the distillation loss became {value} at iteration {iteration}; "
                    f"lower the image learning rate (lr_img) or check the data")
            self.ctx.loss_curve.append((iteration, value))
        self.bar.set_postfix(loss=f"{self.ctx.loss_curve[-1][1]:.4g}", refresh=False)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.bar.close()


class Distiller:
    """Base class of all distillers. Subclasses set ``Config`` and implement :meth:`distill`."""

    Config: ClassVar[type]
    description: ClassVar[str] = ""
    #: whether the method's papers evaluate its synthetic sets with DSA (``eval.augment: auto`` follows this)
    eval_with_dsa: ClassVar[bool] = False
    #: whether the distiller builds an artifact under ``ctx.cache_dir`` that serves every IPC of one seed (a
    #: trained feature network, expert trajectories): the run then distils its IPCs one after another, so the
    #: first builds it and the others reuse it, instead of each building it at once in parallel workers
    shares_cache_across_ipcs: ClassVar[bool] = False
    #: whether that artifact serves every seed too (its key has no seed: MTT's experts): the run then distils the
    #: seeds one after another as well, and only the first trains it
    shares_cache_across_seeds: ClassVar[bool] = False
    #: whether ``distill`` reports its iterations through :meth:`DistillContext.step_done` and continues from
    #: :meth:`DistillContext.restore`: then a suite's ``snapshots`` save intermediate sets and a killed run resumes
    iterative: ClassVar[bool] = False
    #: the evaluation protocol of the method's paper (:class:`atombench.protocols.Protocol`, each value with its
    #: source); None: the method has none of its own and ``eval.protocol: paper`` evaluates it under the common one
    protocol: ClassVar[Optional[Protocol]] = None
    #: whether the method's sets carry soft labels of their own (``extras["soft_labels"]``), which
    #: ``eval.soft_labels: distiller`` trains on: False lets the suite check refuse that setting before any work;
    #: None (the default) when it is known only once a set exists
    makes_soft_labels: ClassVar[Optional[bool]] = None

    def __init__(self, config: Any = None):
        if config is None or isinstance(config, dict):
            config = cfgmod.parse(self.Config, config or {})
        self.config = config

    @property
    def name(self) -> str:
        return getattr(self, "registered_name", type(self).__name__)

    def paper_protocol(self, dataset: str, model: str, ipc: int) -> Optional[Protocol]:
        """The paper's protocol for evaluating a set of ``dataset`` (plug-in name) on ``model`` (plug-in name) at
        ``ipc``: the class attribute ``protocol`` unless a method's rule depends on them (DC, MTT)."""
        return self.protocol

    def paper_zca(self, dataset: str, ipc: int) -> Optional[str]:
        """The ZCA space (``unit_interval`` / ``normalised``) the paper whitened ``dataset`` in, or None (no ZCA):
        what ``zca: paper`` on a suite's dataset entry applies to this method's sets."""
        protocol = self.paper_protocol(dataset, "", ipc)
        return protocol.zca_for(dataset) if protocol is not None else None

    def check_ipc(self, data: RealData, ipc: int) -> str | None:
        """A message when ``ipc`` is impossible for ``data``, else None."""
        if ipc < 1:
            return f"IPC must be >= 1, got {ipc}"
        if ipc > data.min_class_size:
            return (f"IPC {ipc} exceeds the smallest class of '{data.name}' "
                    f"({data.min_class_size} training images); use an IPC <= {data.min_class_size}")
        return None

    def check_net(self, data: RealData) -> str | None:
        """A message when the configured network (``net``) cannot serve this configuration on ``data``, else None;
        the suite check calls it, after building the network, before any work."""
        return None

    def check_set(self, data: RealData, ipc: int, seed: int) -> str | None:
        """A message when the set of (``data``, ``ipc``, suite ``seed``) cannot be made, found before any work
        (``files``: the file is missing or does not fit the dataset), else None; the suite check calls it."""
        return None

    def has_soft_labels(self, data: RealData, ipc: int, seed: int) -> Optional[bool]:
        """Whether the set of (``data``, ``ipc``, suite ``seed``) will carry soft labels of its own, None when that
        is not known before distilling (``files``: read from the file); the suite check calls it where
        ``eval.soft_labels: distiller`` needs them."""
        return self.makes_soft_labels

    def synset_identity(self, data: RealData, ipc: int, seed: int) -> Any:
        """What determines the set besides the dataset, IPC and seed, when it is not the resolved config
        (``files``: the files' checksum and options), else None: the key is then the config's, as always."""
        return None

    def eval_seed_key(self, data: RealData, ipc: int, seed: int) -> Optional[str]:
        """The key whose evaluation seeds this set's models take (``files``: the set an atombench export came
        from, so that a set re-imported bit for bit trains the same models), else None: its own key."""
        return None

    def shared_cache_ready(self, data: RealData, ipc: int, cache_dir: Path) -> bool:
        """Whether the artifact ``shares_cache_across_ipcs``/``_seeds`` announce is already under ``cache_dir``
        for ``data`` at ``ipc`` (then the run need not order the sets: each reads it). False: order them."""
        return False

    def distill(self, data: RealData, ipc: int, ctx: DistillContext):  # pragma: no cover - abstract
        raise NotImplementedError

    def decoded_per_class(self, ipc: int) -> int:
        """How many training images per class a set of ``ipc`` stored images per class decodes to (:meth:`decode`),
        with this distiller's config: ``ipc`` by default, more for multi-formation (NCFM's ``factor``: ``ipc *
        factor ** 2``). ``atombench plan`` sizes the set's evaluations by it (training cost grows with the images
        trained on), before any set exists."""
        return ipc

    @classmethod
    def decode(cls, synset: SyntheticSet) -> SyntheticSet:
        """The set a model trains on, from the set as stored (``distill``'s images). The default: the stored set
        itself. A method whose stored images encode more training images (multi-formation: IDC, NCFM's ``factor``)
        overrides it, reading what it needs from ``synset.meta`` (what ``distill`` returned as extras); the
        harness then stores the encoded images (the budget, shown in the report's image grids) and decodes them
        wherever a model is trained on the set (evaluation, NAS) and on export. ``synset.meta["decoder"]`` names the
        distiller whose ``decode`` applies (set by :meth:`run` when a distiller overrides this method)."""
        return synset

    def run(self, data: RealData, ipc: int, ctx: DistillContext) -> SyntheticSet:
        problem = self.check_ipc(data, ipc)
        if problem:
            raise UsageError(f"{self.name}: {problem}")
        started = time.perf_counter()

        def elapsed() -> float:  # this run's seconds so far, a resumed one's earlier runs included
            return ctx.elapsed_before + time.perf_counter() - started

        with timer() as t, PeakMemory(ctx.device) as mem:
            def write(iteration, images, labels, state, extras):
                now = elapsed()
                snap = self._synset(data, ipc, ctx, images, labels, dict(extras), now, mem.so_far(), mem.kind)
                snap.meta.update(iteration=iteration, snapshot=True)
                if ctx.on_snapshot is not None:
                    ctx.on_snapshot(iteration, snap, dict(state, elapsed=now))

            def checkpoint(iteration, state):
                ctx.on_checkpoint(iteration, dict(state, elapsed=elapsed()))

            ctx._writer = write
            ctx._checkpointer = checkpoint if ctx.on_checkpoint is not None else None
            ctx._last_saved = time.monotonic()
            out = self.distill(data, ipc, ctx)
            ctx.flush_losses()  # a distiller that did not close its progress bar
        ctx._writer = ctx._checkpointer = None
        images, labels, extras = (*out, {}) if len(out) == 2 else out
        synset = self._synset(data, ipc, ctx, images, labels, dict(extras), ctx.elapsed_before + t["seconds"],
                              mem.peak_mb, mem.kind)
        if ctx.resume is not None:
            synset.meta["resumed_from_iteration"] = int(ctx.resume["iteration"])
        return synset

    def _synset(self, data: RealData, ipc: int, ctx: DistillContext, images, labels, extras: dict,
                seconds: float, peak_mb: float, peak_kind: str) -> SyntheticSet:
        """A :class:`SyntheticSet` with the harness's metadata."""
        soft = extras.pop("soft_labels", None)
        if soft is not None and (not isinstance(soft, torch.Tensor) or soft.shape != (len(images), data.num_classes)):
            raise UsageError(f"{self.name}: soft_labels must be a tensor [num_images, num_classes] = "
                             f"[{len(images)}, {data.num_classes}], got {getattr(soft, 'shape', type(soft).__name__)}")
        images = images.detach().to("cpu", torch.float32).contiguous()
        labels = labels.detach().to("cpu", torch.int64).contiguous()
        meta = {
            "method": self.name,
            "config": cfgmod.to_dict(self.config),
            "dataset": data.name,
            "dataset_options": data.options,
            "dataset_fingerprint": data.fingerprint,
            "ipc": ipc,
            "seed": ctx.seed,
            "device": str(ctx.device),
            "wall_time_s": seconds,
            "peak_mem_mb": peak_mb,
            "peak_mem_kind": peak_kind,
            "num_images": int(len(images)),
            "image_shape": list(images.shape[1:]),
            "loss_curve": list(ctx.loss_curve),
            "versions": versions(),
            "has_soft_labels": soft is not None,
            **extras,
        }
        if type(self).decode.__func__ is not Distiller.decode.__func__:
            meta["decoder"] = self.name
        return SyntheticSet(images, labels, meta, soft)


def decoded(synset: SyntheticSet) -> SyntheticSet:
    """``synset`` as a model trains on it: through the ``decode`` of the distiller named by its ``decoder`` metadata
    (:meth:`Distiller.decode`), else unchanged. The decoded set must keep one label per image and the image shape
    the dataset's networks take."""
    name = synset.meta.get("decoder")
    if not name:
        return synset
    from .. import registry

    out = registry.distillers.get(name).decode(synset)
    soft = getattr(out, "soft_labels", None)
    if not isinstance(out, SyntheticSet) or len(out.images) != len(out.labels) or \
            out.images.shape[1:] != synset.images.shape[1:] or (soft is not None and len(soft) != len(out.images)):
        raise UsageError(f"distiller '{name}': decode must return a SyntheticSet with one label (and soft label, if "
                         f"any) per image and the stored images' shape {list(synset.images.shape[1:])}")
    meta = {k: v for k, v in out.meta.items() if k != "decoder"}  # decoded once: never again
    meta.update(decoded_by=name, stored_images=int(len(synset.images)), num_images=int(len(out.images)))
    return SyntheticSet(out.images, out.labels, meta, soft)


def class_balanced_labels(num_classes: int, ipc: int) -> torch.Tensor:
    """``[0]*ipc + [1]*ipc + ...``: the label layout every distiller returns."""
    return torch.arange(num_classes).repeat_interleave(ipc)

