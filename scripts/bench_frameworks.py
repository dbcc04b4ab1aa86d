#!/usr/bin/env python3
"""The implementations side by side (PyTorch and TensorFlow, 2D, 3D and sparse): images/s and peak memory.

A script that prints figures, not a test. Each (framework, convolution mode)
runs in its own process through bin/exec.py, on the same synthetic events and
the same network, so the numbers differ only by the implementation:

    .venv/bin/python scripts/bench_frameworks.py [--repeats N] [--modes 2D 3D sparse] [--frameworks torch tensorflow]
                                                 [key=value ...]

Extra key=value settings go to every run (e.g. run.compute_mode=GPU
data.downsample=1 to size it for an accelerator). TensorFlow runs with and
without XLA (`framework.xla=true`). Prints one table in Markdown, the median
of `--repeats` runs per cell.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from typing import Dict, List, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# (label, framework, convolution mode, settings of that row alone)
COMBINATIONS = [(label, framework, mode, settings) for mode in ("2D", "3D") for label, framework, settings in (
    ("torch", "torch", []), ("tensorflow", "tensorflow", []), ("tensorflow + XLA", "tensorflow", ["framework.xla=true"]))]
COMBINATIONS.append(("torch", "torch", "sparse", []))
# a21 two levels shallower on 160x256 images (data.downsample=3): a few seconds per step on two cores.
SMALL = ["network=a21", "network.network_depth=4", "data.downsample=3", "data.synthetic=true",
         "data.synthetic_events=64", "data.seed=1", "run.seed=1", "run.minibatch_size=4", "run.compute_mode=CPU"]
THROUGHPUT = re.compile(r"^throughput: ([0-9.]+) images/s")
PARAMETERS = re.compile(r"^trainable parameters: ([0-9,]+)")
PEAK = re.compile(r"^peak memory: ([0-9.]+) GiB")


def run(mode: str, framework: str, conv_mode: str, extra: Sequence[str], output: str) -> Dict[str, str]:
    """One bin/exec.py run; its steady-state images/s and parameter count.

    Training runs 10 steps and checkpoints the last; inference then evaluates
    every event with that checkpoint (the run folder's latest).
    """
    steps = ["run.iterations=10", "run.aux_iterations=0", "mode.checkpoint_iteration=10"] if mode == "train" else []
    command = [sys.executable, os.path.join(ROOT, "bin", "exec.py"), f"mode={mode}", f"run.id={framework}-{conv_mode}",
               f"run.output_dir={output}", f"framework.name={framework}", f"network.conv_mode={conv_mode}",
               *SMALL, *steps, *extra]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if done.returncode != 0:
        # the whole tail: a first run on new hardware is diagnosed from this output alone
        print("\n".join((done.stdout + done.stderr).strip().splitlines()[-40:]), file=sys.stderr)
        raise SystemExit(f"{framework} {conv_mode} {mode} failed (exit status {done.returncode})")
    found: Dict[str, str] = {}
    for line in done.stdout.splitlines():
        for name, pattern in (("images/s", THROUGHPUT), ("parameters", PARAMETERS), ("peak GiB", PEAK)):
            if (match := pattern.match(line)):
                found[name] = match.group(1)
    return found


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=["2D", "3D", "sparse"], choices=["2D", "3D", "sparse"])
    parser.add_argument("--frameworks", nargs="+", default=["torch", "tensorflow"], choices=["torch", "tensorflow"])
    args, extra = parser.parse_known_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: must be >= 1")
    rows = []
    chosen = [c for c in COMBINATIONS if c[2] in args.modes and c[1] in args.frameworks]
    with tempfile.TemporaryDirectory(prefix="bench-frameworks-") as scratch:
        for label, framework, conv_mode, settings in chosen:
            cell = {"train": [], "inference": [], "peak": []}
            parameters = ""
            for repeat in range(args.repeats):
                output = os.path.join(scratch, f"{label}-{conv_mode}-{repeat}".replace(" + ", "-"))
                trained = run("train", framework, conv_mode, [*settings, *extra], output)
                parameters = trained["parameters"]
                cell["train"].append(float(trained["images/s"]))
                cell["peak"].append(float(trained["peak GiB"]))
                cell["inference"].append(float(run("inference", framework, conv_mode, [*settings, *extra], output)["images/s"]))
                print(f"{label:<16} {conv_mode}  run {repeat + 1}: train {cell['train'][-1]:.2f}, "
                      f"inference {cell['inference'][-1]:.2f} images/s", flush=True)
            rows.append((label, conv_mode, parameters, statistics.median(cell["train"]),
                         statistics.median(cell["inference"]), max(cell["peak"])))
    print(f"\nsettings: {' '.join(SMALL + list(extra))}; median of {args.repeats} runs; "
          "train: 10 steps, first 2 left out; inference: the 64 events\n")
    print("| framework | conv_mode | parameters | train images/s | inference images/s | training peak memory (GiB) |")
    print("|---|---|---:|---:|---:|---:|")
    for label, conv_mode, parameters, train, inference, peak in rows:
        print(f"| {label} | {conv_mode} | {parameters} | {train:.2f} | {inference:.2f} | {peak:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
