"""Models trained per minute: K separate runs (loop) vs one stacked ensemble (torch.func), same work.

    python benchmarks/bench_ensemble.py                       # CUDA if available, else CPU
    python benchmarks/bench_ensemble.py --device cpu --models 4 --epochs 20

For each IPC it trains ``--models`` ConvNet-3 models (width 128, instance norm, CIFAR-shaped 3x32x32 data, 10
classes, DSA augmentation, the evaluation protocol's SGD) for ``--epochs`` epochs, first one after the other, then
all at once with :func:`atombench.train.train_ensemble`, and prints models per minute and the ratio. It also
checks that both give the same final weights (max abs difference). Pass ``--compile`` / ``--amp bf16`` to add
those switches to both paths.
"""

from __future__ import annotations

import argparse
import time

import torch

from atombench import registry
from atombench.augment import DSA
from atombench.train import TrainConfig, train_ensemble, train_model


def _nets(k: int, device: torch.device, channels_last: bool):
    fam = registry.models.get("convnet")
    out = []
    for s in range(k):
        torch.manual_seed(s)
        net = fam.build(fam.parse({}), 3, 10, (32, 32)).to(device)
        out.append(net.to(memory_format=torch.channels_last) if channels_last else net)
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--ipc", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--models", type=int, default=10, help="models per architecture (the K seeds)")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--amp", choices=["none", "bf16"], default="none")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; ConvNet-3 on 3x32x32, {args.models} models, "
          f"{args.epochs} epochs, DSA, compile={args.compile}, amp={args.amp}")
    cfg = TrainConfig(epochs=args.epochs, batch_size=256, compile=args.compile, amp=args.amp)
    dsa = DSA()
    print("| IPC | loop models/min | ensemble models/min | speed-up | max weight difference |")
    print("|---|---|---|---|---|")
    for ipc in args.ipc:
        gen = torch.Generator().manual_seed(ipc)
        images = torch.randn(10 * ipc, 3, 32, 32, generator=gen).to(device)
        labels = torch.arange(10, device=device).repeat_interleave(ipc)
        # warm-up (kernels, allocator, compile) on both paths
        warm = TrainConfig(**{**vars(cfg), "epochs": 1})
        train_model(_nets(1, device, False)[0], images, labels, warm, torch.Generator().manual_seed(0), dsa)
        train_ensemble(_nets(2, device, False), images, labels, warm,
                       [torch.Generator().manual_seed(k) for k in range(2)], dsa)
        loop_nets = _nets(args.models, device, False)
        _sync(device)
        t = time.perf_counter()
        for k, net in enumerate(loop_nets):
            train_model(net, images, labels, cfg, torch.Generator().manual_seed(100 + k), dsa)
        _sync(device)
        loop_s = time.perf_counter() - t
        ens_nets = _nets(args.models, device, False)
        _sync(device)
        t = time.perf_counter()
        train_ensemble(ens_nets, images, labels, cfg,
                       [torch.Generator().manual_seed(100 + k) for k in range(args.models)], dsa)
        _sync(device)
        ens_s = time.perf_counter() - t
        diff = max((a - b).abs().max().item() for n1, n2 in zip(loop_nets, ens_nets)
                   for a, b in zip(n1.parameters(), n2.parameters()))
        loop_rate, ens_rate = 60 * args.models / loop_s, 60 * args.models / ens_s
        print(f"| {ipc} | {loop_rate:.1f} | {ens_rate:.1f} | **{ens_rate / loop_rate:.2f}x** | {diff:.1e} |")


if __name__ == "__main__":
    main()
