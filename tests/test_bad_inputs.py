"""The corpus of bad inputs in tests/bad_inputs/: each suite file, run with ``atombench run``, must give exactly
the message in its ``.expected`` file (``{tmp}`` stands for the test's temporary folder), its exit code, no
traceback, and leave earlier results untouched. ``ATOMBENCH_UPDATE_GOLDEN=1`` rewrites the .expected files, as it
rewrites tests/golden/ (review the diff before committing; ``ATOMBENCH_REGEN=1``, its former name, still works)."""

import os
from pathlib import Path

import numpy as np
import pytest


CORPUS = Path(__file__).parent / "bad_inputs"
#: exit code per case (2 = bad input, the default; 3 = the run went on but some jobs failed)
EXIT = {"plugin_raises_mid_distillation": 3}
#: problems only a run can meet (the suite itself is valid)
RUN_TIME = {"plugin_raises_mid_distillation", "unwritable_output"}
#: rewrite the expected outputs instead of comparing (ATOMBENCH_REGEN: the variable's former name)
UPDATE_GOLDEN = os.environ.get("ATOMBENCH_UPDATE_GOLDEN") or os.environ.get("ATOMBENCH_REGEN")


def _truncated_mnist(folder: Path) -> None:
    folder.mkdir(parents=True)
    for prefix, n in (("train", 20), ("t10k", 10)):
        header = (0x803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (n, 28, 28))
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(header + bytes(28 * 28 * n // 2))  # half the pixels
        labels = (0x801).to_bytes(4, "big") + n.to_bytes(4, "big") + bytes(np.arange(n, dtype=np.uint8) % 10)
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(labels)


class _Pickled:
    """An object whose unpickling would run a command: a set file holding one must be refused."""

    def __reduce__(self):
        return (os.system, ("true",))


def _bad_sets(folder: Path) -> None:
    """Synthetic-set files for the ``files`` cases (digits: 10 classes of 1x8x8 images), each wrong in one way."""
    import torch

    from atombench.factories import load_dataset

    folder.mkdir(parents=True)
    real = load_dataset("digits", {})
    one = torch.stack([real.train_x[int(ci[0])] for ci in real.class_indices])  # one image per class, normalised
    labels = torch.arange(10)
    pixels = real.denormalise(one).clamp(0, 1)
    nan = one.clone()
    nan[3, 0, 2, 2] = float("nan")
    for name, images, labs in (("shape", one.expand(10, 3, 8, 8).contiguous(), labels),
                               ("classes", one, labels % 5), ("ipc", torch.cat([one, one]), labels.repeat(2)),
                               ("nan", nan, labels), ("range", one, labels), ("space", pixels, labels),
                               ("labels", one, torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 10, -1]))):
        torch.save({"images": images, "labels": labs}, folder / f"{name}.pt")
    torch.save({"images": one, "labels": labels, "note": _Pickled()}, folder / "pickle.pt")


#: The corpus runner: ``python -c _RUNNER CASES_JSON`` imports the command line's ``main`` (what ``python -m
#: atombench`` and the console script call) and torch once, then forks one child per case, so that each case starts
#: from a fresh process state (nothing a case imports or registers reaches the next) without paying torch's start-up
#: 42 times (CI runs the corpus: about 3.5 s of start-up per case on 2 cores). Each child runs ``atombench run SUITE
#: --quiet`` in the case's folder, then (unless the case is ``run_only``) ``atombench validate SUITE`` and
#: ``atombench plan SUITE``, and writes ``{command: [exit code, stderr]}`` as JSON beside the suite; an exception
#: escaping ``main`` is written as ``{"traceback": ...}`` and fails the case.
_RUNNER = """
import contextlib, io, json, os, signal, sys, time, traceback
import pandas, timm, torch, torchvision  # what a command's first call imports: once, before the forks
import atombench.factories, atombench.runner, atombench.scheduler, atombench.suite
from atombench.cli import main

def run_case(case):
    os.chdir(case["dir"])
    out = {}
    try:
        for command in ["run", "validate", "plan"][:1 if case["run_only"] else 3]:
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                try:
                    code = main([command, case["suite"]] + (["--quiet"] if command == "run" else []))
                except SystemExit as exc:
                    code = exc.code
            out[command] = [code, err.getvalue()]
    except BaseException:
        out = {"traceback": traceback.format_exc()}
    with open(case["result"], "w") as fh:
        json.dump(out, fh)

for case in json.loads(sys.argv[1]):
    pid = os.fork()
    if pid == 0:
        try:
            run_case(case)
        finally:
            os._exit(0)
    deadline = time.monotonic() + 300  # a case that hangs is killed (no result file: the case fails)
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            break
        time.sleep(0.05)
"""


def _prepare(case: str, folder: Path) -> dict:
    """The case's folder as the test expects it: the suite, the inputs its problem needs, an earlier run's table."""
    folder.mkdir(parents=True)
    suite = folder / f"{case}.yaml"
    suite.write_text((CORPUS / f"{case}.yaml").read_text().replace("{tmp}", str(folder)))
    _truncated_mnist(folder / "truncated")
    if case.startswith("set_files"):
        _bad_sets(folder / "sets")
    if case.startswith("image_folder"):
        from .test_image_folder import make_bad_trees

        make_bad_trees(folder / "trees")
    (folder / "a_file").write_text("a file, not a folder\n")
    earlier = folder / "out" / "results.csv"  # a previous run's table must survive
    earlier.parent.mkdir()
    earlier.write_text("earlier,results\n1,2\n")
    return {"dir": str(folder), "suite": str(suite), "run_only": case in RUN_TIME,
            "result": str(folder / "commands.json")}


CASES = sorted(p.stem for p in CORPUS.glob("*.yaml"))


@pytest.fixture(scope="module")
def corpus(request, tmp_path_factory, plugin_site):
    """Every selected case prepared in its own folder and run by one corpus-runner process: {case: (folder,
    commands)}."""
    import json
    import subprocess
    import sys

    base = tmp_path_factory.mktemp("bad_inputs")
    selected = {item.callspec.params["case"] for item in request.session.items
                if getattr(item, "originalname", "") == "test_bad_input"}
    cases = {case: _prepare(case, base / case) for case in CASES if case in selected}
    env = dict(os.environ, PYTHONPATH=str(plugin_site))
    res = subprocess.run([sys.executable, "-c", _RUNNER, json.dumps(list(cases.values()))], cwd=base, env=env,
                         capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    out = {}
    for case, spec in cases.items():
        result = Path(spec["result"])
        out[case] = (Path(spec["dir"]), json.loads(result.read_text()) if result.exists() else {"traceback": "the case wrote no result: it crashed or hung"})
    return out


@pytest.mark.parametrize("case", CASES)
def test_bad_input(case, corpus):
    tmp_path, done = corpus[case]
    assert "traceback" not in done, done.get("traceback")
    earlier = tmp_path / "out" / "results.csv"
    code, stderr = done["run"]
    err = stderr.replace(str(tmp_path), "{tmp}")
    expected = CORPUS / f"{case}.expected"
    if UPDATE_GOLDEN and (not expected.exists() or err != expected.read_text()):
        expected.write_text(err)
        pytest.fail(f"{expected} regenerated: review its diff, then rerun without ATOMBENCH_UPDATE_GOLDEN")
    assert "Traceback" not in stderr
    assert code == EXIT.get(case, 2), stderr
    assert err == expected.read_text()
    if case not in RUN_TIME:  # validate and plan refuse the same suites as run, with the same lines, writing nothing
        assert done["validate"] == done["plan"] == [code, stderr]
    if case != "plugin_raises_mid_distillation":
        assert earlier.read_text() == "earlier,results\n1,2\n"
        assert sorted(p.name for p in earlier.parent.iterdir()) == ["results.csv"], "nothing else written"
        assert not (tmp_path / "results").exists(), "nothing written under the default results folder"
    else:  # the failed distillation is recorded with its reason; the other method's jobs ran
        import pandas as pd

        df = pd.read_csv(tmp_path / "out" / "results.csv")
        failed = df[df["distiller"] == "explode_mid"]
        assert failed["status"].tolist() == ["failed"]
        assert failed["error"].iloc[0] == "distillation failed: RuntimeError: plug-in bug at iteration 2"
        assert df[df["distiller"] == "random"]["status"].tolist() == ["ok"]
