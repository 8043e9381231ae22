"""ATen operations one distillation iteration dispatches: the batched path vs the per-class reference loop.

    python benchmarks/count_ops.py [--methods atom datadam dm] [--ipc 10] [--batch-real 32]
    python benchmarks/count_ops.py --ensemble [K ...]      # evaluation training: ensemble vs loop, per step

On a GPU an iteration of DM, DataDAM or ATOM at these sizes is launch-bound (each operation is one or more small
kernels), so the ratio of operation counts bounds what the batched path can gain over the per-class loop without
capturing the whole iteration in one CUDA graph. Counted on the CPU with a ``TorchDispatchMode`` (the same code
path), from one iteration's loss to the next (so the network's re-initialisation is included), for two
consecutive iterations; in brackets, how many of the first are views (no kernel on a GPU). Data: Fashion-MNIST tiled to 3x32x32 when installed, else Gaussian images (as
bench_batched.py).

The last column counts the fixed-shape iteration of ``cuda_graph: true``: on CUDA those operations are the kernels
of one captured graph, replayed with a single launch per iteration (every family of the augmentation is computed,
so it has more operations than the batched path, none of them launched one by one).
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import traceback

import torch
from torch.utils._python_dispatch import TorchDispatchMode


#: the folder of the atombench package (a checkout folder may be called atombench too)
_PACKAGE = os.path.dirname(os.path.abspath(__import__("atombench").__file__)) + os.sep


class _Count(TorchDispatchMode):
    def __init__(self, where: bool = False) -> None:
        super().__init__()
        self.n = 0
        self.where = where
        self.sites: list[str] = []
        self.views: list[bool] = []  # per operation: a view (no kernel on a GPU)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.n += 1
        self.views.append(bool(getattr(func, "is_view", False)))
        if self.where:  # the innermost atombench function on the stack (backward ops: the one calling backward)
            site = "?"
            for frame in reversed(traceback.extract_stack()[:-1]):
                if frame.filename.startswith(_PACKAGE):
                    site = f"{os.path.basename(frame.filename)}:{frame.name}"
                    break
            self.sites.append(site)
        return func(*args, **(kwargs or {}))


def count(method: str, batched: bool, ipc: int, batch_real: int, where: bool = False,
          fixed: bool = False) -> list[int]:
    """Operations of iterations 2 and 3 (each from its loss to the next loss); with ``where``, also print where
    iteration 2's operations come from; ``fixed``: the ``cuda_graph`` iteration (marked at its loss)."""
    from atombench.distillers.base import DistillContext
    from atombench.runner import make_distiller

    sys.path.insert(0, os.path.dirname(__file__))
    from bench_batched import real_data

    data, _ = real_data((3, 32, 32), 10, max(batch_real, ipc))
    d = make_distiller(method, {"iterations": 4, "batch_real": batch_real, "batched": batched, "cuda_graph": fixed})
    hook = "loss_from_stats" if fixed else "iteration_loss"
    mode, marks, orig = _Count(where), [], getattr(d, hook)

    def marked(*a, **kw):
        marks.append(mode.n)
        return orig(*a, **kw)

    setattr(d, hook, marked)
    with mode:
        d.distill(data, ipc, DistillContext("cpu", seed=0, show_progress=False))
    if where:
        sites = collections.Counter(mode.sites[marks[1]:marks[2]]).most_common()
        print(f"{method} ({'fixed' if fixed else 'batched' if batched else 'per-class'}), operations of one iteration by atombench "
              f"function: " + ", ".join(f"{s} {n}" for s, n in sites), file=sys.stderr)
    count.views = sum(mode.views[marks[1]:marks[2]])  # views among iteration 2's operations
    return [marks[2] - marks[1], marks[3] - marks[2]]


def count_ensemble(k: int, ipc: int, augment: bool = True) -> tuple[float, float]:
    """Operations per training step of K ConvNet-3 models (3x32x32, 10 classes, IPC ``ipc``, DSA): trained as one
    ``train_ensemble`` vs one after the other (``train_model``), each measured as the difference between 4 and 2
    epochs (so the setup is not counted), per step."""
    from atombench import registry
    from atombench.augment import DSA
    from atombench.train import TrainConfig, train_ensemble, train_model

    fam = registry.models.get("convnet")
    images, labels = torch.randn(10 * ipc, 3, 32, 32), torch.arange(10 * ipc) % 10
    steps = -(-len(images) // 256)
    dsa = DSA() if augment else None

    def ops(epochs: int, together: bool) -> int:
        nets = [fam.build(fam.parse({}), 3, 10, (32, 32)) for _ in range(k)]
        gens = [torch.Generator().manual_seed(i) for i in range(k)]
        cfg = TrainConfig(epochs=epochs, batch_size=256)
        with _Count() as mode:
            if together:
                train_ensemble(nets, images, labels, cfg, gens, dsa)
            else:
                for net, g in zip(nets, gens):
                    train_model(net, images, labels, cfg, g, dsa)
        return mode.n

    return tuple((ops(4, t) - ops(2, t)) / (2 * steps) for t in (True, False))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=["atom", "datadam", "dm"], choices=["atom", "datadam", "dm"])
    p.add_argument("--ipc", type=int, default=10)
    p.add_argument("--batch-real", type=int, default=32)
    p.add_argument("--ensemble", type=int, nargs="*", metavar="K",
                   help="instead: operations per training step of K models as one ensemble vs one after the other "
                        "(IPC 1 and 10), for each K given (default 10 40)")
    p.add_argument("--where", action="store_true", help="also print (to stderr) which atombench functions "
                   "dispatch the batched path's operations")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.ensemble is not None:
        print("| models K | IPC | ensemble ops / step | loop ops / step (K models) | ratio |")
        print("|---:|---:|---:|---:|---:|")
        for k in args.ensemble or [10, 40]:
            for ipc in (1, 10):
                e, l = count_ensemble(k, ipc)
                print(f"| {k} | {ipc} | {e:.0f} | {l:.0f} | {l / e:.1f}x |", flush=True)
        return
    print("| method | batched ops / iteration (views) | per-class ops / iteration (views) | ratio | "
          "cuda_graph ops, all in one graph launch (views) |")
    print("|---|---:|---:|---:|---:|")
    for m in args.methods:
        b = count(m, True, args.ipc, args.batch_real, args.where)
        bv = count.views
        c = count(m, False, args.ipc, args.batch_real)
        cv = count.views
        f = count(m, True, args.ipc, args.batch_real, args.where, fixed=True)
        print(f"| {m} | {b[0]}, {b[1]} ({bv}) | {c[0]}, {c[1]} ({cv}) | {c[0] / b[0]:.1f}x | {f[0]}, {f[1]} "
              f"({count.views}) |", flush=True)


if __name__ == "__main__":
    main()
