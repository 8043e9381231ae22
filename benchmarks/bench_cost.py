"""Cost of one distillation iteration for every method, on the same data and device: seconds per iteration and
peak memory (the efficiency comparison of ATOM's paper: attention matching vs bi-level methods).

    python benchmarks/bench_cost.py [--dataset fashion_mnist] [--ipc 1 10] [--iters 20]
                                    [--methods dm datadam atom dc dsa mtt] [--device auto]

Each (method, IPC) runs in its own fresh subprocess through :meth:`Distiller.run` (the path the harness uses), with
the method's default hyper-parameters except ``iterations``; the first iteration (warm-up, cudnn autotuning) is
excluded from the per-iteration time. MTT's expert trajectories are trained first (``--experts`` experts of
``--expert-epochs`` epochs, cached in a temporary folder) and timed separately. Prints one JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time


def worker(args: argparse.Namespace) -> None:
    import torch

    from atombench.distillers.base import DistillContext
    from atombench.runner import load_dataset, make_distiller
    from atombench.runtime import resolve_device

    device = resolve_device(args.device)
    data = load_dataset(args.dataset, {})
    config = {"iterations": args.iters}
    if args.method == "mtt":
        config.update(num_experts=args.experts, expert_train_epochs=args.expert_epochs)
        config.update(max_start_epoch=min(args.expert_epochs - 2, 20), expert_epochs=2)
    distiller = make_distiller(args.method, config)
    distiller.registered_name = args.method
    extra = {}
    if args.method == "mtt":  # experts first (cached), timed on their own
        ctx0 = DistillContext(device, seed=0, show_progress=False, cache_dir=args.cache)
        t0 = time.perf_counter()
        net = distiller.resolved(data, args.ipc)[0]["net"]
        distiller.experts(data, ctx0, net).ensure(args.experts)
        extra["expert_s"] = time.perf_counter() - t0
    stamps = []
    ctx = DistillContext(device, seed=0, show_progress=False, cache_dir=args.cache)
    orig = ctx.progress

    def progress(*a, **kw):
        bar = orig(*a, **kw)
        report = bar.report

        def timed(it, loss):
            report(it, loss)  # float(loss) synchronises the device
            stamps.append(time.perf_counter())
        bar.report = timed
        return bar

    ctx.progress = progress
    synset = distiller.run(data, args.ipc, ctx)
    per_it = (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1) if len(stamps) > 1 else float("nan")
    print(json.dumps({"method": args.method, "dataset": args.dataset, "ipc": args.ipc, "device": str(device),
                      "iters": args.iters, "s_per_it": per_it, "wall_s": synset.meta["wall_time_s"],
                      "peak_mem_mb": synset.meta["peak_mem_mb"], "mem_kind": synset.meta["peak_mem_kind"],
                      "threads": torch.get_num_threads(), **extra}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--ipc", type=int, nargs="+", default=[1, 10])
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--methods", nargs="+", default=["dm", "datadam", "atom", "dc", "dsa", "mtt"])
    p.add_argument("--device", default="auto")
    p.add_argument("--experts", type=int, default=2, help="MTT experts to train first")
    p.add_argument("--expert-epochs", type=int, default=4, help="epochs per MTT expert")
    p.add_argument("--cache", help=argparse.SUPPRESS)
    p.add_argument("--method", help=argparse.SUPPRESS)
    p.add_argument("--one-ipc", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.method:
        args.ipc = args.one_ipc
        worker(args)
        return
    with tempfile.TemporaryDirectory() as cache:
        for ipc in args.ipc:
            for method in args.methods:
                cmd = [sys.executable, __file__, "--method", method, "--one-ipc", str(ipc), "--dataset",
                       args.dataset, "--iters", str(args.iters), "--device", args.device, "--cache", cache,
                       "--experts", str(args.experts), "--expert-epochs", str(args.expert_epochs)]
                out = subprocess.run(cmd, capture_output=True, text=True)
                lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
                if out.returncode or not lines:
                    print(json.dumps({"method": method, "ipc": ipc, "error": (out.stderr or "").strip()
                                      .splitlines()[-1:]}), flush=True)
                else:
                    print(lines[-1], flush=True)


if __name__ == "__main__":
    main()
