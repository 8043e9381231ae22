"""Run a graph of jobs on an engine: each unit starts as soon as the jobs it depends on are done.

**Slots.** The scheduler keeps at most one unit in flight per :class:`Slot` (a device and a number of torch
threads), so workers x threads never exceeds the cores, and on a machine with several GPUs each GPU runs one unit
at a time (:func:`make_slots`). Units that unblock others (distillations) start first, then the longest.

**Engines.** The engine is what the suite's ``execution`` names to run the jobs; every engine runs every kind of
job through one function, :func:`atombench.jobs.run_unit`:

* ``sequential``: in this process (inner progress bars show);
* ``loky``: worker processes on this machine (loky's reusable executor, the one joblib uses);
* ``dask``: a Dask cluster (``address``) or a local one started for the run;
* ``ray``: a Ray cluster (``address``) or a local one started for the run;
* ``slurm`` / ``submitit``: Slurm tasks through submitit (each batch of ready units is one job array;
  distillation tasks ask for ``distill_gpus`` GPUs), or submitit's ``local``/``debug`` executors.

The launching process stays the scheduler: it submits a unit when its inputs exist, so an evaluation starts as
soon as its synthetic set does, wherever the distillation ran. A snapshot's evaluation starts as soon as the
snapshot is written (the results folder is looked at every ``SNAPSHOT_POLL_S``), while its distillation goes on,
and still runs when that distillation later fails or is cut off: a budget curve fills in as the run progresses.

**Claims.** Before a unit starts, each of its jobs is claimed in the results folder
(:meth:`atombench.store.ResultsStore.claim`). A job claimed by another live run is not computed again: this run
waits for that run's result (and takes the job over if that run dies).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

from .errors import UsageError
from .jobs import Job, one_line, run_unit
from .store import ResultsStore

#: the order in which ready units start: the ones that unblock others first
#: the teacher / whole-dataset reference goes with the distillations: soft-label evaluations wait for it, and started
#: after the hard-label ones it ran alone while the other workers idled
KIND_ORDER = {"distill": 0, "reference": 0, "nas": 1, "evaluate": 2}
#: ``execution.order``: the kinds' order of each (``results_first``: the evaluations of the sets already made, and
#: the teacher they may wait for, before new distillations)
KIND_ORDERS = {"distill_first": KIND_ORDER, "results_first": {"reference": 0, "evaluate": 1, "nas": 1, "distill": 2}}
#: seconds between refreshes of this run's claims
HEARTBEAT_S = 60.0
#: seconds between two looks for a snapshot that an evaluation waits for (written by a running distillation)
SNAPSHOT_POLL_S = 2.0


# -- slots ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Slot:
    """Room for one unit in flight: the device it runs on and the torch threads it may use."""

    device: str
    threads: int


def _need(module: str, engine: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise UsageError(f"engine '{engine}' needs the package '{module.split('.')[0]}' ({exc}); install it "
                         f"with: pip install 'atombench[cluster]'") from exc


def check_available(spec) -> None:
    """Fail before any work when the engine's package is missing."""
    need = {"dask": "distributed", "ray": "ray", "slurm": "submitit", "submitit": "submitit"}
    if spec.name in need:
        _need(need[spec.name], spec.name)
    if spec.name in ("slurm", "submitit") and spec.cluster_kind == "slurm":
        import shutil

        if shutil.which("sbatch") is None:  # submitit failed later, mid-run, with a traceback
            raise UsageError(f"engine '{spec.name}' submits to Slurm, and this machine has no 'sbatch' on its PATH: "
                             f"run from the cluster's login node, or use execution.engine: loky on one machine "
                             f"(engine: submitit with cluster: local tries the cluster path without Slurm)")


def is_remote(spec) -> bool:
    """Whether the engine's workers may run on other machines (then devices resolve on the worker)."""
    return spec.name in ("slurm", "submitit") or (spec.name in ("dask", "ray") and spec.address is not None)


def make_slots(spec, device: str, n_units: int, cores: int, gpu_count: int = 0,
               workers: Optional[int] = None) -> list[Slot]:
    """The slots of a run.

    * ``sequential``: one slot with every core.
    * a local engine on ``cuda`` (no index) with ``gpu_count`` GPUs: one slot per GPU (``cuda:0``, ``cuda:1``,
      ...), or ``workers`` slots spread round-robin over the GPUs (several units sharing a GPU that each leave
      mostly idle); cores are split between the slots. ``cuda:N``: one slot on that GPU (or ``workers``).
    * a local engine on the CPU: ``workers`` slots (default ``min(cores, units)``) of ``cores // workers``
      threads each, so workers x threads never exceeds the cores.
    * a cluster engine: ``workers`` slots (default: ``array_parallelism``, else one per unit), each on the
      device the suite names, resolved on the worker; threads = ``cpus_per_task`` (default 1).
    """
    if spec.name == "sequential":
        return [Slot(device, max(1, cores))]
    if is_remote(spec):
        n = workers or getattr(spec, "array_parallelism", None) or max(1, n_units)
        return [Slot(device, spec.cpus_per_task or 1) for _ in range(n)]
    if device.startswith("cuda"):
        gpus = [device] if ":" in device or gpu_count <= 1 else [f"cuda:{i}" for i in range(gpu_count)]
        n = workers or len(gpus)
        threads = max(1, cores // n)
        return [Slot(gpus[i % len(gpus)], threads) for i in range(n)]
    n = workers or min(cores, max(n_units, 1))
    return [Slot(device, max(1, cores // n)) for _ in range(n)]


# -- engines -------------------------------------------------------------------------------------------------
class _Done:
    """A finished unit run in this process (the inline engine's handle)."""

    def __init__(self, fn: Callable[[], Any]):
        try:
            self.value, self.error = fn(), None
        except BaseException as exc:  # noqa: BLE001 - handed to the scheduler like a remote failure
            self.value, self.error = None, exc

    def done(self) -> bool:
        return True

    def result(self):
        if self.error is not None:
            raise self.error
        return self.value


class Engine:
    """Submits units and tells which have finished. ``submit_many`` gets every unit ready at one moment (a
    cluster engine submits them as one job array)."""

    #: whether units run in the launching process (inner progress bars only make sense there)
    inline = False

    def submit_many(self, units: list[tuple[list[Job], Slot]]) -> list[Any]:
        return [self.submit(unit, slot) for unit, slot in units]

    def submit(self, unit: list[Job], slot: Slot) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def done(self, handle: Any) -> bool:
        return handle.done()

    def result(self, handle: Any) -> list[dict]:
        return handle.result()

    def close(self) -> None:
        pass


class InlineEngine(Engine):
    inline = True

    def submit(self, unit, slot):
        import torch

        from .runtime import cpu_count

        try:
            return _Done(lambda: run_unit(unit))
        finally:
            torch.set_num_threads(cpu_count())


def _loky_unit(unit: list[Job]) -> list[dict]:
    """``run_unit`` in a loky worker, with loky's leak check off: that check restarts a worker whose memory grew
    by 300 MB since its first task, and a worker that keeps its freed memory on purpose
    (:func:`~atombench.runtime.tune_malloc`) or caches a dataset would be restarted, reloading everything."""
    from joblib.externals.loky import process_executor

    process_executor._MAX_MEMORY_LEAK_SIZE = float("inf")
    return run_unit(unit)


class LokyEngine(Engine):
    def __init__(self, workers: int):
        from joblib.externals.loky import get_reusable_executor

        self.workers = workers
        self.executor = get_reusable_executor(max_workers=workers, timeout=300)

    def submit(self, unit, slot):
        from joblib.externals.loky import get_reusable_executor

        try:
            return self.executor.submit(_loky_unit, unit)
        except RuntimeError:  # a worker died and broke the pool (BrokenProcessPool): start a new one
            self.executor = get_reusable_executor(max_workers=self.workers, timeout=300)
            return self.executor.submit(_loky_unit, unit)


class DaskEngine(Engine):
    def __init__(self, spec, workers: int):
        distributed = _need("distributed", "dask")
        if spec.address:
            self.cluster = None
            self.client = distributed.Client(spec.address)
        else:
            self.cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                    dashboard_address=None)
            self.client = distributed.Client(self.cluster)

    def submit(self, unit, slot):
        return self.client.submit(run_unit, unit, pure=False, key=f"atombench-{unit[0].kind}-{unit[0].key}-"
                                                                  f"{uuid.uuid4().hex[:8]}")

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


class RayEngine(Engine):
    def __init__(self, spec, workers: int, threads: int):
        ray = _need("ray", "ray")
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            if spec.address:
                ray.init(address=spec.address, log_to_driver=False)
            else:
                ray.init(num_cpus=workers * threads, include_dashboard=False, log_to_driver=False)
        self.remote = ray.remote(run_unit)

    def submit(self, unit, slot):
        gpus = 1 if slot.device.startswith("cuda") else 0
        return self.remote.options(num_cpus=slot.threads, num_gpus=gpus, max_retries=0).remote(unit)

    def done(self, handle) -> bool:
        ready, _ = self.ray.wait([handle], timeout=0)
        return bool(ready)

    def result(self, handle):
        return self.ray.get(handle)

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


class SubmititEngine(Engine):
    """Slurm (or submitit's local/debug executors): each batch of ready units is one job array; distillation
    tasks and the others get their own resources."""

    def __init__(self, spec, store: ResultsStore, device: str):
        self.submitit = _need("submitit", spec.name)
        self.spec, self.device = spec, device
        self.folder = (store.root.__class__(spec.folder) if spec.folder else store.submitit_dir) / "%j"
        self.name = f"atombench-{store.root.name}"
        self.executors: dict[str, Any] = {}

    def _executor(self, kind: str, threads: int):
        if kind not in self.executors:
            spec = self.spec
            ex = self.submitit.AutoExecutor(folder=self.folder, cluster=spec.cluster_kind)
            gpus = spec.gpus_per_node
            if kind == "distill" and spec.distill_gpus is not None:
                gpus = spec.distill_gpus
            elif kind == "distill" and self.device.startswith("cuda"):
                gpus = max(gpus, 1)
            params: dict = {"timeout_min": spec.timeout_min, "cpus_per_task": spec.cpus_per_task or threads,
                            "name": f"{self.name}-{kind}"}
            if gpus:
                params["gpus_per_node"] = gpus
            if spec.mem_gb is not None:
                params["mem_gb"] = spec.mem_gb
            if spec.cluster_kind == "slurm":
                if spec.partition:
                    params["slurm_partition"] = spec.partition
                if spec.array_parallelism:
                    params["slurm_array_parallelism"] = spec.array_parallelism
                if spec.slurm_options:
                    params["slurm_additional_parameters"] = dict(spec.slurm_options)
            ex.update_parameters(**params)
            self.executors[kind] = ex
        return self.executors[kind]

    def submit_many(self, units):
        handles: list[Any] = [None] * len(units)
        by_kind: dict[str, list[int]] = {}
        for i, (unit, _) in enumerate(units):
            by_kind.setdefault(unit[0].kind, []).append(i)
        for kind, idx in by_kind.items():
            ex = self._executor(kind, units[idx[0]][1].threads)
            if len(idx) == 1:
                handles[idx[0]] = ex.submit(run_unit, units[idx[0]][0])
                continue
            with ex.batch():  # one job array
                jobs = [ex.submit(run_unit, units[i][0]) for i in idx]
            for i, job in zip(idx, jobs):
                handles[i] = job
        return handles


def make_engine(spec, slots: list[Slot], store: ResultsStore, device: str) -> Engine:
    check_available(spec)
    if spec.name == "sequential" or (spec.name == "loky" and len(slots) == 1):
        return InlineEngine()
    if spec.name == "loky":
        return LokyEngine(len(slots))
    if spec.name == "dask":
        return DaskEngine(spec, len(slots))
    if spec.name == "ray":
        return RayEngine(spec, len(slots), slots[0].threads)
    if spec.name in ("slurm", "submitit"):
        return SubmititEngine(spec, store, device)
    raise UsageError(f"unknown engine '{spec.name}'")  # pragma: no cover - the suite validates the name


# -- the scheduler -------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    """What became of every job the scheduler was given."""

    #: job key -> ``ok`` | ``failed`` | ``blocked`` (an input failed) | ``elsewhere`` (done by another run)
    status: dict[str, str] = field(default_factory=dict)
    #: job key -> the one-line reason of a failure
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class _Unit:
    jobs: list[Job]
    deps: frozenset
    order: tuple
    after: frozenset = frozenset()
    #: the snapshots this unit evaluates -> the distillation writing them: the unit may start as soon as they
    #: are written, before (or without) the end of that distillation
    snapshots: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.jobs[0].kind


def _plan(units: list[list[Job]], costs: dict[str, float], order: str = "distill_first") -> list[_Unit]:
    """``units`` in the order they start when ready (:data:`KIND_ORDERS` [``order``], then the costliest first),
    each with the jobs outside it that it waits for: its inputs (``deps``), the units it runs after, the snapshots
    it evaluates."""
    kinds = KIND_ORDERS[order]
    produced = {j.key for u in units for j in u}
    planned = []
    for u in units:
        keys = {j.key for j in u}
        deps = frozenset(d for j in u for d in j.deps if d not in keys)
        cost = sum(costs.get(j.key, 0.0) for j in u)
        after = frozenset(a for j in u for a in j.runs_after if a not in keys and a in produced)
        snaps = {j.synset_key: j.producer for j in u if getattr(j, "producer", "")}
        planned.append(_Unit(u, deps, (kinds.get(u[0].kind, 9), -cost), after, snaps))
    planned.sort(key=lambda x: x.order)  # stable: the suite's order within a kind and cost
    return planned


class Scheduler:
    """Runs units of jobs on an engine in dependency order (see the module docstring)."""

    def __init__(self, store: ResultsStore, engine: Engine, slots: list[Slot], progress: bool = True,
                 poll_s: float = 0.05, order: str = "distill_first"):
        self.store, self.engine, self.slots = store, engine, slots
        self.progress, self.poll_s, self.order = progress, poll_s, order
        self.run_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def run(self, units: list[list[Job]], done: set[str], costs: Optional[dict[str, float]] = None,
            force: bool = False) -> Outcome:
        """Run ``units``; ``done`` holds the keys already done (inputs a unit may depend on). Jobs whose input
        is neither done nor produced by a unit here are blocked. Unless ``force``, a unit that another run finished
        meanwhile is not run again."""
        run = _Run(self, _plan(units, costs or {}, self.order), done, {j.key for u in units for j in u}, force)
        stop = run.start_heartbeat()
        try:
            run.loop()
        finally:
            stop.set()
            run.close()
        return run.out


class _Run:
    """One call of :meth:`Scheduler.run`: the units not started yet (``pending``), those running on the engine
    (``in_flight``), those whose jobs another live run has claimed (``waiting``), and what became of each job.

    Every turn of :meth:`loop` blocks the units whose inputs failed, takes back the waiting units whose claims were
    released, starts the ready units on the free slots and collects the units that finished."""

    def __init__(self, scheduler: Scheduler, pending: list[_Unit], done: set[str], produced: set[str],
                 force: bool):
        from tqdm.auto import tqdm

        self.store, self.engine, self.slots = scheduler.store, scheduler.engine, scheduler.slots
        self.run_id, self.poll_s, self.force = scheduler.run_id, scheduler.poll_s, force
        self.out = Outcome()
        self.done = set(done)  # jobs done: here, before this run, or by another run
        self.produced = produced  # jobs some unit of this run computes
        self.pending = pending
        self.free = list(range(len(self.slots)))  # the slots with no unit in flight
        self.in_flight: dict[int, tuple[_Unit, Any, int]] = {}  # id(handle) -> (unit, handle, slot index)
        self.waiting: list[_Unit] = []  # claimed by another run
        self.held: set[str] = set()  # the jobs this run has claimed and is computing
        self.written: set[str] = set()  # snapshots found written
        self.looked: dict[str, float] = {}  # snapshot -> when its file was last looked for
        self.counts = {k: 0 for k in dict.fromkeys(u.kind for u in pending)}
        self.totals = {k: sum(1 for u in pending if u.kind == k) for k in self.counts}
        self.bar = tqdm(total=len(pending), desc="jobs", disable=not scheduler.progress, dynamic_ncols=True)

    # -- claims and progress ---------------------------------------------------------------------------------
    def start_heartbeat(self) -> threading.Event:
        """Refresh this run's claims every :data:`HEARTBEAT_S` in a thread (a unit run inline blocks the loop for
        as long as it takes) until the event returned is set."""
        stop = threading.Event()

        def heartbeat() -> None:
            while not stop.wait(HEARTBEAT_S):
                self.store.refresh_claims(list(self.held))

        threading.Thread(target=heartbeat, daemon=True).start()
        return stop

    def close(self) -> None:
        """Release the claims still held (the run was interrupted) and close the progress bar."""
        for key in list(self.held):
            self.store.release(key)
        self.bar.close()

    def show(self) -> None:
        """The progress bar's tally of finished units per kind."""
        self.bar.set_postfix_str(" ".join(f"{k} {self.counts[k]}/{self.totals[k]}" for k in self.counts),
                                 refresh=True)

    def settle(self, unit: _Unit, status: str, errors: Optional[dict] = None) -> None:
        """Record the outcome of every job of ``unit`` (``errors``: key -> reason, for those that failed) and
        release their claims."""
        for j in unit.jobs:
            reason = (errors or {}).get(j.key)
            self.out.status[j.key] = "failed" if reason and status == "ok" else status
            if reason:
                self.out.errors[j.key] = reason
            elif status in ("ok", "elsewhere"):
                self.done.add(j.key)
            self.store.release(j.key)
            self.held.discard(j.key)
        self.counts[unit.kind] += 1
        self.bar.update(1)
        self.show()

    def claim(self, unit: _Unit) -> bool:
        """Claim every job of ``unit`` for this run; False, keeping none, when another live run holds one."""
        taken = []
        for j in unit.jobs:
            if self.store.claim(j.key, self.run_id) is not None:
                for key in taken:
                    self.store.release(key)
                return False
            taken.append(j.key)
        return True

    # -- when a unit may start -------------------------------------------------------------------------------
    def snapshots_written(self, unit: _Unit) -> bool:
        """Whether every snapshot ``unit`` evaluates is written (its distillation may still be running); a
        snapshot not found is looked for again after :data:`SNAPSHOT_POLL_S`."""
        for key in unit.snapshots:
            if key in self.written:
                continue
            now = time.monotonic()
            if now - self.looked.get(key, -1e9) < SNAPSHOT_POLL_S:
                return False
            self.looked[key] = now
            if not self.store.valid_synset(key):
                return False
            self.written.add(key)
        return bool(unit.snapshots)

    def inputs_done(self, unit: _Unit) -> bool:
        missing = unit.deps - self.done
        return not missing or (missing <= set(unit.snapshots.values()) and self.snapshots_written(unit))

    def ready(self, unit: _Unit) -> bool:
        return self.inputs_done(unit) and all(a in self.done or a in self.out.status for a in unit.after)

    # -- one turn of the loop --------------------------------------------------------------------------------
    def loop(self) -> None:
        """Run until every unit has an outcome."""
        self.show()
        while self.pending or self.in_flight or self.waiting:
            self.block_failed_inputs()
            self.take_back_waiting()
            started = self.start_ready()
            finished = self.collect_finished()
            if not finished and not started and (self.in_flight or self.waiting or self.pending):
                if self.block_if_stuck():
                    continue
                time.sleep(self.poll_s if self.in_flight else 1.0)

    def block_failed_inputs(self) -> None:
        """Settle as ``blocked`` the pending units with an input that failed, was blocked or is produced by no
        unit. A unit that evaluates the snapshots of a distillation that failed still runs if they were written."""
        still = []
        for u in self.pending:
            bad = [d for d in u.deps if self.out.status.get(d) in ("failed", "blocked")
                   or (d not in self.done and d not in self.produced)]
            if bad and set(bad) <= set(u.snapshots.values()):  # the distillation is over: look again now
                for key in u.snapshots:
                    self.looked.pop(key, None)
                if self.snapshots_written(u):
                    bad = []  # it failed after writing the snapshots: they stand on their own
            if bad:
                reason = self.out.errors.get(bad[0], "its input is missing")
                self.settle(u, "blocked", {j.key: reason for j in u.jobs})
            else:
                still.append(u)
        self.pending = still

    def take_back_waiting(self) -> None:
        """A unit claimed by another run is settled as ``elsewhere`` when that run has done it, and goes back to
        the front of the pending units when the claims are gone (released, or that run died)."""
        for u in list(self.waiting):
            if all(j.is_done(self.store) for j in u.jobs):
                self.waiting.remove(u)
                self.settle(u, "elsewhere")
            elif all(self.store.claim_holder(j.key) is None for j in u.jobs):
                self.waiting.remove(u)
                self.pending.insert(0, u)

    def start_ready(self) -> list[tuple[_Unit, int]]:
        """Claim and submit the ready units, in order, one per free slot (as one batch); the units started."""
        batch = []
        for u in list(self.pending):
            if not self.free:
                break
            if not self.ready(u):
                continue
            self.pending.remove(u)
            if not self.claim(u):  # another live run computes it: wait for its result
                self.waiting.append(u)
                continue
            if not self.force and all(j.is_done(self.store) for j in u.jobs):  # another run finished it
                self.settle(u, "elsewhere")
                continue
            self.held.update(j.key for j in u.jobs)
            slot = self.free.pop(0)
            for j in u.jobs:
                j.device, j.threads = self.slots[slot].device, self.slots[slot].threads
            batch.append((u, slot))
        if batch:
            handles = self.engine.submit_many([(u.jobs, self.slots[s]) for u, s in batch])
            for (u, s), h in zip(batch, handles):
                self.in_flight[id(h)] = (u, h, s)
        return batch

    def collect_finished(self) -> list[_Unit]:
        """Settle the units the engine has finished and free their slots; the units finished."""
        finished = [(i, u, h, s) for i, (u, h, s) in self.in_flight.items() if self.engine.done(h)]
        for i, u, h, s in finished:
            del self.in_flight[i]
            self.free.append(s)
            self.settle(u, "ok", self.failures(u, h))
        return [u for _, u, _, _ in finished]

    def failures(self, unit: _Unit, handle: Any) -> dict[str, str]:
        """The jobs of a finished ``unit`` that failed -> why. A worker lost while running it (killed, out of
        memory, its node gone) fails all of its jobs and the run goes on; an ``OSError`` here stops the run."""
        try:
            rows, lost = self.engine.result(handle), None
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - a lost worker: its jobs failed, the rest go on
            rows, lost = [], f"the worker running it was lost ({one_line(exc)})"
        by_key = {r.get("job_key"): r for r in rows}
        return {j.key: (by_key.get(j.key) or {}).get("error") or lost or "no result"
                for j in unit.jobs if (by_key.get(j.key) or {}).get("status") != "ok"}

    def block_if_stuck(self) -> bool:
        """When nothing runs, nothing waits on another run and no pending unit can ever start (a cycle of inputs),
        settle the pending units as ``blocked`` instead of hanging; whether it did."""
        if self.in_flight or self.waiting or any(self.ready(u) for u in self.pending):
            return False
        for u in self.pending:
            self.settle(u, "blocked", {j.key: "its input was never produced" for j in u.jobs})
        self.pending = []
        return True


@contextlib.contextmanager
def engine_for(spec, slots: list[Slot], store: ResultsStore, device: str) -> Iterator[Engine]:
    engine = make_engine(spec, slots, store, device)
    try:
        yield engine
    finally:
        engine.close()
