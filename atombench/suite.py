"""Suite files: the YAML document that says what a run distils and evaluates, validated before any work.

Example (see ``suites/quickstart.yaml``)::

    name: quickstart
    datasets: [{name: digits, options: {size: 16}}]
    ipc: [1, 10]
    distillers: [random, herding, {name: atom, options: {iterations: 200}}]
    models: [convnet, "timm:resnet10t"]
    seeds: 2                # synthetic sets per (dataset, distiller, IPC): seeds 0..1
    eval: {epochs: 300, models_per_set: 2}
    execution: {engine: loky, workers: 2}
    device: auto
    nas: {space: small, proxies: [atom, random_subset, early_stop]}   # optional: see NASConfig

:func:`load_suite` reports every problem at once, each located by its key path, with a suggestion for a
misspelt name; it checks plug-in names and their options against the registries and the typed configs.

Names (one per concept; the former names are still read, see :func:`parse_suite`):

* ``options``: the keyword arguments of a plug-in as the suite writes them, a plain mapping, the same key for
  datasets, distillers and models; the plug-in parses them into its typed ``Config`` (``distiller.config``).
  Distillers took ``config:`` before, still accepted.
* ``engine``: what runs the jobs (``execution: {engine: loky}``, :class:`EngineSpec`); ``backend:`` before,
  still accepted.
* ``eval:`` is an :class:`EvalGrid`: the training settings of every evaluation plus the lists (protocols,
  labels, augmentations) that expand into one job each; ``EvalConfig`` is its former name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional, Union, get_args

import yaml

from . import config as cfgmod
from . import registry
from .config import check
from .errors import ConfigError, DataError, PluginError, Problem, UsageError, short
from .train import TrainConfig


@dataclass
class ZCASpec:
    """ZCA whitening fitted on the training set (:mod:`atombench.data.zca`): ``kind`` is the space whitened,
    ``unit_interval`` (images in [0, 1]: MTT's code, ATOM's supplementary material) or ``normalised`` (the
    mean/std-normalised tensors: DataDAM's code); ``eps`` is kornia's regularisation (0.1 in every reference)."""

    kind: Literal["unit_interval", "normalised"] = "unit_interval"
    eps: Optional[float] = None

    def __post_init__(self) -> None:
        check(self.eps is None or self.eps > 0, f"eps must be > 0, got {self.eps}")


#: what ``zca:`` accepts on a dataset entry, for error messages
ZCA_FORMS = "false, true ({kind: unit_interval}), paper (each method's paper's choice) or {kind: unit_interval | " \
            "normalised, eps: 0.1}"


@dataclass
class DatasetSpec:
    name: str
    options: dict = field(default_factory=dict)
    #: ZCA whitening fitted on the training set (the references use it for CIFAR-10/100, not Tiny-ImageNet):
    #: ``false``, ``true`` (= ``{kind: unit_interval}``), ``paper`` (each method's paper's choice, so the sets of
    #: one dataset entry may live in different spaces) or a :class:`ZCASpec` mapping
    zca: Any = False
    #: kornia's ``eps`` regularisation, 0.1 in the reference code (``zca: {eps: ...}`` sets it too)
    zca_eps: float = 0.1
    #: column name in tables (defaults to ``name``); lets one suite use a dataset twice, e.g. at two sizes
    label: Optional[str] = None

    def __post_init__(self) -> None:
        z = self.zca
        if z is None or z is False:
            self.zca = False
        elif z is True:
            self.zca = ZCASpec("unit_interval", None)
        elif z == "paper":
            pass
        elif isinstance(z, str) and z in ("unit_interval", "normalised"):
            self.zca = ZCASpec(z, None)
        elif isinstance(z, dict):
            problems: list[Problem] = []
            spec = cfgmod.collect(ZCASpec, z, "zca", problems)
            check(not problems, "; ".join(f"{p.path}: {p.message}" for p in problems))
            self.zca = spec
        elif not isinstance(z, ZCASpec):
            check(False, f"zca must be {ZCA_FORMS}, got {short(z)}")
        check(self.zca_eps > 0, f"zca_eps must be > 0, got {self.zca_eps}")

    def zca_setting(self, paper: Optional[str] = None) -> Optional[tuple[str, float]]:
        """``(kind, eps)`` of the whitening for a set of this entry, or None; ``paper`` is the method's paper's
        kind (used when ``zca: paper``)."""
        if self.zca is False:
            return None
        if self.zca == "paper":
            return (paper, self.eps) if paper else None
        return (self.zca.kind, self.eps)

    @property
    def eps(self) -> float:
        """The whitening's eps: ``zca: {eps}`` where given, else ``zca_eps`` (its default where neither is)."""
        return self.zca.eps if isinstance(self.zca, ZCASpec) and self.zca.eps is not None else self.zca_eps

    @property
    def display(self) -> str:
        """The entry's name in tables and file names: its ``label``, else its plug-in name (a display name,
        not a key: keys are content hashes)."""
        return self.label or self.name


@dataclass
class DistillerSpec:
    name: str
    #: the distiller's keyword arguments, parsed into its ``Config`` (``config:`` in older suites)
    options: dict = field(default_factory=dict)
    #: row name in tables (defaults to ``name``); lets one suite run a method twice, e.g. ablations
    label: Optional[str] = None
    #: the suite's IPCs this entry runs (default: all of them), e.g. a coreset at IPC 50 where the distillers stop
    #: at 10
    ipc: Optional[list] = None
    #: the suite's datasets (their labels) this entry runs on (default: all), e.g. one method also on a ZCA entry
    datasets: Optional[list] = None

    @property
    def display(self) -> str:
        """The entry's name in tables and file names: its ``label``, else its plug-in name (a display name,
        not a key: keys are content hashes)."""
        return self.label or self.name

    def ipcs(self, suite_ipcs: list[int]) -> list[int]:
        """The IPCs this entry runs, in the suite's order."""
        return [i for i in suite_ipcs if self.ipc is None or i in self.ipc]

    def runs_on(self, dataset_label: str) -> bool:
        return self.datasets is None or dataset_label in self.datasets

    #: the key the suite wrote the options under, ``options`` or its former name ``config``: problems found later
    #: (the preflight) are located under it, ``distillers[i].<options_key>``
    options_key: ClassVar[str] = "options"

    @property
    def config(self) -> dict:
        """The former name of :attr:`options` (read-only)."""
        return self.options


@dataclass
class ModelSpec:
    name: str
    options: dict = field(default_factory=dict)
    label: Optional[str] = None

    @property
    def display(self) -> str:
        """The entry's name in tables and file names: its ``label``, else its plug-in name (a display name,
        not a key: keys are content hashes)."""
        return self.label or self.name


AugmentName = Literal["auto", "none", "dsa", "dc", "crop_flip", "mixup", "cutmix"]


@dataclass
class ReferenceConfig:
    """Training on the whole real training set: the soft-label teacher and the whole-dataset reference
    (``eval.whole``). Defaults: DD-Ranking's ``REAL_DATA_TRAINING_CONFIG`` for ConvNets on CIFAR (SGD lr 0.01,
    momentum 0.9, weight decay 5e-4, 200 epochs, batch 512, lr x0.1 after epoch 100, no augmentation);
    ``train_per_class`` trains on that many random images per class instead (a cost reduction for CPU runs)."""

    epochs: int = 200
    batch_size: int = 512
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    train_per_class: Optional[int] = None
    seed: int = 0

    def __post_init__(self) -> None:
        check(self.epochs >= 0, f"epochs must be >= 0, got {self.epochs}")
        check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        check(self.train_per_class is None or self.train_per_class >= 1,
              f"train_per_class must be >= 1 or null, got {self.train_per_class}")


@dataclass
class EvalGrid(TrainConfig):
    """The ``eval:`` section, a grid of evaluation settings rather than one training config: the training
    settings every evaluation shares (the fields of :class:`~atombench.train.TrainConfig`: epochs, lr, ...)
    plus the axes that multiply the jobs: the protocols, labels and augmentations (each one value or a list, each
    a column of the results), how many models are trained per synthetic set, and the references they need. The
    graph expands it into one resolved ``TrainConfig`` per job (:func:`atombench.protocols.resolve_train`).

    The DC/DM papers train 20 models on each of 5 synthetic sets; ``models_per_set`` x ``seeds`` sets that.
    Its former name, ``EvalConfig``, is kept as an alias.
    """

    #: one augmentation, or a list: every model is trained under each (an ``augment`` column in the results)
    augment: Any = "auto"
    #: ``hard``, ``soft`` or ``both`` (a ``labels`` column); soft labels come from ``soft_labels``
    labels: Literal["hard", "soft", "both"] = "hard"
    #: where soft labels come from: ``teacher`` (a network trained on the real training set, run on every
    #: augmented batch) or ``distiller`` (the per-image soft labels a distiller stored with its set)
    soft_labels: Literal["teacher", "distiller"] = "teacher"
    #: the teacher's architecture: a model name or {name, options}; null = each evaluation model teaches itself
    #: (DD-Ranking: the teacher is the student's architecture)
    teacher: Any = None
    #: how teachers and the whole-dataset reference are trained on the real training set
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    #: add a whole-dataset reference row per (dataset, model): each evaluation model trained on the real training
    #: set (``reference``); the label-robust score needs it
    whole: bool = False
    models_per_set: int = 1
    #: which evaluation protocol trains the models (:mod:`atombench.protocols`): ``common`` (this section's
    #: settings for every method), ``paper`` (each method's own, declared by its distiller; the common one for a
    #: method that declares none) or ``both`` (a ``protocol`` column in the results, a fairness table in reports)
    protocol: Literal["common", "paper", "both"] = "common"

    def __post_init__(self) -> None:
        from .errors import suggest

        choices = get_args(AugmentName)
        for a in self.augment_list:
            check(isinstance(a, str) and a in choices,
                  f"augment: {short(a)} is not an evaluation augmentation"
                  f"{suggest(a, choices) if isinstance(a, str) else ''}; choose from {', '.join(choices)} "
                  f"(one, or a list)")
        super().__post_init__()
        check(self.models_per_set >= 1, f"models_per_set must be >= 1, got {self.models_per_set}")
        augs = self.augment_list
        check(bool(augs), "augment must name at least one augmentation")
        check(len(set(augs)) == len(augs), f"augment lists an augmentation twice: {augs}")
        check("auto" not in augs or len(augs) == 1, "augment: auto cannot be combined with others in a list")
        if isinstance(self.teacher, str):
            self.teacher = {"name": self.teacher, "options": {}}
        elif isinstance(self.teacher, dict):
            unknown = set(self.teacher) - {"name", "options"}
            check(isinstance(self.teacher.get("name"), str) and not unknown
                  and isinstance(self.teacher.get("options", {}), dict),
                  f"teacher must be a model name or {{name: ..., options: {{...}}}}, got {short(self.teacher)}")
            self.teacher = {"name": self.teacher["name"], "options": dict(self.teacher.get("options") or {})}
        else:
            check(self.teacher is None, f"teacher must be a model name or {{name: ..., options: {{...}}}}, got "
                                        f"{short(self.teacher)}")

    @property
    def augment_list(self) -> list[str]:
        return list(self.augment) if isinstance(self.augment, (list, tuple)) else [self.augment]

    @property
    def label_list(self) -> list[str]:
        return ["hard", "soft"] if self.labels == "both" else [self.labels]


#: the former name of :class:`EvalGrid`
EvalConfig = EvalGrid


@dataclass
class EngineSpec:
    """The engine that runs every job (distillation, evaluation, architecture search; :mod:`atombench.scheduler`):
    ``execution: {engine: loky}`` is short for ``engine: {name: loky}``. ``backend:`` is its former name, still read.

    * ``loky`` (default): joblib worker processes on this machine; ``sequential``: in this process.
    * ``dask``: joblib's Dask backend; ``address`` of a running scheduler, or none to start a local cluster of
      ``workers`` processes (``pip install 'atombench[cluster]'``).
    * ``ray``: joblib's Ray backend; ``address`` of a Ray cluster (``auto`` for the one this node belongs to),
      or none to start Ray locally with ``workers`` CPUs.
    * ``slurm``: one Slurm array job through submitit (``partition``, ``timeout_min``, ``cpus_per_task``,
      ``gpus_per_node``, ``mem_gb``, ``array_parallelism``, ``slurm_options`` for any other sbatch option);
      ``submitit`` is the same with ``cluster: local`` (subprocesses on this machine) or ``debug`` (in process),
      the executors submitit offers for trying a cluster setup without a cluster.
    """

    name: Literal["loky", "sequential", "dask", "ray", "slurm", "submitit"] = "loky"
    address: Optional[str] = None
    cluster: Literal["slurm", "local", "debug"] = "slurm"
    partition: Optional[str] = None
    timeout_min: int = 240
    cpus_per_task: Optional[int] = None
    gpus_per_node: int = 0
    mem_gb: Optional[float] = None
    array_parallelism: Optional[int] = None
    slurm_options: dict = field(default_factory=dict)
    #: submitit's log and pickle folder; default ``<results>/submitit``
    folder: Optional[str] = None
    #: GPUs each distillation task asks for (slurm/submitit); null: 1 when the suite's device is cuda, else
    #: ``gpus_per_node``
    distill_gpus: Optional[int] = None

    def __post_init__(self) -> None:
        check(self.timeout_min >= 1, f"timeout_min must be >= 1, got {self.timeout_min}")
        check(self.cpus_per_task is None or self.cpus_per_task >= 1,
              f"cpus_per_task must be >= 1, got {self.cpus_per_task}")
        check(self.gpus_per_node >= 0, f"gpus_per_node must be >= 0, got {self.gpus_per_node}")
        check(self.distill_gpus is None or self.distill_gpus >= 0,
              f"distill_gpus must be >= 0 or null, got {self.distill_gpus}")
        if self.name == "slurm":
            check(self.cluster == "slurm", "engine 'slurm' always uses cluster: slurm; use name: submitit "
                                           "with cluster: local or debug to run without Slurm")
        if self.name not in ("slurm", "submitit"):
            extra = [k for k in ("partition", "cpus_per_task", "mem_gb", "array_parallelism", "folder",
                                 "distill_gpus")
                     if getattr(self, k) is not None] + (["slurm_options"] if self.slurm_options else [])
            check(not extra, f"{extra} only apply to the slurm/submitit engines, not to '{self.name}'")
        if self.name not in ("dask", "ray"):
            check(self.address is None, f"address only applies to the dask and ray engines, not to '{self.name}'")

    @property
    def cluster_kind(self) -> str:
        return "slurm" if self.name == "slurm" else self.cluster


#: the former name of :class:`EngineSpec`
BackendSpec = EngineSpec


@dataclass
class ExecutionConfig:
    """How the jobs run: distillation, evaluation and search alike (see :class:`EngineSpec` and
    :func:`atombench.scheduler.make_slots`).

    ``workers: null`` picks ``min(cores, jobs)`` on CPU (each worker gets ``cores // workers`` torch threads,
    so workers x threads never exceeds the cores) and one per GPU with ``device: cuda``.
    """

    engine: EngineSpec = field(default_factory=EngineSpec)
    workers: Optional[int] = None
    #: a distillation saves the state it resumes from (images, optimiser, random state: not a set, not evaluated)
    #: at least this often, besides at its snapshots, so that a killed run loses at most these minutes of it; 0 or
    #: null: at the snapshots only. It changes nothing in the results (a resumed run is the uninterrupted one).
    checkpoint_minutes: Optional[float] = 5.0
    #: which ready jobs start first: ``distill_first`` (the distillations, which unblock the most: the shortest
    #: run to the end) or ``results_first`` (the evaluations of the sets already made, so that the tables fill in
    #: as the run goes: for a long run that will be stopped and resumed, as on a CPU across sessions). The same
    #: jobs either way, and the same results.
    order: Literal["distill_first", "results_first"] = "distill_first"

    def __post_init__(self) -> None:
        check(self.workers is None or 1 <= self.workers <= MAX_WORKERS,
              f"workers must be from 1 to {MAX_WORKERS}, got {self.workers}")
        check(self.checkpoint_minutes is None or (isinstance(self.checkpoint_minutes, (int, float))
                                                  and not isinstance(self.checkpoint_minutes, bool)
                                                  and self.checkpoint_minutes >= 0),
              f"checkpoint_minutes must be a number of minutes >= 0 (0: at the snapshots only), got "
              f"{self.checkpoint_minutes!r}")

    @property
    def checkpoint_s(self) -> Optional[float]:
        """:attr:`checkpoint_minutes` in seconds, None for none."""
        return float(self.checkpoint_minutes) * 60.0 if self.checkpoint_minutes else None

    @property
    def backend(self) -> EngineSpec:
        """The former name of :attr:`engine` (read-only)."""
        return self.engine


#: the proxies every NAS can use besides the suite's distillers (see :mod:`atombench.nas`)
NAS_BASELINES = ("random_subset", "early_stop")


@dataclass
class NASConfig:
    """The ``nas:`` section: architecture search with each proxy (:mod:`atombench.nas`, ``docs/nas.md``).

    Every candidate of ``space`` is trained on each proxy and on the whole training set (the ground truth), and
    tested on a validation split carved out of the training set; the test split only reports the accuracy of
    the architectures selected. Defaults and where they come from:

    * ``space``: ``small`` (36 stratified candidates that train on a CPU), ``full`` (the papers' 720 ConvNets:
      depth 1-4, width 32-256, sigmoid/relu/leakyrelu, none/batch/layer/instance/group norm, no/max/avg pooling;
      ``docs/nas.md#search-space``, recalled from the papers, UNVERIFIED) or a mapping of lists under ``depth``,
      ``width``, ``act``, ``norm``, ``pool`` (the product; omitted axes keep the papers' values).
    * ``proxies``: labels of the suite's distillers, plus ``random_subset`` (a class-balanced random real subset
      of ``ipc`` images per class) and ``early_stop`` (the whole training set for ``early_stop_epochs``);
      default: every distiller and both baselines.
    * ``ipc``: images per class of the proxies (default: the suite's IPCs). DC searched with 10, DM and DataDAM
      with 50 (``docs/nas.md#settings``, UNVERIFIED; ATOM follows DataDAM, inferred).
    * ``epochs``: training passes on a proxy; 200, "about 200 proxy training epochs" in DM/DataDAM
      (``docs/nas.md#settings``, UNVERIFIED-recall: not re-read in the papers).
    * ``ground_truth_epochs``: training passes on the whole training set; 200, the proxies' value (an atombench
      choice: the papers' whole-set schedule could not be read).
    * ``early_stop_epochs``: null = as many training images seen as on the proxy (``epochs x ipc x classes /
      training images``, at least 1), the papers' "early-stopping" baseline at the proxies' budget (inferred).
    * ``batch_size`` 256 and the optimiser (the suite's ``eval`` lr, momentum, weight decay, lr decay): the
      evaluation protocol (``docs/evaluation_protocols.md#reference-training``); ``augment: none`` for every proxy and the ground truth alike.
    * ``val_fraction`` 0.1 of every class of the training set, drawn with ``split_seed`` (DC's 10% validation
      split, UNVERIFIED-recall); it is never used to distil or to train.
    * ``topk``: the rank correlation is also reported over the ``topk`` best candidates by ground truth (the
      papers use the top 5%, UNVERIFIED); null = 5% of the space, at least 10.
    """

    space: Any = "small"
    proxies: Optional[list[str]] = None
    ipc: Optional[Union[int, list[int]]] = None
    epochs: int = 200
    ground_truth_epochs: int = 200
    early_stop_epochs: Optional[int] = None
    batch_size: int = 256
    augment: Literal["none", "dsa"] = "none"
    val_fraction: float = 0.1
    split_seed: int = 0
    topk: Optional[int] = None

    def __post_init__(self) -> None:
        check(self.epochs >= 0, f"epochs must be >= 0, got {self.epochs}")
        check(self.ground_truth_epochs >= 0, f"ground_truth_epochs must be >= 0, got {self.ground_truth_epochs}")
        check(self.early_stop_epochs is None or self.early_stop_epochs >= 0,
              f"early_stop_epochs must be >= 0 or null, got {self.early_stop_epochs}")
        check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        check(0 < self.val_fraction < 1, f"val_fraction must be in (0, 1), got {self.val_fraction}")
        check(self.topk is None or self.topk >= 3, f"topk must be >= 3 (a rank correlation needs 3 candidates) "
                                                   f"or null, got {self.topk}")

    @property
    def ipc_list(self) -> Optional[list[int]]:
        return None if self.ipc is None else [self.ipc] if isinstance(self.ipc, int) else list(self.ipc)

    def candidates(self) -> list:
        """The search space's candidates (``ConvNetConfig``), in its order."""
        from .models.convnet import SPACES, SearchGrid

        return self.space.candidates() if isinstance(self.space, SearchGrid) else SPACES[self.space]()


@dataclass
class Suite:
    name: str
    datasets: list[DatasetSpec]
    ipc: list[int]
    distillers: list[DistillerSpec]
    models: list[ModelSpec]
    seeds: Union[int, list[int]] = 1
    eval: EvalGrid = field(default_factory=EvalGrid)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    output: Optional[str] = None
    description: str = ""
    #: neural architecture search on the proxies (:class:`NASConfig`); none when absent
    nas: Optional[NASConfig] = None
    #: intermediate synthetic sets of the iterative distillers, each evaluated like a final one (budget curves):
    #: a list of iteration counts, or a count k = the iterations divided by 2^k .. 2 (log-spaced); a killed
    #: distillation resumes from its last snapshot
    snapshots: Any = None
    #: results folders of other suites whose synthetic sets (and snapshots) this suite takes by key instead of
    #: distilling them again: the same dataset, distiller config, IPC and seed give the same key, so e.g. a
    #: cross-architecture suite evaluates the sets a main-table suite made (copied into this suite's folder)
    reuse_sets: Optional[list] = None
    #: the values of the grid's added axes (``atombench.grid.register`` of a ``ValuesAxis(values=None)``), by
    #: their column: ``grid: {width_scale: [1, 2]}``; each listed value multiplies the jobs as the built-in axes do
    grid: Optional[dict] = None

    def snapshot_iterations(self, iterations: int) -> tuple[int, ...]:
        """The snapshot iterations below ``iterations`` (the final set is not a snapshot)."""
        s = self.snapshots
        if s is None:
            return ()
        its = [iterations // 2 ** j for j in range(int(s), 0, -1)] if isinstance(s, int) else list(s)
        return tuple(sorted({int(i) for i in its if 0 < int(i) < iterations}))

    def snapshots_of(self, distiller) -> tuple[int, ...]:
        """The snapshot iterations of ``distiller``'s run: none unless it is iterative with a whole iteration
        count."""
        iterations = getattr(getattr(distiller, "config", None), "iterations", None)
        if not getattr(distiller, "iterative", False) or not isinstance(iterations, int):
            return ()
        return self.snapshot_iterations(iterations)

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    def output_dir(self, base: Path | None = None) -> Path:
        """``output`` (``~`` expanded, as in every other path of a suite), else ``results/<name>``."""
        return Path(self.output).expanduser() if self.output else (base or Path("results")) / self.name


def _normalise_items(doc: dict, key: str, problems: list[Problem], refused: set[str]) -> None:
    """Accept the shorthand ``- random`` for ``- {name: random}`` in a list of plug-in entries; an entry that is
    neither is a problem, its path added to ``refused`` (its parse would also say that its name is missing)."""
    items = doc.get(key)
    if items is None:
        return
    if isinstance(items, (str, dict)):
        items = [items]
    if not isinstance(items, list):
        return
    out = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            out.append({"name": item})
        elif isinstance(item, dict):
            out.append(item)
        else:
            problems.append(Problem(f"{key}[{i}]", f"expected a name or a mapping with 'name', got {short(item)}"))
            refused.add(f"{key}[{i}]")
            out.append(None)
    doc[key] = out


def _check_semantics(suite: Suite, problems: list[Problem], name_from_file: bool = False) -> None:
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", suite.name or ""):
        from_file = " (taken from the file's name, as the suite has no 'name:'; add one)" \
            if name_from_file else ""
        problems.append(Problem("name", f"must be letters, digits, '_', '-' or '.', got {short(suite.name)}"
                                        f"{from_file} (it names the results folder)"))
    for key in ("datasets", "distillers", "models", "ipc"):
        if not getattr(suite, key):
            problems.append(Problem(key, "must list at least one entry"))
    if suite.output is not None and not suite.output.strip():
        problems.append(Problem("output", "must name a results folder, got an empty path; leave it out for "
                                          "results/<suite name>, or write '.' for the folder the run starts in"))
    elif suite.output is not None:
        from .data.base import expand

        try:
            if expand(suite.output, "output").is_file():
                problems.append(Problem("output", f"{suite.output} is a file, not a folder; name a results folder"))
        except DataError:  # ~user of no such user
            problems.append(Problem("output", f"{suite.output}: no such user's home folder; write the path out"))
    _check_ipcs(suite.ipc, problems)
    seeds = suite.seed_list
    if isinstance(suite.seeds, int) and suite.seeds < 1:
        problems.append(Problem("seeds", f"must be >= 1 (a count) or a list of seeds, got {suite.seeds}"))
    elif len(set(seeds)) != len(seeds) or not seeds:
        problems.append(Problem("seeds", f"must be distinct and non-empty, got {suite.seeds}"))

    for key in ("datasets", "distillers", "models"):
        _check_plugins(key, getattr(suite, key), problems)
    from .grid import grid_problems

    problems += [Problem(where, msg) for where, msg in grid_problems(suite.grid)]
    if suite.reuse_sets is not None and not (isinstance(suite.reuse_sets, list) and all(
            isinstance(v, str) and v.strip() for v in suite.reuse_sets)):
        problems.append(Problem("reuse_sets", f"must be a list of results folders, got {short(suite.reuse_sets)}"))
    labels = [d.display for d in suite.datasets if d is not None]
    for i, spec in enumerate(suite.distillers):
        if spec is None:
            continue
        if spec.ipc is not None and not (isinstance(spec.ipc, list) and spec.ipc and all(
                isinstance(v, int) and not isinstance(v, bool) and v in suite.ipc for v in spec.ipc)):
            problems.append(Problem(f"distillers[{i}].ipc", f"must be a non-empty list of the suite's IPCs "
                                                            f"({suite.ipc}), got {short(spec.ipc)}"))
        if spec.datasets is not None and not (isinstance(spec.datasets, list) and spec.datasets and all(
                isinstance(v, str) and v in labels for v in spec.datasets)):
            problems.append(Problem(f"distillers[{i}].datasets", f"must be a non-empty list of the suite's dataset "
                                                                 f"labels ({', '.join(labels)}), got "
                                                                 f"{short(spec.datasets)}"))
    s = suite.snapshots
    if s is not None:
        ok = (isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= 20) or (
            isinstance(s, list) and s and all(isinstance(i, int) and not isinstance(i, bool) and i >= 1 for i in s))
        if not ok:
            problems.append(Problem("snapshots", f"must be a list of iteration counts >= 1 (e.g. [100, 500, 2000]) or "
                                                 f"a count of log-spaced snapshots from 1 to 20, got {short(s)}"))
    teacher = suite.eval.teacher
    if teacher is not None:
        try:
            registry.models.get(teacher["name"])
            registry.models.parse_options(teacher["name"], teacher["options"], "eval.teacher.options", problems)
        except PluginError as err:
            problems.append(Problem("eval.teacher", str(err)))
    if suite.eval.labels == "hard" and (teacher is not None or suite.eval.soft_labels != "teacher"):
        problems.append(Problem("eval.labels", "teacher / soft_labels only apply to soft labels: set labels: soft "
                                               "or both, or remove them"))
    if suite.nas is not None:
        _check_nas(suite.nas, [d.display for d in suite.distillers], problems)


def _check_nas(nas: NASConfig, distillers: list[str], problems: list[Problem]) -> None:
    """The ``nas:`` values that the typed config cannot check: the space, the proxies, the IPCs."""
    from .errors import suggest
    from .models.convnet import SPACES, SearchGrid

    names = ", ".join(f"'{n}'" for n in SPACES)
    if isinstance(nas.space, str):
        if nas.space not in SPACES:
            problems.append(Problem("nas.space", f"unknown search space {short(nas.space)}{suggest(nas.space, SPACES)}; "
                                                 f"use {names} or a mapping of lists under depth, width, act, "
                                                 f"norm, pool"))
    elif isinstance(nas.space, dict):
        nas.space = cfgmod.collect(SearchGrid, nas.space, "nas.space", problems)
    elif not isinstance(nas.space, SearchGrid):
        problems.append(Problem("nas.space", f"expected {names} or a mapping of lists under depth, width, act, "
                                             f"norm, pool, got {type(nas.space).__name__} {short(nas.space)}"))
    if nas.proxies is not None:
        valid = list(dict.fromkeys(distillers + list(NAS_BASELINES)))
        if not nas.proxies:
            problems.append(Problem("nas.proxies", f"must list at least one proxy (or be left out for all of "
                                                   f"them): {', '.join(valid)}"))
        for i, proxy in enumerate(nas.proxies):
            if proxy not in valid:
                problems.append(Problem(f"nas.proxies[{i}]", f"{short(proxy)} is neither one of the suite's distillers "
                                                             f"nor a baseline{suggest(proxy, valid)}; choose from "
                                                             f"{', '.join(valid)}"))
        dup = sorted({p for p in nas.proxies if nas.proxies.count(p) > 1})
        if dup:
            problems.append(Problem("nas.proxies", f"names {dup} more than once"))
    ipcs = nas.ipc_list
    if ipcs is not None:
        if not ipcs:
            problems.append(Problem("nas.ipc", "must list at least one IPC (or be left out for the suite's)"))
        _check_ipcs(ipcs, problems, "nas.ipc")


def _check_ipcs(ipcs: list, problems: list[Problem], key: str = "ipc") -> None:
    for i, ipc in enumerate(ipcs):
        if isinstance(ipc, int) and ipc < 1:
            problems.append(Problem(f"{key}[{i}]", f"images per class must be >= 1, got {ipc}"))
    if len(set(map(repr, ipcs))) != len(ipcs):
        problems.append(Problem(key, f"lists an IPC twice: {ipcs}"))


#: the entry type of each list of plug-ins; every entry holds its plug-in's keyword arguments under ``options``
_SPEC = {"datasets": DatasetSpec, "distillers": DistillerSpec, "models": ModelSpec}

# Keys renamed for a reader who has not seen the history: a distiller's ``config`` is ``options`` (as for datasets
# and models), ``execution.backend`` is ``execution.engine``. A suite may still write the former name (its problems
# are then located under it and worded with it, :func:`_as_written`); writing both is a problem (:func:`_current_key`).


def _current_key(mapping: dict, new: str, old: str, where: str, problems: list[Problem]) -> tuple[dict, str]:
    """``mapping`` with its former key ``old`` renamed ``new`` (in place in the key order), and the key the document
    wrote; both written is one problem at ``where`` (the former key is then dropped so that the rest is checked)."""
    if old not in mapping:
        return mapping, new
    if new in mapping:
        problems.append(Problem(where, f"gives both '{new}' and '{old}', one setting under two names ('{old}' is "
                                       f"the former name of '{new}'): keep '{new}' only"))
        return {k: v for k, v in mapping.items() if k != old}, new
    return {new if k == old else k: v for k, v in mapping.items()}, old


def _as_written(problems: list[Problem], renamed: list[tuple[str, str, str, str]]) -> list[Problem]:
    """``problems`` located (and, for ``execution``, worded) with the former key where the document wrote it:
    ``renamed`` holds (path of the current key, path of the former key, current word, former word)."""
    out = []
    for p in problems:
        for new, old, word, former in renamed:
            if p.path == new or p.path.startswith((new + ".", new + "[")):
                p = Problem(old + p.path[len(new):], p.message.replace(word, former) if word else p.message)
                break
        out.append(p)
    return out


def _check_plugins(key: str, entries: list, problems: list[Problem]) -> None:
    """Each entry's name against its registry and its options against the plug-in's typed config."""
    reg = registry.REGISTRIES[key]
    for i, entry in enumerate(entries):
        if entry is None:
            continue
        try:
            reg.get(entry.name)
        except PluginError as err:
            problems.append(Problem(f"{key}[{i}].name", str(err)))
            continue
        reg.parse_options(entry.name, entry.options, f"{key}[{i}].options", problems)
    for i, entry in enumerate(entries):  # labels and names end up in table and report file names
        label = getattr(entry, "label", None) if entry is not None else None
        if label is not None and (not label or label in (".", "..") or any(c in label for c in "/\\\0|")
                                  or not label.isprintable() or len(label) > MAX_LABEL):
            problems.append(Problem(f"{key}[{i}].label", f"must be a plain name of at most {MAX_LABEL} printable "
                                                         f"characters, without '/', '\\', '|' or '..' (it names "
                                                         f"files and table columns), got {short(label)}"))
    labels = [getattr(e, "display", None) or e.name for e in entries if e is not None]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        problems.append(Problem(key, f"names {dup} more than once; give each a distinct 'label'"))


def parse_suite(doc: Any, source: str = "<suite>", name_from_file: bool = False) -> Suite:
    """A validated :class:`Suite` from a parsed YAML document; raises :class:`ConfigError` with every problem."""
    if not isinstance(doc, dict):
        raise ConfigError([Problem("", f"a suite file must be a YAML mapping at the top level, got "
                                       f"{type(doc).__name__}")], source)
    doc = dict(doc)
    problems: list[Problem] = []
    refused: set[str] = set()  # entries refused whole
    for key in ("datasets", "distillers", "models"):
        _normalise_items(doc, key, problems, refused)
    if isinstance(doc.get("ipc"), int) and not isinstance(doc.get("ipc"), bool):
        doc["ipc"] = [doc["ipc"]]
    renamed: list[tuple[str, str, str, str]] = []  # see _as_written
    written_config: list[int] = []  # the distillers that wrote ``config:``
    for i, item in enumerate(doc["distillers"] if isinstance(doc.get("distillers"), list) else []):
        if isinstance(item, dict):
            doc["distillers"][i], key = _current_key(item, "options", "config", f"distillers[{i}]", problems)
            if key == "config":
                written_config.append(i)
                renamed.append((f"distillers[{i}].options", f"distillers[{i}].config", "", ""))
    execution = doc.get("execution")
    if isinstance(execution, dict):
        execution, key = _current_key(execution, "engine", "backend", "execution", problems)
        if key == "backend":
            renamed.append(("execution.engine", "execution.backend", "engine", "backend"))
        if isinstance(execution.get("engine"), str):  # engine: loky
            execution = dict(execution, engine={"name": execution["engine"]})
        doc["execution"] = execution
    # parsed on its own so that its problems are located (an Optional section would report only a type mismatch)
    nas_doc = doc.pop("nas", None)
    nas = cfgmod.collect(NASConfig, nas_doc, "nas", problems) if nas_doc is not None else None
    suite = cfgmod.collect(Suite, doc, "", problems)
    if suite is not None:
        suite.nas = nas
        for i in written_config:
            suite.distillers[i].options_key = "config"
        _check_semantics(suite, problems, name_from_file)
    else:  # still check the IPCs and plug-in entries that parse, so every problem is reported at once
        if isinstance(doc.get("ipc"), list):
            _check_ipcs(doc["ipc"], problems)
        for key, spec in _SPEC.items():
            items = doc.get(key)
            if isinstance(items, list):
                entries = [cfgmod.collect(spec, item, f"{key}[{i}]", []) if isinstance(item, dict) else None
                           for i, item in enumerate(items)]
                _check_plugins(key, entries, problems)
        if nas is not None:
            items = doc.get("distillers") if isinstance(doc.get("distillers"), list) else []
            keys = [str(d.get("label") or d.get("name")) for d in items if isinstance(d, dict)]
            _check_nas(nas, keys, problems)
    if problems:
        # an entry refused as a whole (``distillers: [5]``) is not also missing its keys
        problems = [p for p in problems if not any(p.path.startswith(f"{w}.") for w in refused)]
        raise ConfigError(list(dict.fromkeys(_as_written(problems, renamed))), source)
    return suite


#: the most workers a run may ask for (each a process, or a task of a cluster engine; a huge count hung ``plan``)
MAX_WORKERS = 4096

#: the longest label a dataset, distiller or model entry may have (labels name files: a file name has at most 255
#: bytes, and a report's file names join a few of them)
MAX_LABEL = 64

#: the most values (scalars, lists, mappings) a suite document may hold once its aliases are expanded: a real suite
#: holds a few hundred; an "alias bomb" (anchors of lists of aliases of anchors...) holds billions in a few lines
MAX_VALUES = 10_000


class _Refused(yaml.YAMLError):
    """A document refused before it is constructed (see :class:`_BoundedLoader`)."""


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader that counts the values of the composed document, aliases expanded, before building
    anything from it: a document over :data:`MAX_VALUES` or with a recursive alias is refused at once, whatever key
    it hides under (PyYAML shares an aliased node, so the count takes time linear in the file, not in its
    expansion)."""

    def compose_document(self):
        node = super().compose_document()
        _check_expansion(node)
        _check_duplicates(node)
        return node


def _check_duplicates(root: yaml.Node) -> None:
    """Raise :class:`_Refused` at a mapping that names a key twice (YAML forbids it; PyYAML keeps the last value,
    so ``ipc: [1]`` ... ``ipc: [10]`` would silently run IPC 10 only)."""
    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: dict = {}
            for k, _ in node.value:
                if isinstance(k, yaml.ScalarNode):
                    if k.value in keys and k.value != "<<":
                        raise _Refused(f"the key '{k.value}' is given twice in one mapping (lines "
                                       f"{keys[k.value] + 1} and {k.start_mark.line + 1}); YAML would keep only "
                                       f"the last: remove one")
                    keys[k.value] = k.start_mark.line
        stack.extend(_children(node))


def _check_expansion(root: yaml.Node) -> None:
    """Raise :class:`_Refused` when ``root`` expands to more than :data:`MAX_VALUES` values or contains itself."""
    size: dict[int, int] = {}  # node id -> its expanded size
    open_: set[int] = set()  # nodes whose children are being counted: meeting one again is a cycle
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_.discard(key)
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            if size[key] > MAX_VALUES:
                line = node.start_mark.line + 1 if node.start_mark else 0
                raise _Refused(f"the document expands to more than {MAX_VALUES:,} values (the value at line {line} "
                               f"repeats anchors through aliases: an alias bomb); a suite holds a few hundred: write "
                               f"the values out")
            continue
        if key in size:
            continue
        if key in open_:
            line = node.start_mark.line + 1 if node.start_mark else 0
            raise _Refused(f"an anchor refers to itself through an alias (the value at line {line}): a suite "
                           f"cannot be recursive")
        open_.add(key)
        stack.append((node, True))
        for kid in _children(node):
            if id(kid) in open_:
                line = kid.start_mark.line + 1 if kid.start_mark else 0
                raise _Refused(f"an anchor refers to itself through an alias (the value at line {line}): a suite "
                               f"cannot be recursive")
            if id(kid) not in size:
                stack.append((kid, False))


def _children(node: yaml.Node) -> list:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def load_suite(path: str | Path) -> Suite:
    path = Path(path)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix.lower() in (".yaml", ".yml") and p.is_file())
        if not found:
            raise UsageError(f"'{path}' is a folder, not a suite file, and it holds no YAML file (*.yaml, *.yml)")
        names = ", ".join(str(p) for p in found[:12]) + (f", ... ({len(found)} in all)" if len(found) > 12 else "")
        raise UsageError(f"'{path}' is a folder, not a suite file; name one of its YAML files: {names}")
    if not path.is_file():
        raise UsageError(f"suite file '{path}' not found; pass the path of a YAML suite "
                         f"(e.g. suites/quickstart.yaml)")
    try:
        doc = yaml.load(path.read_text(), Loader=_BoundedLoader)
    except _Refused as exc:
        raise UsageError(f"{path}: {exc}")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"{path}: not valid YAML{where}: {what}; fix the syntax (indentation, colons, quotes)")
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a text file; a suite is a UTF-8 YAML file")
    if doc is None:
        raise UsageError(f"{path}: the file is empty; see suites/quickstart.yaml for a complete suite")
    named = isinstance(doc, dict) and "name" not in doc
    if named:
        doc = {"name": path.stem, **doc}
    return parse_suite(doc, str(path), name_from_file=named)

