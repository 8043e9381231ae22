"""Cross-architecture evaluation at scale: timm families at small sizes, ensembles, job keys, engines, resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from atombench import registry
from atombench.augment import DSA
from atombench.errors import AtombenchError
from atombench.runner import job_key, run_suite
from atombench.runtime import stable_hash
from atombench.train import TrainConfig, ensemble_exact, train_ensemble, train_model

from .conftest import ROOT, TINY_SUITE, run_cli

QUIET = dict(progress=False, echo=lambda *a: None)


def build(name, channels, size, options=None, num_classes=10):
    fam = registry.models.get(name)
    return fam.build(fam.parse(options or {}), channels, num_classes, size)


# -- any timm family at 32x32 (3 channels) and 28x28 (1 channel) -------------------------------------------
TIMM_FAMILIES = [
    ("resnet18", None), ("convnext_atto", None), ("efficientnet_b0", None), ("mobilenetv3_small_050", None),
    ("regnetx_002", None), ("vit_tiny_patch16_224", {"kwargs": {"patch_size": 4}}),
    ("deit_tiny_patch16_224", {"kwargs": {"patch_size": 4}}), ("mixer_s16_224", None),
]
#: (family, channels, size) that cannot work, with the minimum size the error must name
TOO_SMALL = {("convnext_atto", 1, 28): 32}
SIZES = [(3, 32, "3x32x32"), (1, 28, "1x28x28")]
#: (family, size) in the slow tier, with its time in a full run on the 2-core machine (5-11 s): every family keeps
#: a test in the default run (the other size, or test_models.py::test_timm_models_honour_the_hook)
SLOW_TIMM = {("resnet18", "1x28x28"): "5 s", ("convnext_atto", "3x32x32"): "6 s",
             ("efficientnet_b0", "3x32x32"): "10 s", ("efficientnet_b0", "1x28x28"): "10 s",
             ("mobilenetv3_small_050", "3x32x32"): "7 s", ("mobilenetv3_small_050", "1x28x28"): "7 s",
             ("regnetx_002", "3x32x32"): "9 s", ("regnetx_002", "1x28x28"): "9 s",
             ("vit_tiny_patch16_224", "3x32x32"): "7 s",
             ("deit_tiny_patch16_224", "3x32x32"): "5-8 s", ("deit_tiny_patch16_224", "1x28x28"): "5-8 s"}


@pytest.mark.parametrize("name, options, channels, size", [
    pytest.param(name, options, channels, size, id=f"{name}-{sid}",
                 marks=[pytest.mark.slow(reason=SLOW_TIMM[name, sid])] if (name, sid) in SLOW_TIMM else [])
    for channels, size, sid in SIZES for name, options in TIMM_FAMILIES])
def test_timm_family_trains_one_step_at_small_sizes(name, options, channels, size):
    torch.manual_seed(0)
    least = TOO_SMALL.get((name, channels, size))
    if least:
        with pytest.raises(AtombenchError, match=rf"timm:{name} cannot take {channels}x{size}x{size} inputs: it "
                                                 rf"needs inputs of at least {least}x{least}"):
            build(f"timm:{name}", channels, (size, size), options)
        return
    net = build(f"timm:{name}", channels, (size, size), options)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x, y = torch.randn(4, channels, size, size), torch.tensor([0, 1, 2, 3])
    before = [p.detach().clone() for p in net.parameters()]
    loss = F.cross_entropy(net(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(b, p) for b, p in zip(before, net.parameters()))


@pytest.mark.slow(reason="49 s; default: test_models.py::test_timm_model_trains_a_step_at_28px_one_channel")
def test_a_timm_model_no_suite_names_trains_at_28_and_32_px_from_a_suite_file(tmp_path):
    suite = tmp_path / "timm.yaml"
    suite.write_text(f"""\
name: timm_sizes
datasets:
  - {{name: digits, options: {{size: 28}}, label: d28}}
  - {{name: digits, options: {{size: 32}}, label: d32}}
ipc: [1]
distillers: [random]
models: ["timm:ghostnet_050"]
eval: {{epochs: 2}}
execution: {{backend: sequential}}
device: cpu
output: {tmp_path / 'out'}
""")
    report = run_suite(suite, **QUIET)
    df = report.table
    assert sorted(df["dataset"]) == ["d28", "d32"] and (df["status"] == "ok").all(), df["error"].tolist()
    # a family that cannot take the size fails before any work, naming the model and the minimum size
    bad = tmp_path / "bad.yaml"
    bad.write_text(suite.read_text().replace("timm:ghostnet_050", "timm:convnext_atto").replace("timm_sizes", "bad")
                   .replace(str(tmp_path / "out"), str(tmp_path / "out_bad")))
    res = run_cli("run", bad, cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "timm:convnext_atto cannot take 1x28x28 inputs: it needs inputs of at least 32x32" in res.stderr
    assert not (tmp_path / "out_bad").exists() and not (tmp_path / "results").exists()


# -- ensembles ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm", ["instancenorm", "batchnorm"])
def test_ensemble_equals_separate_runs(norm):
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    images, labels = torch.randn(20, 1, 12, 12, generator=gen), torch.arange(20) % 10
    cfg = TrainConfig(epochs=4, batch_size=8)
    dsa = DSA(digits=True)

    def nets():
        out = []
        for s in range(3):
            torch.manual_seed(s)
            out.append(build("convnet", 1, (12, 12), {"width": 8, "depth": 2, "norm": norm}))
        return out

    alone = nets()
    curves = [train_model(n, images, labels, cfg, torch.Generator().manual_seed(10 + k), dsa)
              for k, n in enumerate(alone)]
    together = nets()
    ens_curves = train_ensemble(together, images, labels, cfg, [torch.Generator().manual_seed(10 + k)
                                                                for k in range(3)], dsa)
    assert len(ens_curves) == 3 and all(len(c) == cfg.epochs + 1 for c in ens_curves)
    for a, b in zip(curves, ens_curves):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-5)
    for a, b in zip(alone, together):
        for (name, t), u in zip(list(a.state_dict().items()), b.state_dict().values()):
            assert torch.allclose(t.float(), u.float(), rtol=1e-4, atol=1e-5), name
    # separately trained models really differ from each other (the comparison is not vacuous)
    assert not torch.allclose(alone[0].classifier.weight, alone[1].classifier.weight)


def test_ensemble_exactness_check():
    assert ensemble_exact(build("convnet", 1, (12, 12)))
    assert not ensemble_exact(build("timm:resnet18", 1, (32, 32), {"kwargs": {"drop_rate": 0.2}}))
    assert not ensemble_exact(build("timm:convnext_atto", 3, (32, 32), {"kwargs": {"drop_path_rate": 0.1}}))


def test_suite_ensemble_mode_matches_the_loop(tmp_path):
    base = TINY_SUITE.replace("seeds: 2", "seeds: 1")
    results = {}
    for mode in ("off", "on"):
        path = tmp_path / f"{mode}.yaml"
        path.write_text(base.replace("models_per_set: 2}", f"models_per_set: 3, ensemble: {mode}}}")
                        + f"output: {tmp_path / mode}\n")
        results[mode] = run_suite(path, **QUIET).table
    off, on = results["off"], results["on"]
    assert (on["ensemble_size"] == 3).all() and (off["ensemble_size"] == 1).all()
    # same jobs (ensemble mode is not part of the key), same accuracies up to float effects
    assert off["job_key"].tolist() == on["job_key"].tolist()
    assert (off["accuracy"] - on["accuracy"]).abs().max() <= 1.0


def test_job_keys_do_not_change_when_speed_options_are_added():
    from atombench.jobs import TRAIN_KEYED_UNLESS_DEFAULT
    from atombench.train import resolve_speed

    # the options that existed before any was added later: what the keys of old results were made of
    legacy = {k: v for k, v in vars(TrainConfig()).items() if k != "ensemble" and k not in TRAIN_KEYED_UNLESS_DEFAULT}
    # keys are made from resolved configs: compile/amp 'auto' resolve to the old defaults on a GPU and for short runs
    current = resolve_speed(vars(TrainConfig()), "cuda", 100)
    assert current["compile"] is False and current["amp"] == "none"
    assert resolve_speed(vars(TrainConfig(epochs=10)), "cpu", 100) == dict(current, epochs=10)
    assert job_key("s", "convnet", {}, current, 3) == stable_hash(["job", "s", "convnet", {}, legacy, 3])
    for change in ({"ensemble": "on"}, {"ensemble": "off"}):
        assert job_key("s", "convnet", {}, dict(current, **change), 3) == job_key("s", "convnet", {}, current, 3)
    for change in ({"compile": True}, {"amp": "bf16"}, {"epochs": 5}, {"lr": 0.1}):
        assert job_key("s", "convnet", {}, dict(current, **change), 3) != job_key("s", "convnet", {}, current, 3)
    assert job_key("s", "convnet", {"width": 8}, current, 3) != job_key("s", "convnet", {}, current, 3)
    assert job_key("s", "convnet", {}, current, 4) != job_key("s", "convnet", {}, current, 3)


def test_cpu_evaluations_at_the_papers_epochs_default_to_compile_and_bf16_and_say_so_in_their_keys(monkeypatch):
    from atombench import train
    from atombench.train import COMPILE_MIN_STEPS, resolve_speed

    monkeypatch.setattr(train, "bf16_fast", lambda device: True)
    long = resolve_speed(vars(TrainConfig()), "cpu", 100)  # 1001 steps
    assert long["compile"] is True and long["amp"] == "bf16"
    assert job_key("s", "convnet", {}, long, 3) != job_key("s", "convnet", {}, resolve_speed(
        vars(TrainConfig()), "cuda", 100), 3)
    # the threshold counts steps: epochs + 1 passes of ceil(images / batch) steps
    edge = vars(TrainConfig(epochs=COMPILE_MIN_STEPS - 1, batch_size=256))
    assert resolve_speed(edge, "cpu", 256)["compile"] is True
    assert resolve_speed(dict(edge, epochs=COMPILE_MIN_STEPS - 2), "cpu", 256)["compile"] is False
    # explicit settings are kept; no image count or an unknown device keeps float32 eager
    assert resolve_speed(dict(vars(TrainConfig()), compile=False, amp="none"), "cpu", 100)["amp"] == "none"
    assert resolve_speed(vars(TrainConfig()), "cpu")["compile"] is False
    assert resolve_speed(vars(TrainConfig()), "auto", 100) == dict(vars(TrainConfig()), compile=False, amp="none")
    monkeypatch.setattr(train, "bf16_fast", lambda device: False)
    assert resolve_speed(vars(TrainConfig()), "cpu", 100) == dict(vars(TrainConfig()), compile=True, amp="none")
    # only the measured architectures (the ConvNet family); a timm model keeps float32 eager
    assert resolve_speed(vars(TrainConfig()), "cpu", 100, "convnet_bn")["compile"] is True
    assert resolve_speed(vars(TrainConfig()), "cpu", 100, "timm:mobilenetv3_small_050") == dict(
        vars(TrainConfig()), compile=False, amp="none")


def test_the_job_graph_resolves_the_speed_defaults_per_job(tmp_path, monkeypatch):
    """IPC 1 at 1000 epochs (1001 steps) compiles and uses bf16 on a CPU with bf16 units; a 4-epoch run does not;
    'auto' never reaches a job or a key."""
    from atombench import train
    from atombench.runner import build_graph, load_checked
    from atombench.store import ResultsStore

    monkeypatch.setattr(train, "bf16_fast", lambda device: True)
    for epochs, expect in ((1000, (True, "bf16")), (4, (False, "none"))):
        path = tmp_path / f"s{epochs}.yaml"
        path.write_text(TINY_SUITE.replace("eval: {epochs: 4,", f"eval: {{epochs: {epochs},")
                        + f"output: {tmp_path / str(epochs)}\n")
        suite, plan = load_checked(path)
        jobs = build_graph(plan, ResultsStore(tmp_path / str(epochs))).evaluate
        assert jobs and {(j.train["compile"], j.train["amp"]) for j in jobs} == {expect}


def test_results_record_the_resolved_configs(tiny_suite):
    df = run_suite(tiny_suite, **QUIET).table
    row = df.iloc[0]
    assert json.loads(row["model_options"]) == {"width": 16, "depth": 2}
    train = json.loads(row["train_config"])
    assert train["epochs"] == 4 and train["augment"] == "none" and train["amp"] == "none"
    assert {"compile", "amp", "ensemble_size", "peak_mem_mb", "train_time_s", "eval_time_s", "threads",
            "atombench_version", "top5_accuracy"} <= set(df.columns)


# -- engines -------------------------------------------------------------------------------------------------
def _engine_suite(tmp_path, backend: str, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(TINY_SUITE.replace("execution: {backend: sequential}", f"execution: {{backend: {backend}, "
                                                                           f"workers: 2}}")
                    + f"output: {tmp_path / name}\n")
    return path


@pytest.fixture(scope="module")
def sequential_table(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seq")
    return run_suite(_engine_suite(tmp, "sequential", "seq"), **QUIET).table


#: engine -> (its module, the suite's backend); Dask, Ray and submitit come with the dev extra: a missing one fails
ENGINES = {
    "loky": ("joblib", "loky"),
    "dask": ("distributed", "dask"),
    "submitit_local": ("submitit", "{name: submitit, cluster: local}"),
    "ray": ("ray", "ray"),
}
#: engines in the slow tier, with their time in a full run on the 2-core machine; loky's test stays in the default
SLOW_ENGINES = {"dask": "17 s; default: the loky engine's test", "ray": "14 s; default: the loky engine's test"}
#: engines whose equality test is heavy (ATOMBENCH_HEAVY=1): submitit's local executor starts a process per job
HEAVY_ENGINES = {"submitit_local": "107 s in CI's run of 2026-12-06 (CI's 20 minutes); default: the loky engine's "
                                   "test and test_backend_options_are_validated"}


@pytest.mark.parametrize("engine", [
    pytest.param(e, marks=[pytest.mark.slow(reason=SLOW_ENGINES[e])] if e in SLOW_ENGINES else
                 [pytest.mark.heavy(reason=HEAVY_ENGINES[e])] if e in HEAVY_ENGINES else []) for e in ENGINES])
def test_every_engine_gives_the_same_results_as_sequential(engine, sequential_table, tmp_path):
    import importlib

    module, backend = ENGINES[engine]
    importlib.import_module(module)  # a dev dependency: required, not skipped
    df = run_suite(_engine_suite(tmp_path, backend, engine), **QUIET).table
    assert (df["status"] == "ok").all(), df["error"].tolist()
    cols = ["dataset", "distiller", "ipc", "seed", "eval_index", "job_key", "accuracy"]
    pd.testing.assert_frame_equal(df[cols].reset_index(drop=True), sequential_table[cols].reset_index(drop=True))
    if engine == "submitit_local":
        assert any((tmp_path / engine / "submitit").rglob("*_log.out"))


def test_backend_options_are_validated(tmp_path):
    from atombench.errors import ConfigError
    from atombench.suite import parse_suite
    import yaml

    doc = yaml.safe_load(TINY_SUITE)
    doc["execution"] = {"backend": {"name": "slurm", "partition": "gpu", "gpus_per_node": 1, "timeout_min": 30}}
    assert parse_suite(doc).execution.backend.partition == "gpu"
    for bad, msg in [({"name": "dask", "partition": "gpu"}, "only apply to the slurm/submitit backends"),
                     ({"name": "loky", "address": "tcp://x:1"}, "address only applies to the dask and ray"),
                     ({"name": "slrum"}, "execution.backend.name"),
                     ({"name": "slurm", "cluster": "local"}, "use name: submitit")]:
        doc["execution"] = {"backend": bad}
        with pytest.raises(ConfigError, match=msg):
            parse_suite(doc)


# -- resume after SIGKILL ----------------------------------------------------------------------------------
RESUME_SUITE = TINY_SUITE.replace("epochs: 4", "epochs: 60").replace("seeds: 2", "seeds: 3")


@pytest.mark.heavy(reason="167 s; out of CI's slow tier since 2026-12-06 (CI's 20 minutes); default: "
                          "test_harness.py's resume test, test_first_hour.py's atomic_write/clean_stale_tmp tests")
def test_sigkill_mid_run_then_rerun_completes_without_recomputing(tmp_path):
    out = tmp_path / "out"
    path = tmp_path / "resume.yaml"
    path.write_text(RESUME_SUITE + f"output: {out}\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "atombench", "run", str(path), "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list((out / "jobs").glob("*.json"))) < 4:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = {p.name: p.stat().st_mtime_ns for p in (out / "jobs").glob("*.json")}
    assert 4 <= len(done) < 24, "the kill should land mid-evaluation"
    for p in done:  # whatever survived is complete
        assert json.loads((out / "jobs" / p).read_text())["status"] == "ok"
    res = run_cli("run", path, "--quiet", env={"PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr
    assert f"{24 - len(done)} to run" in res.stdout
    for p, mtime in done.items():
        assert (out / "jobs" / p).stat().st_mtime_ns == mtime, "a finished job was recomputed"
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")], "stale temporary files were left"
    resumed = pd.read_csv(out / "results.csv")
    # an uninterrupted run into another folder gives the same table
    clean = tmp_path / "clean.yaml"
    clean.write_text(RESUME_SUITE + f"output: {tmp_path / 'clean'}\n")
    full = run_suite(clean, **QUIET).table
    assert resumed["accuracy"].tolist() == pytest.approx(full["accuracy"].tolist())
    assert resumed["job_key"].tolist() == full["job_key"].tolist()


def test_jobs_are_spread_over_several_gpus():
    from atombench.scheduler import Slot, make_slots
    from atombench.suite import BackendSpec

    loky = BackendSpec("loky")
    assert make_slots(loky, "cpu", 3, cores=2) == [Slot("cpu", 1)] * 2
    assert make_slots(loky, "cuda", 5, cores=16, gpu_count=1) == [Slot("cuda", 16)]
    assert make_slots(loky, "cuda", 5, cores=16, gpu_count=4) == [Slot(f"cuda:{i}", 4) for i in range(4)]
    assert make_slots(loky, "cuda:1", 2, cores=8, gpu_count=4) == [Slot("cuda:1", 8)]


@pytest.mark.heavy
def test_compile_and_bf16_switches_train_and_are_recorded(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(TINY_SUITE.replace("seeds: 2", "seeds: 1").replace("models_per_set: 2}", "models_per_set: 1, "
                    "compile: true, amp: bf16}").replace("ipc: [1, 2]", "ipc: [1]") + f"output: {tmp_path / 'o'}\n")
    df = run_suite(path, **QUIET).table
    assert (df["status"] == "ok").all(), df["error"].tolist()
    assert df["compile"].all() and (df["amp"] == "bf16").all()


def test_a_relative_output_folder_works_with_workers_started_from_another_folder(tmp_path, monkeypatch):
    """loky reuses its worker processes across runs in one Python process; a worker started while the process was
    in another folder must still find this run's results folder (jobs carry it as an absolute path)."""
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        monkeypatch.chdir(folder)
        suite = folder / "s.yaml"
        suite.write_text(TINY_SUITE.replace("execution: {backend: sequential}",
                                            "execution: {backend: loky, workers: 2}") + "output: out\n")
        table = run_suite(suite, **QUIET).table
        assert set(table["status"]) == {"ok"}, table[["status", "error"]]


def test_slurm_without_sbatch_is_one_line_before_any_work(tmp_path, monkeypatch):
    """engine: slurm on a machine without Slurm validated, then failed mid-run with submitit's traceback, leaving
    files in the results folder."""
    import shutil

    from atombench.errors import UsageError
    from atombench.scheduler import check_available
    from atombench.suite import EngineSpec

    pytest.importorskip("submitit")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(UsageError, match="no 'sbatch' on its PATH: run from the cluster's login node"):
        check_available(EngineSpec("slurm"))
    check_available(EngineSpec("submitit", cluster="local"))  # no Slurm needed


def test_an_unreachable_engine_is_not_blamed_on_the_disk(tmp_path, monkeypatch):
    """Dask's 'Timed out trying to connect' is an OSError without a file name: it was reported as 'could not write
    <results folder>; free disk space'."""
    from atombench import runner
    from atombench.errors import UsageError

    suite = tmp_path / "s.yaml"
    suite.write_text(TINY_SUITE)

    def unreachable(*a, **k):
        raise OSError("Timed out trying to connect to tcp://127.0.0.1:1 after 30 s")
    monkeypatch.setattr(runner, "_run", unreachable)
    with pytest.raises(UsageError, match=r"could not reach the engine's workers \(Timed out trying to connect"):
        runner.run_suite(str(suite), output=str(tmp_path / "out"), progress=False)

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device", str(tmp_path / "out" / "jobs" / "k.json"))
    monkeypatch.setattr(runner, "_run", disk_full)
    with pytest.raises(runner.AtombenchError, match="No space left on device.*free disk space"):
        runner.run_suite(str(suite), output=str(tmp_path / "out"), progress=False)
