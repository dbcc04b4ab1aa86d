"""Which implementation serves a (framework, convolution mode), imported lazily.

The harness never imports a framework at module level: the module named here
is imported only when a run selects it, after `framework.environment_variables`
are exported.
"""
from __future__ import annotations

import importlib
import os
from typing import List, Optional, Tuple, Type

from omegaconf import DictConfig

from benchmark.errors import ConfigError
from benchmark.implementation import Implementation

# framework.optimized=true: the same models through a faster execution path
_OPTIMIZED = {
    ("torch", "2D"): "implementations.torch.implementation:TorchOptimized2D",
    ("torch", "3D"): "implementations.torch.implementation:TorchOptimized3D",
}
_IMPLEMENTATIONS = {
    ("torch", "2D"): "implementations.torch.implementation:TorchDense2D",
    ("torch", "3D"): "implementations.torch.implementation:TorchDense3D",
    ("torch", "sparse"): "implementations.torch.sparse_implementation:TorchSparse",
    ("tensorflow", "2D"): "implementations.tensorflow.implementation:TensorFlowDense2D",
    ("tensorflow", "3D"): "implementations.tensorflow.implementation:TensorFlowDense3D",
}

# What each framework's `Implementation.checkpoint_suffix` returns (tested), so a file names its framework.
CHECKPOINT_SUFFIXES = {"torch": ".pt", "tensorflow": ".tf.npz"}


def framework_of_checkpoint(path: str, default: Optional[str] = None) -> str:
    """The framework whose checkpoint `path` is, by its suffix; `default` (or an error) for another suffix."""
    for framework, suffix in CHECKPOINT_SUFFIXES.items():
        if path.endswith(suffix):
            return framework
    if default is not None:
        return default
    known = ", ".join(f"{suffix} ({framework})" for framework, suffix in CHECKPOINT_SUFFIXES.items())
    raise ConfigError(f"{path}: not a checkpoint name this benchmark knows (the suffix must be one of {known})")


def offered() -> List[Tuple[str, str, bool]]:
    """Every (framework.name, network.conv_mode, framework.optimized) this benchmark has an implementation for."""
    plain = [(framework, mode, False) for framework, mode in _IMPLEMENTATIONS]
    return plain + [(framework, mode, True) for framework, mode in _OPTIMIZED]


def key_of(cfg: DictConfig) -> Tuple[str, str]:
    return cfg.framework.name.value, cfg.network.conv_mode.value


def check_available(cfg: DictConfig) -> None:
    """Refuse a combination that has no implementation, before any work."""
    if cfg.framework.optimized and key_of(cfg) not in _OPTIMIZED:
        framework, mode = key_of(cfg)
        raise ConfigError(f"framework.optimized=true: there is no optimized path for framework.name={framework} "
                          f"network.conv_mode={mode} (PyTorch only)")
    if key_of(cfg) not in _IMPLEMENTATIONS:
        available = ", ".join(f"framework.name={f} network.conv_mode={m}" for f, m in _IMPLEMENTATIONS)
        framework, mode = key_of(cfg)
        raise ConfigError(
            f"framework.name={framework} with network.conv_mode={mode} has no implementation yet; available: {available}"
        )


def load_class(cfg: DictConfig) -> Type[Implementation]:
    check_available(cfg)
    os.environ.update({str(k): str(v) for k, v in cfg.framework.environment_variables.items()})
    table = _OPTIMIZED if cfg.framework.optimized else _IMPLEMENTATIONS
    module_name, class_name = table[key_of(cfg)].split(":")
    return getattr(importlib.import_module(module_name), class_name)
