"""Reliability: kills at random moments, concurrent runs, a full disk, damaged artifacts."""

import errno
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from atombench.cli import main
from atombench.distillers.base import SyntheticSet
from atombench.runner import run_suite

from .conftest import ROOT, run_cli

QUIET = dict(progress=False, echo=lambda *a: None)

SUITE = """\
name: crash
datasets:
  - name: digits
ipc: [1, 2]
distillers:
  - random
  - name: dm
    config: {iterations: 40, batch_real: 16}
models:
  - name: convnet
    options: {width: 16, depth: 2}
seeds: 2
eval: {epochs: 30, batch_size: 64, models_per_set: 2}
execution: {backend: sequential}
device: cpu
"""


def _write(tmp_path: Path, name: str, out: Path, text: str = SUITE) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text + f"output: {out}\n")
    return path


def check_every_file_is_complete_or_absent(root: Path) -> None:
    """Every file a run leaves (temporary files of killed writers aside) is complete and valid."""
    for f in root.rglob("*"):
        if f.is_dir() or f.name.endswith(".tmp"):
            continue
        if f.name.endswith(".safetensors"):
            SyntheticSet.load(f)  # verifies the sha256 of the tensors against the metadata
        elif f.suffix == ".json":
            assert isinstance(json.loads(f.read_text()), dict), f
        elif f.suffix == ".csv":
            pd.read_csv(f)
        elif f.suffix == ".yaml":
            yaml.safe_load(f.read_text())


@pytest.fixture(scope="module")
def reference_table(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ref")
    return run_suite(_write(tmp, "ref", tmp / "out"), **QUIET).table


@pytest.mark.heavy  # about 2 minutes; CI runs the single-kill resume test in test_execution.py
def test_sigkill_at_random_moments_then_rerun_gives_the_uninterrupted_table(tmp_path, reference_table):
    out = tmp_path / "out"
    path = _write(tmp_path, "crash", out)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    rng = random.Random(1234)
    kills = 0
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-m", "atombench", "run", str(path), "--quiet"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(2.0, 7.0))  # import + preflight take about 2-3 s here; then distil / evaluate
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        if out.exists():
            check_every_file_is_complete_or_absent(out)
    assert kills >= 3, "the loop should really interrupt runs"
    res = run_cli("run", path, "--quiet", env={"PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr
    check_every_file_is_complete_or_absent(out)
    assert not list(out.rglob("*.tmp")), "temporary files of killed writers are cleaned up"
    table = pd.read_csv(out / "results.csv")
    cols = ["dataset", "distiller", "ipc", "seed", "eval_index", "job_key", "accuracy"]
    pd.testing.assert_frame_equal(table[cols], reference_table[cols].reset_index(drop=True), check_dtype=False)


@pytest.mark.heavy  # about 2 minutes
def test_two_concurrent_runs_of_overlapping_suites_into_one_folder(tmp_path, reference_table):
    out = tmp_path / "shared"
    a = _write(tmp_path, "a", out)
    # b overlaps a (same jobs) and adds a seed, and runs its jobs on a cluster engine (submitit, local)
    b_text = SUITE.replace("seeds: 2", "seeds: 3")
    b_text = b_text.replace("{backend: sequential}", "{backend: {name: submitit, cluster: local}}")  # a dev dep
    b = _write(tmp_path, "b", out, b_text)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-m", "atombench", "run", str(p), "--quiet"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for p in (a, b)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    check_every_file_is_complete_or_absent(out)
    jobs = [json.loads(f.read_text()) for f in (out / "jobs").glob("*.json")]
    keys = [j["job_key"] for j in jobs]
    assert len(keys) == len(set(keys)) == 3 * 8  # one result per job, no duplicates: seeds x ipc x dist x models
    assert all(j["status"] == "ok" for j in jobs)
    # re-running either suite does no work and reproduces the uninterrupted table
    again = run_suite(a, **QUIET)
    assert again.distilled == 0 and again.evaluated == 0
    cols = ["job_key", "accuracy"]
    pd.testing.assert_frame_equal(again.table[cols], reference_table[cols].reset_index(drop=True))


def test_a_full_disk_mid_run_is_one_line_and_keeps_earlier_results(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    path = _write(tmp_path, "disk", out, SUITE.replace("  - name: dm\n    config: {iterations: 40, batch_real: 16}\n",
                                                      "").replace("epochs: 30", "epochs: 2"))
    assert main(["run", str(path), "--quiet"]) == 0
    before = {f: f.read_bytes() for f in out.rglob("*") if f.is_file()}
    path.write_text(path.read_text().replace("seeds: 2", "seeds: 3"))
    import atombench.runtime as rt

    calls = {"n": 0}
    real_fsync = os.fsync

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] > 3:  # the disk fills up after a few files
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(rt.os, "fsync", fsync)
    capsys.readouterr()
    code = main(["run", str(path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and "free disk space" in lines[0], err
    assert "Traceback" not in err
    for f, data in before.items():  # every earlier file is intact (results.csv included)
        if f.name not in ("suite.json", "suite.yaml"):  # the suite as run now
            assert f.read_bytes() == data, f
    assert not list(out.rglob("*.tmp"))
    monkeypatch.undo()
    assert main(["run", str(path), "--quiet"]) == 0  # space is back: the run completes


@pytest.mark.heavy(reason="92 s; out of CI's slow tier since 2026-12-06 (CI's 20 minutes); default: "
                          "test_harness.py's tamper-detection test")
def test_damaged_artifacts_are_detected_and_recomputed_with_a_warning(tmp_path):
    out = tmp_path / "out"
    path = _write(tmp_path, "dmg", out, SUITE.replace("epochs: 30", "epochs: 2"))
    first = run_suite(path, **QUIET).table
    synset = sorted((out / "synsets").glob("*.safetensors"))[0]
    data = bytearray(synset.read_bytes())
    data[-5] ^= 0xFF  # flip a byte of the tensors
    synset.write_bytes(bytes(data))
    job = sorted((out / "jobs").glob("*.json"))[0]
    row = json.loads(job.read_text())
    row["accuracy"] = 99.9  # a forged result
    job.write_text(json.dumps(row))
    truncated = sorted((out / "jobs").glob("*.json"))[1]
    truncated.write_text(truncated.read_text()[:40])
    said = []
    report = run_suite(path, progress=False, echo=said.append)
    warnings = [s for s in said if s.startswith("warning:")]
    assert any(synset.name in w and "recomputing" in w for w in warnings), said
    assert any(job.name in w and "checksum" in w for w in warnings), said
    assert any(truncated.name in w for w in warnings), said
    assert report.distilled == 1 and report.evaluated >= 2
    assert report.table["accuracy"].tolist() == pytest.approx(first["accuracy"].tolist())
    check_every_file_is_complete_or_absent(out)


@pytest.mark.parametrize("field, value", [("name", "../../escape"), ("name", "a/b"),
                                          ("label", "../../escape"), ("label", "..")])
def test_user_strings_cannot_escape_the_output_folder(field, value):
    from atombench.errors import ConfigError
    from atombench.suite import parse_suite

    doc = yaml.safe_load(SUITE)
    if field == "name":
        doc["name"] = value
    else:
        doc["distillers"][0] = {"name": "random", "label": value}
    with pytest.raises(ConfigError, match="must be"):
        parse_suite(doc)


def test_artifacts_load_without_pickle(tmp_path):
    """Synthetic sets are safetensors + JSON: loading never unpickles (a pickle bomb is refused)."""
    import pickle

    class Bomb:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    path = tmp_path / "evil.safetensors"
    blob = pickle.dumps(Bomb())
    path.write_bytes(blob)
    # the right checksum, so that the loader gets past it and has to parse the file
    Path(f"{path}.json").write_text(json.dumps({"sha256": hashlib.sha256(blob).hexdigest()}))
    with pytest.raises(Exception) as err:
        SyntheticSet.load(path)
    assert "checksum" not in str(err.value), "the file was refused by its checksum, not parsed"
    assert not (tmp_path / "pwned").exists()
