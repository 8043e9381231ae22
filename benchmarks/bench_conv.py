"""The 3x3 convolutions of ConvNet-3 on the CPU: how fast each layout and algorithm the CPU backend offers runs them,
and what compilation already takes (issue 29: where a 2x speed-up of evaluation training could come from).

    python benchmarks/bench_conv.py layers      [--threads 1] [--repeats 4]
    python benchmarks/bench_conv.py net         [--images 640] [--threads 1]
    python benchmarks/bench_conv.py winograd    [--threads 1]

``layers``: each of ConvNet-3's convolution shapes, forward + backward at an evaluation's batch (100 images, IPC 10)
and forward only at a distillation's real batch (640 images, 64 per class), through oneDNN in NCHW and in
channels-last layout and through torch's own im2col + MKL matrix product (oneDNN disabled); ms and GFLOP/s. Also
MKL's matrix product on square matrices: the core's reachable peak.

``net``: ConvNet-3's forward (``embed``) on ``--images`` CIFAR-sized inputs without autograd, eager and compiled,
NCHW and channels-last: whether compilation already lays the convolutions out channels-last.

``winograd``: a Winograd F(2x2, 3x3) and F(4x4, 3x3) convolution written in PyTorch operations (tile transforms as
small products, the 16 or 36 products batched), its error against ``conv2d`` and its forward + backward time,
eager and compiled, beside oneDNN's. A prototype to measure, not a feature: atombench does not use it.

The process is set up as the harness's workers are: glibc's malloc tuned (``atombench.runtime.tune_malloc``;
``ATOMBENCH_MALLOC=default`` keeps glibc's defaults, under which every large output is a fresh ``mmap`` faulted in
page by page, which costs more than the arithmetic of a first layer). All settings of a part take turns in one
process (each timed over ``--repeats`` calls after one warm-up), so whatever else the machine does falls on them
alike.
"""

from __future__ import annotations

import argparse
import time

import torch


def _bench(fn, repeats: int) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats


def _fwd_bwd(conv, x):
    def run():
        y = conv(x)
        y.backward(torch.ones_like(y))
    return run


def layers(repeats: int) -> None:
    print("| shape | pass | oneDNN NCHW | oneDNN channels_last | im2col + MKL |\n|---|---|---:|---:|---:|")
    # ConvNet-3's layers: on Fashion-MNIST (its first layer pads 28x28 to 32x32, as DC's code) at IPC 10, forward
    # and backward (the input's gradient only past the first layer: the images need none); on CIFAR-sized images at
    # a distillation's real batch, forward only
    cases = [(100, 1, 28, 3, True), (100, 128, 16, 1, True), (100, 128, 8, 1, True),
             (640, 3, 32, 1, False), (640, 128, 16, 1, False), (640, 128, 8, 1, False)]
    for n, c, h, pad, backward in cases:
        torch.manual_seed(0)
        x = torch.randn(n, c, h, h, requires_grad=backward and c > 3)
        conv = torch.nn.Conv2d(c, 128, 3, padding=pad)
        conv_cl = torch.nn.Conv2d(c, 128, 3, padding=pad).to(memory_format=torch.channels_last)
        x_cl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_(x.requires_grad)
        out = h + 2 * pad - 2
        flops = 2 * n * out * out * c * 128 * 9 * ((3 if x.requires_grad else 2) if backward else 1)
        if backward:
            times = [_bench(_fwd_bwd(conv, x), repeats), _bench(_fwd_bwd(conv_cl, x_cl), repeats)]
            with torch.backends.mkldnn.flags(enabled=False):
                times.append(_bench(_fwd_bwd(conv, x), repeats))
        else:
            with torch.no_grad():
                times = [_bench(lambda: conv(x), repeats), _bench(lambda: conv_cl(x_cl), repeats)]
                with torch.backends.mkldnn.flags(enabled=False):
                    times.append(_bench(lambda: conv(x), repeats))
        cells = " | ".join(f"{t * 1e3:.0f} ms ({flops / t / 1e9:.0f})" for t in times)
        what = ("forward + backward" if x.requires_grad else "forward + weight gradient") if backward else "forward"
        print(f"| {n} images, {c}->128 at {out}x{out} | {what} | {cells} |",
              flush=True)
    for m in (512, 1024, 2048):
        a, b = torch.randn(m, m), torch.randn(m, m)
        t = _bench(lambda: a @ b, repeats)
        print(f"MKL matrix product {m}x{m}: {2 * m ** 3 / t / 1e9:.0f} GFLOP/s")


def net(images: int, repeats: int) -> None:
    from atombench import registry

    family = registry.models.get("convnet")
    cfg = registry.models.parse_options("convnet", {}, "convnet")
    torch.manual_seed(0)
    nchw = family.build(cfg, 3, 10, (32, 32))
    cl = family.build(cfg, 3, 10, (32, 32)).to(memory_format=torch.channels_last)
    x = torch.randn(images, 3, 32, 32)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    eager_nchw, eager_cl = (lambda v: nchw.embed(v)), (lambda v: cl.embed(v))
    comp_nchw = torch.compile(eager_nchw, dynamic=False)
    comp_cl = torch.compile(eager_cl, dynamic=False)
    with torch.no_grad():
        rows = [("eager, NCHW", eager_nchw, x), ("eager, channels_last", eager_cl, x_cl),
                ("compiled, NCHW", comp_nchw, x), ("compiled, channels_last", comp_cl, x_cl)]
        base = None
        print(f"ConvNet-3 forward, {images} images 3x32x32, no autograd")
        for name, fn, inp in rows:
            t = _bench(lambda: fn(inp), repeats)
            base = base or t
            print(f"  {name:26s} {t * 1e3:7.0f} ms  {base / t:.2f}x", flush=True)


#: Lavin & Gray's transforms: input B^T, filter G, output A^T, for F(m x m, 3 x 3)
WINOGRAD = {
    2: ([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        [[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]],
        [[1, 1, 1, 0], [0, 1, -1, -1]]),
    4: ([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
         [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
        [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
         [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]),
}


def winograd_conv(x, weight, bias, m: int):
    """``conv2d(x, weight, bias, padding=1)`` for a 3x3 ``weight`` by Winograd F(m x m, 3 x 3)."""
    import torch.nn.functional as F

    bt, g, at = (torch.tensor(v, dtype=x.dtype) for v in WINOGRAD[m])
    a = m + 2
    n, c, h, w = x.shape
    k = weight.shape[0]
    th, tw = -(-h // m), -(-w // m)
    tiles = F.pad(x, (1, tw * m + 1 - w, 1, th * m + 1 - h)).unfold(2, a, m).unfold(3, a, m)  # N C th tw a a
    v = torch.einsum("ik,nctukl,jl->ijntuc", bt, tiles, bt).reshape(a * a, n * th * tw, c)
    u = torch.einsum("ik,ockl,jl->ijco", g, weight, g).reshape(a * a, c, k)
    prod = torch.bmm(v, u).reshape(a, a, n, th, tw, k)
    y = torch.einsum("pi,ijntuo,qj->notpuq", at, prod, at).reshape(n, k, th * m, tw * m)[:, :, :h, :w]
    return y + bias.view(1, -1, 1, 1)


def winograd(repeats: int) -> None:
    print("| shape (100 images) | oneDNN | F(2,3) eager | F(2,3) compiled | F(4,3) eager | F(4,3) compiled | "
          "relative error F(2,3) / F(4,3) |\n|---|---:|---:|---:|---:|---:|---:|")
    for h in (16, 8):
        torch.manual_seed(0)
        x = torch.randn(100, 128, h, h, requires_grad=True)
        conv = torch.nn.Conv2d(128, 128, 3, padding=1)
        ref = conv(x)
        errors, times = [], [_bench(_fwd_bwd(conv, x), repeats)]
        for m in (2, 4):
            fn = lambda v, m=m: winograd_conv(v, conv.weight, conv.bias, m)  # noqa: E731
            errors.append(float((fn(x) - ref).detach().norm() / ref.detach().norm()))
            times += [_bench(_fwd_bwd(fn, x), repeats), _bench(_fwd_bwd(torch.compile(fn, dynamic=False), x), repeats)]
        print(f"| 128->128 at {h}x{h}, forward + backward | " + " | ".join(f"{t * 1e3:.0f} ms" for t in times)
              + f" | {errors[0]:.1e} / {errors[1]:.1e} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=["layers", "net", "winograd"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=4)
    p.add_argument("--images", type=int, default=640)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from atombench.runtime import tune_malloc

    tuned = tune_malloc()
    print(f"# bench_conv {args.part}: torch {torch.__version__}, {args.threads} thread(s), CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, malloc {'tuned' if tuned else 'glibc defaults'}")
    if args.part == "layers":
        layers(args.repeats)
    elif args.part == "net":
        net(args.images, args.repeats)
    else:
        winograd(args.repeats)


if __name__ == "__main__":
    main()
