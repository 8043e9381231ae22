"""The job graph: slots, dependencies, claims shared by two runs, every engine running distillation jobs,
``atombench plan``, SIGKILL and lost workers mid-distillation."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pandas as pd
import pytest

from atombench.jobs import Job
from atombench.runner import run_suite
from atombench.scheduler import Engine, Scheduler, Slot, make_slots
from atombench.store import ResultsStore
from atombench.suite import BackendSpec

from .conftest import ROOT, TINY_SUITE, run_cli

QUIET = dict(progress=False, echo=lambda *a: None)


# -- slots ---------------------------------------------------------------------------------------------------
def test_slots_split_cores_and_give_each_gpu_one_worker():
    loky, seq = BackendSpec("loky"), BackendSpec("sequential")
    assert make_slots(seq, "cpu", 10, cores=2) == [Slot("cpu", 2)]  # one worker, every core
    assert make_slots(loky, "cpu", 10, cores=2) == [Slot("cpu", 1)] * 2
    assert make_slots(loky, "cpu", 1, cores=8) == [Slot("cpu", 8)]
    assert make_slots(loky, "cpu", 10, cores=8, workers=3) == [Slot("cpu", 2)] * 3
    # a 4-GPU node: one worker per GPU, the cores split between them
    assert make_slots(loky, "cuda", 450, cores=32, gpu_count=4) == [Slot(f"cuda:{i}", 8) for i in range(4)]
    # two units per GPU (distillations that leave a GPU mostly idle share it)
    assert [s.device for s in make_slots(loky, "cuda", 9, cores=16, gpu_count=4, workers=8)] == \
        [f"cuda:{i % 4}" for i in range(8)]
    assert make_slots(BackendSpec("dask"), "cuda", 9, cores=16, gpu_count=2) == [Slot("cuda:0", 8), Slot("cuda:1", 8)]
    # a cluster: the device resolves on each task; threads from cpus_per_task
    slurm = BackendSpec("slurm", cpus_per_task=4, array_parallelism=16)
    assert make_slots(slurm, "cuda", 450, cores=2) == [Slot("cuda", 4)] * 16


# -- the scheduler on a fake graph ---------------------------------------------------------------------------
LOG: list = []
LOCK = threading.Lock()


@dataclass
class Sleepy(Job):
    """A job that records where and when it ran."""

    kind = "distill"
    after: tuple = ()
    seconds: float = 0.05

    @property
    def deps(self):
        return self.after

    def run(self):
        start = time.time()
        with LOCK:
            LOG.append(("start", self.key, self.device, start))
        time.sleep(self.seconds)
        row = {"job_key": self.key, "status": "ok", "device": self.device}
        self.store.write_job(self.key, row)
        with LOCK:
            LOG.append(("end", self.key, self.device, time.time()))
        return row


@dataclass
class SleepyEval(Sleepy):
    kind = "evaluate"


class ThreadEngine(Engine):
    """Units in threads: concurrency without processes, to watch the scheduler hand out slots."""

    def __init__(self, n):
        self.pool = ThreadPoolExecutor(n)

    def submit(self, unit, slot):
        from atombench.jobs import run_unit

        return self.pool.submit(run_unit, unit)

    def close(self):
        self.pool.shutdown()


def test_four_gpus_run_four_distillations_at_once_and_evaluations_start_early(tmp_path):
    LOG.clear()
    store = ResultsStore(tmp_path)
    slots = make_slots(BackendSpec("loky"), "cuda", 8, cores=8, gpu_count=4)
    # 8 distillations (the last one long), each followed by 2 evaluations
    distill = [Sleepy(f"d{i}", {}, str(tmp_path), seconds=1.0 if i == 7 else 0.1) for i in range(8)]
    evals = [SleepyEval(f"e{i}{k}", {}, str(tmp_path), after=(f"d{i}",), seconds=0.05)
             for i in range(8) for k in range(2)]
    engine = ThreadEngine(len(slots))
    out = Scheduler(store, engine, slots, progress=False).run(
        [[j] for j in evals + distill], done=set())
    engine.close()
    assert set(out.status.values()) == {"ok"} and len(out.status) == 24
    starts = {k: (dev, t) for ev, k, dev, t in LOG if ev == "start"}
    ends = {k: t for ev, k, dev, t in LOG if ev == "end"}
    assert {starts[f"d{i}"][0] for i in range(8)} == {f"cuda:{i}" for i in range(4)}, "every GPU distils"
    # never two units on one GPU at the same time
    for dev in {d for d, _ in starts.values()}:
        spans = sorted((starts[k][1], ends[k]) for k in starts if starts[k][0] == dev)
        assert all(a_end <= b_start + 1e-3 for (_, a_end), (b_start, _) in zip(spans, spans[1:])), dev
    # an evaluation starts only after its set, and some start before the last distillation has finished
    for i in range(8):
        for k in range(2):
            assert starts[f"e{i}{k}"][1] >= ends[f"d{i}"]
    assert min(starts[f"e{i}{k}"][1] for i in range(7) for k in range(2)) < ends["d7"]


def test_a_failed_input_blocks_its_dependants_only(tmp_path):
    @dataclass
    class Boom(Sleepy):
        def run(self):
            return {"job_key": self.key, "status": "failed", "error": "RuntimeError: boom"}

    store = ResultsStore(tmp_path)
    jobs = [[Boom("bad", {}, str(tmp_path))], [Sleepy("good", {}, str(tmp_path))],
            [SleepyEval("e_bad", {}, str(tmp_path), after=("bad",))],
            [SleepyEval("e_good", {}, str(tmp_path), after=("good",))]]
    from atombench.scheduler import InlineEngine

    out = Scheduler(store, InlineEngine(), [Slot("cpu", 1)], progress=False).run(jobs, done=set())
    assert out.status == {"bad": "failed", "good": "ok", "e_bad": "blocked", "e_good": "ok"}
    assert out.errors["e_bad"] == "RuntimeError: boom"


# -- claims --------------------------------------------------------------------------------------------------
def test_a_claim_holds_while_its_run_lives_and_breaks_when_it_dies(tmp_path):
    store = ResultsStore(tmp_path)
    assert store.claim("k", "run-a") is None  # taken
    assert store.claim("k", "run-a") is None  # the holder itself
    holder = store.claim("k", "run-b")
    assert holder is not None and holder["run"] == "run-a" and holder["pid"] == os.getpid()
    store.release("k")
    assert store.claim("k", "run-b") is None
    store.release("k")
    # a claim left by a dead process on this host is stale: taken over
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert not store.claim_path("k").exists(), "release removes the claim"
    store.claim_path("k").write_text(json.dumps({"host": os.uname().nodename, "pid": dead.pid, "run": "gone"}))
    assert store.claim_holder("k") is None and store.claim("k", "run-b") is None
    # another host's claim not refreshed for CLAIM_TTL_S is stale
    store.claim_path("j").write_text(json.dumps({"host": "elsewhere", "pid": 1, "run": "far"}))
    assert store.claim_holder("j")["run"] == "far"
    old = time.time() - 3600
    os.utime(store.claim_path("j"), (old, old))
    assert store.claim_holder("j") is None


def _start_run(path, *flags, **popen):
    """``atombench run PATH --quiet FLAGS`` in a subprocess, as a user would start it (1 torch thread)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "atombench", "run", str(path), "--quiet", *flags], env=env, **popen)


SHARED = """\
name: shared
datasets: [{name: digits}]
ipc: [1, 2]
distillers:
  - random
  - name: dm
    config: {iterations: 120, batch_real: 16}
models: [{name: convnet, options: {width: 16, depth: 2}}]
seeds: 2
eval: {epochs: 20, batch_size: 64, models_per_set: 1}
execution: {backend: sequential}
device: cpu
"""


@pytest.mark.slow  # minutes; CI runs it (the default run keeps the quicker scheduler tests)
def test_two_runs_into_one_folder_share_the_work(tmp_path):
    """Started together, two runs of one suite compute each job once between them."""
    out = tmp_path / "out"
    path = tmp_path / "shared.yaml"
    # DM's 120 iterations cut to 40: sixteen short jobs still overlap the two runs (each starts in ~4 s)
    path.write_text(SHARED.replace("iterations: 120", "iterations: 40") + f"output: {out}\n")
    procs = [_start_run(path, "--no-report", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (o, e) in zip(procs, outs):
        assert p.returncode == 0, e
    ran = [int(next(line for line in o.splitlines() if "job(s) run here" in line).split()[0]) for o, _ in outs]
    # 8 distillations + 8 evaluations, each computed by exactly one of the two runs
    assert sum(ran) == 16 and min(ran) > 0, outs
    assert not list((out / "claims").glob("*")), "claims are released"
    table = pd.read_csv(out / "results.csv")
    assert (table["status"] == "ok").all() and len(table) == 8


# -- plan / dry run ------------------------------------------------------------------------------------------
def test_plan_prints_the_graph_and_estimates_from_recorded_costs(tiny_suite, tmp_path):
    res = run_cli("plan", tiny_suite)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    distill = next(line for line in lines if line.startswith("distill"))
    evaluate = next(line for line in lines if line.startswith("evaluate"))
    assert distill.split()[1:5] == ["8", "0", "0", "8"] and evaluate.split()[1:5] == ["16", "0", "0", "16"]
    assert "no record yet" in res.stdout
    assert not (tmp_path / "out").exists(), "plan writes nothing"
    same = run_cli("run", tiny_suite, "--dry-run")
    assert same.returncode == 0 and same.stdout == res.stdout
    # after a run with one seed, the plan for two estimates the second seed from the first's costs
    one = tiny_suite.read_text().replace("seeds: 2", "seeds: 1")
    tiny_suite.write_text(one)
    run_suite(tiny_suite, **QUIET)
    tiny_suite.write_text(one.replace("seeds: 1", "seeds: 2"))
    res = run_cli("plan", tiny_suite)
    evaluate = next(line for line in res.stdout.splitlines() if line.startswith("evaluate"))
    assert evaluate.split()[1:5] == ["16", "8", "0", "8"]
    assert "estimated:" in res.stdout and "of compute left" in res.stdout and "no record" not in evaluate
    # a new IPC has no record of its own: its jobs are scaled from the other IPCs' records, and said to be
    tiny_suite.write_text(one.replace("seeds: 1", "seeds: 2").replace("ipc: [1, 2]", "ipc: [1, 2, 4]"))
    res = run_cli("plan", tiny_suite)
    evaluate = next(line for line in res.stdout.splitlines() if line.startswith("evaluate"))
    assert "no record" not in res.stdout and "of them scaled from related records" in evaluate, res.stdout
    assert "scaled from related records" in res.stdout.splitlines()[-1] and "rough" in res.stdout


def test_plan_of_an_empty_folder_estimates_from_a_pilot_folder_named_by_costs_from(tiny_suite, tmp_path):
    """A long suite planned before its first job: ``--costs-from`` reads a pilot folder's records (the same
    methods and networks on the same data, one seed) and scales the suite's jobs from them."""
    one = tiny_suite.read_text().replace("seeds: 2", "seeds: 1")
    pilot = tmp_path / "pilot.yaml"
    pilot.write_text(one.replace(f"output: {tmp_path / 'out'}", f"output: {tmp_path / 'pilot'}"))
    run_suite(pilot, **QUIET)
    res = run_cli("plan", tiny_suite)
    assert "estimated: unknown" in res.stdout and "--costs-from" in res.stdout
    res = run_cli("plan", tiny_suite, "--costs-from", tmp_path / "pilot")
    assert res.returncode == 0, res.stderr
    evaluate = next(line for line in res.stdout.splitlines() if line.startswith("evaluate"))
    assert evaluate.split()[1:5] == ["16", "0", "0", "16"] and "no record" not in res.stdout, res.stdout
    assert f"costs also from: {tmp_path / 'pilot'} (" in res.stdout and "of compute left" in res.stdout
    assert "earlier version" not in res.stdout
    # a folder of an earlier version: its jobs are keyed otherwise, so none counts, and the plan says why
    stale = tmp_path / "stale"
    shutil.copytree(tmp_path / "pilot", stale)
    for f in [*(stale / "jobs").iterdir(), *(stale / "synsets").iterdir()]:
        f.rename(f.with_name("z" + f.name[1:]))  # keys this version does not compute (not hexadecimal)
    res = run_cli("plan", tiny_suite, "--costs-from", stale)
    assert res.returncode == 0 and "(0 record(s): none of its finished jobs is keyed" in res.stdout, res.stdout + res.stderr
    assert not (tmp_path / "out").exists(), "plan writes nothing"
    for folder, says in ((tmp_path, "not a results folder (no suite.yaml in it)"),
                         (tmp_path / "nowhere", "not a results folder"),
                         (tmp_path / "out", "that is the suite's own results folder"),
                         (tmp_path / "pilot", None)):
        if says is None:  # the suite's own folder: its costs count already
            tiny_suite.write_text(one.replace(f"output: {tmp_path / 'out'}", f"output: {folder}"))
            says = "that is the suite's own results folder"
        bad = run_cli("plan", tiny_suite, "--costs-from", folder)
        assert bad.returncode == 2 and says in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1


def test_a_job_without_records_of_its_class_is_scaled_from_its_family():
    """The plan's estimate of a job whose class has never run: the nearest family's fixed seconds (the test pass)
    plus its seconds per unit of size times the job's size; exact records win; no family, no estimate."""
    from types import SimpleNamespace

    from atombench.runner import estimate

    class Fake:
        kind = "evaluate"

        def __init__(self, key, cls, size, fams=("net", "any")):
            self.key, self.cls, self.size, self.fams = key, cls, size, fams

        def cost_class(self):
            return self.cls

        def cost_families(self):
            return self.fams

        def cost_size(self):
            return self.size

    done = [Fake("a", "ipc1", 100.0), Fake("b", "ipc1", 100.0), Fake("c", "ipc2", 300.0)]
    rows = {"a": {"train_time_s": 10.0, "test_time_s": 4.0}, "b": {"train_time_s": 14.0, "test_time_s": 6.0},
            "c": {"train_time_s": 36.0, "test_time_s": 5.0}}
    todo = [Fake("d", "ipc1", 100.0), Fake("e", "ipc10", 1000.0), Fake("f", "ipc10", 2000.0, ("net",)),
            Fake("g", "other", 1.0, ("elsewhere",))]
    graph = SimpleNamespace(jobs=done + todo)
    store = SimpleNamespace(read_job=lambda key: rows.get(key), synset_meta=lambda key: None)
    status = SimpleNamespace(done={"a", "b", "c"}, todo={"d", "e", "f", "g"})
    e = estimate(graph, store, status)["evaluate"]
    assert (e.known, e.scaled, e.unknown) == (1, 2, 1)
    assert e.sec == pytest.approx((14 + 20) / 2)  # d: its own class's mean
    rate, fixed = (10 + 14 + 36) / 500.0, (4 + 6 + 5) / 3  # the family's seconds per unit and fixed seconds
    assert e.scaled_sec == pytest.approx(rate * 1000 + fixed + rate * 2000 + fixed)


# -- every engine runs distillation jobs ---------------------------------------------------------------------
def test_distillations_run_on_loky_workers_and_evaluations_start_before_the_last_ends(tmp_path):
    path = tmp_path / "par.yaml"
    path.write_text(SHARED.replace("execution: {backend: sequential}", "execution: {backend: loky, workers: 2}")
                    + f"output: {tmp_path / 'out'}\n")
    report = run_suite(path, **QUIET)
    assert report.distilled == 8 and (report.table["status"] == "ok").all()
    store = ResultsStore(tmp_path / "out")
    metas = [store.synset_meta(k) for k in report.table["synset_key"].unique()]
    assert len({m["pid"] for m in metas}) == 2 and os.getpid() not in {m["pid"] for m in metas}, \
        "distillations ran in the two workers"
    last_distill = max(m["finished_at"] for m in metas)
    assert report.table["started_at"].min() < last_distill


# -- SIGKILL mid-distillation, a worker lost mid-distillation -------------------------------------------------
# 600 iterations would compile by default on the CPU (compile: auto): these tests kill runs mid-distillation, eager
SLOW = SHARED.replace("iterations: 120", "iterations: 600, compile: none").replace("ipc: [1, 2]", "ipc: [1]")


@pytest.mark.heavy  # 92 s in CI's run of 2026-12-06: heavy since, to keep CI within 20 minutes (the default
# run keeps the quicker scheduler tests; ATOMBENCH_HEAVY=1 runs it)
def test_sigkill_of_the_scheduler_mid_distillation_then_resume(tmp_path):
    out = tmp_path / "out"
    path = tmp_path / "slow.yaml"
    path.write_text(SLOW + f"output: {out}\n")
    proc = _start_run(path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    # random's two sets are quick; kill while DM distils
    while time.time() < deadline and len(list((out / "synsets").glob("*.json"))) < 2:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = {p.name: p.stat().st_mtime_ns for p in (out / "synsets").glob("*.json")}
    assert 2 <= len(kept) < 4, "the kill should land mid-distillation"
    assert list((out / "claims").glob("*")), "the killed run left its claims"
    res = run_cli("run", path, "--quiet", "--no-report", env={"PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr
    assert f"4 synthetic sets ({4 - len(kept)} to distil)" in res.stdout
    for name, mtime in kept.items():
        assert (out / "synsets" / name).stat().st_mtime_ns == mtime, "a finished set was recomputed"
    assert not list((out / "claims").glob("*")) and not list(out.rglob("*.tmp"))
    assert (pd.read_csv(out / "results.csv")["status"] == "ok").all()


@pytest.mark.heavy  # 63 s in CI's run of 2026-12-06: heavy since, to keep CI within 20 minutes (the default
# run keeps the quicker scheduler tests; ATOMBENCH_HEAVY=1 runs it)
def test_a_worker_killed_mid_distillation_fails_its_jobs_only_and_a_rerun_completes(tmp_path):
    import psutil

    path = tmp_path / "lost.yaml"
    path.write_text(SLOW
                    .replace("execution: {backend: sequential}", "execution: {backend: loky, workers: 2}")
                    + f"output: {tmp_path / 'out'}\n")
    store = ResultsStore(tmp_path / "out")
    killed = []

    def kill_a_worker():
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            workers = psutil.Process().children(recursive=True)
            busy = [w for w in workers if w.cpu_percent(interval=0.2) > 50]
            if busy and len(list(store.synsets_dir.glob("*.json"))) >= 2:
                busy[0].kill()
                killed.append(busy[0].pid)

    threading.Thread(target=kill_a_worker, daemon=True).start()
    first = run_suite(path, **QUIET)
    assert killed, "a worker should have been killed"
    failed = first.table[first.table["status"] != "ok"]
    assert len(failed) >= 1 and failed["error"].str.contains("worker running it was lost").all()
    assert (first.table["status"] == "ok").any(), "the other jobs went on"
    again = run_suite(path, **QUIET)
    assert (again.table["status"] == "ok").all() and again.distilled >= 1


def test_a_distiller_that_caches_for_every_ipc_distils_its_ipcs_in_order_and_trains_once(tmp_path):
    """Herding's feature network serves every IPC of a seed: in parallel workers the IPCs still run one after the
    other, the first trains the network and the second reuses it (instead of both training it at once)."""
    path = tmp_path / "herd.yaml"
    path.write_text(TINY_SUITE.replace("  - random\n  - name: herding\n    config: {features: pixels}\n",
                                       "  - name: herding\n    config: {train_epochs: 2}\n")
                    .replace("seeds: 2", "seeds: 1").replace("execution: {backend: sequential}",
                                                             "execution: {backend: loky, workers: 2}")
                    + f"output: {tmp_path / 'out'}\n")
    report = run_suite(path, **QUIET)
    assert (report.table["status"] == "ok").all() and report.distilled == 2
    store = ResultsStore(tmp_path / "out")
    metas = sorted((store.synset_meta(k) for k in report.table["synset_key"].unique()), key=lambda m: m["ipc"])
    assert metas[1]["started_at"] >= metas[0]["finished_at"]
    assert [m["trained_net_reused"] for m in metas] == [False, True]


def test_what_a_distiller_caches_for_every_seed_is_built_by_the_first_set_only(tmp_path):
    """MTT's experts are keyed by their settings, not the seed: every (seed, IPC) set runs after the first, which
    trains them; herding's network is per seed, so each seed's first IPC starts at once."""
    from atombench.runner import build_graph, load_checked

    path = tmp_path / "order.yaml"
    path.write_text(TINY_SUITE.replace("  - random\n  - name: herding\n    config: {features: pixels}\n",
                                       "  - name: herding\n  - name: mtt\n    config: {num_experts: 1}\n")
                    + f"output: {tmp_path / 'out'}\n")
    suite, plan = load_checked(path)
    graph = build_graph(plan, ResultsStore(tmp_path / "out"))
    order = {(j.row["method"], j.seed, j.ipc): j for j in graph.distill}
    for method, across_seeds in (("mtt", True), ("herding", False)):
        first = order[(method, 0, 1)]
        assert first.runs_after == ()
        assert order[(method, 0, 2)].runs_after == (first.key,)
        assert order[(method, 1, 1)].runs_after == ((first.key,) if across_seeds else ())
        assert order[(method, 1, 2)].runs_after == ((first.key,) if across_seeds else (order[(method, 1, 1)].key,))
    # once the experts are in the folder's cache, the MTT sets need not wait for each other
    from atombench.distillers.mtt import ExpertSpec, ExpertStore
    from atombench.factories import load_dataset

    real = load_dataset("digits", {})
    mtt = plan.distillers["mtt"]
    for ipc in (1, 2):
        net = mtt.resolved(real, ipc)[0]["net"]
        path = ExpertStore(real, ExpertSpec.from_config(mtt.config, net), ResultsStore(tmp_path / "out").cache_dir,
                           "cpu").path(0)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    graph = build_graph(plan, ResultsStore(tmp_path / "out"))
    assert all(j.runs_after == () for j in graph.distill if j.row["method"] == "mtt")
    assert any(j.runs_after for j in graph.distill if j.row["method"] == "herding")


# -- which ready jobs start first ----------------------------------------------------------------------------
def test_results_first_starts_the_evaluations_of_made_sets_before_new_distillations(tiny_suite, tmp_path):
    """``execution.order``: distill_first (the default) starts ready distillations first; results_first starts
    the evaluations of the sets already made first (and the teacher they may wait for); the same results."""
    from types import SimpleNamespace

    from atombench.scheduler import _plan

    def job(key, kind, deps=()):
        return SimpleNamespace(key=key, kind=kind, deps=tuple(deps), runs_after=(), producer="")

    units = [[job("d2", "distill")], [job("e1", "evaluate", ["d1"])], [job("r", "reference")],
             [job("e2", "evaluate", ["d2"])]]
    first = [u.jobs[0].key for u in _plan(units, {})]
    assert first == ["d2", "r", "e1", "e2"]
    assert [u.jobs[0].key for u in _plan(units, {}, "results_first")] == ["r", "e1", "e2", "d2"]
    # end to end: the same table either way
    base = run_suite(tiny_suite, **QUIET).table
    text = tiny_suite.read_text().replace("execution: {backend: sequential}",
                                          "execution: {backend: sequential, order: results_first}")
    tiny_suite.write_text(text.replace(f"output: {tmp_path / 'out'}", f"output: {tmp_path / 'out2'}"))
    again = run_suite(tiny_suite, **QUIET).table
    cols = ["distiller", "ipc", "seed", "eval_index", "accuracy"]
    assert again[cols].sort_values(cols).values.tolist() == base[cols].sort_values(cols).values.tolist()
