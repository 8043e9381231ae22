"""Jobs: distillation, evaluation and architecture-search training as one kind of thing.

A :class:`Job` has

* ``key``: a content hash of everything that determines its result (stable across runs and machines);
* ``deps``: the keys of the jobs whose results it reads (an evaluation job depends on its synthetic set's
  distillation job);
* :meth:`Job.run`: does the work in whatever process the engine gives it, writes its result atomically under its
  key in the results folder (:class:`~atombench.store.ResultsStore`) and returns a short outcome; it never raises
  for a failure of its own (the failure is its outcome), only for a full disk or lost permissions (``OSError``);
* :meth:`Job.is_done`: whether a valid result is already stored (then it is not run again).

Jobs that must run together form a *unit* (the seeds of one ensemble); :func:`run_unit` runs a unit and is the
one function every engine calls (:mod:`atombench.scheduler`). The graph of units is run by
:class:`~atombench.scheduler.Scheduler`: a unit starts as soon as the jobs it depends on are done.
"""

from __future__ import annotations

import json
import os
import socket
import time
import traceback
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import ClassVar, Optional

import torch

from . import registry
from .factories import build_model, load_data, make_distiller
from .runtime import PeakMemory, derive_seed, resolve_device, stable_hash, timer, tune_malloc, versions
from .grid import Cell, check_row, train_config
from .store import REPORTED_AS, ResultsStore

from .keys import (  # noqa: F401 - the keys, named here too for outside code
    ADDED_LATER,
    CONFIG_ADDED_LATER,
    CONFIG_KEYED_UNLESS_DEFAULT,
    SPEED_ONLY,
    TRAIN_KEYED_UNLESS_DEFAULT,
    job_key,
    snapshot_key,
    synset_key,
    train_key_config,
)


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (or the type alone)."""
    from .errors import AtombenchError

    text = str(exc).splitlines()[0] if str(exc) else ""
    if isinstance(exc, AtombenchError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def write_result(job: "Job", row: dict) -> dict:
    """Store ``row`` as ``job``'s result once it follows the results schema (:func:`atombench.grid.check_row`: the
    columns of the job's cell, then what was measured); a row that does not is a bug, refused here."""
    check_row(row, tuple(job.cell.row()) if job.cell is not None else (), job.schema())
    job.store.write_job(job.key, row)
    return row


def _where() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _images(dataset: tuple, row: dict) -> tuple:
    """What a job's cost depends on of its dataset (:func:`~atombench.factories.dataset_args`): the plug-in and
    its options, not the whitening (done once at loading)."""
    return (dataset[0], stable_hash(dataset[1])) if len(dataset) > 1 else (row.get("dataset"),)


@dataclass
class Job:
    """The protocol every job follows (see the module docstring)."""

    #: the job's kind, as ``atombench plan`` counts them
    kind: ClassVar[str] = "job"

    key: str
    #: identifying columns (dataset, distiller, IPC, ...): what tables and messages show
    row: dict
    store_root: str
    #: the device and torch threads of the slot it runs in (set by the scheduler)
    device: str = "cpu"
    threads: int = 1
    #: the point of the grid the job computes (:class:`atombench.grid.Cell`); None for a job built by hand
    cell: Optional[Cell] = None

    @property
    def deps(self) -> tuple[str, ...]:
        return ()

    @property
    def runs_after(self) -> tuple[str, ...]:
        """Jobs to let finish first, whatever their outcome (an order, not an input: their failure blocks
        nothing)."""
        return ()

    @property
    def store(self) -> ResultsStore:
        return ResultsStore(Path(self.store_root))

    def is_done(self, store: ResultsStore, warn=None) -> bool:
        return (store.read_job(self.key, warn) or {}).get("status") == "ok"

    def cost_class(self) -> tuple:
        """Jobs of one class cost about the same: ``atombench plan`` estimates a job from its class's records."""
        return (self.kind,)

    def cost_families(self) -> tuple[tuple, ...]:
        """Looser classes than :meth:`cost_class`, nearest first, within which cost grows with :meth:`cost_size`:
        ``atombench plan`` scales a job whose class has no record from the first family that has (none: no such
        estimate)."""
        return ()

    def cost_size(self) -> float:
        """This job's size within its :meth:`cost_families` (iterations, images seen in training, ...)."""
        return 1.0

    def schema(self):
        """The schema its row follows (:func:`atombench.grid.result_columns`; a search job's differs)."""
        return None


    def run(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass
class DistillJob(Job):
    """Distil one synthetic set (dataset or its search view, distiller, IPC, seed) and store it under its key."""

    kind: ClassVar[str] = "distill"

    dataset: tuple = ()
    #: ``(val_fraction, split_seed)`` for an architecture-search proxy (distilled from the selection view)
    holdout: Optional[tuple] = None
    distiller: tuple = ("", {})
    ipc: int = 1
    seed: int = 0
    #: metadata added to the synthetic set (its label in tables, the suite seed)
    meta: dict = field(default_factory=dict)
    #: inner progress bar (only when the job runs in the launching process)
    progress: bool = False
    #: what the set is for: ``suite`` (a cell of the tables) or ``nas`` (a search proxy)
    purpose: str = "suite"
    #: distillations to wait for (the IPC that builds the shared artifact a distiller caches)
    after: tuple = ()
    #: iteration counts at which intermediate sets are saved (each its own synthetic set, :func:`snapshot_key`);
    #: a killed run resumes from the last one
    snapshots: tuple = ()
    #: seconds between the resume states saved besides the snapshots' (``execution.checkpoint_minutes``; None:
    #: at the snapshots only); not part of the key: a resumed run gives the uninterrupted run's set
    checkpoint_s: Optional[float] = None

    @property
    def runs_after(self) -> tuple[str, ...]:
        return self.after

    def is_done(self, store: ResultsStore, warn=None) -> bool:
        return store.valid_synset(self.key, warn) and all(
            store.valid_synset(snapshot_key(self.key, it), warn) for it in self.snapshots)

    def resume_path(self) -> Path:
        return self.store.cache_dir / "resume" / f"{self.key}.pt"

    def _resume_state(self) -> Optional[dict]:
        """The state saved at the last snapshot or checkpoint of an interrupted run of this job, if every snapshot
        up to its iteration is intact (a run resumed past a missing one would never write it)."""
        path = self.resume_path()
        if not path.is_file():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - a damaged resume file: start again from iteration 0
            return None
        it = state.get("iteration") if isinstance(state, dict) else None
        if not isinstance(it, int) or it < 1 or not all(
                self.store.valid_synset(snapshot_key(self.key, s)) for s in self.snapshots if s <= it):
            return None
        return state

    def _on_snapshot(self, iteration: int, synset, state: dict) -> None:
        synset.meta.update(self.meta, snapshot_of=self.key, **_where())
        synset.save(self.store.synset_path(snapshot_key(self.key, iteration)))
        self._on_checkpoint(iteration, state)  # written after its snapshot, so it never names a missing set

    def _on_checkpoint(self, iteration: int, state: dict) -> None:
        """Keep ``state`` (after ``iteration`` iterations) as the one to resume from, atomically."""
        import io

        from .runtime import atomic_write

        path = self.resume_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save(state, buf)
        with atomic_write(path) as fh:
            fh.write(buf.getvalue())

    def cost_class(self) -> tuple:
        return (self.kind, self.row.get("dataset"), self.distiller[0], stable_hash(self.distiller[1]), self.ipc,
                self.holdout is not None)

    def cost_families(self) -> tuple[tuple, ...]:
        # the same method on the same images (whitened or not), per iteration: with the same options but the
        # iterations at this IPC, then any options at this IPC, then the same options and any options at any IPC
        base = (self.kind, _images(self.dataset, self.row), self.distiller[0], self.holdout is not None)
        same = stable_hash({k: v for k, v in self.distiller[1].items() if k != "iterations"})
        return (base + (same, self.ipc), base + (self.ipc,), base + (same,), base)

    def cost_size(self) -> float:
        """Its iterations (the suite's grid resolved them; a distiller without any counts as one unit)."""
        iterations = self.cell.iteration if self.cell is not None else None
        if iterations is None:
            iterations = getattr(registry.distillers.parse_options(*self.distiller), "iterations", None)
        return float(iterations) if isinstance(iterations, int) and iterations > 0 else 1.0


    def run(self) -> dict:
        from .distillers.base import DistillContext

        out = dict(self.row, job_key=self.key, kind=self.kind, **_where())
        torch.set_num_threads(self.threads)
        started = time.time()
        try:
            device = resolve_device(self.device)
            data = load_data(self.dataset, self.holdout)
            distiller = make_distiller(*self.distiller)
            label = f"{self.row.get('distiller')} {self.row.get('dataset')} ipc{self.ipc} seed{self.row.get('seed')}"
            ctx = DistillContext(device, seed=derive_seed("distill", self.seed), show_progress=self.progress,
                                 label=label, cache_dir=self.store.cache_dir, snapshots=self.snapshots,
                                 on_snapshot=self._on_snapshot, resume=self._resume_state(), suite_seed=self.seed,
                                 checkpoint_s=self.checkpoint_s, on_checkpoint=self._on_checkpoint)
            synset = distiller.run(data, self.ipc, ctx)
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed distillation is this job's outcome
            out.update(status="failed", error=one_line(exc), traceback=traceback.format_exc(limit=8))
            return out
        synset.meta.update(self.meta, started_at=started, finished_at=time.time(), **_where())
        synset.save(self.store.synset_path(self.key))
        self.resume_path().unlink(missing_ok=True)
        out.update(status="ok", error="", wall_time_s=synset.meta.get("wall_time_s"),
                   resumed_from_iteration=synset.meta.get("resumed_from_iteration"))
        return out


@dataclass
class EvalJob(Job):
    """Train one model on one synthetic set and test it on the real test set."""

    kind: ClassVar[str] = "evaluate"

    #: the key of the synthetic set it trains on (``synset`` names the loaded set, a
    #: :class:`~atombench.store.SyntheticSet`, everywhere: a key is always ``*_key``)
    synset_key: str = ""
    dataset: tuple = ()
    model: tuple = ("", {})
    train: dict = field(default_factory=dict)
    seed: int = 0
    #: train together with the other jobs of its unit (same set, model and config) when exact
    ensemble: bool = False
    #: ``(reference job key, (model name, options))`` of the soft-label teacher, when the labels are a teacher's
    teacher: Optional[tuple] = None
    #: the distillation job that writes ``synset_key`` when it is one of its snapshots
    producer: str = ""
    #: training images per class of the set once decoded (the distiller's ``decoded_per_class``: more than the IPC
    #: for multi-formation); None: the IPC. What :meth:`cost_size` counts
    images_per_class: Optional[int] = None
    #: the other rows this one job is reported as (a method whose own protocol is the common one: one trained
    #: model, a row under each protocol), each its identity columns; stored in the record as ``reported_as``, so
    #: that a report read from ``jobs/`` alone (a run stopped before ``results.csv``) shows it under each
    also: list = field(default_factory=list)
    #: the former name of ``synset_key`` (a keyword of outside code that builds jobs by hand)
    synset: InitVar[Optional[str]] = None

    def __post_init__(self, synset: Optional[str]) -> None:
        if synset is not None and not self.synset_key:
            self.synset_key = synset

    @property
    def deps(self) -> tuple[str, ...]:
        return (self.producer or self.synset_key,) + ((self.teacher[0],) if self.teacher else ())

    def cost_class(self) -> tuple:
        return (self.kind, self.row.get("dataset"), self.row.get("distiller"), self.row.get("ipc"), self.model[0],
                stable_hash(self.model[1]), stable_hash(train_key_config(self.train)))

    def cost_families(self) -> tuple[tuple, ...]:
        # the same network on the same dataset, any set, per image trained on: with the same training settings
        # but the epochs at this IPC, then any settings at this IPC, then the same settings and any at any IPC
        base = (self.kind, _images(self.dataset, self.row), self.model[0], stable_hash(self.model[1]))
        same = stable_hash({k: v for k, v in train_key_config(self.train).items() if k != "epochs"})
        ipc = self.row.get("ipc")
        return (base + (same, ipc), base + (ipc,), base + (same,), base)

    def cost_size(self) -> float:
        """Images seen in training: passes (``epochs + 1``) x images per class as decoded (the classes are the
        dataset's)."""
        images = self.images_per_class or self.row.get("ipc") or 1
        return float(int(self.train.get("epochs", 1000)) + 1) * float(images)


    def base_row(self) -> dict:
        return dict(self.row, job_key=self.key, device=self.device, threads=self.threads, eval_seed=self.seed,
                    compile=bool(self.train.get("compile")), amp=self.train.get("amp", "none"),
                    model_options=json.dumps(self.model[1], sort_keys=True),
                    train_config=json.dumps(self.train, sort_keys=True), **_where(),
                    **{f"{k}_version": v for k, v in versions().items()},
                    **({REPORTED_AS: [dict(r) for r in self.also]} if self.also else {}))

    def setup(self):
        from .distillers.base import SyntheticSet, decoded

        torch.set_num_threads(self.threads)
        data = load_data(self.dataset)
        synset = decoded(SyntheticSet.load(self.store.synset_path(self.synset_key)))
        cfg = train_config(self.train, synset)
        return data, synset, cfg, train_augment(cfg, data)

    def targets(self, cfg, data, synset, device):
        """What the batches are fitted to (:class:`~atombench.train.Targets`): hard labels, the teacher's soft
        labels, or the distiller's."""
        from .errors import UsageError
        from .train import Targets

        if cfg.labels != "soft":
            return Targets(cfg)
        if self.teacher is not None:
            return Targets(cfg, teacher=load_reference(self.store, self.teacher[0], self.teacher[1], data, device))
        if synset.soft_labels is None:
            raise UsageError(f"eval.soft_labels: distiller, but {self.row.get('distiller')}'s synthetic set has no "
                             f"soft labels of its own; use soft_labels: teacher")
        return Targets(cfg, soft=synset.soft_labels.to(device))

    def run(self) -> dict:
        from .train import train_model

        row = dict(self.base_row(), ensemble_size=1, started_at=time.time())
        try:
            device = resolve_device(self.device)
            row["device"] = str(device)
            data, synset, cfg, augment = self.setup()
            row["lr_used"] = cfg.lr
            targets = self.targets(cfg, data, synset, device)
            net = build_model(*self.model, data, self.seed).to(device)
            gen = torch.Generator().manual_seed(self.seed)
            with PeakMemory(device) as mem, timer() as t_train:
                losses = train_model(net, synset.images.to(device), synset.labels.to(device), cfg, gen, augment,
                                     targets)
            scores_row(row, net, data, synset, cfg, device, losses, t_train["seconds"], mem.peak_mb)
        except Exception as exc:  # noqa: BLE001 - a failed job is recorded, the others go on
            failed_row(row, exc)
        row["finished_at"] = time.time()
        return write_result(self, row)


def resolve_lr(train: dict, synset) -> dict:
    """``train`` with ``lr: learned`` replaced by the step size the distiller learned (``syn_lr`` in the synthetic
    set's metadata: MTT's paper protocol)."""
    if train.get("lr") != "learned":
        return train
    return dict(train, lr=train_config(train, synset).lr)


def train_augment(cfg, data):
    """The augmentation training batches get under ``cfg`` (DSA, without flips on digits; DC's; crop and flip;
    MixUp; CutMix), or None; with ``mix``, that augmentation then MixUp or CutMix with probability ``mix_prob``
    (:class:`~atombench.augment.Compose`)."""
    from .augment import Compose, Mix

    base = _base_augment(cfg, data)
    mix = getattr(cfg, "mix", "none")
    if mix == "none":
        return base
    stages = ([base] if base is not None else []) + [Mix(mix, cfg.mixup_alpha if mix == "mixup" else cfg.cutmix_beta)]
    return Compose(stages, cfg.mix_prob)


def _base_augment(cfg, data):
    from .augment import DSA, CropFlip, DCAugment, Mix

    if cfg.augment == "dc":
        return DCAugment(cfg.dc_strategy)
    if cfg.augment == "crop_flip":
        return CropFlip(flip=not data.tags.get("digits"))
    if cfg.augment in ("mixup", "cutmix"):
        return Mix(cfg.augment, cfg.mixup_alpha if cfg.augment == "mixup" else cfg.cutmix_beta)
    return DSA(cfg.dsa_strategy, digits=bool(data.tags.get("digits"))) if cfg.augment == "dsa" else None


def failed_row(row: dict, exc: BaseException) -> dict:
    row.update(status="failed", error=one_line(exc), accuracy=None)
    row["traceback"] = traceback.format_exc(limit=8)
    return row


#: the test sets already on a device, per process: ``(id(data), device) -> (data, images, labels)`` (``data`` kept so
#: that its id is not reused); a worker evaluating many sets moves each test set once, not once per job
_TEST_ON_DEVICE: dict = {}


def test_set_on(data, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``data``'s test images and labels on ``device``, moved once per process (the CPU's are used as they are)."""
    device = torch.device(device)
    if device.type == "cpu":
        return data.test_x, data.test_y
    key = (id(data), str(device))
    if key not in _TEST_ON_DEVICE:
        _TEST_ON_DEVICE[key] = (data, data.test_x.to(device), data.test_y.to(device))
    return _TEST_ON_DEVICE[key][1], _TEST_ON_DEVICE[key][2]


def scores_row(row: dict, net, data, synset, cfg, device, losses, train_s: float, peak_mb: float) -> dict:
    from .train import evaluate

    test_x, test_y = test_set_on(data, device)
    with timer() as t_eval:
        scores = evaluate(net, test_x, test_y, cfg.test_batch_size, device, cfg.amp, cfg.compile)
    row.update(scores, status="ok", error="", final_train_loss=losses[-1] if losses else None,
               train_time_s=train_s, eval_time_s=t_eval["seconds"], peak_mem_mb=peak_mb,
               distill_time_s=synset.meta.get("wall_time_s"), distill_peak_mem_mb=synset.meta.get("peak_mem_mb"),
               num_images=synset.meta.get("num_images"))
    return row


def run_eval_group(jobs: list[EvalJob]) -> list[dict]:
    """Jobs that differ only in their seed, as one ensemble (:func:`~atombench.train.train_ensemble`) when the
    architecture allows it exactly, else one by one. Never raises; if the ensemble fails as a whole (say, out of
    memory), each job is retried alone and records its own outcome."""
    from .train import ensemble_exact, train_ensemble

    head = jobs[0]
    started = time.time()
    try:
        device = resolve_device(head.device)
        data, synset, cfg, augment = head.setup()
        nets = [build_model(*j.model, data, j.seed).to(device) for j in jobs]
        if not ensemble_exact(nets[0]) or cfg.labels == "soft" or cfg.augment in ("mixup", "cutmix") \
                or cfg.mix != "none":
            return [j.run() for j in jobs]  # teachers and mixed targets train one model at a time
        gens = [torch.Generator().manual_seed(j.seed) for j in jobs]
        with PeakMemory(device) as mem, timer() as t_train:
            curves = train_ensemble(nets, synset.images.to(device), synset.labels.to(device), cfg, gens, augment)
    except Exception:  # noqa: BLE001 - fall back to separate runs, which record their own errors
        return [j.run() for j in jobs]
    rows = []
    for job, net, losses in zip(jobs, nets, curves):
        row = dict(job.base_row(), ensemble_size=len(jobs), device=str(device), started_at=started, lr_used=cfg.lr)
        try:  # the group's training time is shared equally between its models
            scores_row(row, net, data, synset, cfg, device, losses, t_train["seconds"] / len(jobs), mem.peak_mb)
        except Exception as exc:  # noqa: BLE001
            failed_row(row, exc)
        row["finished_at"] = time.time()
        rows.append(write_result(job, row))
    return rows


def run_unit(unit: list[Job]) -> list[dict]:
    """Run one unit (one job, or the seeds of one ensemble): the function every engine calls."""
    tune_malloc()  # in every worker process (Dask's workers even set the opposite)
    if len(unit) > 1 and isinstance(unit[0], EvalJob) and unit[0].ensemble:
        return run_eval_group(unit)
    return [job.run() for job in unit]


def group_units(jobs: list[Job], ensemble: bool) -> list[list[Job]]:
    """Evaluation jobs that differ only in their seed (same set, model and training config) form one unit when
    ``ensemble``; every other job is a unit of its own."""
    if not ensemble:
        return [[j] for j in jobs]
    groups: dict[str, list[Job]] = {}
    for j in jobs:
        gkey = stable_hash([j.synset_key, j.model, j.train]) if isinstance(j, EvalJob) else j.key
        groups.setdefault(gkey, []).append(j)
    return list(groups.values())


#: the version of :func:`train_reference`'s recipe, part of every reference key: version 2 trains ``epochs`` passes
#: with lr x0.1 after ``epochs // 2`` (DD-Ranking); version 1 (keys without it) trained ``epochs + 1`` passes with the
#: decay after pass ``epochs // 2 + 1``, and its results (and the soft-label evaluations they taught) are not reused
REFERENCE_RECIPE = 2


def reference_key(dataset_fingerprint: str, model: tuple, reference: dict) -> str:
    """The key of a network trained on a whole real training set (a teacher, a whole-dataset reference)."""
    return stable_hash(["reference", dataset_fingerprint, model[0], model[1], reference,
                        {"recipe": REFERENCE_RECIPE}])


def train_reference(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, ref: dict,
                    generator: torch.Generator) -> list[float]:
    """DD-Ranking's ``REAL_DATA_TRAINING_CONFIG`` (``docs/evaluation_protocols.md#soft-labels``): ``epochs`` shuffled
    passes of SGD (lr, momentum, weight decay), cross-entropy on hard labels, no augmentation, lr x0.1 after epoch
    ``epochs // 2`` (``StepLR(100, 0.1)`` of 200 epochs; one optimiser throughout, momentum kept). Returns the
    per-pass losses."""
    import torch.nn.functional as F

    epochs, batch = int(ref["epochs"]), int(ref["batch_size"])
    opt = torch.optim.SGD(net.parameters(), lr=float(ref["lr"]), momentum=float(ref["momentum"]),
                          weight_decay=float(ref["weight_decay"]))
    net.train()
    n, device = len(images), images.device
    losses = []
    for ep in range(epochs):
        if ep == epochs // 2 and ep > 0:
            for group in opt.param_groups:
                group["lr"] *= 0.1
        perm = torch.randperm(n, generator=generator).to(device)
        total = torch.zeros((), device=device)
        for start in range(0, n, batch):
            idx = perm[start:start + batch]
            loss = F.cross_entropy(net(images[idx]), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
        losses.append(total)
    return (torch.stack(losses) / max(n, 1)).tolist() if losses else []


def reference_train(ref: dict) -> dict:
    """The training config of a reference network (:func:`train_reference` trains it; the config gives its test
    batch): the reference's SGD settings, no augmentation."""
    return {"epochs": int(ref["epochs"]), "batch_size": int(ref["batch_size"]), "lr": float(ref["lr"]),
            "momentum": float(ref["momentum"]), "weight_decay": float(ref["weight_decay"]), "augment": "none"}


@dataclass
class ReferenceJob(Job):
    """Train one model on the whole real training set (or ``train_per_class`` images of each class), hard labels,
    no augmentation (:func:`train_reference`: ``epochs`` passes, lr x0.1 after half), and test it: the whole-dataset
    reference of a (dataset, model), and the soft-label teacher of the evaluation jobs that name it. The weights are stored under ``<cache>/references/<key>.safetensors``
    (shared by every run into this folder), the scores as the job's row."""

    kind: ClassVar[str] = "reference"

    dataset: tuple = ()
    model: tuple = ("", {})
    #: the reference's recipe (``eval.reference``, resolved; a :class:`~atombench.grid.FrozenTrain`)
    reference: dict = field(default_factory=dict)

    def weights_path(self) -> Path:
        return reference_weights(self.store, self.key)

    def is_done(self, store: ResultsStore, warn=None) -> bool:
        return super().is_done(store, warn) and reference_weights(store, self.key).is_file()

    def cost_class(self) -> tuple:
        return (self.kind, self.row.get("dataset"), self.model[0], stable_hash(self.model[1]),
                stable_hash(self.reference))

    def run(self) -> dict:
        from safetensors.torch import save

        from .runtime import atomic_write
        from .train import evaluate

        torch.set_num_threads(self.threads)
        row = dict(self.row, job_key=self.key, kind=self.kind, started_at=time.time(), **_where(),
                   model_options=json.dumps(self.model[1], sort_keys=True),
                   train_config=json.dumps(self.reference, sort_keys=True))
        try:
            device = resolve_device(self.device)
            data = load_data(self.dataset)
            ref = dict(self.reference)
            x, y = data.train_x, data.train_y
            if ref.get("train_per_class"):
                g = torch.Generator().manual_seed(int(ref.get("seed", 0)))
                idx = torch.cat([ci[torch.randperm(len(ci), generator=g)[:int(ref["train_per_class"])]]
                                 for ci in data.class_indices])
                x, y = x[idx], y[idx]
            cfg = train_config(reference_train(ref))
            net = build_model(*self.model, data, derive_seed("reference", self.key)).to(device)
            gen = torch.Generator().manual_seed(int(ref.get("seed", 0)))
            with PeakMemory(device) as mem, timer() as t_train:
                losses = train_reference(net, x.to(device), y.to(device), ref, gen)
            with timer() as t_eval:
                scores = evaluate(net, data.test_x, data.test_y, cfg.test_batch_size, device)
            blob = save({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()})
            with atomic_write(self.weights_path()) as fh:
                fh.write(blob)
            row.update(scores, status="ok", error="", final_train_loss=losses[-1] if losses else None,
                       train_time_s=t_train["seconds"], eval_time_s=t_eval["seconds"], peak_mem_mb=mem.peak_mb,
                       num_images=int(len(x)), device=str(device))
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed job is recorded, the others go on
            failed_row(row, exc)
        row["finished_at"] = time.time()
        return write_result(self, row)


def reference_weights(store: ResultsStore, key: str) -> Path:
    return store.cache_dir / "references" / f"{key}.safetensors"


def load_reference(store: ResultsStore, key: str, model: tuple, data, device) -> torch.nn.Module:
    """The network a :class:`ReferenceJob` trained (a soft-label teacher), on ``device``, in eval mode."""
    from safetensors.torch import load_file

    net = build_model(*model, data, 0)
    net.load_state_dict(load_file(str(reference_weights(store, key))))
    return net.to(device).eval()
