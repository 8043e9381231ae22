"""Engines that run evaluation work units: joblib (loky, Dask, Ray) and submitit (Slurm, local, debug).

A *unit* is a list of :class:`~atombench.runner.EvalJob` that run together (one job, or the seeds of one
ensemble); :func:`~atombench.runner.run_eval_group` runs it, writes each job's result file itself and never
raises, so every engine only has to call it. Whatever the engine, results land in the results folder the same
way, and a unit that never ran (a lost worker, a cancelled Slurm task) simply has no result file: the runner
marks it failed and the next run computes it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Iterator

from .errors import UsageError
from .suite import BackendSpec

Unit = list  # list[EvalJob]


def _need(module: str, backend: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise UsageError(f"backend '{backend}' needs the package '{module.split('.')[0]}' ({exc}); install it "
                         f"with: pip install 'atombench[cluster]'") from exc


def check_available(spec: BackendSpec) -> None:
    """Fail before any work when the engine's package is missing."""
    need = {"dask": "distributed", "ray": "ray.util.joblib", "slurm": "submitit", "submitit": "submitit"}
    if spec.name in need:
        _need(need[spec.name], spec.name)


def run_units(units: list[Unit], spec: BackendSpec, workers: int, threads: int, root: Path,
              on_done: Callable[[], None] = lambda: None) -> None:
    """Run every unit on the engine ``spec`` names; ``on_done`` is called once per finished unit."""
    from .runner import run_eval_group

    if spec.name == "sequential" or (spec.name == "loky" and workers == 1):
        for unit in units:
            run_eval_group(unit)
            on_done()
        return
    if spec.name in ("slurm", "submitit"):
        _run_submitit(units, spec, threads, root, on_done)
        return
    from joblib import Parallel, delayed, parallel_config

    # Ray's joblib backend returns results only as a list (no generators)
    return_as = "list" if spec.name == "ray" else "generator_unordered"
    with _joblib_engine(spec, workers) as backend:
        with parallel_config(backend=backend, n_jobs=workers):
            for _ in Parallel(return_as=return_as)(delayed(run_eval_group)(u) for u in units):
                on_done()


@contextlib.contextmanager
def _joblib_engine(spec: BackendSpec, workers: int) -> Iterator[str]:
    if spec.name == "loky":
        yield "loky"
    elif spec.name == "dask":
        distributed = _need("distributed", "dask")
        if spec.address:
            client = distributed.Client(spec.address)
            cluster = None
        else:
            cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                               dashboard_address=None)
            client = distributed.Client(cluster)
        try:
            yield "dask"
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    elif spec.name == "ray":
        _need("ray.util.joblib", "ray").register_ray()
        import ray

        started = not ray.is_initialized()
        if started:
            if spec.address:
                ray.init(address=spec.address, log_to_driver=False)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        try:
            yield "ray"
        finally:
            if started:
                ray.shutdown()
    else:  # pragma: no cover - BackendSpec validates the name
        raise UsageError(f"unknown backend '{spec.name}'")


def _run_submitit(units: list[Unit], spec: BackendSpec, threads: int, root: Path,
                  on_done: Callable[[], None]) -> None:
    submitit = _need("submitit", spec.name)
    from .runner import run_eval_group

    folder = Path(spec.folder) if spec.folder else root / "submitit"
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster=spec.cluster_kind)
    params: dict = {"timeout_min": spec.timeout_min, "cpus_per_task": spec.cpus_per_task or threads,
                    "name": f"atombench-{root.name}"}
    if spec.gpus_per_node:
        params["gpus_per_node"] = spec.gpus_per_node
    if spec.mem_gb is not None:
        params["mem_gb"] = spec.mem_gb
    if spec.cluster_kind == "slurm":
        if spec.partition:
            params["slurm_partition"] = spec.partition
        if spec.array_parallelism:
            params["slurm_array_parallelism"] = spec.array_parallelism
        if spec.slurm_options:
            params["slurm_additional_parameters"] = dict(spec.slurm_options)
    executor.update_parameters(**params)
    jobs = executor.map_array(run_eval_group, units)
    for job in jobs:
        try:
            job.result()
        except Exception:  # noqa: BLE001 - a lost task leaves no result file; the runner reports it
            pass
        on_done()
