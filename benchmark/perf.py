"""The reference and the optimized PyTorch paths, timed side by side in one process.

    python -m benchmark.perf [--network uresnet] [--downsample 1] [--batch 4] [--precision float32]
                             [--steps 10] [--warmup 3] [--paths reference optimized upstream] [--max-batch GIB]
                             [--bandwidth GB/s] [--profile DIR] [key=value ...]

A script that prints figures, not a test. The paths: `reference`
(framework.optimized=false), `optimized` (framework.optimized=true) and
`upstream`, a measuring device: the reference's network and weights run
plane by plane through plain BatchNorm2d layers, as upstream's network runs
(implementations/torch/upstream_like.py; PyTorch 2D only). Each path trains `--steps` timed
steps (after `--warmup` untimed ones, which include torch.compile's
compilation) on synthetic events at the given network, resolution, batch
and precision, on the GPU when there is one (`run.compute_mode=CPU` to
force the CPU). Printed per path: images/s and the ratios to the reference
and to the upstream path, peak memory, FLOP per image and achieved TFLOP/s
(the training step's FLOP as `mode=summary` gives it: counted, or marked
as an estimate where an implementation only estimates it), and the share of the memory-bandwidth
roofline: the images/s that the device's bandwidth would allow if a
training step moved only its saved activations twice (written in the
forward pass, read in the backward pass; 2 bytes each under bfloat16 or
mixed autocast, 4 otherwise), i.e. an upper bound for the
unfused graph. The bandwidth is measured with a large copy (or given with
`--bandwidth`). The input pipeline's images/s at the same resolution and
batch is printed too, so that a data bottleneck shows (the `throughput`
benchmark's source: synthetic events from the pool made, untimed, when it is
opened, gathered by `data.workers` worker processes;
`data.worker_processes=false` measures threads). `--max-batch GIB`
searches the largest batch whose training fits GIB of device memory, each
trial in a fresh process (an out-of-memory trial cannot harm the next, and
none inherits caches or compiled graphs); trials at batch 1 and 2 fit
memory = fixed + batch x per-image, which is printed and guesses the answer,
so a search takes about four trials. On the CPU, whose peak RSS is too coarse
for this, the batch is estimated from the counted activations, weights and
optimizer state. `--profile DIR` profiles 3 more steps of each
path with the framework's profiler (DIR/<path>/: the operator table sorted
by device time, and a trace) and prints the operator table's top rows.
"""
from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from benchmark import config, registry
from benchmark.config.validate import check_image_shape
from benchmark.data.pipeline import load_batch
from benchmark.data.sampler import EpochSampler
from benchmark.data.synthetic import SBND_SHAPE, SyntheticSource
from benchmark.datasets import open_loader, open_source
from benchmark.errors import BenchmarkError, ConfigError

PATHS = {"reference": "framework.optimized=false", "optimized": "framework.optimized=true",
         "upstream": "framework.optimized=false"}
# The upstream path's implementation, imported only when it is measured (the harness never imports torch itself).
UPSTREAM = "implementations.torch.upstream_like:TorchUpstreamLike2D"
EVENTS = 64  # distinct synthetic events cycled through by the timed steps


@dataclass
class Figures:
    path: str
    implementation: str
    images_per_second: float
    peak_memory_gib: float
    memory_measured: bool  # False: the process's peak RSS, which only grows (CPU)
    forward_gflop: float
    train_tflop_per_s: float
    train_flop_note: str  # ModelCost.train_step_flop_note: "counted" or how it was estimated
    roofline_images_per_second: float

    @property
    def roofline_share(self) -> float:
        return self.images_per_second / self.roofline_images_per_second


def activation_scale(precision: str) -> float:
    """Bytes of a saved activation relative to float32, which the cost counts: autocast saves 16-bit ones."""
    return 0.5 if precision in ("bfloat16", "mixed") else 1.0


def _configuration(args, path: str, batch: int):
    tokens = ["run.id=perf", f"network={args.network}", f"data.downsample={args.downsample}", "data.synthetic=true",
              f"data.synthetic_events={max(EVENTS, batch)}", "data.seed=1", "run.seed=1", f"run.minibatch_size={batch}",
              f"run.precision={args.precision}", "mode.optimizer.lr_schedule=flat", PATHS[path],
              "data.worker_processes=true", *args.settings]  # processes: the throughput benchmark's default
    return config.load(tokens)


def implementation_class(cfg, path: str):
    """The class that trains `path` under `cfg`: the registry's, or for `upstream` the plane-by-plane network."""
    cls = registry.load_class(cfg)  # also refuses what has no implementation and exports the environment variables
    if path != "upstream":
        return cls
    if registry.key_of(cfg) != ("torch", "2D"):
        framework, mode = registry.key_of(cfg)
        raise ConfigError(f"--paths upstream: the plane-by-plane network is PyTorch's 2D UResNet, not "
                          f"framework.name={framework} network.conv_mode={mode}")
    module_name, class_name = UPSTREAM.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def _implementation(args, path: str, batch: int):
    cfg = _configuration(args, path, batch)
    shape = check_image_shape(SBND_SHAPE, cfg.data.downsample, cfg.network.network_depth)
    return implementation_class(cfg, path)(cfg, shape), shape


def _batches(args, batch: int):
    source = SyntheticSource(EVENTS, seed=1)
    return [load_batch(source, (np.arange(batch) + i * batch) % EVENTS, args.downsample) for i in range(EVENTS // batch or 1)]


def _train_steps(impl, batches, steps: int) -> float:
    """Seconds for `steps` training steps (synchronised at both ends)."""
    impl.synchronize()
    begin = time.perf_counter()
    for step in range(steps):
        impl.accumulate(batches[step % len(batches)], 1.0)
        impl.apply_update(1e-4)
    impl.synchronize()
    return time.perf_counter() - begin


def measure(args, path: str, bandwidth_gb_s: float) -> Figures:
    impl, shape = _implementation(args, path, args.batch)
    batches = _batches(args, args.batch)
    warmup = _train_steps(impl, batches, args.warmup)
    print(f"{path}: {args.warmup} warm-up steps (compilation included) took {warmup:.1f} s", flush=True)
    impl.reset_peak_memory()
    seconds = _train_steps(impl, batches, args.steps)
    rate = args.steps * args.batch / seconds
    peak, measured = impl.peak_memory_bytes(), impl.uses_accelerator()
    print(f"{path}: {rate:.2f} images/s", flush=True)
    if args.profile:
        _profile(impl, batches, os.path.join(args.profile, path))
    cost = impl.cost(shape)
    roofline = bandwidth_gb_s * 1e9 / (2.0 * cost.activation_bytes * activation_scale(args.precision))
    return Figures(path, impl.name, rate, peak / 2**30, measured, cost.forward_flop / 1e9,
                   cost.train_step_flop * rate / 1e12, cost.train_step_flop_note, roofline)


def _profile(impl, batches, directory: str, steps: int = 3, rows: int = 25) -> None:
    """The framework profiler over `steps` more steps; the top `rows` of its operator table printed."""
    os.makedirs(directory, exist_ok=True)
    try:
        with impl.profile_steps(directory):
            _train_steps(impl, batches, steps)
    except Exception as exc:  # a diagnostic: its failure must not cost the measurement
        print(f"profile of {impl.name} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}", flush=True)
        return
    tables = sorted(name for name in os.listdir(directory) if name.endswith("operators.txt"))
    for name in tables:
        with open(os.path.join(directory, name)) as handle:
            print(f"profile of {impl.name}, {steps} steps ({os.path.join(directory, name)}):")
            print("".join(handle.readlines()[:rows + 3]), flush=True)


def input_pipeline_rate(args, steps: int) -> Tuple[float, str]:
    """Images/s that the loader delivers at this resolution and batch, and who made them: the source the
    throughput benchmark reads (synthetic events drawn from the pool made when it is opened, untimed, as in
    staging) through the run's data workers."""
    cfg = _configuration(args, "reference", args.batch)
    source = open_source(cfg, "file")
    sampler = EpochSampler(len(source), args.batch, seed=1)
    warmup = 4  # worker processes start slowly: over 10 batches after the first they showed half their pace
    with open_loader(cfg, source, sampler) as loader:
        for step in range(warmup):
            loader.get(step)
        begin = time.perf_counter()
        for step in range(warmup, warmup + steps):
            loader.get(step)
        return steps * args.batch / (time.perf_counter() - begin), loader.description


def host_bandwidth_gb_s() -> float:
    """Read+write bandwidth of a 256 MiB copy in host memory (median of 5)."""
    source = np.ones(2**28 // 8)
    target = np.empty_like(source)
    times = []
    for _ in range(5):
        begin = time.perf_counter()
        np.copyto(target, source)
        times.append(time.perf_counter() - begin)
    return 2 * source.nbytes / statistics.median(times) / 1e9


def largest_batch(fits: Callable[[int], bool], limit: int = 4096, guess: int = 1) -> int:
    """The largest batch b <= limit with fits(b), assuming fits is monotone (0 if not even 1 fits).

    Gallops from `guess` (up in steps 1, 2, 4, ... while it fits, down likewise while it does not), then
    bisects: a good guess costs two calls, none costs about 2 log2(answer)."""
    guess = min(max(guess, 1), limit)
    if fits(guess):
        low, step = guess, 1
        while low + step <= limit and fits(low + step):
            low, step = low + step, step * 2
        high = min(low + step, limit + 1)
    else:
        high, step = guess, 1
        while high - step >= 1 and not fits(high - step):
            high, step = high - step, step * 2
        low = max(high - step, 0)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def trial_peak_bytes(args, path: str, batch: int) -> Optional[int]:
    """Peak memory of warm-up + 1 training steps at `batch` (None: out of memory). Run it in a fresh process
    (`isolated_trial_peak_bytes`): no earlier trial's memory, caches or compiled graphs count."""
    try:
        trial, _ = _implementation(args, path, batch)
        trial.reset_peak_memory()
        # past the warm-up, so that what the run holds for good (CUDA graphs' pools) is counted
        _train_steps(trial, _batches(args, batch)[:1], args.warmup + 1)
        return trial.peak_memory_bytes()
    except RuntimeError as exc:  # torch.cuda.OutOfMemoryError is one
        if "out of memory" not in str(exc).lower():
            raise
        return None


def isolated_trial_peak_bytes(args, path: str, batch: int) -> Optional[int]:
    """`trial_peak_bytes` in a new process."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from benchmark import perf  # by its name: under `python -m benchmark.perf` this module is __main__

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(perf.trial_peak_bytes, args, path, batch).result()


def max_batch(args, path: str, budget_gib: float, device_memory: bool,
              trial: Callable = isolated_trial_peak_bytes) -> str:
    """The largest batch whose training fits `budget_gib`. On a device, measured one fresh process per
    trial: memory is close to affine in the batch, so trials at 1 and 2 give the first guess, which the
    search checks. On the host, whose peak RSS is too coarse and noisy to search, estimated."""
    budget = budget_gib * 2**30
    if not device_memory:
        # weights, gradients and two Adam moments in float32, plus the saved activations per image
        impl, shape = _implementation(args, path, 1)
        fixed = 16.0 * impl.parameter_count()
        per_image = impl.cost(shape).activation_bytes * activation_scale(args.precision)
        return f"{largest_batch(lambda b: fixed + b * per_image <= budget)} (estimated)"
    peaks = {}

    def fits(batch: int) -> bool:
        if batch not in peaks:
            peaks[batch] = trial(args, path, batch)
        return peaks[batch] is not None and peaks[batch] <= budget

    guess, model = 1, ""
    if fits(1) and fits(2) and peaks[2] > peaks[1]:
        per_image = peaks[2] - peaks[1]
        guess = max(2, int((budget - (peaks[1] - per_image)) // per_image))
        model = f"; {(peaks[1] - per_image) / 2**30:.2f} GiB + {per_image / 2**30:.3f} GiB per image"
    found = largest_batch(fits, guess=guess)
    trials = f"{len(peaks)} trial" + ("s" if len(peaks) > 1 else "")
    return f"{found} (measured, {trials}{model})"


def table(figures: Sequence[Figures], pipeline: Tuple[float, str], bandwidth: float, source: str) -> str:
    """The figures as a Markdown table; speeds relative to the reference and, when measured, to the upstream path."""
    base = next((f for f in figures if f.path == "reference"), figures[0])
    upstream = next((f for f in figures if f.path == "upstream"), None)
    ratios = [f"x {base.path}"] + (["x upstream"] if upstream is not None and upstream is not base else [])
    lines = [f"| path | implementation | images/s | {' | '.join(ratios)} | peak memory (GiB) | forward GFLOP/image | "
             "achieved TFLOP/s | roofline share |", "|---|---|---:|" + "---:|" * len(ratios) + "---:|---:|---:|---:|"]
    for f in figures:
        memory = f"{f.peak_memory_gib:.2f}" + ("" if f.memory_measured else " (process RSS)")
        relative = [f"{f.images_per_second / base.images_per_second:.2f}"]
        if len(ratios) > 1:
            relative.append(f"{f.images_per_second / upstream.images_per_second:.2f}")
        achieved = f"{f.train_tflop_per_s:.3f}" + ("" if f.train_flop_note == "counted" else f" ({f.train_flop_note})")
        lines.append(f"| {f.path} | {f.implementation} | {f.images_per_second:.2f} | {' | '.join(relative)} | "
                     f"{memory} | {f.forward_gflop:.1f} | {achieved} | {f.roofline_share:.1%} |")
    lines.append(f"\ninput pipeline: {pipeline[0]:.1f} images/s ({pipeline[1]}); "
                 f"memory bandwidth {bandwidth:.0f} GB/s ({source})")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmark.perf", description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="uresnet")
    parser.add_argument("--downsample", type=int, default=1, help="resolution: 1280x2048 / 2^downsample (1: 640x1024)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--precision", default="float32", choices=["float32", "tf32", "mixed", "bfloat16"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--paths", nargs="+", choices=list(PATHS),
                        help="default: all three (upstream only for PyTorch's 2D network)")
    parser.add_argument("--max-batch", type=float, metavar="GIB", help="also search the largest batch that fits GIB")
    parser.add_argument("--profile", metavar="DIR", help="also profile 3 steps of each path into DIR/<path>/")
    parser.add_argument("--bandwidth", type=float, metavar="GB/s", help="device memory bandwidth (default: measured)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # key=value settings may stand anywhere, also after --paths (whose list would otherwise swallow them)
    settings = [token for token in argv if "=" in token and not token.startswith("-")]
    args = _parser().parse_args([token for token in argv if token not in settings])
    args.settings = settings
    if min(args.batch, args.steps) < 1 or args.warmup < 0:
        print("error: --batch and --steps must be >= 1, --warmup >= 0", file=sys.stderr)
        return 2
    for option, value in (("--max-batch", args.max_batch), ("--bandwidth", args.bandwidth)):
        if value is not None and not value > 0:  # also refuses nan
            print(f"error: {option} {value:g}: must be > 0", file=sys.stderr)
            return 2
    try:
        if args.paths is None:
            upstream_applies = registry.key_of(_configuration(args, "upstream", args.batch)) == ("torch", "2D")
            args.paths = [path for path in PATHS if path != "upstream" or upstream_applies]
        for path in args.paths:  # refuse a path that cannot run before any is measured
            implementation_class(_configuration(args, path, args.batch), path)
        probe, _ = _implementation(args, "reference", args.batch)
        if args.bandwidth:
            bandwidth, source = args.bandwidth, "given"
        else:
            bandwidth, source = probe.memory_bandwidth_gb_s() or host_bandwidth_gb_s(), "measured copy"
        del probe
        figures: List[Figures] = []
        for path in args.paths:
            figures.append(measure(args, path, bandwidth))
        pipeline = input_pipeline_rate(args, steps=max(args.steps, 40))
        print(f"\n{args.network} at {SBND_SHAPE[0] >> args.downsample}x{SBND_SHAPE[1] >> args.downsample}, batch "
              f"{args.batch}, {args.precision}, {args.steps} timed steps after {args.warmup}\n")
        print(table(figures, pipeline, bandwidth, source))
        if args.max_batch:
            for path in args.paths:
                found = max_batch(args, path, args.max_batch, figures[0].memory_measured)
                print(f"largest batch within {args.max_batch:g} GiB, {path}: {found}", flush=True)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    return 0


if __name__ == "__main__":
    sys.exit(main())
