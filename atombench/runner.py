"""``atombench run``: validate a suite, distil each synthetic set once, evaluate every model on it, tabulate.

1. **Validate** everything that can be checked before work starts: the suite (:mod:`atombench.suite`), the
   datasets (loaded), each IPC against each distiller and dataset, and each model against each dataset's image
   size. Any problem stops the run with exit code 2 before anything is written.
2. **Distil** each (dataset, distiller, IPC, seed) once; the synthetic set is stored under a key hashing the
   dataset fingerprint, the distiller's resolved config, the IPC and the seed, and reused when present.
3. **Evaluate**: each (synthetic set, model, evaluation index) is an independent job keyed by the synthetic
   set's key, the model spec, the training config and the seed; jobs run through joblib (``loky`` workers by
   default) and each writes its own result file as it finishes, so a killed run loses only jobs in flight.
4. **Tabulate** this suite's jobs into ``results.csv`` and ``summary.md``.
5. **Search** architectures on the proxies when the suite has a ``nas:`` section (:mod:`atombench.nas`): its
   jobs go through the same store and engines, and it adds ``nas.csv``, ``nas_summary.csv`` and a section of
   ``summary.md``.
"""

from __future__ import annotations

import dataclasses
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import config as cfgmod
from . import registry
from .augment import DSA
from .data.base import RealData
from .distillers.base import DistillContext, Distiller, SyntheticSet
from .errors import AtombenchError, ConfigError, PluginError, Problem, UsageError
from .runtime import (PeakMemory, atomic_write, clean_stale_tmp, cpu_count, derive_seed, resolve_device,
                      stable_hash, timer, versions, write_json)
from .store import ResultsStore
from .suite import Suite, load_suite
from .train import TrainConfig, ensemble_exact, evaluate, train_ensemble, train_model

# -- plug-in helpers -----------------------------------------------------------------------------------------
_DATA_CACHE: dict[str, RealData] = {}


def load_dataset(name: str, options: dict, zca: bool = False, zca_eps: float = 0.1) -> RealData:
    """The dataset ``name`` with ``options`` (ZCA-whitened if asked); cached per process (workers load each
    dataset once)."""
    key = stable_hash([name, options, zca, zca_eps])
    if key not in _DATA_CACHE:
        plugin = registry.datasets.get(name)
        data = plugin.load(cfgmod.parse(plugin.Config, options, f"dataset '{name}' options"))
        if zca:
            from .data.zca import ZCA

            whiten = ZCA.fit(data.train_x, zca_eps)
            data = dataclasses.replace(data, train_x=whiten(data.train_x), test_x=whiten(data.test_x),
                                       options={**data.options, "zca": True, "zca_eps": zca_eps}, zca=whiten)
        _DATA_CACHE[key] = data
    return _DATA_CACHE[key]


def dataset_args(spec) -> tuple:
    return (spec.name, spec.options, spec.zca, spec.zca_eps)


def make_distiller(name: str, config: dict) -> Distiller:
    cls = registry.distillers.get(name)
    cfg = cfgmod.parse(cls.Config, config, f"distiller '{name}' config")
    try:
        distiller = cls(cfg)
    except AtombenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - a plug-in bug: one line naming the plug-in
        raise PluginError(f"distiller '{name}' could not be created ({type(exc).__name__}: {exc}); this is a bug "
                          f"in the plug-in ({cls.__module__}): report it to its authors (--debug shows the "
                          f"traceback)") from exc
    distiller.registered_name = name
    return distiller


def build_model(name: str, options: dict, data: RealData, seed: int):
    family = registry.models.get(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return family.build(family.parse(options), data.channels, data.num_classes, data.image_size)


# -- jobs ----------------------------------------------------------------------------------------------------
@dataclass
class EvalJob:
    key: str
    row: dict  # identifying columns of the tidy table
    synset_path: str
    dataset: tuple
    model: tuple[str, dict]
    train: dict
    seed: int
    device: str
    threads: int
    store_root: str
    #: train together with the other jobs of its group (same set, model and config) when exact
    ensemble: bool = False


def _base_row(job: EvalJob) -> dict:
    import json

    return dict(job.row, job_key=job.key, device=job.device, threads=job.threads, eval_seed=job.seed,
                compile=bool(job.train.get("compile")), amp=job.train.get("amp", "none"),
                model_options=json.dumps(job.model[1], sort_keys=True),
                train_config=json.dumps(job.train, sort_keys=True),
                **{f"{k}_version": v for k, v in versions().items()})


def _failed(row: dict, exc: BaseException) -> dict:
    row.update(status="failed", error=f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else
               type(exc).__name__, accuracy=None)
    row["traceback"] = traceback.format_exc(limit=8)
    return row


def _setup(job: EvalJob):
    torch.set_num_threads(job.threads)
    data = load_dataset(*job.dataset)
    synset = SyntheticSet.load(Path(job.synset_path))
    cfg = TrainConfig(**job.train)
    augment = DSA(cfg.dsa_strategy, digits=bool(data.tags.get("digits"))) if cfg.augment == "dsa" else None
    return data, synset, cfg, augment


def _scores_row(row: dict, net, data: RealData, synset: SyntheticSet, cfg: TrainConfig, device, losses,
                train_s: float, peak_mb: float) -> dict:
    with timer() as t_eval:
        scores = evaluate(net, data.test_x, data.test_y, cfg.test_batch_size, device, cfg.amp)
    row.update(scores, status="ok", error="", final_train_loss=losses[-1] if losses else None,
               train_time_s=train_s, eval_time_s=t_eval["seconds"], peak_mem_mb=peak_mb,
               distill_time_s=synset.meta.get("wall_time_s"), distill_peak_mem_mb=synset.meta.get("peak_mem_mb"),
               num_images=synset.meta.get("num_images"))
    return row


def run_eval_job(job: EvalJob) -> dict:
    """Train one model on one synthetic set and test it; writes and returns its result row (never raises)."""
    row = dict(_base_row(job), ensemble_size=1)
    device = torch.device(job.device)
    try:
        data, synset, cfg, augment = _setup(job)
        net = build_model(*job.model, data, job.seed).to(device)
        gen = torch.Generator().manual_seed(job.seed)
        with PeakMemory(device) as mem, timer() as t_train:
            losses = train_model(net, synset.images.to(device), synset.labels.to(device), cfg, gen, augment)
        _scores_row(row, net, data, synset, cfg, device, losses, t_train["seconds"], mem.peak_mb)
    except Exception as exc:  # noqa: BLE001 - a failed job is recorded, the others go on
        _failed(row, exc)
    ResultsStore(Path(job.store_root)).write_job(job.key, row)
    return row


def run_eval_group(jobs: list[EvalJob]) -> list[dict]:
    """Run jobs that differ only in their seed: as one ensemble (:func:`~atombench.train.train_ensemble`) when
    the group asks for it and the architecture allows it exactly, else one by one. Never raises; if the
    ensemble fails as a whole (say, out of memory), each job is retried alone and records its own outcome.
    Jobs of other kinds (:class:`atombench.nas.NASJob`) run themselves."""
    if jobs and not isinstance(jobs[0], EvalJob):
        return [j.run() for j in jobs]
    if len(jobs) < 2 or not jobs[0].ensemble:
        return [run_eval_job(j) for j in jobs]
    head = jobs[0]
    device = torch.device(head.device)
    try:
        data, synset, cfg, augment = _setup(head)
        nets = [build_model(*j.model, data, j.seed).to(device) for j in jobs]
        if not ensemble_exact(nets[0]):
            return [run_eval_job(j) for j in jobs]
        gens = [torch.Generator().manual_seed(j.seed) for j in jobs]
        with PeakMemory(device) as mem, timer() as t_train:
            curves = train_ensemble(nets, synset.images.to(device), synset.labels.to(device), cfg, gens, augment)
    except Exception:  # noqa: BLE001 - fall back to separate runs, which record their own errors
        return [run_eval_job(j) for j in jobs]
    rows = []
    for job, net, losses in zip(jobs, nets, curves):
        row = dict(_base_row(job), ensemble_size=len(jobs))
        try:  # the group's training time is shared equally between its models
            _scores_row(row, net, data, synset, cfg, device, losses, t_train["seconds"] / len(jobs), mem.peak_mb)
        except Exception as exc:  # noqa: BLE001
            _failed(row, exc)
        ResultsStore(Path(job.store_root)).write_job(job.key, row)
        rows.append(row)
    return rows


# -- the run -------------------------------------------------------------------------------------------------
@dataclass
class Plan:
    suite: Suite
    device: torch.device
    data: dict[str, RealData]
    distillers: dict[str, Distiller]
    #: the NAS phase's checked plan (:class:`atombench.nas.NASPlan`) when the suite has a ``nas:`` section
    nas: Any = None


def preflight(suite: Suite, device: torch.device) -> Plan:
    """Load datasets and check every data-dependent constraint; raises ConfigError listing each problem."""
    problems: list[Problem] = []
    data: dict[str, RealData] = {}
    for i, ds in enumerate(suite.datasets):
        try:
            data[ds.key] = load_dataset(*dataset_args(ds))
        except AtombenchError as err:
            problems.append(Problem(f"datasets[{i}]", str(err)))
    distillers = {}
    for i, spec in enumerate(suite.distillers):
        distillers[spec.key] = d = make_distiller(spec.name, spec.config)
        for dname, real in data.items():
            for j, ipc in enumerate(suite.ipc):
                msg = d.check_ipc(real, ipc)
                if msg:
                    problems.append(Problem(f"ipc[{j}]", f"{spec.key} on {dname}: {msg}"))
            msg = _check_distill_net(d, real)
            if msg:
                problems.append(Problem(f"distillers[{i}].config", f"{spec.key} on {dname}: {msg}"))
    for i, m in enumerate(suite.models):
        for dname, real in data.items():
            try:
                net = build_model(m.name, m.options, real, 0).eval()
                with torch.no_grad():
                    net(real.train_x[:2])
            except AtombenchError as err:
                problems.append(Problem(f"models[{i}]", str(err)))
            except Exception as err:  # noqa: BLE001 - report any build failure as the model's problem
                problems.append(Problem(f"models[{i}]", f"{m.name} cannot take {dname} images "
                                        f"{tuple(real.train_x.shape[1:])}: {type(err).__name__}: {err}"))
    nas = None
    if suite.nas is not None and len(data) == len(suite.datasets):
        from .nas import plan_nas

        nas = plan_nas(suite, device, data, distillers, problems)
    if problems:
        raise ConfigError(problems)
    return Plan(suite, device, data, distillers, nas)


def _check_distill_net(d: Distiller, real: RealData) -> str | None:
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
    except AtombenchError as err:
        return str(err)
    except Exception as err:  # noqa: BLE001 - any build failure is the distiller's network's problem
        return f"net '{name}' cannot take {tuple(real.train_x.shape[1:])} images: {type(err).__name__}: {err}"
    return None


def synset_key(real: RealData, distiller: Distiller, ipc: int, seed: int) -> str:
    return stable_hash(["synset", real.fingerprint, distiller.name, cfgmod.to_dict(distiller.config), ipc, seed])


def _workers(suite: Suite, device: torch.device, n_jobs: int, override: int | None) -> tuple[int, int]:
    cores = cpu_count()
    if device.type == "cuda":  # one worker per GPU (jobs are spread over the GPUs, see gpu_assignment)
        workers = 1 if device.index is not None else max(1, torch.cuda.device_count())
    else:
        workers = override or suite.execution.workers or min(cores, max(n_jobs, 1))
    threads = max(1, cores // workers)
    return workers, threads


def gpu_assignment(device: torch.device, n_units: int, count: int | None = None) -> list[str]:
    """The device of each work unit: round-robin over the GPUs when the suite says ``cuda`` and the machine has
    several (each of the one-per-GPU workers then mostly gets units of its own GPU), else ``device`` itself."""
    count = torch.cuda.device_count() if count is None and device.type == "cuda" else (count or 0)
    if device.type != "cuda" or device.index is not None or count <= 1:
        return [str(device)] * n_units
    return [f"cuda:{i % count}" for i in range(n_units)]


def run_suite(path: str | Path, force: bool = False, workers: int | None = None, device: str | None = None,
              output: str | None = None, progress: bool = True, echo=print) -> "RunReport":
    suite = load_suite(path)
    if device:
        suite = dataclasses.replace(suite, device=device)
    if output:
        suite = dataclasses.replace(suite, output=output)
    dev = resolve_device(suite.device)
    plan = preflight(suite, dev)
    store = ResultsStore(suite.output_dir())
    try:
        return _run(path, suite, dev, plan, store, force, workers, progress, echo)
    except OSError as exc:  # disk full, permissions changed mid-run, ...: one line, finished work is kept
        where = exc.filename or store.root
        raise AtombenchError(f"could not write {where} ({exc.strerror or exc}); free disk space or fix the "
                             f"folder's permissions, then run the same command again: finished work is kept") from exc


def _run(path, suite: Suite, dev: torch.device, plan: Plan, store: ResultsStore, force: bool,
         workers: int | None, progress: bool, echo) -> "RunReport":
    try:
        store.root.mkdir(parents=True, exist_ok=True)
        write_json(store.root / "suite.json", cfgmod.to_dict(suite))
    except OSError as exc:
        raise UsageError(f"cannot write the results folder {store.root} ({exc.strerror or exc}); choose another "
                         f"with 'output:' in the suite or --output") from exc
    clean_stale_tmp(store.root)
    suite_text = Path(path).read_text()
    with atomic_write(store.root / "suite.yaml", "w") as fh:
        fh.write(suite_text)

    # -- distillation: each synthetic set once ---------------------------------------------------------------
    from tqdm.auto import tqdm

    synsets: list[tuple[dict, str]] = []
    failed_cells: dict[str, str] = {}  # synset key -> why its distillation failed
    # seeds outside IPCs: what a distiller computes once per seed (herding's features) serves every IPC
    cells = [(ds, spec, ipc, seed) for ds in suite.datasets for spec in suite.distillers
             for seed in suite.seed_list for ipc in suite.ipc]
    torch.set_num_threads(cpu_count())
    computed = 0
    for ds, spec, ipc, seed in tqdm(cells, desc="distill", disable=not progress, dynamic_ncols=True):
        real, distiller = plan.data[ds.key], plan.distillers[spec.key]
        key = synset_key(real, distiller, ipc, seed)
        path_ = store.synset_path(key)
        ident = {"dataset": ds.key, "distiller": spec.key, "method": spec.name, "ipc": ipc, "seed": seed,
                 "synset_key": key}
        if force or not _valid_synset(path_, echo):
            ctx = DistillContext(dev, seed=derive_seed("distill", seed), show_progress=progress,
                                 label=f"{spec.key} {ds.name} ipc{ipc} seed{seed}",
                                 cache_dir=store.root / "cache")
            try:
                synset = distiller.run(real, ipc, ctx)
            except OSError:
                raise
            except Exception as exc:  # noqa: BLE001 - a failed distillation is recorded, the others go on
                reason = str(exc).splitlines()[0] if isinstance(exc, AtombenchError) else \
                    f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                echo(f"warning: {spec.key} on {ds.key} IPC {ipc} seed {seed} failed: {reason}")
                failed_cells[key] = f"distillation failed: {reason}"
                synsets.append((ident, str(path_)))
                continue
            synset.meta.update(label=spec.key, suite_seed=seed)
            synset.save(path_)
            computed += 1
        synsets.append((ident, str(path_)))

    # -- evaluation jobs -------------------------------------------------------------------------------------
    train = {f.name: getattr(suite.eval, f.name) for f in dataclasses.fields(TrainConfig)}
    ensemble = suite.eval.ensemble == "on" or (suite.eval.ensemble == "auto" and dev.type == "cuda")
    jobs: list[EvalJob] = []
    for ident, spath in synsets:
        ds_spec = next(d for d in suite.datasets if d.key == ident["dataset"])
        distiller = plan.distillers[ident["distiller"]]
        augment = suite.eval.augment
        if augment == "auto":
            augment = "dsa" if distiller.eval_with_dsa else "none"
        train_job = dict(train, augment=augment)
        for m in suite.models:
            for k in range(suite.eval.models_per_set):
                seed = derive_seed("eval", ident["synset_key"], m.name, m.options, k)
                key = job_key(ident["synset_key"], m.name, m.options, train_job, seed)
                row = dict(ident, model=m.key, model_name=m.name, eval_index=k,
                           epochs=suite.eval.epochs, batch_size=suite.eval.batch_size, augment=augment)
                jobs.append(EvalJob(key, row, spath, dataset_args(ds_spec), (m.name, m.options), train_job,
                                    seed, str(dev), 1, str(store.root), ensemble))
    blocked = {j.key for j in jobs if j.row["synset_key"] in failed_cells}
    jobs_ok = [j for j in jobs if j.row["synset_key"] not in failed_cells]
    todo = [j for j in jobs_ok if force or (store.read_job(j.key, echo) or {}).get("status") != "ok"]
    units = group_units(todo) if ensemble else [[j] for j in todo]
    backend = suite.execution.backend
    from .backends import check_available

    check_available(backend)
    n_workers, threads = _workers(suite, dev, len(units), workers)
    for j in todo:
        j.threads = threads
    for unit, gpu in zip(units, gpu_assignment(dev, len(units))):
        for j in unit:
            j.device = gpu
    echo(f"{len(cells)} synthetic sets ({computed} distilled now), {len(jobs)} evaluation jobs "
         f"({len(jobs) - len(todo)} already done, {len(todo)} to run in {len(units)} unit(s) on "
         f"{backend.name}, {n_workers} worker(s) x {threads} thread(s))")
    if units:
        run_units_with_bar(units, backend, n_workers, threads, store.root, "evaluate", progress)
    rows = [dict(j.row, job_key=j.key, status="failed", error=failed_cells[j.row["synset_key"]])
            if j.key in blocked else
            store.read_job(j.key) or dict(j.row, job_key=j.key, status="failed",
                                          error="no result: the job did not finish; re-run the suite")
            for j in jobs]
    df = store.write_table(rows)
    nas = None
    if plan.nas is not None:
        from .nas import run_nas

        nas = run_nas(plan.nas, store, force, workers, progress, echo)
    return RunReport(suite, store.root, df, computed, len(todo), nas)



def run_units_with_bar(units, backend, n_workers: int, threads: int, root, desc: str, progress: bool) -> None:
    """Run job units on ``backend`` with a progress bar; restore this process's torch threads afterwards."""
    from tqdm.auto import tqdm

    from .backends import run_units

    bar = tqdm(total=len(units), desc=desc, disable=not progress, dynamic_ncols=True)
    try:
        run_units(units, backend, n_workers, threads, root, bar.update)
    finally:
        bar.close()
        torch.set_num_threads(cpu_count())


#: training options that do not change what is computed (only how fast): left out of job keys
_KEY_NEUTRAL = {"ensemble": None, "compile": False, "amp": "none"}


def job_key(synset: str, model: str, options: dict, train: dict, seed: int) -> str:
    """The stable key of one evaluation: synthetic set, model spec, training config and seed. Options that only
    change speed (ensemble mode) are left out, and new options at their defaults too, so adding one keeps the
    keys of earlier results."""
    cfg = {k: v for k, v in train.items()
           if k not in _KEY_NEUTRAL or (_KEY_NEUTRAL[k] is not None and v != _KEY_NEUTRAL[k])}
    return stable_hash(["job", synset, model, options, cfg, seed])


def group_units(jobs: list[EvalJob]) -> list[list[EvalJob]]:
    """Jobs that differ only in their seed (same synthetic set, model and training config) form one unit."""
    groups: dict[str, list[EvalJob]] = {}
    for j in jobs:
        groups.setdefault(stable_hash([j.synset_path, j.model, j.train]), []).append(j)
    return list(groups.values())


def _valid_synset(path: Path, echo=print) -> bool:
    """Whether a stored synthetic set is present and intact; a damaged one (truncated, tampered: its checksum
    fails) is reported and recomputed."""
    if not path.exists() and not Path(f"{path}.json").exists():
        return False
    try:
        SyntheticSet.load(path)
        return True
    except (OSError, ValueError, KeyError) as exc:
        echo(f"warning: synthetic set {path.name} is damaged ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
             f"recomputing it")
        return False


@dataclass
class RunReport:
    suite: Suite
    root: Path
    table: Any
    distilled: int
    evaluated: int
    #: the NAS phase's counts (:class:`atombench.nas.NASReport`) when the suite has a ``nas:`` section
    nas: Any = None

    @property
    def failed(self) -> int:
        """Failed evaluation jobs, plus failed NAS jobs and proxies (their reasons are printed as warnings)."""
        return (int((self.table["status"] != "ok").sum()) if len(self.table) else 0) + \
            (self.nas.failed if self.nas is not None else 0)

