#!/usr/bin/env python3
"""Time QPyTorch 0.3.0's CPU kernels and a VGG16 step, for swalp's README.

Prints one JSON object per line, in the shape of `swalp-cli bench --json`:

  {"format": "copy", ...,                 "ns_per_elem": ...}
  {"format": "fixed", "rounding": "nearest", "elements": N, "ns_per_elem": ...}
  ...
  {"model": "vgg16", "batch": 32, "fp_step_s": ..., "lp_step_s": ..., "ratio": ...}

Kernels: fixed_point_quantize(wl=8, fl=6), float_quantize(exp=5, man=2),
block_quantize(wl=8, dim=-1) and block_quantize(wl=8, dim=0), "nearest" and
"stochastic", on a [N/4096, 4096] float32 tensor (N = 2^24 by default, as
`swalp-cli bench` uses), best of several repetitions after one warm-up.

VGG16 step: the same network as swalp's `vgg16` (13 conv3x3+ReLU layers with
max-pools, dropout, 512-512-10 classifier; a quantizer after every ReLU),
batch 32 of random CIFAR-shaped input, SGD (lr 0.05, momentum 0.9, weight
decay 5e-4). Full precision, then QPyTorch's 8-bit block floating point with
stochastic rounding at all six points: activations and errors one exponent
per tensor (`Quantizer(BlockFloatingPoint(8, dim=-1), ...)`), weights,
gradients, momentum and accumulator one exponent per slice along dim 0 for
matrices and convolutions and per tensor for biases (the SWALP seed's
small_block = "fc"), through `OptimLP`. Median of several steps after two
warm-up steps.

Usage (see README.md in this directory for the venv):

  /root/.cache/swalp/qtorch-ref/bin/python3 bench_qtorch.py [--elements N]
      [--repetitions R] [--steps S] [--no-train] [--threads T]
"""
import argparse
import json
import os
import sys
import time

# qtorch JIT-compiles its C++ kernels with ninja at import time; the ninja
# binary lives next to this venv's python.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from qtorch import BlockFloatingPoint  # noqa: E402
from qtorch.optim import OptimLP  # noqa: E402
from qtorch.quant import (  # noqa: E402
    Quantizer,
    block_quantize,
    fixed_point_quantize,
    float_quantize,
)


def best_of(f, repetitions):
    f()
    best = float("inf")
    for _ in range(repetitions):
        start = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - start)
    return best


KERNELS = [
    ("fixed", {"wl": 8, "fl": 6}, lambda x, r: fixed_point_quantize(x, 8, 6, rounding=r)),
    ("float", {"exp": 5, "man": 2}, lambda x, r: float_quantize(x, 5, 2, rounding=r)),
    ("block", {"wl": 8, "dim": -1}, lambda x, r: block_quantize(x, 8, dim=-1, rounding=r)),
    ("block", {"wl": 8, "dim": 0}, lambda x, r: block_quantize(x, 8, dim=0, rounding=r)),
]


def bench_kernels(n, repetitions):
    torch.manual_seed(0)
    x = torch.randn(n // 4096, 4096)
    copy = best_of(lambda: x.clone(), repetitions)
    print(json.dumps({"format": "copy", "rounding": None, "elements": n,
                      "ns_per_elem": copy * 1e9 / n}), flush=True)
    for name, params, f in KERNELS:
        for rounding in ("nearest", "stochastic"):
            t = best_of(lambda: f(x, rounding), repetitions)
            row = {"format": name, **params, "rounding": rounding, "elements": n,
                   "ns_per_elem": t * 1e9 / n}
            print(json.dumps(row), flush=True)


VGG16_WIDTHS = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class VGG16(nn.Module):
    def __init__(self, quant=None, classes=10):
        super().__init__()
        quant = quant or (lambda: nn.Identity())
        layers = []
        channels = 3
        for width in VGG16_WIDTHS:
            if width == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            conv = nn.Conv2d(channels, width, 3, padding=1)
            nn.init.normal_(conv.weight, 0.0, (2.0 / (9 * width)) ** 0.5)
            nn.init.zeros_(conv.bias)
            layers += [conv, nn.ReLU(inplace=True), quant()]
            channels = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(512, 512), nn.ReLU(True), quant(),
            nn.Dropout(0.5), nn.Linear(512, 512), nn.ReLU(True), quant(),
            nn.Linear(512, classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def small_block_fc(x):
    """8-bit BFP, stochastic: per dim 0 for matrices and convs, per tensor for biases."""
    return block_quantize(x, 8, dim=0 if x.dim() > 1 else -1, rounding="stochastic")


def bench_train(steps):
    device = torch.device("cpu")

    def step_time(low_precision):
        torch.manual_seed(0)
        if low_precision:
            number = BlockFloatingPoint(wl=8, dim=-1)
            model = VGG16(lambda: Quantizer(number, number, "stochastic", "stochastic"))
        else:
            model = VGG16()
        model.to(device).train()
        sgd = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        opt = sgd
        if low_precision:
            opt = OptimLP(sgd, weight_quant=small_block_fc, grad_quant=small_block_fc,
                          momentum_quant=small_block_fc, acc_quant=small_block_fc)
        x = torch.randn(32, 3, 32, 32, device=device)
        y = torch.randint(10, (32,), device=device)
        loss_fn = nn.CrossEntropyLoss()
        times = []
        for i in range(steps + 2):
            start = time.perf_counter()
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()
            if i >= 2:
                times.append(time.perf_counter() - start)
        times.sort()
        return times[len(times) // 2]

    fp = step_time(False)
    lp = step_time(True)
    print(json.dumps({"model": "vgg16", "batch": 32, "device": "cpu", "fp_step_s": fp,
                      "lp_step_s": lp, "ratio": lp / fp}), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--elements", type=int, default=1 << 24)
    p.add_argument("--repetitions", type=int, default=5)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--no-train", action="store_true")
    p.add_argument("--no-kernels", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    if not args.no_kernels:
        bench_kernels(args.elements, args.repetitions)
    if not args.no_train:
        bench_train(args.steps)


if __name__ == "__main__":
    main()
