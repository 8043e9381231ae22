"""The structure of the job graph, the scheduler and the store (no function over 60 lines), and the claims'
takeover when a removal guard is stale."""

import ast
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from atombench import store as store_mod
from atombench.store import ResultsStore, guard_path

ROOT = Path(__file__).resolve().parents[1]


def test_no_function_of_the_job_graph_the_scheduler_or_the_store_is_over_60_lines():
    for name in ("runner.py", "grid.py", "jobs.py", "nas.py", "scheduler.py", "store.py"):
        tree = ast.parse((ROOT / "atombench" / name).read_text())
        long = {f"{node.name} (line {node.lineno}): {node.end_lineno - node.lineno + 1} lines"
                for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                and node.end_lineno - node.lineno + 1 > 60}
        assert not long, f"atombench/{name}: {sorted(long)}"


# -- a stale removal guard: two claimants judge it stale, one takes the claim over ------------------------------
def _dead_pid() -> int:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    return dead.pid


def _stale_claim_and_guard(store: ResultsStore) -> tuple[Path, Path]:
    """A claim left by a dead run, and the removal guard left by a run that died while breaking it."""
    path = store.claim_path("k")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"host": os.uname().nodename, "pid": _dead_pid(), "run": "gone"}))
    guard = guard_path(path, path.read_text())
    guard.write_text("a run that died within the takeover")
    old = time.time() - 3600
    os.utime(guard, (old, old))
    return path, guard


def test_a_stale_removal_guard_does_not_stop_the_takeover(tmp_path):
    store = ResultsStore(tmp_path)
    path, _ = _stale_claim_and_guard(store)
    assert store.claim("k", "run-a") is None
    assert json.loads(path.read_text())["run"] == "run-a"
    assert sorted(p.name for p in path.parent.iterdir()) == ["k"], "no takeover debris is left"


def test_two_runs_judging_one_stale_guard_stale_compute_the_job_once(tmp_path, monkeypatch):
    """Both runs find the guard of a stale claim left by a dead run, and both judge it stale. Run A removes it,
    makes its own guard and, holding it, is about to break the stale claim; only then does run B go on to remove
    what it judged the stale guard (the interleaving at the unlink of the lock). B must not remove A's guard: A
    takes the claim over, B does not, and the job is computed once."""
    a, b = ResultsStore(tmp_path), ResultsStore(tmp_path)
    path, stale_guard = _stale_claim_and_guard(a)
    both_judged = threading.Barrier(2, timeout=30)
    a_holds_its_guard, b_done = threading.Event(), threading.Event()
    real_age, real_read = store_mod._age, store_mod._read
    judged: set[str] = set()

    def age(p):  # each run's judgement of the stale guard: both judge it before either removes it
        seconds = real_age(p)
        me = threading.current_thread().name
        if p == stale_guard and me not in judged:
            judged.add(me)
            both_judged.wait()
            if me == "run-b":
                assert a_holds_its_guard.wait(30)
        return seconds

    def read(p):  # run A has re-read the stale claim under its own guard: B goes on now
        text = real_read(p)
        if p == path and threading.current_thread().name == "run-a" and not a_holds_its_guard.is_set():
            assert stale_guard.exists(), "A holds the guard of the stale claim"
            a_holds_its_guard.set()
            assert b_done.wait(30)
        return text

    monkeypatch.setattr(store_mod, "_age", age)
    monkeypatch.setattr(store_mod, "_read", read)
    computed, holders = [], {}

    def run(store, run_id):
        try:
            holders[run_id] = store.claim("k", run_id)
            if holders[run_id] is None:  # claimed: this run computes the job
                computed.append(run_id)
        finally:
            if run_id == "run-b":
                b_done.set()

    threads = [threading.Thread(target=run, args=(s, r), name=r) for s, r in ((a, "run-a"), (b, "run-b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert judged == {"run-a", "run-b"} and a_holds_its_guard.is_set()
    assert computed == ["run-a"], f"the job would be computed by {computed}"
    assert holders["run-b"] is not None  # B waits: the claim is being taken over by another run
    assert json.loads(path.read_text())["run"] == "run-a"
    assert b.claim("k", "run-b")["run"] == "run-a", "B, asking again, finds A's claim"
    assert sorted(p.name for p in path.parent.iterdir()) == ["k"], "no takeover debris is left"
    a.release("k")
    assert not path.exists()
