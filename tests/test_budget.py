"""Snapshots (intermediate synthetic sets), resuming a killed distillation from its last one, and the budget report."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from atombench.distillers.base import DistillContext
from atombench.jobs import snapshot_key
from atombench.factories import load_dataset, make_distiller
from atombench.report.inputs import Inputs
from atombench.report.budget import budget_points, budget_tables
from atombench.report.tables import TableOptions
from atombench.runner import plan_suite, run_suite
from atombench.store import ResultsStore
from atombench.suite import load_suite

TINY = {"dm": {"iterations": 6, "batch_real": 8},
        "atom": {"iterations": 6, "batch_real": 8},
        "dc": {"iterations": 4, "batch_real": 8},
        "mtt": {"iterations": 6, "num_experts": 1, "expert_train_epochs": 2, "max_start_epoch": 1,
                "expert_epochs": 1, "syn_steps": 2, "expert_per_class": 10}}


@pytest.mark.parametrize("name", sorted(TINY))
def test_resuming_from_a_snapshot_gives_the_uninterrupted_result(name, tmp_path):
    data = load_dataset("digits", {"size": 8})
    cfg = TINY[name]
    snap_at = cfg["iterations"] // 2
    seen = {}

    def keep(iteration, synset, state):
        seen[iteration] = (synset, state)

    full = make_distiller(name, cfg).run(data, 2, DistillContext("cpu", 7, False, cache_dir=tmp_path,
                                                                 snapshots=[snap_at], on_snapshot=keep))
    synset, state = seen[snap_at]
    assert synset.meta["iteration"] == snap_at and synset.meta["snapshot"] is True
    assert 0 < synset.meta["wall_time_s"] <= full.meta["wall_time_s"]
    assert len(synset.meta["loss_curve"]) == snap_at
    # a new process would start from the state saved with the snapshot
    state = torch.load(_roundtrip(state, tmp_path), weights_only=True)
    resumed = make_distiller(name, cfg).run(data, 2, DistillContext("cpu", 7, False, cache_dir=tmp_path,
                                                                    resume=state))
    assert resumed.meta["resumed_from_iteration"] == snap_at
    assert torch.allclose(resumed.images, full.images, atol=1e-5), name
    assert [i for i, _ in resumed.meta["loss_curve"]] == [i for i, _ in full.meta["loss_curve"]]
    assert [v for _, v in resumed.meta["loss_curve"]] == pytest.approx([v for _, v in full.meta["loss_curve"]])
    if name == "mtt":
        assert resumed.meta["syn_lr"] == pytest.approx(full.meta["syn_lr"])


def _roundtrip(state, tmp_path):
    path = tmp_path / "state.pt"
    torch.save(state, path)
    return path


SUITE = """name: budget
datasets: [{{name: digits, options: {{size: 8}}}}]
ipc: [1]
distillers: [random, {{name: dm, config: {{iterations: {iters}, batch_real: 16}}}}]
models: [{{name: convnet, options: {{width: 8, depth: 1}}}}]
seeds: 1
snapshots: {snaps}
eval: {{epochs: 2}}
execution: {{backend: sequential}}
device: cpu
output: {out}
"""


def test_snapshots_are_sets_evaluated_like_final_ones(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(SUITE.format(iters=8, snaps="[2, 4, 8, 20]", out=tmp_path / "out"))
    assert load_suite(p).snapshot_iterations(8) == (2, 4)  # the final set and counts beyond it are not snapshots
    assert load_suite(p).snapshot_iterations(100) == (2, 4, 8, 20)
    out = run_suite(p, progress=False, echo=lambda *a: None)
    t = out.table
    dm = t[t["distiller"] == "dm"].sort_values("iteration")
    assert list(dm["iteration"]) == [2, 4, 8] and list(dm["snapshot"].fillna(False)) == [True, True, False]
    assert (t["status"] == "ok").all()
    store = ResultsStore(tmp_path / "out")
    final = dm["synset_key"].iloc[-1]
    for it in (2, 4):
        meta = store.synset_meta(snapshot_key(final, it))
        assert meta["iteration"] == it and meta["snapshot_of"] == final and meta["wall_time_s"] > 0
    assert not (store.cache_dir / "resume" / f"{final}.pt").exists()  # removed once the final set exists
    # the summary shows the final sets only
    assert "| dm |" in (tmp_path / "out" / "summary.md").read_text()
    # a count of snapshots: log-spaced by halving
    p.write_text(SUITE.format(iters=8000, snaps=3, out=tmp_path / "o2"))
    assert load_suite(p).snapshot_iterations(8000) == (1000, 2000, 4000)


@pytest.mark.heavy  # 31 s in CI's run of 2026-12-06: heavy since, to keep CI within 20 minutes; the quicker
# snapshot and resume tests of this file stay in the default run
def test_sigkill_mid_distillation_resumes_from_the_last_snapshot(tmp_path):
    """A long distillation killed after its first snapshot continues from it: the rerun distils only the rest."""
    p = tmp_path / "s.yaml"
    p.write_text(SUITE.format(iters=400, snaps="[40, 200]", out=tmp_path / "out"))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "atombench", "run", str(p), "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    resume_dir = tmp_path / "out" / "cache" / "resume"
    deadline = time.time() + 300
    while time.time() < deadline and not any(resume_dir.glob("*.pt")):
        time.sleep(0.2)
    assert any(resume_dir.glob("*.pt")), "no snapshot was written"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    store = ResultsStore(tmp_path / "out")
    metas = [json.loads(f.read_text()) for f in store.synsets_dir.glob("*.json")]
    snaps = [m["iteration"] for m in metas if m.get("snapshot")]
    assert snaps and not any(m.get("method") == "dm" and not m.get("snapshot") for m in metas)
    last = max(snaps)
    assert not list(store.synsets_dir.glob("*.tmp*")) and not list(store.root.rglob("*.tmp"))
    out = run_suite(p, progress=False, echo=lambda *a: None)
    dm = out.table[(out.table["distiller"] == "dm") & out.table["snapshot"].isna()]
    meta = store.synset_meta(dm["synset_key"].iloc[0])
    assert meta["resumed_from_iteration"] == last and len(meta["loss_curve"]) == 400
    assert (out.table["status"] == "ok").all()


def test_budget_tables_pareto_and_cost_to_reach():
    rows = []
    curves = {"a": [(10, 1.0, 50), (100, 10.0, 70), (1000, 100.0, 80)],
              "b": [(10, 5.0, 60), (100, 50.0, 75), (1000, 500.0, 76)]}
    for m, pts in curves.items():
        for it, t, acc in pts:
            for seed in (0, 1):
                rows.append({"dataset": "d", "ipc": 1, "model": "convnet", "distiller": m, "method": m,
                             "seed": seed, "iteration": it, "snapshot": it != 1000, "distill_time_s": t,
                             "accuracy": acc + (0.5 if seed else -0.5), "status": "ok"})
    inputs = Inputs([], pd.DataFrame(rows))
    pts = budget_points(inputs, TableOptions()).set_index(["distiller", "iteration"])
    assert pts.loc[("a", 1000), "mean"] == pytest.approx(80) and pts.loc[("a", 1000), "std"] == pytest.approx(0.5)
    # b at 10 it. (60 % in 5 s) is on the front: nothing reaches 60 in 5 s or less; b at 1000 (76 in 500 s) is not
    assert pts.loc[("b", 10), "pareto"] and not pts.loc[("b", 1000), "pareto"] and pts.loc[("a", 100), "pareto"]
    budget, reach = budget_tables(inputs, TableOptions())
    r = reach.frame.set_index("method")
    assert r.loc["a", "time_to_90pct_s"] == pytest.approx(100.0)  # 72 = 90 % of 80: 70 at 100 it. is short of it
    assert r.loc["b", "time_to_99pct_s"] == pytest.approx(500.0)  # 99 % of 76 = 75.24: only the final reaches it
    assert r.loc["a", "best_rival"] == "b" and r.loc["a", "time_to_best_rival_s"] == pytest.approx(100.0)
    assert pd.isna(r.loc["b", "time_to_best_rival_s"])  # b never reaches a's 80


def test_budget_points_of_one_seed_show_the_models_spread_and_a_cut_off_run_says_so():
    """One synthetic set per point (a GPU run at full budget): the ± is the spread of the models trained on it,
    not a 0.0; a method whose final set is missing has its last snapshot stand for it, labelled."""
    rows = [{"dataset": "d", "ipc": 1, "model": "convnet", "distiller": m, "method": m, "seed": 0,
             "iteration": it, "snapshot": snap, "distill_time_s": float(it), "accuracy": acc + dev, "status": "ok"}
            for m, it, snap, acc in [("a", 10, True, 50), ("a", 100, False, 70), ("b", 10, True, 60),
                                     ("b", 50, True, 65)]
            for dev in (-1.0, 1.0)]
    inputs = Inputs([], pd.DataFrame(rows))
    pts = budget_points(inputs, TableOptions()).set_index(["distiller", "iteration"])
    assert pts.loc[("a", 100), "std"] == pytest.approx(1.0) and pts.loc[("a", 100), "std_over"] == "models"
    budget, reach = budget_tables(inputs, TableOptions())
    cells = {r.labels[0]: r.cells[0] for r in reach.rows}
    assert cells["b"] == "65.0 (snapshot 50)" and cells["a"] == "70.0"
    assert "70.0 ± 1.0" in [r.cells[2] for r in budget.rows]
    one = Inputs([], pd.DataFrame([r for r in rows if r["accuracy"] % 10 == 9]))  # one model per point: no ±
    assert [r.cells[2] for r in budget_tables(one, TableOptions())[0].rows][:2] == ["49.0", "69.0"]


def test_a_curve_is_over_the_seeds_that_reached_its_end():
    """A run in progress: seeds 1 and 2 of method a have their snapshots evaluated, not their final set yet. The
    curve (and the cost to reach its final accuracy) is over seed 0 only, every point the same set, and says n."""
    rows = [{"dataset": "d", "ipc": 1, "model": "convnet", "distiller": m, "method": m, "seed": seed,
             "iteration": it, "snapshot": it != 1000, "distill_time_s": float(it) + seed, "status": "ok",
             "accuracy": acc + 3 * seed}
            for m, seeds in (("a", (0, 1, 2)), ("b", (0, 1, 2))) for seed in seeds
            for it, acc in ((10, 50.0), (100, 60.0), (1000, 70.0))
            if not (m == "a" and seed > 0 and it == 1000)]
    inputs = Inputs([], pd.DataFrame(rows))
    pts = budget_points(inputs, TableOptions()).set_index(["distiller", "iteration"])
    assert pts.loc[("a", 10), "mean"] == pytest.approx(50.0) and pts.loc[("a", 10), "n"] == 1
    assert pts.loc[("b", 10), "mean"] == pytest.approx(53.0) and pts.loc[("b", 10), "n"] == 3
    budget, reach = budget_tables(inputs, TableOptions())
    a_cells = [r.cells[2] for r in budget.rows if r.labels[0] == "a"]
    assert a_cells == ["50.0 (n=1)", "60.0 (n=1)", "70.0 (n=1)"] and "(n=" not in budget.rows[-1].cells[2]
    r = reach.frame.set_index("method")
    assert r.loc["a", "time_to_90pct_s"] == pytest.approx(1000.0)  # 63 = 90 % of 70: seed 0's 60 at 100 is short


def test_bad_snapshots_are_one_line(tmp_path):
    from atombench.errors import ConfigError

    p = tmp_path / "s.yaml"
    for bad in ("[0, 10]", "ten", "0", "[1.5]"):
        p.write_text(SUITE.format(iters=8, snaps=bad, out=tmp_path / "out"))
        with pytest.raises(ConfigError, match="snapshots: must be a list of iteration counts"):
            load_suite(p)


@pytest.mark.slow
def test_compiled_statistics_match_eager_and_keep_the_network_in_place():
    """``compile`` (here reduce-overhead: on a CPU torch.compile plus the network re-initialised in place, the
    CUDA-graph path's bookkeeping) gives the eager run's images up to float rounding; its key differs only when on."""
    from atombench.jobs import synset_key

    data = load_dataset("digits", {})
    out = {}
    for mode in ("none", "reduce-overhead"):
        d = make_distiller("atom", {"iterations": 3, "batch_real": 8, "compile": mode})
        ctx = DistillContext(torch.device("cpu"), seed=0, show_progress=False)
        out[mode] = d.distill(data, 1, ctx)[0]
        if mode != "none":
            slot = d.__dict__["_net_slot"]  # the first network, its parameters overwritten in place since
            assert d._in_place(ctx.fresh_net("convnet", {}, data)) is slot
    # float rounding of the fused kernels, carried through three image updates (seen: 1.3e-3 at 6 of 640 pixels, on
    # normalised pixels of about unit scale); a wrong network or a stale one would differ by tenths
    torch.testing.assert_close(out["reduce-overhead"], out["none"], atol=5e-3, rtol=5e-3)
    eager = make_distiller("atom", {"iterations": 3})
    explicit = make_distiller("atom", {"iterations": 3, "compile": "none"})
    compiled = make_distiller("atom", {"iterations": 3, "compile": "default"})
    assert synset_key(data, eager, 1, 0) == synset_key(data, explicit, 1, 0) != synset_key(data, compiled, 1, 0)
    with pytest.raises(Exception, match="compile: must be one of"):
        make_distiller("atom", {"compile": "fast"})


@pytest.mark.parametrize("name", ["atom", "dc"])
def test_losses_read_back_in_batches_give_the_same_run(name, tmp_path):
    """On a GPU the loss is read back every ``loss_flush_every`` iterations (one synchronisation for many), and
    the snapshot state is built at snapshot iterations only: the images, loss curve and snapshots are unchanged."""
    data = load_dataset("digits", {"size": 8})
    cfg = dict(TINY[name], iterations=7)
    runs = []
    for every in (1, 3):
        seen = {}
        ctx = DistillContext("cpu", 7, False, cache_dir=tmp_path, snapshots=[2, 5],
                             on_snapshot=lambda it, synset, state, seen=seen: seen.__setitem__(it, synset))
        ctx.loss_flush_every = every
        runs.append((make_distiller(name, cfg).run(data, 2, ctx), seen))
    (a, snaps_a), (b, snaps_b) = runs
    assert torch.equal(a.images, b.images)
    assert a.meta["loss_curve"] == b.meta["loss_curve"] and len(b.meta["loss_curve"]) == 7
    for it in (2, 5):  # each snapshot carries the loss curve up to it, pending losses included
        assert torch.equal(snaps_a[it].images, snaps_b[it].images)
        assert snaps_b[it].meta["loss_curve"] == a.meta["loss_curve"][:it]


def test_a_diverged_loss_read_back_late_names_its_iteration():
    from atombench.distillers.base import DistillationDiverged

    ctx = DistillContext("cpu", 0, False)
    ctx.loss_flush_every = 5
    bar = ctx.progress(range(10), total=10, desc="late")
    for it in range(3):
        bar.report(it, torch.tensor(float(it)))
    assert ctx.loss_curve == []  # held, not read yet
    bar.report(3, torch.tensor(float("inf")))
    with pytest.raises(DistillationDiverged, match="late: the distillation loss became inf at iteration 3; lower"):
        bar.report(4, torch.tensor(4.0))
    assert ctx.loss_curve == [(0, 0.0), (1, 1.0), (2, 2.0)]


def test_snapshot_state_given_as_a_function_is_built_at_snapshots_only():
    built, saved = [], {}
    ctx = DistillContext("cpu", 0, False, snapshots=[2, 4], on_snapshot=lambda it, s, st: saved.setdefault(it, st))
    ctx._writer = lambda it, images, labels, state, extras: saved.__setitem__(it, state)
    images, labels = torch.zeros(2, 1, 4, 4), torch.arange(2)
    for it in range(1, 6):
        ctx.step_done(it, images, labels, lambda it=it: built.append(it) or {"images": images, "at": it})
    assert built == [2, 4] and sorted(saved) == [2, 4] and saved[4]["at"] == 4


def test_a_snapshot_is_evaluated_while_its_distillation_goes_on(tmp_path, plugin_site):
    """With two workers, the evaluation of an early snapshot runs before the distillation that writes it ends
    (a run cut off by a deadline still has its budget curve so far). The test plug-in's distiller does not finish
    until an evaluation result exists (it fails after 120 s otherwise), so this does not depend on speed."""
    from .conftest import run_cli

    out = tmp_path / "out"
    p = tmp_path / "s.yaml"
    p.write_text(SUITE.format(iters=4, snaps="[2]", out=out)
                 .replace("backend: sequential", "backend: loky, workers: 2")
                 .replace("distillers: [random, {name: dm, config: {iterations: 4, batch_real: 16}}]",
                          f"distillers: [{{name: wait_for_evaluation, config: {{out: '{out}'}}}}]"))
    res = run_cli("run", p, "--quiet", "--no-report", env={"PYTHONPATH": str(plugin_site)}, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    t = pd.read_csv(out / "results.csv")
    assert (t["status"] == "ok").all() and len(t) == 2, t[["status", "error"]]
    snap, final = t[t["snapshot"].fillna(False).astype(bool)], t[~t["snapshot"].fillna(False).astype(bool)]
    meta = ResultsStore(out).synset_meta(final["synset_key"].iloc[0])
    assert snap["finished_at"].iloc[0] < meta["finished_at"]


def test_no_distill_evaluates_the_snapshots_written_so_far(tmp_path):
    """``atombench run --no-distill``: the budget curve so far of a cut-off run (its snapshots are written, its
    final set is not); nothing is distilled and the final set's evaluation stays pending."""
    p = tmp_path / "s.yaml"
    p.write_text(SUITE.format(iters=8, snaps="[2, 4]", out=tmp_path / "out"))
    first = run_suite(p, progress=False, echo=lambda *a: None).table
    store = ResultsStore(tmp_path / "out")
    final = first[(first["distiller"] == "dm") & ~first["snapshot"].fillna(False).astype(bool)]["synset_key"].iloc[0]
    store.synset_path(final).unlink()  # as if the run was cut off after its last snapshot
    store.synset_meta_path(final).unlink()
    for f in (tmp_path / "out" / "jobs").glob("*.json"):
        f.unlink()
    plan = plan_suite(p, distill=False)  # run --dry-run --no-distill: nothing to distil, the rest pending
    assert "--no-distill: 1 distillation(s) and 1 job(s) on their sets left pending" in plan
    assert re.search(r"^distill +\d+ +\d+ +\d+ +0 ", plan, re.M)
    assert not re.search(r"^distill +\d+ +\d+ +\d+ +0 ", plan_suite(p), re.M)
    lines = []
    out = run_suite(p, progress=False, echo=lines.append, distill=False)
    t = out.table
    assert out.failed == 0  # pending is not failed: the command exits 0
    assert "--no-distill: 1 distillation(s) and 1 job(s) on their sets left pending" in lines[0]
    assert not store.synset_path(final).exists()  # nothing distilled
    dm = t[t["distiller"] == "dm"].sort_values("iteration")
    assert list(dm["status"]) == ["ok", "ok", "pending"] and list(dm["iteration"]) == [2, 4, 8]
    assert (t[t["distiller"] == "random"]["status"] == "ok").all()
    assert "1 job(s) pending" in (tmp_path / "out" / "summary.md").read_text()
    # a run that may distil again completes the set and its evaluation
    t = run_suite(p, progress=False, echo=lambda *a: None).table
    assert (t["status"] == "ok").all() and store.synset_path(final).exists()


def test_compile_auto_compiles_long_cpu_distillations_only_and_keys_by_the_concrete_mode(tmp_path):
    """``compile: auto`` (the default) is made concrete by the preflight, before any key: ``default`` for a CPU
    distillation of at least COMPILE_MIN_ITERATIONS iterations, ``none`` for shorter ones, on a GPU and on a cluster
    engine; the concrete mode is in the options the worker rebuilds the distiller from, and an eager set keeps the
    key it had before ``auto`` existed."""
    from atombench.distillers.matching import COMPILE_MIN_ITERATIONS, concrete_compile
    from atombench.jobs import synset_key
    from atombench.runner import load_checked

    long, short = COMPILE_MIN_ITERATIONS, COMPILE_MIN_ITERATIONS - 1
    cfg = make_distiller("dm", {"iterations": long}).config
    assert cfg.compile == "auto"
    assert concrete_compile(cfg, "cpu") == "default"
    assert concrete_compile(cfg, "cuda") == concrete_compile(cfg, "remote") == "none"
    assert concrete_compile(make_distiller("dm", {"iterations": short}).config, "cpu") == "none"
    assert concrete_compile(make_distiller("dm", {"iterations": long, "compile": "none"}).config, "cpu") == "none"
    assert concrete_compile(make_distiller("atom", {"iterations": long, "cuda_graph": True}).config, "cpu") == "none"
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ndatasets: [digits]\nipc: [1]\n"
                     f"distillers: [{{name: dm, options: {{iterations: {long}}}}}, "
                     f"{{name: atom, label: short, options: {{iterations: {short}}}}}, "
                     f"{{name: datadam, options: {{iterations: {long}, compile: none}}}}]\n"
                     f"models: [convnet]\ndevice: cpu\noutput: {tmp_path / 'out'}\n")
    _, plan = load_checked(suite, None, None, None)
    modes = {spec.display: spec.options["compile"] for spec in plan.suite.distillers}
    assert modes == {"dm": "default", "short": "none", "datadam": "none"}
    assert {k: d.config.compile for k, d in plan.distillers.items()} == modes
    data = load_dataset("digits", {})
    auto = make_distiller("atom", {"iterations": 3})  # never made concrete: runs eagerly, keys as eager
    assert synset_key(data, auto, 1, 0) == synset_key(data, make_distiller("atom", {"iterations": 3,
                                                                                     "compile": "none"}), 1, 0)
    assert synset_key(data, plan.distillers["dm"], 1, 0) != synset_key(
        data, make_distiller("dm", {"iterations": long, "compile": "none"}), 1, 0)


@pytest.mark.parametrize("name", ["dm", "dc"])
def test_a_checkpoint_between_snapshots_resumes_to_the_uninterrupted_result(name, tmp_path):
    """``execution.checkpoint_minutes``: between snapshots the state alone is kept once the interval has passed
    (here 0 s: after every iteration), and a run resumed from it gives the uninterrupted result."""
    data = load_dataset("digits", {"size": 8})
    cfg = TINY[name]
    kept, snaps = {}, {}
    ctx = DistillContext("cpu", 7, False, cache_dir=tmp_path, snapshots=[1], checkpoint_s=0.0,
                         on_snapshot=lambda it, s, st: snaps.setdefault(it, st),
                         on_checkpoint=lambda it, st: kept.setdefault(it, st))
    full = make_distiller(name, cfg).run(data, 2, ctx)
    assert sorted(snaps) == [1] and sorted(kept) == list(range(2, cfg["iterations"] + 1))  # no double save at 1
    mid = cfg["iterations"] // 2 + 1
    state = torch.load(_roundtrip(kept[mid], tmp_path), weights_only=True)
    assert state["iteration"] == mid and 0 < state["elapsed"] <= full.meta["wall_time_s"]
    resumed = make_distiller(name, cfg).run(data, 2, DistillContext("cpu", 7, False, cache_dir=tmp_path,
                                                                    resume=state))
    assert resumed.meta["resumed_from_iteration"] == mid
    assert torch.allclose(resumed.images, full.images, atol=1e-5), name
    # no interval (the default of a bare context): snapshots only
    quiet = {}
    make_distiller(name, cfg).run(data, 2, DistillContext("cpu", 7, False,
                                                          on_checkpoint=lambda it, st: quiet.setdefault(it, st)))
    assert not quiet


def test_a_run_killed_between_snapshots_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    """Through the harness: a distillation that dies after its checkpoint at iteration 5 (no snapshot there)
    continues from it in the next run, and its set is the uninterrupted run's."""
    from atombench.jobs import DistillJob

    suite = SUITE.format(iters=8, snaps="[2]", out="OUT").replace(
        "execution: {backend: sequential}", "execution: {backend: sequential, checkpoint_minutes: 0.000001}")
    p, q = tmp_path / "s.yaml", tmp_path / "q.yaml"
    p.write_text(suite.replace("OUT", str(tmp_path / "out")))
    q.write_text(suite.replace("OUT", str(tmp_path / "whole")))
    original = DistillJob._on_checkpoint

    def dies_after_5(self, iteration, state):
        original(self, iteration, state)
        if iteration == 5:
            raise RuntimeError("killed")

    monkeypatch.setattr(DistillJob, "_on_checkpoint", dies_after_5)
    first = run_suite(p, progress=False, echo=lambda *a: None).table
    final = (first["distiller"] == "dm") & first["snapshot"].isna()
    assert (first.loc[final, "status"] == "failed").all()  # (its snapshot at 2 was written and evaluated)
    monkeypatch.setattr(DistillJob, "_on_checkpoint", original)
    out = run_suite(p, progress=False, echo=lambda *a: None).table
    whole = run_suite(q, progress=False, echo=lambda *a: None).table
    store, other = ResultsStore(tmp_path / "out"), ResultsStore(tmp_path / "whole")
    key = out.loc[(out["distiller"] == "dm") & out["snapshot"].isna(), "synset_key"].iloc[0]
    assert store.synset_meta(key)["resumed_from_iteration"] == 5
    from atombench.distillers.base import SyntheticSet

    mine, theirs = (SyntheticSet.load(st.synset_path(key)) for st in (store, other))
    assert torch.allclose(mine.images, theirs.images, atol=1e-5)
    assert not (store.cache_dir / "resume" / f"{key}.pt").exists()


def test_a_checkpoint_past_a_missing_snapshot_is_not_resumed(tmp_path):
    """A state saved at iteration 5 while the suite listed no snapshot at 4: a later suite that lists 4 must not
    resume past it (the snapshot would never be written), so the run starts again."""
    from atombench.jobs import DistillJob

    job = DistillJob("k", {}, tmp_path, "cpu", 1, snapshots=(2, 4))
    job.resume_path().parent.mkdir(parents=True)
    torch.save({"iteration": 5, "images": torch.zeros(1)}, job.resume_path())
    assert job._resume_state() is None  # neither snapshot exists
    assert DistillJob("k", {}, tmp_path, "cpu", 1, snapshots=(8,))._resume_state()["iteration"] == 5
    assert DistillJob("k", {}, tmp_path, "cpu", 1, snapshots=())._resume_state()["iteration"] == 5
