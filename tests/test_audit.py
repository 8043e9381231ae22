"""Defects found by the audit of issue 28, each with the test that failed before its fix."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from atombench import store as store_mod
from atombench.store import ResultsStore


# -- claims: a stale claim is taken over by one run only; a run releases only its own claims -------------------
def _dead_pid() -> int:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    return dead.pid


def test_two_runs_taking_over_one_stale_claim_compute_the_job_once(tmp_path, monkeypatch):
    """Both runs read the same stale claim and judge it stale; run A breaks it and claims the job, and only then
    does run B go on to break what it believes is the stale claim (the interleaving at the unlink)."""
    a, b = ResultsStore(tmp_path), ResultsStore(tmp_path)
    a.claim_path("k").parent.mkdir(parents=True)
    a.claim_path("k").write_text(json.dumps({"host": os.uname().nodename, "pid": _dead_pid(), "run": "gone"}))
    both_read = threading.Barrier(2, timeout=30)
    a_claimed = threading.Event()
    real_alive = store_mod.pid_alive
    judged: set[str] = set()

    def alive(pid):  # each run's first judgement of the stale claim: both have read it before either breaks it
        me = threading.current_thread().name
        if me in judged:
            return real_alive(pid)
        judged.add(me)
        both_read.wait()
        if me == "run-b":
            assert a_claimed.wait(30)
        return False

    monkeypatch.setattr(store_mod, "pid_alive", alive)
    computed, holders = [], {}

    def run(store, run_id):
        holder = store.claim("k", run_id)
        holders[run_id] = holder
        if holder is None:  # claimed: this run computes the job
            computed.append(run_id)
        if run_id == "run-a":
            a_claimed.set()

    threads = [threading.Thread(target=run, args=(s, r), name=r) for s, r in ((a, "run-a"), (b, "run-b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert computed == ["run-a"], f"the job would be computed by {computed}"
    assert holders["run-b"]["run"] == "run-a"
    assert json.loads(a.claim_path("k").read_text())["run"] == "run-a"
    assert sorted(p.name for p in a.claim_path("k").parent.iterdir()) == ["k"], "no takeover debris is left"


def test_a_run_releases_only_its_own_claims(tmp_path):
    a, b = ResultsStore(tmp_path), ResultsStore(tmp_path)
    assert a.claim("k", "run-a") is None
    b.release("k")  # b never claimed k (a blocked unit, a unit waiting on another run): a's claim stands
    assert json.loads(a.claim_path("k").read_text())["run"] == "run-a"
    assert b.claim("k", "run-b")["run"] == "run-a"
    b.release("k")
    assert a.claim_path("k").exists()
    a.release("k")
    assert not a.claim_path("k").exists()
    # a claim of a's that was taken over (a stalled past the TTL) is not released by a: it is b's now
    assert a.claim("j", "run-a") is None
    old = 0
    os.utime(a.claim_path("j"), (old, old))
    text = json.loads(a.claim_path("j").read_text())
    a.claim_path("j").write_text(json.dumps(dict(text, host="elsewhere")))
    os.utime(a.claim_path("j"), (old, old))
    assert b.claim("j", "run-b") is None
    a.release("j")
    assert json.loads(b.claim_path("j").read_text())["run"] == "run-b"
    b.release("j")
    assert not list(a.claim_path("j").parent.iterdir())


def test_a_blocked_unit_does_not_release_another_runs_claim(tmp_path):
    """A run settles a unit it never claimed (blocked: its input failed); another live run's claim on that job
    stands."""
    from dataclasses import dataclass

    from atombench.scheduler import InlineEngine, Scheduler, Slot

    from .test_scheduler import Sleepy, SleepyEval

    @dataclass
    class Boom(Sleepy):
        def run(self):
            return {"job_key": self.key, "status": "failed", "error": "RuntimeError: boom"}

    other = ResultsStore(tmp_path)
    assert other.claim("e_bad", "other-run") is None  # a live run (this process) computes e_bad
    jobs = [[Boom("bad", {}, str(tmp_path))], [SleepyEval("e_bad", {}, str(tmp_path), after=("bad",))]]
    out = Scheduler(ResultsStore(tmp_path), InlineEngine(), [Slot("cpu", 1)], progress=False).run(jobs, done=set())
    assert out.status == {"bad": "failed", "e_bad": "blocked"}
    assert json.loads(other.claim_path("e_bad").read_text())["run"] == "other-run", "the other run's claim stands"
    assert not other.claim_path("bad").exists(), "the run's own claims are released"


# -- the teacher / whole-dataset recipe: DD-Ranking's 200 epochs, lr x0.1 after epoch 100 -------------------------
def _reference_lrs(tmp_path, monkeypatch, epochs: int) -> list[float]:
    """The learning rate of every SGD step of a reference job with ``epochs`` (one step per epoch: 20 images, one
    batch)."""
    import torch

    from atombench.jobs import ReferenceJob
    from atombench.suite import ReferenceConfig
    from atombench import config as cfgmod

    lrs = []
    real_step = torch.optim.SGD.step

    def step(self, *a, **k):
        lrs.append(self.param_groups[0]["lr"])
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.SGD, "step", step)
    ref = cfgmod.to_dict(ReferenceConfig(epochs=epochs, train_per_class=2))
    job = ReferenceJob("ref", {"dataset": "digits"}, str(tmp_path), dataset=("digits", {"size": 8}),
                       model=("convnet", {"width": 4, "depth": 1}), reference=ref)
    row = job.run()
    assert row["status"] == "ok", row.get("error")
    return lrs


def test_the_reference_recipe_trains_the_epochs_it_names_and_decays_after_half(tmp_path, monkeypatch):
    assert _reference_lrs(tmp_path, monkeypatch, 4) == pytest.approx([0.01, 0.01, 0.001, 0.001])
    lrs = _reference_lrs(tmp_path / "b", monkeypatch, 200)  # DD-Ranking: 200 epochs, StepLR(100, 0.1)
    assert lrs == pytest.approx([0.01] * 100 + [0.001] * 100)


def test_the_reference_key_changed_with_the_recipe():
    """Results of the old recipe (201 passes, decay after pass 102) are not reused for the new one."""
    from atombench.jobs import reference_key
    from atombench.runtime import stable_hash

    ref = {"epochs": 200, "batch_size": 512, "lr": 0.01}
    old = stable_hash(["reference", "fp", "convnet", {}, ref])
    assert reference_key("fp", ("convnet", {}), ref) != old
    assert reference_key("fp", ("convnet", {}), ref) == reference_key("fp", ("convnet", {}), dict(ref))


# -- hostile YAML: refused at load time, whatever key it hides under -------------------------------------------
def _bomb(key: str, depth: int = 9) -> str:
    """A billion-laughs document whose last anchor is the value of ``key`` (a dotted path)."""
    lines = ['_: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    prev = "a"
    for c in "bcdefghi"[:depth - 1]:
        lines.append(f"_{c}: &{c} [" + ", ".join([f"*{prev}"] * 9) + "]")
        prev = c
    head, *rest = key.split(".")
    value = f"*{prev}"
    for part in reversed(rest):
        value = f"{{{part}: {value}}}"
    doc = {"name": "bomb", "datasets": "[digits]", "ipc": "[1]", "distillers": "[random]", "models": "[convnet]"}
    doc[head] = value
    return "\n".join(lines + [f"{k}: {v}" for k, v in doc.items()]) + "\n"


@pytest.mark.parametrize("key", ["ipc", "datasets", "distillers", "models", "seeds", "snapshots", "eval.augment",
                                 "eval.epochs", "nas.ipc", "nas.space", "description", "distillers.0"])
def test_an_alias_bomb_is_refused_at_once_whatever_key_it_hides_under(tmp_path, key):
    import signal
    import time

    from atombench.errors import UsageError
    from atombench.suite import load_suite

    path = tmp_path / "bomb.yaml"
    text = _bomb(key) if key != "distillers.0" else _bomb("x").replace("distillers: [random]",
                                                                        "distillers: [random, *i]")
    path.write_text(text)

    def too_long(*_):
        raise TimeoutError("still validating after 10 s")

    old = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(10)
    try:
        start = time.perf_counter()
        with pytest.raises(UsageError) as err:
            load_suite(path)
        took = time.perf_counter() - start
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert took < 0.5, f"{took:.2f} s"
    assert len(str(err.value).splitlines()) == 1 and "alias" in str(err.value) and len(str(err.value)) < 400


def test_a_recursive_alias_is_refused(tmp_path):
    from atombench.errors import UsageError
    from atombench.suite import load_suite

    path = tmp_path / "loop.yaml"
    path.write_text("name: loop\ndatasets: [digits]\nipc: &l [1, *l]\ndistillers: [random]\nmodels: [convnet]\n")
    with pytest.raises(UsageError, match="refers to itself"):
        load_suite(path)


def test_ordinary_anchors_still_load(tmp_path):
    from atombench.suite import load_suite

    path = tmp_path / "ok.yaml"
    path.write_text("name: ok\ndatasets: [digits]\nipc: [1]\ndistillers: [random]\nmodels:\n"
                    "  - &m {name: convnet, options: {width: 8, depth: 1}}\n  - {<<: *m, label: b}\n")
    suite = load_suite(path)
    assert [m.options for m in suite.models] == [{"width": 8, "depth": 1}] * 2


# -- the command line: an empty --output, a folder passed as the suite ------------------------------------------
def _cli(capsys, *args) -> tuple[int, str]:
    """``atombench ARGS`` in this process (as the subprocess would run it): exit code and stderr."""
    from atombench.cli import main

    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def test_an_empty_output_path_is_refused(tiny_suite, tmp_path, monkeypatch, capsys):
    from .conftest import run_cli

    monkeypatch.chdir(tmp_path)
    for command in (["run", tiny_suite, "--quiet"], ["run", tiny_suite, "--dry-run"], ["plan", tiny_suite]):
        for empty in ("", " "):
            code, err = _cli(capsys, *command, "--output", empty)
            assert code == 2 and err.startswith("error: --output") and len(err.splitlines()) == 1, (command, err)
    res = run_cli("run", tiny_suite, "--output", "", cwd=tmp_path)  # as a user runs it
    assert res.returncode == 2 and res.stderr.startswith("error: --output") and "Traceback" not in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"], "nothing written"


def test_an_empty_output_path_is_refused_by_every_command_that_writes(tmp_path, monkeypatch, capsys):
    """report, evaluate and export refuse --output '' too (one line, exit 2), before reading anything."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "res").mkdir()
    (tmp_path / "set.pt").write_bytes(b"")
    for command in (["report", "res"], ["evaluate", "set.pt", "--dataset", "digits"], ["export", "res"]):
        code, err = _cli(capsys, *command, "--output", "")
        assert code == 2 and err.startswith("error: --output") and len(err.splitlines()) == 1, (command, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res", "set.pt"], "nothing written"


def test_a_folder_passed_as_the_suite_is_named_a_folder_with_its_yaml_files(tmp_path, monkeypatch, capsys):
    from .conftest import run_cli

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "suites"
    folder.mkdir()
    for name in ("b.yaml", "a.yml", "notes.txt"):
        (folder / name).write_text("name: x\n")
    (tmp_path / "empty").mkdir()
    want = "error: 'suites' is a folder, not a suite file; name one of its YAML files: suites/a.yml, suites/b.yaml\n"
    for command in ("run", "validate", "plan"):
        assert _cli(capsys, command, "suites") == (2, want)
    assert _cli(capsys, "validate", "empty") == \
        (2, "error: 'empty' is a folder, not a suite file, and it holds no YAML file (*.yaml, *.yml)\n")
    res = run_cli("run", "suites", cwd=tmp_path)  # as a user runs it
    assert (res.returncode, res.stderr) == (2, want)
    assert not (tmp_path / "results").exists()


# -- test tiers: by markers in the test files; the default tier has a time limit --------------------------------
TIERED = '''
import time

import pytest


def test_quick():
    pass


def test_too_slow_for_the_default_tier():
    time.sleep(1.0)


@pytest.mark.slow(reason="1 s; default: test_quick")
def test_marked_slow():
    time.sleep(1.0)


@pytest.mark.parametrize("n", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_one_case_slow(n):
    time.sleep(n)
'''


def test_a_default_tier_test_over_the_limit_fails_unless_marked_slow(tmp_path):
    import shutil

    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_tiers.py").write_text(TIERED)

    def run(**env):
        full = dict(os.environ, **{"ATOMBENCH_TIER_LIMIT_S": "0.5", "CI": "", "ATOMBENCH_HEAVY": "", **env})
        res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "test_tiers.py"],
                             cwd=tmp_path, env=full, capture_output=True, text=True, timeout=300)
        return {line.split(" ")[1]: line.split(" ")[0] for line in res.stdout.splitlines()
                if line.split(" ")[0] in ("PASSED", "FAILED", "SKIPPED")}, res.stdout

    default, out = run()
    assert default["test_tiers.py::test_quick"] == "PASSED"
    assert default["test_tiers.py::test_too_slow_for_the_default_tier"] == "FAILED", out
    assert "over the default tier's 0.5 s" in out and "mark it @pytest.mark.slow" in out
    assert default["test_tiers.py::test_one_case_slow[0]"] == "PASSED"
    assert sum(line.startswith("SKIPPED") for line in out.splitlines()) == 2, out  # the slow ones, by markers
    ci, out = run(CI="true")  # the slow tier runs, without a limit
    assert ci["test_tiers.py::test_marked_slow"] == ci["test_tiers.py::test_one_case_slow[1]"] == "PASSED", out
    off, out = run(ATOMBENCH_TIER_LIMIT_S="0")
    assert off["test_tiers.py::test_too_slow_for_the_default_tier"] == "PASSED", out
