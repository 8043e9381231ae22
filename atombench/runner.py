"""``atombench run``, ``plan`` and ``validate``: check a suite, build its job graph, run it, tabulate.

1. **Preflight** (:func:`preflight`, the same for ``validate``, ``plan`` and ``run``): the suite file
   (:mod:`atombench.suite`), then everything that needs the data: the datasets are loaded, each IPC is checked
   against each distiller and dataset, each model is built for each dataset's image size, each distiller's
   network is built, and the architecture search's split and candidates are checked. Any problem stops with
   exit code 2 before anything is written.
2. **Graph** (:func:`build_graph`): the suite's grid (:mod:`atombench.grid`: typed cells spanned by registered
   axes) as jobs: one :class:`~atombench.jobs.DistillJob` per synthetic-set cell (dataset, distiller, seed, IPC)
   and per search proxy, one :class:`~atombench.jobs.EvalJob` per evaluation cell (model, evaluation index,
   protocol, augmentation, labels, snapshot) depending on its set, the reference networks (teachers,
   whole-dataset rows), and the search's :class:`~atombench.nas.NASJob` (proxies depending on their sets).
   Keys are content hashes, so what is stored is found and skipped.
3. **Schedule** (:class:`~atombench.scheduler.Scheduler`): every job goes to the suite's engine; an evaluation
   starts as soon as its synthetic set exists. ``--dry-run`` / ``atombench plan`` prints the graph instead
   (:func:`plan_text`): jobs of each kind, done, claimed by another run, to run, and the remaining cost estimated
   from the costs recorded in the results folder.
4. **Tabulate** ``results.csv``, the search's ``nas.csv``/``nas_summary.csv``, and ``summary.md``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from . import config as cfgmod
from .data.base import RealData
from .errors import AtombenchError, ConfigError, Problem, UsageError
from .grid import FrozenTrain, common_train, value_text
from .jobs import DistillJob, EvalJob, Job, group_units
from .keys import job_key, snapshot_key, synset_key  # noqa: F401 - public names
from .factories import build_model, dataset_args, load_dataset, make_distiller, paper_dataset  # noqa: F401 - public names
from .runtime import clean_stale_tmp, cpu_count, resolve_device, short, tune_malloc
from .scheduler import Slot, Scheduler, check_available, engine_for, is_remote, make_slots
from .store import REPORTED_AS, ResultsStore
from .suite import Suite, load_suite
from .train import resolve_speed


# -- preflight -----------------------------------------------------------------------------------------------
@dataclass
class Plan:
    """A suite checked against its data: what :func:`build_graph` needs."""

    suite: Suite
    #: the device jobs run on: resolved here for local engines, the suite's name for cluster engines
    device: str
    data: dict[str, RealData]
    distillers: dict[str, Any]
    #: the search's checked plan (:class:`atombench.nas.NASPlan`) when the suite has a ``nas:`` section
    nas: Any = None
    #: every dataset the preflight loaded, by its :func:`~atombench.factories.dataset_args` (each method's ZCA space
    #: too): the graph takes its data from here, so the launching process loads each dataset once
    loaded: dict = field(default_factory=dict)

    def real(self, dargs: tuple) -> RealData:
        """The dataset ``dargs`` names (:func:`~atombench.factories.dataset_args`), as the preflight loaded it."""
        return _load(self.loaded, dargs)


def _load(loaded: dict, dargs: tuple) -> RealData:
    from .runtime import stable_hash

    key = stable_hash(list(dargs))
    if key not in loaded:
        loaded[key] = load_dataset(*dargs)
    return loaded[key]


def _device(suite: Suite) -> str:
    if is_remote(suite.execution.engine) and suite.device != "cpu":
        return suite.device  # resolved on the worker: the launching machine may have no GPU
    return str(resolve_device(suite.device))


def preflight(suite: Suite, source: str | None = None) -> Plan:
    """Load the datasets and check every data-dependent constraint; raises ConfigError listing each problem, each
    line starting with ``source`` (the suite file's path) where given, as the parser's problems do.
    ``atombench validate``, ``plan`` and ``run`` all call this, so they refuse the same suites."""
    problems: list[Problem] = []
    device = _device(suite)
    check_available(suite.execution.engine)
    data: dict[str, RealData] = {}
    loaded: dict = {}
    for i, ds in enumerate(suite.datasets):
        try:
            data[ds.display] = _load(loaded, dataset_args(ds))
        except AtombenchError as err:
            problems.append(Problem(f"datasets[{i}]", str(err)))
    distillers = {}
    for i, spec in enumerate(suite.distillers):
        distillers[spec.display] = _concrete(spec, make_distiller(spec.name, spec.options), device,
                                             suite.execution.engine)
        _check_distiller(suite, i, spec, distillers[spec.display], data, loaded, problems)
    _check_models(suite, data, problems)
    _check_snapshots(suite, distillers, problems)
    from .grid import value_problems

    problems += [Problem(where, msg) for where, msg in value_problems(suite, distillers)]
    nas = None
    if suite.nas is not None and len(data) == len(suite.datasets):
        from .nas import plan_nas

        nas = plan_nas(suite, device, data, distillers, problems)
    if problems:
        raise ConfigError(problems, source)
    return Plan(suite, device, data, distillers, nas, loaded)


def _concrete(spec, distiller, device: str, engine: str):
    """The distiller with its ``compile: auto`` made concrete for this run (the CPU default,
    :func:`~atombench.distillers.matching.concrete_compile`), written into ``spec.options`` so that the job's key and
    the worker that rebuilds the distiller from its options see the same value; other distillers unchanged."""
    from .distillers.matching import MatchingConfig, concrete_compile

    config = getattr(distiller, "config", None)
    if not isinstance(config, MatchingConfig) or config.compile != "auto":  # another plug-in's compile: its own
        return distiller
    spec.options = {**spec.options, "compile": concrete_compile(config,
                                                                "remote" if is_remote(engine) else device)}
    return make_distiller(spec.name, spec.options)


def _check_distiller(suite: Suite, i: int, spec, d, data: dict[str, RealData], loaded: dict,
                     problems: list[Problem]) -> None:
    """The problems of distiller entry ``i`` on each dataset it runs on: its ZCA files, IPCs, network and sets."""
    for k, ds in enumerate(suite.datasets):  # zca: paper: each method's whitening, loaded (and cached) now
        if ds.zca == "paper" and ds.display in data and spec.runs_on(ds.display):
            for ipc in spec.ipcs(suite.ipc):
                try:
                    _load(loaded, dataset_args(ds, d, ipc))
                except AtombenchError as err:
                    problems.append(Problem(f"datasets[{k}].zca", f"{spec.display} IPC {ipc}: {err}"))
    for dname, real in data.items():
        if not spec.runs_on(dname):
            continue
        for j, ipc in enumerate(suite.ipc):
            if ipc not in spec.ipcs(suite.ipc):
                continue
            msg = d.check_ipc(real, ipc)
            if msg:
                problems.append(Problem(f"ipc[{j}]", f"{spec.display} on {dname}: {msg}"))
        msg = _check_distill_net(d, real)
        if msg:
            problems.append(Problem(f"distillers[{i}].{spec.options_key}", f"{spec.display} on {dname}: {msg}"))
    _check_sets(suite, i, spec, d, data, loaded, problems)


def _check_sets(suite: Suite, i: int, spec, d, data: dict[str, RealData], loaded: dict,
                problems: list[Problem]) -> None:
    """Each set the suite needs of distiller entry ``i``, checked now (files: missing or unfit); a message once.
    Where evaluations train on the distillers' own soft labels, a set that will have none is a problem too."""
    seen, soft_said = set(), not _soft_from_distiller(suite)
    for ds in (ds for ds in suite.datasets if spec.runs_on(ds.display)):
        for ipc in (ipc for ipc in spec.ipcs(suite.ipc) if ds.display in data
                    and not d.check_ipc(data[ds.display], ipc)):
            try:
                real_ipc = _load(loaded, dataset_args(ds, d, ipc))
            except AtombenchError:
                continue  # reported by _check_distiller (datasets[k].zca)
            for seed in suite.seed_list:
                msg = d.check_set(real_ipc, ipc, seed)
                if msg and msg not in seen:
                    seen.add(msg)
                    problems.append(Problem(f"distillers[{i}].{spec.options_key}", f"{spec.display} on {ds.display}: {msg}"))
                if not soft_said and d.has_soft_labels(real_ipc, ipc, seed) is False:
                    soft_said = True
                    where = ("" if d.makes_soft_labels is False
                             else f" ({ds.display}, IPC {ipc}, seed {seed} has none)")
                    problems.append(Problem("eval.soft_labels", f"distiller, but {spec.display}'s sets carry no soft "
                                            f"labels of their own{where}; use soft_labels: teacher, or leave "
                                            f"{spec.display} out of this suite"))


def _soft_from_distiller(suite: Suite) -> bool:
    """Whether some evaluation trains on the soft labels the distillers stored with their sets."""
    return suite.eval.labels != "hard" and suite.eval.soft_labels == "distiller"


def _check_snapshots(suite: Suite, distillers: dict, problems: list[Problem]) -> None:
    """A list of snapshots that no iterative distiller of the suite reaches (each at or beyond its iterations) is a
    mistake (snapshots in epochs, or a budget cut after the list was written): no snapshot would be made, silently."""
    if not isinstance(suite.snapshots, list) or not suite.snapshots:
        return
    budgets = {label: d.config.iterations for label, d in distillers.items()
               if getattr(d, "iterative", False) and isinstance(getattr(d.config, "iterations", None), int)}
    if budgets and not any(suite.snapshots_of(d) for d in distillers.values()):
        shown = ", ".join(f"{k} {v}" for k, v in list(budgets.items())[:4])
        problems.append(Problem("snapshots", f"{suite.snapshots} are all at or beyond every distiller's iterations "
                                             f"({shown}): none would be made; list iteration counts below them, or "
                                             f"leave snapshots out"))


def _check_models(suite: Suite, data: dict[str, RealData], problems: list[Problem]) -> None:
    """Each evaluation model (and the soft-label teacher) built for each dataset's images."""
    teacher = suite.eval.teacher
    models = list(enumerate(suite.models))
    if teacher is not None and suite.eval.labels != "hard" and suite.eval.soft_labels == "teacher":
        from .suite import ModelSpec

        models.append(("teacher", ModelSpec(teacher["name"], teacher["options"])))
    for i, m in models:
        where = "eval.teacher" if i == "teacher" else f"models[{i}]"
        for dname, real in data.items():
            try:
                net = build_model(m.name, m.options, real, 0).eval()
                with torch.no_grad():
                    net(real.train_x[:2])
            except AtombenchError as err:  # named as the suite names the model (a family says 'vgg11' of vgg11_bn)
                text = str(err)
                problems.append(Problem(where, text if text.startswith((m.name, f"timm:{m.name}"))
                                        else f"{m.name}: {text}"))
            except Exception as err:  # noqa: BLE001 - report any build failure as the model's problem
                problems.append(Problem(where, f"{m.name} cannot take {dname} images "
                                               f"{tuple(real.train_x.shape[1:])}: {type(err).__name__}: "
                                               f"{short(str(err))}"))


def _check_distill_net(d, real: RealData) -> str | None:
    """Build the network a distiller samples (``net``/``net_options``) and check its layer choice."""
    name = getattr(d.config, "net", None)
    if not isinstance(name, str):
        return None
    try:
        net = build_model(name, getattr(d.config, "net_options", {}), real, 0).eval()
        with torch.no_grad():
            maps = net.extract(real.train_x[:2]).maps
        if hasattr(d, "layers"):
            d.layers(len(maps))
        return d.check_net(real)  # what else the distiller needs of its network
    except AtombenchError as err:
        return str(err)
    except Exception as err:  # noqa: BLE001 - any build failure is the distiller's network's problem
        return f"net '{name}' cannot take {tuple(real.train_x.shape[1:])} images: {type(err).__name__}: {short(str(err))}"
    return None


def load_checked(path: str | Path, device: str | None = None, output: str | None = None,
                 workers: int | None = None) -> tuple[Suite, Plan]:
    """The suite at ``path`` with the command line's overrides, through :func:`preflight`."""
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be >= 1, got {workers}")
    suite = load_suite(path)
    if device:
        suite = dataclasses.replace(suite, device=device)
    if output:
        suite = dataclasses.replace(suite, output=output)
    return suite, preflight(suite, str(path))


# -- the graph -----------------------------------------------------------------------------------------------
@dataclass
class Graph:
    """Every job of a suite, in the suite's order."""

    distill: list[DistillJob]
    #: each evaluation job once (a job two protocols share is trained once)
    evaluate: list[EvalJob]
    #: the search's jobs (:class:`atombench.nas.NASJob`) and what tabulating it needs
    nas: list[Job] = field(default_factory=list)
    nas_index: Any = None
    ensemble: bool = False
    #: the rows of ``results.csv``: (job key, identifying columns), one per (job, protocol)
    rows: list = field(default_factory=list)
    #: networks trained on the whole real training set: soft-label teachers and whole-dataset references
    references: list = field(default_factory=list)

    @property
    def jobs(self) -> list[Job]:
        return [*self.distill, *self.references, *self.evaluate, *self.nas]

    def units(self, todo: set[str]) -> list[list[Job]]:
        jobs = [j for j in self.jobs if j.key in todo]
        return group_units(jobs, self.ensemble)


class _GraphBuilder:
    """Builds the jobs of a suite's grid (:mod:`atombench.grid`): one distillation per synthetic-set cell, one
    evaluation per evaluation cell (a job two cells share, as two protocols can, is built once) and the reference
    networks they name."""

    def __init__(self, plan: Plan, store: ResultsStore, progress: bool):
        from .grid import GridContext

        self.plan, self.store, self.progress = plan, store, progress
        self.root = str(store.root.absolute())
        suite = plan.suite
        # a cluster engine's workers are other machines: this one's CPU says nothing of their bf16 units, so
        # 'auto' keeps float32 eager there (a suite that wants bf16 or compilation on a cluster says so)
        speed_device = "remote" if is_remote(suite.execution.engine) else plan.device
        self.ctx = GridContext(plan, self.reference, speed_device)
        self.train = common_train(suite.eval)
        self.train.pop("labels")  # an axis of the grid
        self.ref_cfg = FrozenTrain(cfgmod.to_dict(suite.eval.reference))
        self.ensemble = suite.eval.ensemble == "on" or (suite.eval.ensemble == "auto"
                                                        and plan.device.startswith("cuda"))
        self.distill: dict[str, DistillJob] = {}
        self.evaluate: dict[str, EvalJob] = {}
        self.references: dict = {}
        self.rows: list[tuple[str, dict]] = []
        self._first: dict[tuple, str] = {}

    def reference(self, ds, dargs, real, model: tuple, label: str, name: str) -> str:
        """The key of the network ``model`` trained on ``ds``'s whole training set (its job added once)."""
        from .grid import Cell
        from .jobs import ReferenceJob, reference_key

        key = reference_key(real.fingerprint, model, self.ref_cfg)
        cell = Cell(dataset=ds.display, distiller="whole", method="whole", model=label, model_name=name,
                    labels="hard", augment="none")
        self.references.setdefault(key, ReferenceJob(key, cell.row(), self.root, self.plan.device, 1, cell=cell,
                                                     dataset=dargs, model=model, reference=self.ref_cfg))
        return key

    def whole_rows(self) -> None:
        """The whole-dataset reference of every (dataset, model): the grid's dataset and model axes."""
        from .grid import DATASET, MODEL, Cell, Point, expand

        for p in expand(self.ctx, [Point(Cell())], [DATASET, MODEL]):
            dargs = dataset_args(p.facts["ds"])
            m = p.facts["model_spec"]
            key = self.reference(p.facts["ds"], dargs, self.plan.real(dargs), (m.name, m.options), m.display, m.name)
            self.rows.append((key, dict(self.references[key].row, seed=0)))

    def _after(self, point) -> tuple:
        """The distillation to let finish first: the first set of its (dataset, distiller[, seed]) builds what the
        distiller caches for every IPC of a seed (or every seed)."""
        d, c, key = point.facts["distiller"], point.cell, point.facts["set"]
        group = (c.dataset, c.distiller) + (() if d.shares_cache_across_seeds else (c.seed,))
        first = self._first.setdefault(group, key)
        shares = d.shares_cache_across_ipcs or d.shares_cache_across_seeds
        if first is key or not shares or d.shared_cache_ready(point.facts["real"], c.ipc, self.store.cache_dir):
            return ()
        return (first,)

    def add_set(self, point) -> None:
        f, c = point.facts, point.cell
        spec, dargs = f["spec"], f["dargs"]
        after = self._after(point)
        self.distill.setdefault(f["set"], DistillJob(
            f["set"], c.row(), self.root, self.plan.device, 1, cell=c, dataset=dargs, holdout=None,
            distiller=(spec.name, f["options"]), ipc=c.ipc, seed=c.seed,
            meta={"label": spec.display, "suite_seed": c.seed, "dataset_args": list(dargs),
                  "dataset_label": c.dataset},
            progress=self.progress, after=after, snapshots=f["snaps"],
            checkpoint_s=self.plan.suite.execution.checkpoint_s))

    def add_evaluation(self, point) -> None:
        from . import grid

        f = point.facts
        m = f["model_spec"]
        train = grid.FrozenTrain(resolve_speed(grid.resolve_train(point, self.train), self.ctx.speed_device,
                                               point.cell.ipc * f["real"].num_classes, m.name))
        keyed = dict(train, **grid.key_parts(point, train))
        key = job_key(point.cell.synset_key, m.name, m.options, keyed, f["eval_seed"])
        cell = point.cell.but(augment=train["augment"])
        row = dict(cell.row(), epochs=train["epochs"], batch_size=train["batch_size"], lr=train["lr"])
        for axis in grid.axes("eval"):
            row.update(axis.row_columns(point, train))
        self.rows.append((key, row))
        if key in self.evaluate:  # one job, one more row: the other protocol of a method whose own is the common
            self.evaluate[key].also.append(row)
        self.evaluate.setdefault(key, EvalJob(
            key, row, self.root, self.plan.device, 1, cell=cell, synset_key=cell.synset_key, dataset=f["dargs"],
            model=(m.name, m.options), train=train, seed=f["eval_seed"], ensemble=self.ensemble,
            teacher=f.get("teacher"), producer=f.get("producer", ""), images_per_class=_decoded(point)))

    def graph(self) -> "Graph":
        return Graph(list(self.distill.values()), list(self.evaluate.values()), ensemble=self.ensemble,
                     rows=self.rows, references=list(self.references.values()))


def _decoded(point) -> int | None:
    """Training images per class of the point's set once decoded (its distiller's ``decoded_per_class``); None
    where the point has no distiller or IPC."""
    distiller, ipc = point.facts.get("distiller"), point.cell.ipc
    hook = getattr(distiller, "decoded_per_class", None)
    return int(hook(int(ipc))) if hook is not None and ipc is not None else None


def build_graph(plan: Plan, store: ResultsStore, progress: bool = False) -> Graph:
    """Every job of the suite's grid (:mod:`atombench.grid`): the synthetic sets (the ``set`` axes), their
    evaluations (the ``eval`` axes), the reference networks, and the architecture search's jobs."""
    from .grid import Cell, Point, axes, expand, resolve_set

    builder = _GraphBuilder(plan, store, progress)
    if plan.suite.eval.whole:
        builder.whole_rows()
    sets = [resolve_set(builder.ctx, p) for p in expand(builder.ctx, [Point(Cell())], axes("set"))]
    for point in sets:
        builder.add_set(point)
    for point in expand(builder.ctx, sets, axes("eval")):
        builder.add_evaluation(point)
    graph = builder.graph()
    if plan.nas is not None:
        from .nas import nas_graph

        proxies, graph.nas, graph.nas_index = nas_graph(plan.nas, store, progress)
        known = {j.key for j in graph.distill}
        graph.distill += [j for j in proxies if j.key not in known]
    return graph


@dataclass
class Status:
    """Which jobs of a graph are done, claimed by another live run, or still to run."""

    done: set[str]
    claimed: set[str]
    todo: set[str]


def graph_status(graph: Graph, store: ResultsStore, force: bool = False, warn=None) -> Status:
    done, claimed, todo = set(), set(), set()
    for j in graph.jobs:
        if not force and j.is_done(store, warn):
            done.add(j.key)
        elif store.claim_holder(j.key) is not None:
            claimed.add(j.key)
            todo.add(j.key)
        else:
            todo.add(j.key)
    return Status(done, claimed, todo)


# -- estimates from the recorded costs -----------------------------------------------------------------------
def _recorded(graph: Graph, store: ResultsStore, status: Status) -> list[tuple]:
    """``(job, seconds of compute, seconds of it that do not grow with the job's size)`` of each finished job
    with a record: each synthetic set's wall time; each job's training and testing time (the test pass, a fixed
    cost, the second)."""
    out = []
    for j in graph.jobs:
        if j.key not in status.done:
            continue
        if isinstance(j, DistillJob):
            meta = store.synset_meta(j.key) or {}
            sec, fixed = meta.get("wall_time_s"), 0.0
        else:
            row = store.read_job(j.key) or {}
            fixed = sum(float(row.get(k) or 0) for k in ("eval_time_s", "val_time_s", "test_time_s"))
            sec = float(row.get("train_time_s") or 0) + fixed
        if sec:
            out.append((j, float(sec), fixed))
    return out


@dataclass
class Estimate:
    """Seconds of compute left for one kind of job: from records of the same class (``sec``, ``known`` jobs),
    scaled from records of a related family (``scaled_sec``, ``scaled`` jobs:
    :meth:`~atombench.jobs.Job.cost_families`), and the jobs with neither (``unknown``)."""

    sec: float = 0.0
    known: int = 0
    scaled_sec: float = 0.0
    scaled: int = 0
    unknown: int = 0


def recorded_elsewhere(folder: str | Path, device: str | None = None) -> tuple[list[tuple], str]:
    """The cost records (as :func:`_recorded`) of another results folder, read through the suite it keeps
    (``suite.yaml``): its finished jobs as this version keys them; and the line ``plan`` names the folder with.
    A folder written before a change of keys gives none of them (its jobs are not found done), and the line says
    so."""
    store = ResultsStore(Path(folder))
    if not store.suite_yaml.is_file():
        raise UsageError(f"--costs-from {folder}: not a results folder (no suite.yaml in it); name a folder that "
                         f"'atombench run' wrote")
    _, plan = load_checked(store.suite_yaml, device, str(folder))
    graph = build_graph(plan, store)
    records = _recorded(graph, store, graph_status(graph, store))
    stale = not records and any(store.jobs_dir.glob("*.json"))
    return records, f"{folder} ({len(records)} record(s)" + (
        ": none of its finished jobs is keyed as this version keys its suite, a folder of an earlier version)"
        if stale else ")")


def estimate(graph: Graph, store: ResultsStore, status: Status, extra: list[tuple] = ()) -> dict[str, Estimate]:
    """Per kind of job, the compute left (:class:`Estimate`). A job whose class has no record is scaled from
    the nearest of its families that has: the family's records' mean fixed seconds plus their seconds per unit of
    size (iterations, images seen in training) times the job's size. ``extra``: records of other folders
    (:func:`recorded_elsewhere`), counted as this folder's."""
    records = _recorded(graph, store, status) + list(extra)
    exact: dict[tuple, list[float]] = {}
    family: dict[tuple, list[float]] = {}  # [variable seconds, size, fixed seconds, records]
    for j, sec, fixed in records:
        exact.setdefault(j.cost_class(), []).append(sec)
        for fam in j.cost_families():
            acc = family.setdefault(fam, [0.0, 0.0, 0.0, 0])
            acc[0] += sec - fixed
            acc[1] += j.cost_size()
            acc[2] += fixed
            acc[3] += 1
    out: dict[str, Estimate] = {}
    for j in graph.jobs:
        if j.key not in status.todo:
            continue
        e = out.setdefault(j.kind, Estimate())
        same = exact.get(j.cost_class())
        if same:
            e.sec += sum(same) / len(same)
            e.known += 1
            continue
        fam = next((family[f] for f in j.cost_families() if f in family and family[f][1] > 0), None)
        if fam is None:
            e.unknown += 1
        else:
            e.scaled_sec += fam[0] / fam[1] * j.cost_size() + fam[2] / fam[3]
            e.scaled += 1
    return out


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def plan_text(graph: Graph, store: ResultsStore, status: Status, slots: list[Slot], backend: str,
              pending: frozenset[str] = frozenset(), outside: frozenset[str] = frozenset(),
              extra: list[tuple] = (), sources: tuple[str, ...] = ()) -> str:
    """What ``atombench plan`` / ``run --dry-run`` prints; ``pending``: the jobs ``--no-distill`` leaves pending,
    ``outside``: those ``--only`` leaves for another run (both already taken out of ``status.todo``); ``extra``:
    cost records of other folders (``--costs-from``), ``sources`` the lines that name them."""
    est = estimate(graph, store, status, extra)
    lines = [f"results folder: {store.root}",
             f"engine: {backend}, {len(slots)} worker(s) x {slots[0].threads} thread(s) on "
             f"{', '.join(dict.fromkeys(s.device for s in slots))}",
             *([f"costs also from: {'; '.join(sources)}"] if sources else []),
             "", f"{'kind':<10} {'jobs':>7} {'done':>7} {'claimed':>8} {'to run':>7}   estimated compute left"]
    total_known = total_scaled = 0.0
    total_unknown = total_scaled_jobs = 0
    for kind in dict.fromkeys(j.kind for j in graph.jobs):
        keys = [j.key for j in graph.jobs if j.kind == kind]
        done = sum(k in status.done for k in keys)
        claimed = sum(k in status.claimed for k in keys)
        todo = sum(k in status.todo for k in keys)
        e = est.get(kind, Estimate())
        total_known += e.sec + e.scaled_sec
        total_scaled += e.scaled_sec
        total_scaled_jobs += e.scaled
        total_unknown += e.unknown
        parts = [_duration(e.sec + e.scaled_sec)] if e.known or e.scaled else []
        if e.scaled:
            parts.append(f"{e.scaled} of them scaled from related records")
        if e.unknown:
            parts.append(f"+{e.unknown} job(s) with no record yet" if parts else
                         f"unknown ({e.unknown} job(s) with no record yet)")
        what = "nothing" if not todo else parts[0] + (f" ({'; '.join(parts[1:])})" if len(parts) > 1 else "")
        lines.append(f"{kind:<10} {len(keys):>7} {done:>7} {claimed:>8} {todo:>7}   {what}")
    wall = total_known / max(1, len(slots))
    lines.append("")
    if outside:
        lines.append(_outside_text(graph, outside))
    if pending:
        lines.append(_pending_text(graph, pending))
    if total_known:
        lines.append(f"estimated: {_duration(total_known)} of compute left, about {_duration(wall)} of wall time "
                     f"on {len(slots)} worker(s)" + (f"; {total_unknown} job(s) have no recorded cost yet (no job "
                                                     f"of the same kind, dataset, method and model has run in this "
                                                     f"folder{' or those of --costs-from' if sources else ''})"
                                                     if total_unknown else ""))
        if total_scaled_jobs:
            lines.append(f"  of which {_duration(total_scaled)} for {total_scaled_jobs} job(s) is scaled from "
                         f"related records (the same method or network on the same images at another IPC, "
                         f"budget or protocol, per iteration or per image trained on): a rough figure, low for a "
                         f"distillation scaled from a smaller IPC's")
    elif total_unknown:
        lines.append(f"estimated: unknown: none of the {total_unknown} job(s) to run has a recorded cost in this "
                     f"folder{' or those of --costs-from' if sources else ''} yet (costs are recorded as jobs "
                     f"finish: run once, then plan again, or name a folder of a related run with --costs-from)")
    elif pending or outside:
        lines.append("nothing else to run")
    else:
        lines.append("nothing to run: every job is done")
    return "\n".join(lines)


def slots_for(suite: Suite, device: str, n_units: int, workers: Optional[int]) -> list[Slot]:
    gpus = torch.cuda.device_count() if device.startswith("cuda") and not is_remote(suite.execution.engine) else 0
    return make_slots(suite.execution.engine, device, n_units, cpu_count(), gpus,
                      workers or suite.execution.workers)


# -- the run -------------------------------------------------------------------------------------------------
@dataclass
class RunOutcome:
    """The outcome of a run: the table it wrote and what it computed."""

    suite: Suite
    root: Path
    table: Any
    #: synthetic sets of the suite's cells distilled by this run
    distilled: int
    #: evaluation jobs run by this run
    evaluated: int
    #: the search's counts (:class:`atombench.nas.NASReport`) when the suite has a ``nas:`` section
    nas: Any = None
    #: distillations that failed in this run
    distill_failed: int = 0

    @property
    def failed(self) -> int:
        """Failed evaluation jobs, plus failed NAS jobs and proxies (their reasons are printed as warnings); the
        jobs ``--no-distill`` left pending are not failures."""
        from .summary import status_rows

        return len(status_rows(self.table)[0]) + \
            (self.nas.failed if self.nas is not None else 0)


#: the name this class had before (it is the outcome of a run, not a report)
RunReport = RunOutcome


def plan_suite(path: str | Path, workers: int | None = None, device: str | None = None,
               output: str | None = None, force: bool = False, distill: bool = True,
               only: Optional[list[str]] = None, costs_from: Optional[list[str]] = None) -> str:
    """``atombench plan``: the text describing the suite's job graph (nothing is written); ``distill=False``:
    the plan of ``run --no-distill``; ``only``: of ``run --only``; ``costs_from``: results folders whose
    recorded costs count beside this folder's (a pilot run's, to estimate a suite before its first job)."""
    selection = parse_only(only)
    suite, plan = load_checked(path, device, output, workers)
    sources = tuple(str(f) for f in costs_from or ())
    if suite.output_dir().resolve() in {Path(f).resolve() for f in sources}:
        raise UsageError(f"--costs-from {suite.output_dir()}: that is the suite's own results folder, whose costs "
                         f"count already; name another folder")
    extra, said = [], []
    for f in sources:
        records, line = recorded_elsewhere(f, device)
        extra += records
        said.append(line)
    store = ResultsStore(suite.output_dir())
    graph = build_graph(plan, store)
    status = graph_status(graph, store, force)
    if suite.reuse_sets and not force:  # what run would copy counts as done
        taken = reuse_sets(graph, store, suite.reuse_sets, lambda *a: None, dry=True) & status.todo
        status.todo -= taken
        status.done |= taken
    chosen = only_selection(graph, selection)
    outside = frozenset() if chosen is None else frozenset((status.todo | status.claimed) - chosen)
    status.todo -= outside
    status.claimed -= outside
    pending = frozenset() if distill else frozenset(_not_distilled(graph, store, status.todo))
    status.todo -= pending
    slots = slots_for(suite, plan.device, len(graph.units(status.todo)), workers)
    return plan_text(graph, store, status, slots, suite.execution.engine.name, pending, outside, extra,
                     tuple(said))


def run_suite(path: str | Path, force: bool = False, workers: int | None = None, device: str | None = None,
              output: str | None = None, progress: bool = True, echo=print, distill: bool = True,
              only: Optional[list[str]] = None) -> RunOutcome:
    """Run a suite (``atombench run``). ``distill=False`` (``--no-distill``) evaluates what is already distilled,
    final sets and snapshots alike, and distils nothing: the evaluations of sets not yet distilled stay pending
    (``status`` ``pending`` in results.csv), e.g. to draw the budget curve of a run that is still going on or was
    cut off, or to evaluate on one machine what another distilled into the same folder. ``only``
    (``--only COLUMN=V1[,V2]``, repeatable) runs a part of the grid (:func:`only_selection`), e.g. one IPC and seed of
    a suite too long for one sitting; what it leaves is ``pending`` in results.csv, and a later run of the same
    suite into the same folder, with another selection or none, reuses everything done."""
    tune_malloc()
    selection = parse_only(only)
    suite, plan = load_checked(path, device, output, workers)
    store = ResultsStore(suite.output_dir())
    try:
        return _run(path, suite, plan, store, force, workers, progress, echo, distill, selection)
    except OSError as exc:  # disk full, permissions changed mid-run, ...: one line, finished work is kept
        if exc.filename is None and (isinstance(exc, (TimeoutError, ConnectionError))
                                     or "connect" in str(exc).lower()):  # the engine's network (Dask), not a disk
            raise UsageError(f"could not reach the engine's workers ({str(exc).splitlines()[0]}); check "
                             f"execution.engine's address (a running scheduler) or leave it out to start a local "
                             f"one, then run the same command again: finished work is kept") from exc
        where = exc.filename or store.root
        raise AtombenchError(f"could not write {where} ({exc.strerror or exc}); free disk space or fix the "
                             f"folder's permissions, then run the same command again: finished work is kept") from exc


def reuse_sets(graph: "Graph", store: ResultsStore, folders: list[str], echo, dry: bool = False) -> set[str]:
    """Copy into ``store`` every synthetic set (final and snapshots) of ``graph`` that it lacks and one of the
    results ``folders`` holds intact, by key (``reuse_sets:`` in a suite). Returns the distillations that need no
    work any more (every set they write is now in ``store``); ``dry``: copies nothing, returns what would be."""
    import shutil

    from .runtime import atomic_write

    others = [ResultsStore(Path(f).expanduser()) for f in folders]
    for f, other in zip(folders, others):
        if not other.synsets_dir.is_dir():
            echo(f"warning: reuse_sets: {f} holds no synthetic sets (no {other.synsets_dir}); nothing taken from it")
    copied: dict[str, int] = {}
    complete = set()
    for job in graph.distill:
        have = 0
        keys = (job.key, *(snapshot_key(job.key, it) for it in job.snapshots))
        for key in keys:
            if store.valid_synset(key):
                have += 1
                continue
            for f, other in zip(folders, others):
                if other.synsets_dir.is_dir() and other.valid_synset(key):
                    if not dry:
                        for src, dst in ((other.synset_path(key), store.synset_path(key)),  # tensors, then meta
                                         (other.synset_meta_path(key), store.synset_meta_path(key))):
                            with open(src, "rb") as fin, atomic_write(dst) as fout:
                                shutil.copyfileobj(fin, fout)
                    copied[f] = copied.get(f, 0) + 1
                    have += 1
                    break
        if have == len(keys):
            complete.add(job.key)
    for f, n in copied.items():
        echo(f"reuse_sets: {n} synthetic set(s) {'to take' if dry else 'taken'} from {f}")
    return complete


def _not_distilled(graph: "Graph", store: ResultsStore, todo: set[str]) -> set[str]:
    """With ``--no-distill``: the distillations left to run, and every job to run that needs what they write
    (an evaluation whose set or snapshot is not in the folder; NAS jobs on missing proxies)."""
    out = {j.key for j in graph.distill if j.key in todo}
    out |= {j.key for j in graph.evaluate if j.key in todo and not store.valid_synset(j.synset_key)}
    out |= {j.key for j in graph.nas if j.key in todo and set(j.deps) & out}
    return out


def _pending_text(graph: Graph, pending) -> str:
    """What ``--no-distill`` leaves for later, as the run's first line and the plan say it."""
    left = [j for j in graph.jobs if j.key in pending]
    return (f"--no-distill: {sum(j.kind == 'distill' for j in left)} distillation(s) and "
            f"{sum(j.kind != 'distill' for j in left)} job(s) on their sets left pending")


def parse_only(items: Optional[list[str]]) -> list[tuple[str, frozenset[str]]]:
    """``--only COLUMN=V1[,V2]`` (repeatable) as ``(column, values)`` pairs, the values as
    :func:`~atombench.grid.value_text` compares them."""
    out = []
    for item in items or []:
        col, sep, vals = str(item).partition("=")
        values = frozenset(value_text(v) for v in vals.split(",") if v.strip())
        if not sep or not col.strip() or not values:
            raise UsageError(f"--only {item}: give COLUMN=V1[,V2], e.g. --only ipc=1 --only distiller=dm,atom")
        out.append((col.strip(), values))
    return out


def _natural(text: str) -> tuple:
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def only_selection(graph: Graph, only: list[tuple[str, frozenset[str]]]) -> Optional[set[str]]:
    """The jobs ``--only`` chooses (None without a selection): a job runs if one of its results rows (a distillation:
    its set's cell) has, in every column the selection names, one of the values named, or if a job that runs needs
    what it writes (an evaluation's set, a soft-label teacher). So ``--only model=alexnet`` distils every set
    AlexNet is trained on, and ``--only iteration=500`` the distillations whose snapshots at 500 are evaluated,
    not the coresets (they have no iteration). An architecture search (``nas:``) is one whole: its jobs and proxy
    sets are never chosen by a selection (a run without ``--only`` runs it). A column no job has, a value none has,
    or filters that no job meets together, is a :class:`UsageError` naming what there is."""
    if not only:
        return None
    nas = {j.key for j in graph.nas} | {j.key for j in graph.distill if getattr(j, "purpose", "suite") == "nas"}
    rows: dict[str, list[dict]] = {}
    for key, ident in graph.rows:
        if key not in nas:
            rows.setdefault(key, []).append(ident)
    for j in graph.jobs:
        if j.key not in nas:
            rows.setdefault(j.key, [dict(j.row, ipc=getattr(j, "ipc", None) or j.row.get("ipc"))])
    for col, values in only:
        seen = {value_text(r.get(col)) for rs in rows.values() for r in rs} - {None}
        if not seen:
            cols = sorted({c for rs in rows.values() for r in rs for c, v in r.items() if value_text(v) is not None})
            raise UsageError(f"--only {col}=...: no job of this suite has a column '{col}'; columns: "
                             f"{', '.join(cols)}")
        unknown = sorted(values - seen, key=_natural)
        if unknown:
            raise UsageError(f"--only {col}={','.join(sorted(values, key=_natural))}: no job of this suite has "
                             f"{col} {', '.join(unknown)}; {col} values: {', '.join(sorted(seen, key=_natural))}")

    def match(row: dict) -> bool:
        return all(value_text(row.get(col)) in values for col, values in only)

    chosen = {key for key, rs in rows.items() if any(match(r) for r in rs)}
    if not chosen:
        said = " ".join(f"--only {col}={','.join(sorted(values, key=_natural))}" for col, values in only)
        raise UsageError(f"{said}: no job of this suite meets all of these together (every --only must hold; "
                         f"several values of one column go in one: --only COLUMN=V1,V2)")
    by_key = {j.key: j for j in graph.jobs}
    stack = list(chosen)
    while stack:  # what the chosen jobs need runs too
        job = by_key.get(stack.pop())
        for dep in (job.deps if job is not None else ()):
            if dep in by_key and dep not in chosen:
                chosen.add(dep)
                stack.append(dep)
    return chosen


def _outside_text(graph: Graph, outside) -> str:
    left = [j for j in graph.jobs if j.key in outside]
    return (f"--only: {sum(j.kind == 'distill' for j in left)} distillation(s) and "
            f"{sum(j.kind != 'distill' for j in left)} other job(s) outside the selection left for another run")


def _run(path, suite: Suite, plan: Plan, store: ResultsStore, force: bool, workers: int | None, progress: bool,
         echo, distill: bool = True, only: Optional[list] = None) -> RunOutcome:
    backend = suite.execution.engine
    inline = backend.name == "sequential" or (backend.name == "loky" and (workers or suite.execution.workers) == 1)
    graph = build_graph(plan, store, progress=progress and inline)
    chosen = only_selection(graph, only or [])  # a selection that names nothing of the suite: refused before any write
    _open_folder(path, suite, store)
    if suite.reuse_sets and not force:
        reuse_sets(graph, store, suite.reuse_sets, echo)
    status = graph_status(graph, store, force, echo)
    outside = set() if chosen is None else (status.todo | status.claimed) - chosen
    status.todo -= outside
    status.claimed -= outside
    pending = set() if distill else _not_distilled(graph, store, status.todo)
    status.todo -= pending
    units = graph.units(status.todo)
    slots = slots_for(suite, plan.device, len(units), workers)
    if plan.nas is not None:
        from .nas import warn_excluded

        warn_excluded(plan.nas, echo)
    echo(_start_line(graph, status, pending, plan, slots, backend.name, outside))
    outcome = _execute(graph, store, plan, status, units, slots, progress, force, echo)
    failed_sets = _failed_sets(graph, outcome, echo)
    table = store.write_results(_result_rows(graph, store, failed_sets, pending, outside))
    from .summary import summary_markdown

    text = summary_markdown(table)
    nas = None
    if plan.nas is not None:
        from .nas import finish_nas

        nas, section = finish_nas(plan.nas, store, graph.nas_index, outcome, echo, frozenset(outside | pending))
        text += "\n" + section
    store.write_summary(text)
    ran_ok = {k for k, v in outcome.status.items() if v in ("ok", "failed")}
    distilled = sum(1 for j in graph.distill if j.purpose == "suite" and outcome.status.get(j.key) == "ok")
    evaluated = sum(1 for j in graph.evaluate if j.key in ran_ok)
    if nas is not None:
        nas.distilled = sum(1 for j in graph.distill if j.purpose == "nas" and outcome.status.get(j.key) == "ok")
    return RunOutcome(suite, store.root, table, distilled, evaluated, nas, len(failed_sets))


def _open_folder(path, suite: Suite, store: ResultsStore) -> None:
    """Create the results folder, record the suite in it and clean what a killed run left."""
    try:
        store.root.mkdir(parents=True, exist_ok=True)
        store.write_suite(Path(path).read_text(), cfgmod.to_dict(suite))
    except OSError as exc:
        raise UsageError(f"cannot write the results folder {store.root} ({exc.strerror or exc}); choose another "
                         f"with 'output:' in the suite or --output") from exc
    clean_stale_tmp(store.root)


def _start_line(graph: Graph, status: Status, pending, plan: Plan, slots: list[Slot], backend: str,
                outside=frozenset()) -> str:
    """The run's first line: the jobs of each kind, done and to run, and where they run."""
    n = {k: sum(1 for j in graph.jobs if j.kind == k) for k in ("distill", "evaluate", "nas")}
    t = {k: sum(1 for j in graph.jobs if j.kind == k and j.key in status.todo) for k in n}
    d = {k: sum(1 for j in graph.jobs if j.kind == k and j.key not in status.todo and j.key not in pending
                and j.key not in outside) for k in n}  # done, or claimed by another run
    line = (f"{n['distill']} synthetic sets ({t['distill']} to distil), {n['evaluate']} evaluation jobs "
            f"({d['evaluate']} already done, {t['evaluate']} to run)")
    if plan.nas is not None:
        line += f", {n['nas']} NAS jobs ({d['nas']} already done, {t['nas']} to run)"
    if outside:
        line += "; " + _outside_text(graph, outside)
    if pending:
        line += "; " + _pending_text(graph, pending)
    return (line + f" on {backend}, {len(slots)} worker(s) x {slots[0].threads} thread(s)"
            + (f"; {len(status.claimed)} claimed by another run" if status.claimed else ""))


def _execute(graph: Graph, store: ResultsStore, plan: Plan, status: Status, units, slots, progress: bool,
             force: bool, echo):
    """Run ``units`` on the suite's engine; the scheduler's outcome (an empty one when there is nothing to run)."""
    from .scheduler import Outcome

    if not units:
        return Outcome()
    backend = plan.suite.execution.engine
    costs = {j.key: float(getattr(j, "cost", 0.0)) for j in graph.jobs if j.key in status.todo}
    with engine_for(backend, slots, store, plan.device) as engine:
        poll = 1.0 if is_remote(backend) else 0.05  # a cluster's job states are not worth asking for faster
        outcome = Scheduler(store, engine, slots, progress, poll, plan.suite.execution.order).run(
            units, status.done, costs, force)
    ran = sum(v in ("ok", "failed") for v in outcome.status.values())
    elsewhere = sum(v == "elsewhere" for v in outcome.status.values())
    echo(f"{ran} job(s) run here, {elsewhere} computed by another run into this folder")
    return outcome


def _failed_sets(graph: Graph, outcome, echo) -> dict[str, str]:
    """The distillations that failed in this run, each with its reason (and a warning)."""
    failed = {}
    for j in graph.distill:
        if outcome.status.get(j.key) == "failed":
            reason = outcome.errors.get(j.key, "no result")
            failed[j.key] = reason
            where = "NAS proxy " if j.purpose == "nas" else ""
            echo(f"warning: {where}{j.row['distiller']} on {j.row['dataset']} IPC {j.ipc} seed {j.row['seed']} "
                 f"failed: {reason}")
    return failed


def _result_rows(graph: Graph, store: ResultsStore, failed_sets: dict[str, str], pending,
                 outside=frozenset()) -> list[dict]:
    """The rows of ``results.csv``: each cell's stored result (a job two protocols share is one stored row, reported
    once per protocol; a snapshot evaluated before its distillation failed stands), else why it has none; each
    checked against the results schema (:func:`atombench.grid.check_row`)."""
    from .grid import check_row

    rows = []
    jobs = {j.key: j for j in [*graph.evaluate, *graph.references]}
    for key, ident in graph.rows:
        j = jobs[key]
        stored = store.read_job(key)
        if stored:
            row = dict({k: v for k, v in stored.items() if k != REPORTED_AS}, **ident)
        elif (getattr(j, "producer", "") or getattr(j, "synset_key", None)) in failed_sets:
            row = dict(ident, job_key=key, status="failed",
                       error=f"distillation failed: {failed_sets[j.producer or j.synset_key]}")
        elif key in pending:
            row = dict(ident, job_key=key, status="pending",
                       error="not run: its synthetic set is not distilled yet (run without --no-distill)")
        elif key in outside:
            row = dict(ident, job_key=key, status="pending",
                       error="not run: outside this run's --only selection (run again without it, or widen it)")
        else:
            row = dict(ident, job_key=key, status="failed", error="no result: the job did not finish; re-run the suite")
        rows.append(check_row(row))
    return rows
