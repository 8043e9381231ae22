"""Distillation iteration paths: iterations per second and peak memory, same data, seeds and device.

    python benchmarks/bench_batched.py [--method atom] [--ipc 10] [--batch-real 256] [--iters 10]
                                       [--device auto] [--shape 3,32,32] [--classes 10] [--paths ...]
                                       [--path-timeout SECONDS]

Paths (``--paths``, default all): ``per_class`` (the reference loop, one class per forward pass), ``before`` (the
batched path as it was before the speed-ups of issue 15: glibc's default malloc, ReLU not in place, every block
output kept for DM), ``batched`` (today's defaults), and one speed-up option each on top of the defaults:
``chunk32`` (real images forwarded 32 at a time, below one class), ``bf16`` (bf16 autocast of the real forward),
``channels_last``, ``compile`` (``compile: default``: torch.compile of a batch's statistics), ``compile_cl`` (both),
``cuda_graphs``
(``compile: reduce-overhead``: CUDA graphs on a GPU, the network re-initialised in place; on a CPU the same as
``compile``), ``combined`` (bf16 + channels_last + reduce-overhead), ``graph`` (``cuda_graph: true``: the
whole fixed-shape iteration, draws, network re-initialisation, forwards, backward and optimiser step, captured as
one CUDA graph; on a CPU the same iteration runs eagerly) and ``graph_combined`` (``cuda_graph`` + bf16 +
channels_last). Each path runs in its own fresh subprocess (so the peak memory of one does not hide the
other's), after two warm-up iterations, on the same CIFAR-shaped real data (Fashion-MNIST images tiled to 3
channels and resized to 32x32 when the Debian package is installed, else seeded Gaussian images). Prints one line
per path and the ratios of each to ``before`` and to ``per_class``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


#: the paths compared (module docstring)
PATHS = {"per_class": "the per-class reference loop", "before": "batched, before issue 15's speed-ups",
         "batched": "today's default", "chunk32": "real forward 32 images at a time", "bf16": "bf16 real forward",
         "channels_last": "channels_last layout", "compile": "torch.compile (default mode)",
         "compile_cl": "torch.compile (default mode) + channels_last",
         "cuda_graphs": "torch.compile reduce-overhead (CUDA graphs)", "combined": "bf16 + channels_last + CUDA graphs",
         "graph": "the whole iteration as one CUDA graph (cuda_graph)",
         "graph_combined": "cuda_graph + bf16 + channels_last"}


def real_data(shape: tuple[int, int, int], classes: int, per_class: int):
    import torch

    from atombench.data.base import RealData

    c, h, w = shape
    g = torch.Generator().manual_seed(0)
    try:
        from atombench.runner import load_dataset

        fm = load_dataset("fashion_mnist", {})
        idx = torch.cat([torch.nonzero(fm.train_y == k).flatten()[:per_class] for k in range(min(classes, 10))])
        x = torch.nn.functional.interpolate(fm.train_x[idx], size=(h, w), mode="bilinear").repeat(1, c, 1, 1)
        y = fm.train_y[idx]
        source = "fashion_mnist"
    except Exception:  # noqa: BLE001 - any failure falls back to Gaussian images of the same shape
        y = torch.arange(classes).repeat_interleave(per_class)
        x = torch.randn(len(y), c, h, w, generator=g)
        source = "gaussian"
    k = int(y.max()) + 1
    return RealData("bench", x, y, x[:10], y[:10], [str(i) for i in range(k)], [0.0] * c, [1.0] * c), source


def worker(args: argparse.Namespace) -> None:
    import torch

    from atombench.distillers.base import DistillContext
    from atombench.runner import make_distiller
    from atombench.runtime import PeakMemory, resolve_device

    from atombench.runtime import tune_malloc

    if args.mode != "before":
        tune_malloc()
    device = resolve_device(args.device)
    shape = tuple(int(s) for s in args.shape.split(","))
    data, source = real_data(shape, args.classes, max(args.batch_real, args.ipc))
    graph = args.mode in ("graph", "graph_combined")
    # warm-up iterations, not timed: two (compilation included), or cuda_graph's eager ones and the capture
    warm = (make_distiller(args.method, {}).GRAPH_WARMUP + 1) if graph else 2
    options = {"batch_real": args.batch_real, "batched": args.mode != "per_class", "iterations": args.iters + warm,
               "real_chunk": 32 if args.mode == "chunk32" else args.real_chunk,
               "real_amp": "bf16" if args.mode in ("bf16", "combined", "graph_combined") else "none",
               "channels_last": args.mode in ("channels_last", "compile_cl", "combined", "graph_combined"),
               "compile": {"compile": "default", "compile_cl": "default", "cuda_graphs": "reduce-overhead",
                           "combined": "reduce-overhead"}.get(args.mode, "none"),
               "cuda_graph": graph}
    distiller = make_distiller(args.method, options)
    ctx = DistillContext(device, seed=0, show_progress=False)
    if args.mode == "before":  # the path before issue 15's speed-ups
        fresh = ctx.fresh_net

        def old_net(*a, **kw):
            net = fresh(*a, **kw)
            for m in net.modules():
                if isinstance(m, torch.nn.ReLU):
                    m.inplace = False
            net.embed = lambda x: net.extract(x).embedding  # every block output kept alive
            return net

        ctx.fresh_net = old_net
    times = []  # the end of every iteration (every path reports each iteration to its context)
    orig = ctx.step_done

    def timed(*a, **kw):
        orig(*a, **kw)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter())

    ctx.step_done = timed
    with PeakMemory(device) as mem:
        distiller.distill(data, args.ipc, ctx)
    steady = times[warm - 1:]  # from the end of the last warm-up iteration
    its = (len(steady) - 1) / (steady[-1] - steady[0])
    print(json.dumps({"mode": args.mode, "it_per_s": its, "peak_mem_mb": mem.peak_mb, "mem_kind": mem.kind,
                      "device": str(device), "threads": torch.get_num_threads(), "data": source}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", default="atom", choices=["atom", "datadam", "dm"])
    p.add_argument("--ipc", type=int, default=10)
    p.add_argument("--batch-real", type=int, default=256)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--real-chunk", type=int, default=None, help="default: the distiller's (256 on CPU, all on GPU)")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--shape", default="3,32,32")
    p.add_argument("--device", default="auto")
    p.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS))
    p.add_argument("--path-timeout", type=float, default=None, help="seconds one path may take (default: no limit)")
    p.add_argument("--mode", choices=list(PATHS), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.mode:
        worker(args)
        return
    results = {}
    base = [a for a in sys.argv[1:]]
    for flag in ("--paths", "--path-timeout"):  # the worker gets the other arguments only
        if flag in base:
            i = base.index(flag)
            j = i + 1
            while j < len(base) and not base[j].startswith("--"):
                j += 1
            base = base[:i] + base[j:]
    for mode in args.paths:
        env = dict(os.environ, ATOMBENCH_MALLOC="default") if mode == "before" else None
        try:  # a path that fails or overruns --path-timeout is reported and skipped; the others still run
            proc = subprocess.run([sys.executable, __file__, *base, "--mode", mode], capture_output=True, env=env,
                                  text=True, timeout=args.path_timeout)
        except subprocess.TimeoutExpired:
            print(f"{mode:13s}  skipped: over --path-timeout {args.path_timeout:g} s", flush=True)
            continue
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            why = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"{mode:13s}  failed (exit {proc.returncode}): {why}", flush=True)
            continue
        results[mode] = r = json.loads(lines[-1])
        vs = "".join(f"  {r['it_per_s'] / results[ref]['it_per_s']:.2f}x {ref}" for ref in ("before", "per_class")
                     if ref in results and ref != mode)
        print(f"{mode:13s}  {r['it_per_s']:.3f} it/s  {1 / r['it_per_s']:.4f} s/it  peak {r['peak_mem_mb']:.0f} MB "
              f"({r['mem_kind']})  device {r['device']}  threads {r['threads']}  data {r['data']}{vs}", flush=True)
    for ref in ("before", "per_class"):
        if ref not in results:
            continue
        ratios = ", ".join(f"{m} {results[m]['it_per_s'] / results[ref]['it_per_s']:.2f}x"
                           for m in results if m != ref)
        print(f"{args.method} ipc {args.ipc} batch_real {args.batch_real} shape {args.shape}: speed vs {ref}: {ratios}")


if __name__ == "__main__":
    main()
