#!/usr/bin/env python3
"""The UResNet's thin 3x3 convolutions alone: how fast each backend runs them, against the memory roofline.

A script that prints figures, not a test. On an H200 the optimized uresnet spends 43 % of its step in
cuDNN convolutions of the 16-64-channel layers at about a tenth of the card's bf16 rate (issue 7). This
times one C->C 3x3 convolution per U-Net level (C = 16, 32, 48, ... at 640x1024, 320x512, ...; channels_last;
`--images` plane-images, i.e. events x 3) with each backend:

  eager      torch's own (cuDNN on a GPU, with cudnn.benchmark trying every algorithm)
  compiled   torch.compile in `--compile-mode` (max-autotune: Inductor also tries its Triton convolution
             templates for the forward and keeps the faster; the backward stays an ATen call)

and prints, per level and backend, forward and forward+backward milliseconds, achieved TFLOP/s, and the
share of a memory roofline: the time a copy of the same tensors takes at the measured copy bandwidth
(forward: read x, write y; backward: read dy and x, write dx, plus the forward). A share far below 100 %
with TFLOP/s far below the card's rate means the kernel, not the hardware, is the limit.

    python3 scripts/bench_convolutions.py [--height 640 --width 1024] [--images 24] [--levels 4]
                                          [--dtype bfloat16] [--compile-mode max-autotune] [--steps 20]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmark.perf import host_bandwidth_gb_s  # noqa: E402  (the bandwidth benchmark.perf's roofline uses)
from implementations.torch.runtime import cuda_copy_bandwidth_gb_s  # noqa: E402


def _timed(function, steps: int, device: torch.device) -> float:
    """Mean milliseconds of `function` over `steps` calls, after 3 warm-up calls."""
    for _ in range(3):
        function()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    begin = time.perf_counter()
    for _ in range(steps):
        function()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - begin) / steps * 1e3


def level_rows(args, device: torch.device, dtype: torch.dtype, bandwidth: float):
    for level in range(args.levels):
        channels, height, width = 16 * (level + 1), args.height >> level, args.width >> level
        x = torch.randn(args.images, channels, height, width, device=device, dtype=dtype)
        x = x.to(memory_format=torch.channels_last).requires_grad_()
        weight = (torch.randn(channels, channels, 3, 3, device=device, dtype=dtype) * 0.1)
        weight = weight.to(memory_format=torch.channels_last).requires_grad_()
        dy = torch.randn_like(x)
        flop = 2 * 9 * channels * channels * height * width * args.images  # forward; backward is twice that
        tensor_bytes = x.numel() * x.element_size()
        roofline_forward = 2 * tensor_bytes / (bandwidth * 1e9) * 1e3
        roofline_train = roofline_forward + 3 * tensor_bytes / (bandwidth * 1e9) * 1e3
        for backend in args.backends:
            if backend == "eager":
                conv = _conv
            else:
                torch._dynamo.reset()  # each level compiled afresh, with static shapes: no recompile limit, no dynamic dims
                conv = torch.compile(_conv, mode=args.compile_mode, dynamic=False)

            def forward():
                with torch.no_grad():
                    conv(x, weight)

            def train():
                x.grad = weight.grad = None
                conv(x, weight).backward(dy)

            begin = time.perf_counter()
            forward()
            train()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            first = time.perf_counter() - begin  # compilation and autotuning included
            forward_ms, train_ms = _timed(forward, args.steps, device), _timed(train, args.steps, device)
            yield (f"| {level} | {height}x{width} | {channels} | {backend} | {forward_ms:.3f} | {train_ms:.3f} | "
                   f"{flop / forward_ms / 1e9:.1f} | {3 * flop / train_ms / 1e9:.1f} | "
                   f"{roofline_forward / forward_ms:.0%} | {roofline_train / train_ms:.0%} | {first:.1f} |")


def _conv(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return F.conv2d(x, weight, padding=1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=640)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--images", type=int, default=24, help="plane-images per call (events x 3)")
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--backends", nargs="+", default=["eager", "compiled"], choices=["eager", "compiled"])
    parser.add_argument("--compile-mode", default="max-autotune",
                        choices=["default", "max-autotune", "max-autotune-no-cudagraphs"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if min(args.images, args.levels, args.steps) < 1 or min(args.height, args.width) >> (args.levels - 1) < 3:
        print("error: --images, --levels and --steps must be >= 1, and the deepest level at least 3x3", file=sys.stderr)
        return 2
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.benchmark_limit = 0  # try every algorithm, as the implementations do
    bandwidth = cuda_copy_bandwidth_gb_s(device) if device.type == "cuda" else host_bandwidth_gb_s()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}, torch {torch.__version__}, {args.dtype}, {args.images} plane-images, copy bandwidth "
          f"{bandwidth:.0f} GB/s, compile mode {args.compile_mode}\n")
    print("| level | image | channels | backend | forward ms | fwd+bwd ms | forward TFLOP/s | fwd+bwd TFLOP/s | "
          "forward roofline share | fwd+bwd roofline share | first calls (s) |")
    print("|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in level_rows(args, device, dtype, bandwidth):
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
