"""Checkpoints from one framework to another.

    python -m benchmark.convert SOURCE TARGET [key=value ...]

The frameworks are told by the file suffixes (.pt: torch, .tf.npz:
tensorflow); the key=value overrides describe the network (e.g. `network=a21`
or `network.conv_mode=3D`) with the same grammar as bin/exec.py. Only the
model weights travel (in the exchange layout of
`Implementation.export_weights`); the target starts with a fresh optimizer,
which is what inference and fine-tuning need. It runs on the CPU: the
weights are small, and both frameworks then share one process safely.

A run whose `mode.weights_location` names another framework's checkpoint
converts it through this command in a subprocess (`weights_for`), so two
frameworks never hold one GPU.
"""
from __future__ import annotations

import enum
import os
import subprocess
import sys
from typing import List, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from benchmark import config, registry
from benchmark.config.validate import check_image_shape
from benchmark.datasets import SBND_SHAPE
from benchmark.errors import BenchmarkError, ConfigError, DataError
from benchmark.parallel.context import SINGLE, Parallel

USAGE = "usage: python -m benchmark.convert SOURCE TARGET [key=value ...]  (suffixes: " + ", ".join(
    f"{suffix} {framework}" for framework, suffix in registry.CHECKPOINT_SUFFIXES.items()) + ")"
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _implementation(overrides: Sequence[str], framework: str):
    cfg = config.load(["run.id=convert", *overrides, f"framework.name={framework}", "run.compute_mode=CPU"])
    shape = check_image_shape(SBND_SHAPE, cfg.data.downsample, cfg.network.network_depth)
    return registry.load_class(cfg)(cfg, shape)


def convert(source: str, target: str, overrides: Sequence[str] = ()) -> None:
    """Write the weights of checkpoint `source` as a checkpoint `target` of the other framework."""
    source_framework, target_framework = registry.framework_of_checkpoint(source), registry.framework_of_checkpoint(target)
    if source_framework == target_framework:
        raise ConfigError(f"{source} and {target} are both {source_framework} checkpoints: nothing to convert")
    if not os.path.isfile(source):
        raise DataError(f"{source}: no such checkpoint")
    if os.path.exists(target):
        raise BenchmarkError(f"{target} exists: it is not overwritten (remove it or choose another name)")
    if not os.path.isdir(os.path.dirname(os.path.abspath(target))):
        raise BenchmarkError(f"{target}: its folder does not exist")
    reader = _implementation(overrides, source_framework)
    reader.load(source, weights_only=True)
    writer = _implementation(overrides, target_framework)
    writer.import_weights(reader.export_weights())
    writer.save(target)


def network_overrides(cfg: DictConfig) -> List[str]:
    """The key=value tokens that rebuild `cfg`'s network."""
    def text(value) -> str:
        return value.value if isinstance(value, enum.Enum) else str(value)

    return [f"network.{key}={text(value)}" for key, value in OmegaConf.to_container(cfg.network).items() if key != "name"]


def weights_for(cfg: DictConfig, path: str, folder: str, parallel: Parallel = SINGLE) -> str:
    """`path` if it is a checkpoint of `cfg`'s framework, else its conversion into `folder` (made once, by rank 0)."""
    framework = cfg.framework.name.value
    if registry.framework_of_checkpoint(path, default=framework) == framework:
        return path
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such checkpoint")
    name = os.path.basename(path)
    stem = name[: -len(registry.CHECKPOINT_SUFFIXES[registry.framework_of_checkpoint(path)])]
    converted = os.path.join(folder, f"{stem}.converted{registry.CHECKPOINT_SUFFIXES[framework]}")
    if parallel.is_root:
        _convert_once(cfg, path, converted, folder)
    parallel.comm.barrier()
    return converted


def _convert_once(cfg: DictConfig, path: str, converted: str, folder: str) -> None:
    framework = cfg.framework.name.value
    if os.path.exists(converted) and os.path.getmtime(converted) >= os.path.getmtime(path):
        return
    if os.path.exists(converted):
        os.remove(converted)  # ours, made from an older version of `path`
    os.makedirs(folder, exist_ok=True)
    # CPU only, in its own process: the source framework must not take GPU memory from this run's.
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": os.pathsep.join(filter(None, [_REPO, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "benchmark.convert", path, converted, *network_overrides(cfg)],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise DataError(f"{path}: could not convert it to {framework}: {lines[-1] if lines else f'exit status {done.returncode}'}")
    print(f"converted {path} to {converted}", flush=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or any(arg in ("-h", "--help") for arg in args):
        print(USAGE, file=sys.stderr if len(args) < 2 else sys.stdout)
        return 2 if len(args) < 2 else 0
    try:
        convert(args[0], args[1], args[2:])
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    print(f"wrote {args[1]} ({registry.framework_of_checkpoint(args[1])}) from {args[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
