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
from .errors import AtombenchError, ConfigError, Problem, UsageError
from .runtime import (PeakMemory, atomic_write, cpu_count, derive_seed, resolve_device, stable_hash, timer,
                      versions, write_json)
from .store import ResultsStore
from .suite import Suite, load_suite
from .train import TrainConfig, evaluate, train_model

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
    distiller = cls(cfgmod.parse(cls.Config, config, f"distiller '{name}' config"))
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


def run_eval_job(job: EvalJob) -> dict:
    """Train one model on one synthetic set and test it; writes and returns its result row (never raises)."""
    torch.set_num_threads(job.threads)
    device = torch.device(job.device)
    row = dict(job.row, job_key=job.key, device=job.device, threads=job.threads, eval_seed=job.seed,
               **{f"{k}_version": v for k, v in versions().items()})
    try:
        data = load_dataset(*job.dataset)
        synset = SyntheticSet.load(Path(job.synset_path))
        cfg = TrainConfig(**job.train)
        net = build_model(*job.model, data, job.seed).to(device)
        gen = torch.Generator().manual_seed(job.seed)
        augment = DSA(cfg.dsa_strategy, digits=bool(data.tags.get("digits"))) if cfg.augment == "dsa" else None
        with PeakMemory(device) as mem, timer() as t_train:
            losses = train_model(net, synset.images.to(device), synset.labels.to(device), cfg, gen, augment)
        with timer() as t_eval:
            scores = evaluate(net, data.test_x, data.test_y, cfg.test_batch_size, device)
        row.update(scores, status="ok", error="", final_train_loss=losses[-1] if losses else None,
                   train_time_s=t_train["seconds"], eval_time_s=t_eval["seconds"], peak_mem_mb=mem.peak_mb,
                   distill_time_s=synset.meta.get("wall_time_s"), distill_peak_mem_mb=synset.meta.get("peak_mem_mb"),
                   num_images=synset.meta.get("num_images"))
    except Exception as exc:  # noqa: BLE001 - a failed job is recorded, the others go on
        row.update(status="failed", error=f"{type(exc).__name__}: {exc}".splitlines()[0], accuracy=None)
        row["traceback"] = traceback.format_exc(limit=8)
    write_json(ResultsStore(Path(job.store_root)).job_path(job.key), row)
    return row


# -- the run -------------------------------------------------------------------------------------------------
@dataclass
class Plan:
    suite: Suite
    device: torch.device
    data: dict[str, RealData]
    distillers: dict[str, Distiller]


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
    if problems:
        raise ConfigError(problems)
    return Plan(suite, device, data, distillers)


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
    if device.type == "cuda":
        workers = 1
    else:
        workers = override or suite.execution.workers or min(cores, max(n_jobs, 1))
    threads = max(1, cores // workers)
    return workers, threads


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
        store.root.mkdir(parents=True, exist_ok=True)
        write_json(store.root / "suite.json", cfgmod.to_dict(suite))
    except OSError as exc:
        raise UsageError(f"cannot write the results folder {store.root} ({exc.strerror or exc}); choose another "
                         f"with 'output:' in the suite or --output") from exc
    suite_text = Path(path).read_text()
    with atomic_write(store.root / "suite.yaml", "w") as fh:
        fh.write(suite_text)

    # -- distillation: each synthetic set once ---------------------------------------------------------------
    from tqdm.auto import tqdm

    synsets: list[tuple[dict, str]] = []
    # seeds outside IPCs: what a distiller computes once per seed (herding's features) serves every IPC
    cells = [(ds, spec, ipc, seed) for ds in suite.datasets for spec in suite.distillers
             for seed in suite.seed_list for ipc in suite.ipc]
    torch.set_num_threads(cpu_count())
    computed = 0
    for ds, spec, ipc, seed in tqdm(cells, desc="distill", disable=not progress, dynamic_ncols=True):
        real, distiller = plan.data[ds.key], plan.distillers[spec.key]
        key = synset_key(real, distiller, ipc, seed)
        path_ = store.synset_path(key)
        if force or not _valid_synset(path_):
            ctx = DistillContext(dev, seed=derive_seed("distill", seed), show_progress=progress,
                                 label=f"{spec.key} {ds.name} ipc{ipc} seed{seed}",
                                 cache_dir=store.root / "cache")
            synset = distiller.run(real, ipc, ctx)
            synset.meta.update(label=spec.key, suite_seed=seed)
            synset.save(path_)
            computed += 1
        ident = {"dataset": ds.key, "distiller": spec.key, "method": spec.name, "ipc": ipc, "seed": seed,
                 "synset_key": key}
        synsets.append((ident, str(path_)))

    # -- evaluation jobs -------------------------------------------------------------------------------------
    train = {f.name: getattr(suite.eval, f.name) for f in dataclasses.fields(TrainConfig)}
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
                key = stable_hash(["job", ident["synset_key"], m.name, m.options, train_job, seed])
                row = dict(ident, model=m.key, model_name=m.name, eval_index=k,
                           epochs=suite.eval.epochs, batch_size=suite.eval.batch_size, augment=augment)
                jobs.append(EvalJob(key, row, spath, dataset_args(ds_spec), (m.name, m.options), train_job,
                                    seed, str(dev), 1, str(store.root)))
    todo = [j for j in jobs if force or (store.read_job(j.key) or {}).get("status") != "ok"]
    n_workers, threads = _workers(suite, dev, len(todo), workers)
    for j in todo:
        j.threads = threads
    echo(f"{len(cells)} synthetic sets ({computed} distilled now), {len(jobs)} evaluation jobs "
         f"({len(jobs) - len(todo)} already done, {len(todo)} to run on {n_workers} worker(s) x {threads} thread(s))")
    if todo:
        _run_jobs(todo, suite.execution.backend if n_workers > 1 else "sequential", n_workers, progress)
    rows = [store.read_job(j.key) or dict(j.row, job_key=j.key, status="failed", error="result missing")
            for j in jobs]
    df = store.write_table(rows)
    return RunReport(suite, store.root, df, computed, len(todo))


def _valid_synset(path: Path) -> bool:
    try:
        SyntheticSet.load(path)
        return True
    except (OSError, ValueError, KeyError):
        return False


def _run_jobs(jobs: list[EvalJob], backend: str, n_workers: int, progress: bool) -> None:
    from tqdm.auto import tqdm

    bar = tqdm(total=len(jobs), desc="evaluate", disable=not progress, dynamic_ncols=True)
    if backend == "sequential":
        for job in jobs:
            run_eval_job(job)
            bar.update()
    else:
        from joblib import Parallel, delayed

        for _ in Parallel(n_jobs=n_workers, backend=backend, return_as="generator_unordered")(
                delayed(run_eval_job)(j) for j in jobs):
            bar.update()
    bar.close()
    torch.set_num_threads(cpu_count())


@dataclass
class RunReport:
    suite: Suite
    root: Path
    table: Any
    distilled: int
    evaluated: int

    @property
    def failed(self) -> int:
        return int((self.table["status"] != "ok").sum()) if len(self.table) else 0

