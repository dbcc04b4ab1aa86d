#!/usr/bin/env python3
"""Data-parallel scaling: training images/s on 1, 2, ... ranks and the efficiency against one rank.

A script that prints figures, not a test. Every rank keeps the same share of
the batch (`--per-rank-batch`), so the global batch grows with the ranks, as
a site scales out; efficiency = images/s on N ranks / (N x images/s on one).

    .venv/bin/python scripts/bench_scaling.py [--ranks 1 2] [--launcher "mpirun -n {ranks}"]
        [--per-rank-batch 2] [--steps 12] [key=value ...]

The launcher is a command prefix with {ranks} in it (default: Open MPI's
mpirun on this host; on a cluster e.g. "srun -n {ranks} --ntasks-per-node 4");
key=value settings go to every run (framework.distributed_mode=horovod,
run.compute_mode=GPU, network=..., ...). Defaults: synthetic events, a21 at
depth 4 on 160 x 256 images, on the CPU.
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
from typing import List, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_LAUNCHER = "mpirun --allow-run-as-root --oversubscribe -n {ranks}"
SMALL = ["network=a21", "network.network_depth=4", "data.downsample=3", "data.synthetic=true", "data.seed=1",
         "run.seed=1", "run.compute_mode=CPU", "run.aux_iterations=0", "mode.checkpoint_iteration=0"]
THROUGHPUT = re.compile(r"^throughput: ([0-9.]+) images/s")


def images_per_second(ranks: int, launcher: str, per_rank_batch: int, steps: int, extra: Sequence[str], output: str) -> float:
    batch = ranks * per_rank_batch
    command = [*shlex.split(launcher.format(ranks=ranks)), sys.executable, os.path.join(ROOT, "bin", "exec.py"),
               "mode=train", f"run.id=scaling-{ranks}", f"run.output_dir={output}", "run.distributed=true",
               *SMALL, f"run.minibatch_size={batch}", f"run.aux_minibatch_size={batch}",
               f"data.synthetic_events={batch * steps}", f"run.iterations={steps}", *extra]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    found = [float(m.group(1)) for m in map(THROUGHPUT.match, done.stdout.splitlines()) if m]
    if done.returncode != 0 or not found:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise SystemExit(f"{ranks} ranks failed (exit status {done.returncode}): {tail}")
    return found[-1]


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--launcher", default=DEFAULT_LAUNCHER, help="command prefix with {ranks}")
    parser.add_argument("--per-rank-batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=12, help="training steps per run (the first 2 are left out)")
    args, extra = parser.parse_known_args(argv)
    if "{ranks}" not in args.launcher:
        parser.error("--launcher must contain {ranks}")
    rates = {}
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as scratch:
        for ranks in args.ranks:
            rates[ranks] = images_per_second(ranks, args.launcher, args.per_rank_batch, args.steps, extra,
                                             os.path.join(scratch, str(ranks)))
            print(f"{ranks} ranks: {rates[ranks]:.2f} images/s", flush=True)
    base = min(rates)
    print(f"\nsettings: {' '.join(SMALL + list(extra))}; {args.per_rank_batch} images per rank per step; "
          f"launcher: {args.launcher}\n")
    print("| ranks | global batch | images/s | efficiency |")
    print("|---:|---:|---:|---:|")
    for ranks, rate in rates.items():
        efficiency = rate / (ranks / base * rates[base])
        print(f"| {ranks} | {ranks * args.per_rank_batch} | {rate:.2f} | {efficiency:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
