"""Evaluation training on the CPU: time per training step of each speed setting, and the accuracy each gives.

    python benchmarks/bench_eval.py timing   [--models convnet convnet_bn timm:convnext_atto] [--ipc 1 10 50]
                                             [--epochs 20] [--rounds 3] [--settings ...]
    python benchmarks/bench_eval.py accuracy [--ipc 10] [--models-per-setting 8] [--epochs 1000] [--workers 2]
                                             [--settings eager default]
    python benchmarks/bench_eval.py overhead [--ipc 10] [--repeats 4]
    python benchmarks/bench_eval.py testpass [--dataset fashion_mnist] [--ipc 10] [--train-epochs 200] [--rounds 3]
    python benchmarks/bench_eval.py profile  [--model convnet] [--ipc 10] [--epochs 10] [--setting compile]

Both parts use Fashion-MNIST through atombench's own loader (Debian's ``dataset-fashion-mnist``), a class-balanced
random subset of the training set as the synthetic set (a fixed seed), and the evaluation code the harness runs
(:func:`atombench.train.train_model`, :func:`atombench.train.evaluate`, DSA as ``augment: dsa``, the common
protocol: SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 256, lr x0.1 at half).

Settings (``--settings``): ``eager`` (float32, no compilation: the default before issue 29), ``bf16`` (bf16
autocast), ``channels_last`` (the network and its input in channels-last layout), ``bf16_cl``, ``compile``
(``torch.compile``, default mode), ``compile_cl``, ``compile_bf16``, ``compile_bf16_cl``, ``compile_max_bf16``
(``max-autotune-no-cudagraphs`` + bf16), and ``default`` (what ``compile: auto, amp: auto`` resolve to here).

``timing``: one process per (model, IPC) with one torch thread (a worker's share of the machine). Each setting is
first called once (the compile time: the first call's excess over its steady time) and once more with a fresh
model (the compile time a second job of the same shape pays: dynamo's cache is reused), then the settings take
turns for ``--rounds`` rounds of ``--epochs`` epochs each, so that whatever else the machine does falls on all of
them alike. Prints ms per training step and the ratio to ``eager``.

``accuracy``: ``--models-per-setting`` ConvNet-3 models per setting, all trained on the same set at the full
protocol (1000 epochs) and tested on the 10,000 test images, the jobs of the settings interleaved over
``--workers`` processes of one thread each (joblib). Prints each setting's accuracy (mean ± std over models),
a Welch t-test against ``eager``, the mean wall time per evaluation (setup, training and test) and its ratio.

Every process is set up as the harness's workers are: one torch thread and glibc's malloc tuned
(``atombench.runtime.tune_malloc``, since 2026-12-07; ``ATOMBENCH_MALLOC=default`` keeps glibc's defaults, as the
figures measured before then had them).

``testpass``: the test pass after training (the whole test split, :func:`atombench.train.evaluate`) of ConvNet-3
trained on an IPC-``--ipc`` random set, eager and compiled (``compile: true`` runs it compiled since 2026-12-07),
at batch 256 (the default ``test_batch_size``) and 64, the four taking turns for ``--rounds`` rounds in one process
of one thread (so whatever else the machine does falls on all alike). Prints seconds per pass, the ratio to eager
at 256, the accuracy, the number of test images whose predicted class differs from eager's at 256 and the largest
logit difference. ``--dataset cifar10_jpeg`` reads the archive from ``$ATOMBENCH_DATA``.

``profile``: where a training step's time goes, by ``torch.profiler`` (one thread, after a first job of the same
shape has paid the compilation): ``--epochs`` epochs of the harness's training at ``--ipc`` under one setting, each
operator's own time per step grouped by operator and input shapes (a convolution's forward and backward per
layer; under ``compile`` inductor's fused kernels appear as ``CompiledFunction`` and ``kernel`` rows), the largest
first, with its share of the step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

SETTINGS = {
    "eager": dict(compile=False, amp="none"),
    "bf16": dict(compile=False, amp="bf16"),
    "channels_last": dict(compile=False, amp="none", cl=True),
    "bf16_cl": dict(compile=False, amp="bf16", cl=True),
    "compile": dict(compile=True, amp="none"),
    "compile_cl": dict(compile=True, amp="none", cl=True),
    "compile_bf16": dict(compile=True, amp="bf16"),
    "compile_bf16_cl": dict(compile=True, amp="bf16", cl=True),
    "compile_max_bf16": dict(compile="max-autotune-no-cudagraphs", amp="bf16"),
    "default": dict(compile="auto", amp="auto"),
}


def _one_thread() -> None:
    """A worker's share of the machine, as the harness sets it up: one torch thread, glibc's malloc tuned
    (:func:`atombench.runtime.tune_malloc`; ``ATOMBENCH_MALLOC=default`` keeps glibc's defaults)."""
    import torch

    from atombench.runtime import tune_malloc

    torch.set_num_threads(1)
    tune_malloc()


def _setup(ipc: int, seed: int = 0):
    import torch

    from atombench.factories import load_dataset

    data = load_dataset("fashion_mnist", {})
    g = torch.Generator().manual_seed(seed)
    x = torch.cat([data.sample_class(c, ipc, g) for c in range(data.num_classes)])
    y = torch.arange(data.num_classes).repeat_interleave(ipc)
    return data, x, y


def _net(model: str, data, seed: int, setting: dict):
    import torch
    from torch import nn

    from atombench.factories import build_model

    net = build_model(model, {}, data, seed)
    if setting.get("cl"):
        class ChannelsLast(nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner.to(memory_format=torch.channels_last)

            def forward(self, x):
                return self.inner(x.contiguous(memory_format=torch.channels_last))
        net = ChannelsLast(net)
    return net


def _train(net, x, y, data, setting: dict, epochs: int, seed: int):
    import dataclasses

    import torch

    from atombench.jobs import train_augment
    from atombench.train import TrainConfig, train_model

    mode = setting["compile"]
    if mode == "auto" or setting["amp"] == "auto":  # what the defaults resolve to at the full protocol (1000 epochs)
        from atombench.train import resolve_speed

        setting = dict(setting, **{k: v for k, v in resolve_speed(
            {"compile": mode, "amp": setting["amp"], "epochs": 1000}, "cpu", len(x)).items()
            if k in ("compile", "amp")})
        mode = setting["compile"]
    cfg = TrainConfig(epochs=epochs, augment="dsa", amp=setting["amp"],
                      compile=mode if mode in (True, False, "auto") else True)
    if isinstance(mode, str) and mode != "auto":  # a named compile mode: compile here, train eagerly on the result
        compiled = torch.compile(net, mode=mode, dynamic=False)
        cfg = dataclasses.replace(cfg, compile=False)
        return train_model(compiled, x, y, cfg, torch.Generator().manual_seed(seed), train_augment(cfg, data)), cfg
    return train_model(net, x, y, cfg, torch.Generator().manual_seed(seed), train_augment(cfg, data)), cfg


def timing_cell(model: str, ipc: int, epochs: int, rounds: int, settings: list[str]) -> dict:
    _one_thread()
    data, x, y = _setup(ipc)
    steps = (epochs + 1) * -(-len(x) // 256)
    out = {}
    for name in settings:
        s = SETTINGS[name]
        t0 = time.perf_counter()
        _train(_net(model, data, 0, s), x, y, data, s, 1, 0)  # 2 passes: compilation + first steps
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        _train(_net(model, data, 1, s), x, y, data, s, 1, 1)  # a second job of the same shape
        second = time.perf_counter() - t0
        out[name] = {"first_s": first, "second_s": second, "total_s": 0.0}
    for _ in range(rounds):
        for name in settings:
            s = SETTINGS[name]
            net = _net(model, data, 2, s)
            t0 = time.perf_counter()
            _train(net, x, y, data, s, epochs, 2)
            out[name]["total_s"] += time.perf_counter() - t0
    for name, r in out.items():
        r["step_ms"] = 1000 * r["total_s"] / (rounds * steps)
        per_step = r["step_ms"] / 1000
        two = 2 * -(-len(x) // 256)  # steps of the 2-pass calls
        r["compile_s"] = max(0.0, r["first_s"] - two * per_step)
        r["recompile_s"] = max(0.0, r["second_s"] - two * per_step)
    return out


def _timing(args) -> None:
    print(f"# bench_eval timing: Fashion-MNIST, DSA, batch 256, {args.epochs} epochs x {args.rounds} rounds per "
          f"setting, 1 torch thread per process", flush=True)
    print("| model | IPC | setting | ms / step | x eager | compile s (first job) | compile s (next job) |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for model in args.models:
        for ipc in args.ipc:
            cmd = [sys.executable, __file__, "_cell", model, str(ipc), str(args.epochs), str(args.rounds),
                   ",".join(args.settings)]
            res = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
            if res.returncode != 0:
                print(f"| {model} | {ipc} | failed: {res.stderr.strip().splitlines()[-1:]} |||||", flush=True)
                continue
            out = json.loads(res.stdout.strip().splitlines()[-1])
            base = out.get("eager", {}).get("step_ms")
            for name, r in out.items():
                ratio = f"{base / r['step_ms']:.2f}" if base else "-"
                print(f"| {model} | {ipc} | {name} | {r['step_ms']:.1f} | {ratio} | {r['compile_s']:.1f} | "
                      f"{r['recompile_s']:.1f} |", flush=True)


def accuracy_job(setting: str, model_seed: int, ipc: int, epochs: int) -> dict:
    from atombench.train import evaluate

    _one_thread()
    t0 = time.perf_counter()
    data, x, y = _setup(ipc)
    s = SETTINGS[setting]
    net = _net("convnet", data, model_seed, s)
    _, cfg = _train(net, x, y, data, s, epochs, model_seed)
    t1 = time.perf_counter()
    from atombench.train import resolve_speed

    amp = resolve_speed({"amp": s["amp"], "compile": False, "epochs": epochs}, "cpu", len(x))["amp"]
    acc = evaluate(net, data.test_x, data.test_y, 256, "cpu", amp)["accuracy"]
    t2 = time.perf_counter()
    return {"setting": setting, "seed": model_seed, "accuracy": acc, "train_s": t1 - t0, "test_s": t2 - t1,
            "wall_s": t2 - t0, "pid": os.getpid()}


def _accuracy(args) -> None:
    import numpy as np
    from joblib import Parallel, delayed
    from scipy.stats import ttest_ind

    from atombench.train import resolve_speed

    print(f"# bench_eval accuracy: Fashion-MNIST IPC {args.ipc} (random real subset, seed 0), ConvNet-3, "
          f"{args.epochs} epochs, DSA, {args.models_per_setting} models per setting, {args.workers} workers x 1 "
          f"thread; default here = {resolve_speed({'epochs': args.epochs}, 'cpu', args.ipc * 10)}", flush=True)
    tasks = [(s, 1000 + i) for i in range(args.models_per_setting) for s in args.settings]  # interleaved
    rows = Parallel(n_jobs=args.workers, backend="loky")(
        delayed(accuracy_job)(s, seed, args.ipc, args.epochs) for s, seed in tasks)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    by = {s: [r for r in rows if r["setting"] == s] for s in args.settings}
    base = by.get("eager")
    print("| setting | accuracy (mean ± std) | Welch p vs eager | s per evaluation | x eager |")
    print("|---|---:|---:|---:|---:|")
    for s, rs in by.items():
        acc = np.array([r["accuracy"] for r in rs])
        wall = np.mean([r["wall_s"] for r in rs])
        p = ttest_ind(acc, [r["accuracy"] for r in base], equal_var=False).pvalue if base and s != "eager" else None
        ratio = np.mean([r["wall_s"] for r in base]) / wall if base else float("nan")
        print(f"| {s} | {acc.mean():.2f} ± {acc.std(ddof=1):.2f} | {'-' if p is None else f'{p:.2f}'} | "
              f"{wall:.0f} | {ratio:.2f} |", flush=True)


def overhead(ipc: int, repeats: int) -> None:
    """What an evaluation job does besides training, each part timed over ``repeats`` jobs in one process: the
    dataset (cached per process after the first), the set's file, the network, the augmentation, the test pass
    (float32 and bf16, batch 256 and 1000) and the record."""
    import tempfile
    from pathlib import Path

    from atombench.distillers.base import SyntheticSet
    from atombench.jobs import train_augment
    from atombench.factories import build_model, load_dataset
    from atombench.store import ResultsStore
    from atombench.train import TrainConfig, bf16_fast, evaluate

    _one_thread()
    parts: dict[str, list[float]] = {}

    def timed(name, fn):
        t0 = time.perf_counter()
        out = fn()
        parts.setdefault(name, []).append(time.perf_counter() - t0)
        return out

    with tempfile.TemporaryDirectory() as tmp:
        store = ResultsStore(Path(tmp))
        data, x, y = _setup(ipc)
        SyntheticSet(x, y, {"num_images": len(x)}).save(store.synset_path("k"))
        for r in range(repeats):
            timed("dataset (cached in the process)", lambda: load_dataset("fashion_mnist", {}))
            timed("synthetic set file", lambda: SyntheticSet.load(store.synset_path("k")))
            net = timed("network", lambda: build_model("convnet", {}, data, r))
            timed("DSA set-up", lambda: train_augment(TrainConfig(augment="dsa"), data))
            for amp in ("none", "bf16") if bf16_fast("cpu") else ("none",):  # bf16 is emulated (slow) elsewhere
                for bs in (256, 1000):
                    timed(f"test pass, 10,000 images, {amp}, batch {bs}",
                          lambda: evaluate(net, data.test_x, data.test_y, bs, "cpu", amp))
            timed("record", lambda: store.write_job(f"j{r}", {"accuracy": 1.0, "status": "ok"}))
    print(f"# bench_eval overhead: Fashion-MNIST IPC {ipc}, ConvNet-3, 1 thread, {repeats} jobs (first excluded)")
    print("| part | s per job |")
    print("|---|---:|")
    for name, ts in parts.items():
        rest = ts[1:] or ts
        print(f"| {name} | {sum(rest) / len(rest):.3f} |")


def testpass(dataset: str, ipc: int, train_epochs: int, rounds: int) -> None:
    """The test pass, eager and compiled, at batch 256 and 64, on a ConvNet-3 trained on an IPC-``ipc`` random set
    of ``dataset`` (see the module docstring)."""
    import torch

    from atombench.factories import build_model, load_dataset
    from atombench.jobs import train_augment
    from atombench.train import TrainConfig, compiled, evaluate, train_model

    _one_thread()
    data = load_dataset(dataset, {})
    g = torch.Generator().manual_seed(0)
    x = torch.cat([data.sample_class(c, ipc, g) for c in range(data.num_classes)])
    y = torch.arange(data.num_classes).repeat_interleave(ipc)
    net = build_model("convnet", {}, data, 0)
    cfg = TrainConfig(epochs=train_epochs, augment="dsa", compile=False, amp="none")
    train_model(net, x, y, cfg, torch.Generator().manual_seed(0), train_augment(cfg, data))
    net.eval()
    with torch.inference_mode():  # eager float32 at 256, the reference the other settings' predictions are held to
        ref = torch.cat([net(data.test_x[i:i + 256]) for i in range(0, len(data.test_x), 256)])
    settings = [("eager", 256), ("compiled", 256), ("eager", 64), ("compiled", 64)]
    first, times, acc = {}, {s: [] for s in settings}, {}
    for r in range(rounds + 1):
        for name, bs in settings:
            t0 = time.perf_counter()
            out = evaluate(net, data.test_x, data.test_y, bs, "cpu", "none", name == "compiled")
            seconds = time.perf_counter() - t0
            if r == 0:  # the first pass: compilation included
                first[(name, bs)] = seconds
            else:
                times[(name, bs)].append(seconds)
            acc[(name, bs)] = out["accuracy"]
    diff = {}
    for name, bs in settings:  # the predictions themselves, against the reference
        forward = compiled(net) if name == "compiled" else net
        with torch.inference_mode():
            logits = torch.cat([forward(data.test_x[i:i + bs]) for i in range(0, len(data.test_x), bs)])
        diff[(name, bs)] = (int((logits.argmax(1) != ref.argmax(1)).sum()), float((logits - ref).abs().max()))
    base = sum(times[("eager", 256)]) / rounds
    print(f"# bench_eval testpass: {dataset}, {len(data.test_x)} test images, ConvNet-3 trained {train_epochs} "
          f"epochs on IPC {ipc}, 1 thread, {rounds} rounds after a first (compile) pass")
    print("| test pass | batch | s per pass (first pass) | × eager at 256 | accuracy | predictions changed | "
          "max logit difference |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, bs in settings:
        t = sum(times[(name, bs)]) / rounds
        print(f"| {name} | {bs} | {t:.1f} ({first[(name, bs)]:.1f}) | {base / t:.2f}× | {acc[(name, bs)]:.2f} | "
              f"{diff[(name, bs)][0]} | {diff[(name, bs)][1]:.1e} |")


def profile(model: str, ipc: int, epochs: int, setting: str, top: int) -> None:
    import torch

    _one_thread()
    data, x, y = _setup(ipc)
    s = SETTINGS[setting]
    _train(_net(model, data, 0, s), x, y, data, s, 1, 0)  # the compilation, outside the profile
    net = _net(model, data, 1, s)
    steps = (epochs + 1) * -(-len(x) // 256)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        _train(net, x, y, data, s, epochs, 1)
    events = sorted(prof.key_averages(group_by_input_shape=True), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events) / 1000 / steps
    print(f"# bench_eval profile: {model}, Fashion-MNIST, IPC {ipc}, setting {setting}, {steps} steps, 1 thread; "
          f"{total:.1f} ms of operators' own time per step")
    print("| operator | input shapes | ms / step | share |\n|---|---|---:|---:|")
    for e in events[:top]:
        shapes = ", ".join("x".join(map(str, sh)) for sh in (e.input_shapes or [])[:2] if sh)
        ms = e.self_cpu_time_total / 1000 / steps
        print(f"| {e.key} | {shapes} | {ms:.1f} | {100 * ms / total:.0f} % |")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_cell":
        model, ipc, epochs, rounds, settings = sys.argv[2:7]
        print(json.dumps(timing_cell(model, int(ipc), int(epochs), int(rounds), settings.split(","))))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="part", required=True)
    t = sub.add_parser("timing")
    t.add_argument("--models", nargs="+", default=["convnet", "convnet_bn", "timm:convnext_atto"])
    t.add_argument("--ipc", nargs="+", type=int, default=[1, 10, 50])
    t.add_argument("--epochs", type=int, default=20)
    t.add_argument("--rounds", type=int, default=3)
    t.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    a = sub.add_parser("accuracy")
    a.add_argument("--ipc", type=int, default=10)
    a.add_argument("--models-per-setting", type=int, default=8)
    a.add_argument("--epochs", type=int, default=1000)
    a.add_argument("--workers", type=int, default=2)
    a.add_argument("--settings", nargs="+", default=["eager", "default"], choices=list(SETTINGS))
    a.add_argument("--json", default="", help="also write every model's row to this file")
    o = sub.add_parser("overhead")
    o.add_argument("--ipc", type=int, default=10)
    o.add_argument("--repeats", type=int, default=4)
    tp = sub.add_parser("testpass")
    tp.add_argument("--dataset", default="fashion_mnist")
    tp.add_argument("--ipc", type=int, default=10)
    tp.add_argument("--train-epochs", type=int, default=200)
    tp.add_argument("--rounds", type=int, default=3)
    pr = sub.add_parser("profile")
    pr.add_argument("--model", default="convnet")
    pr.add_argument("--ipc", type=int, default=10)
    pr.add_argument("--epochs", type=int, default=10)
    pr.add_argument("--setting", default="compile", choices=list(SETTINGS))
    pr.add_argument("--top", type=int, default=20, help="operators listed, the largest first")
    args = ap.parse_args()
    if args.part == "profile":
        profile(args.model, args.ipc, args.epochs, args.setting, args.top)
    elif args.part == "testpass":
        testpass(args.dataset, args.ipc, args.train_epochs, args.rounds)
    elif args.part == "overhead":
        overhead(args.ipc, args.repeats)
    else:
        _timing(args) if args.part == "timing" else _accuracy(args)


if __name__ == "__main__":
    main()
