"""Batched vs per-class distillation iteration: iterations per second and peak memory, same data and device.

    python benchmarks/bench_batched.py [--method atom] [--ipc 10] [--batch-real 256] [--iters 10]
                                       [--device auto] [--shape 3,32,32] [--classes 10]

Each path runs in its own fresh subprocess (so the peak memory of one does not hide the other's), after two
warm-up iterations, on the same CIFAR-shaped real data (Fashion-MNIST images tiled to 3 channels and padded
to 32x32 when the Debian package is installed, else seeded Gaussian images) and the same seeds. Prints one line
per path and the ratios (per-class time / batched time, batched memory / per-class memory).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


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

    device = resolve_device(args.device)
    shape = tuple(int(s) for s in args.shape.split(","))
    data, source = real_data(shape, args.classes, max(args.batch_real, args.ipc))
    distiller = make_distiller(args.method, {"batch_real": args.batch_real, "batched": args.mode == "batched",
                                             "iterations": args.iters + 2, "real_chunk": args.real_chunk})
    ctx = DistillContext(device, seed=0, show_progress=False)
    times = []
    orig = distiller.iteration_loss

    def timed(*a, **kw):
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter())
        return orig(*a, **kw)

    distiller.iteration_loss = timed
    with PeakMemory(device) as mem:
        distiller.distill(data, args.ipc, ctx)
    if device.type == "cuda":
        torch.cuda.synchronize()
    times.append(time.perf_counter())
    steady = times[2:]  # two warm-up iterations
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
    p.add_argument("--mode", choices=["batched", "per_class"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.mode:
        worker(args)
        return
    results = {}
    for mode in ("per_class", "batched"):
        out = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--mode", mode], capture_output=True,
                             text=True, check=True).stdout.strip().splitlines()[-1]
        results[mode] = json.loads(out)
        r = results[mode]
        print(f"{mode:9s}  {r['it_per_s']:.3f} it/s  peak {r['peak_mem_mb']:.0f} MB ({r['mem_kind']})  "
              f"device {r['device']}  threads {r['threads']}  data {r['data']}")
    b, l = results["batched"], results["per_class"]
    print(f"{args.method} ipc {args.ipc} batch_real {args.batch_real} shape {args.shape}: "
          f"speed-up batched/per-class = {b['it_per_s'] / l['it_per_s']:.2f}x, "
          f"memory batched/per-class = {b['peak_mem_mb'] / max(l['peak_mem_mb'], 1e-9):.2f}x")


if __name__ == "__main__":
    main()
