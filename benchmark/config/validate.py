"""Range and consistency rules that types alone cannot express.

Every rule names the key and what is allowed, so a bad run is refused before
any work with one line (exit status 2).
"""
from __future__ import annotations

import re
from typing import Tuple

from omegaconf import DictConfig

from benchmark.errors import ConfigError

# (key, lowest allowed value); upper bounds are rare enough to write inline.
_MINIMA = (
    ("run.iterations", 1),
    ("run.minibatch_size", 1),
    ("run.aux_minibatch_size", 1),
    ("run.aux_iterations", 0),
    ("run.seed", 0),
    ("mode.checkpoint_iteration", 0),
    ("mode.logging_iteration", 1),
    ("mode.summary_iteration", 1),
    ("mode.optimizer.gradient_accumulation", 1),
    ("data.downsample", 0),
    ("data.seed", 0),
    ("data.synthetic_events", 0),
    ("data.synthetic_pool", 0),
    ("data.aux_events", 0),
    ("data.max_voxels", 0),
    ("data.workers", 1),
    ("framework.inter_op_parallelism_threads", 0),
    ("framework.intra_op_parallelism_threads", 0),
    ("network.network_depth", 0),
    ("network.n_initial_filters", 1),
    ("network.blocks_per_layer", 0),
    ("network.blocks_deepest_layer", 0),
    ("network.blocks_final", 0),
    ("network.bottleneck_deepest", 1),
    ("network.filter_size_deepest", 1),
    ("network.weight_decay", 0),
)

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def _get(cfg: DictConfig, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def check_values(cfg: DictConfig) -> None:
    for key, low in _MINIMA:
        value = _get(cfg, key)
        if value < low:
            raise ConfigError(f"{key}={value} is out of range: it must be >= {low}")
    if cfg.mode.optimizer.learning_rate <= 0:
        raise ConfigError(f"mode.optimizer.learning_rate={cfg.mode.optimizer.learning_rate} is out of range: it must be > 0")
    optimizer = cfg.mode.optimizer
    if optimizer.warmup_epochs < 0:
        raise ConfigError(f"mode.optimizer.warmup_epochs={optimizer.warmup_epochs} is out of range: it must be >= 0")
    if optimizer.decay_end_epoch <= optimizer.warmup_epochs:
        raise ConfigError(f"mode.optimizer.decay_end_epoch={optimizer.decay_end_epoch} must be greater than "
                          f"mode.optimizer.warmup_epochs={optimizer.warmup_epochs}")
    if not 0 <= optimizer.final_lr_fraction <= 1:
        raise ConfigError(f"mode.optimizer.final_lr_fraction={optimizer.final_lr_fraction} is out of range: it must be "
                          f"between 0 and 1")
    if cfg.network.filter_size_deepest % 2 == 0:
        raise ConfigError(f"network.filter_size_deepest={cfg.network.filter_size_deepest} must be odd (the deepest convolutions keep the size)")
    if cfg.data.downsample > 8:
        raise ConfigError(f"data.downsample={cfg.data.downsample} is out of range: it must be <= 8")
    if cfg.framework.compile_mode.value != "auto" and not cfg.framework.optimized:
        raise ConfigError(f"framework.compile_mode={cfg.framework.compile_mode.value} applies to framework.optimized=true only")
    if cfg.framework.xla and cfg.framework.name.value != "tensorflow":
        raise ConfigError(f"framework.xla=true applies to framework.name=tensorflow only, not {cfg.framework.name.value}")
    if not _RUN_ID.match(str(cfg.run.id)):
        raise ConfigError(
            f"run.id='{cfg.run.id}' is not allowed: use letters, digits and . _ + - (it names a folder)"
        )


def check_supported(cfg: DictConfig) -> None:
    """Combinations refused before any work (the launch itself is checked by benchmark.parallel)."""
    if cfg.run.instances < 1:
        raise ConfigError(f"run.instances={cfg.run.instances} is out of range: it must be >= 1")
    if not 1 <= cfg.run.distributed_port <= 65535 - cfg.run.instances:
        raise ConfigError(f"run.distributed_port={cfg.run.distributed_port} is out of range: a TCP port, 1-{65535 - cfg.run.instances}")
    if cfg.run.distributed_timeout < 1:
        raise ConfigError(f"run.distributed_timeout={cfg.run.distributed_timeout} is out of range: it must be >= 1 second")


def check_image_shape(full_shape: Tuple[int, int], downsample: int, depth: int) -> Tuple[int, int]:
    """The image after `data.downsample` must survive `network.network_depth` halvings.

    The original's rule: the deepest feature map must not have an odd number of
    rows or columns, i.e. each side must divide by 2^(downsample + depth + 1);
    for 1280 rows that is network_depth + downsample < 8.
    Returns the image shape the network sees.
    """
    rows, cols = full_shape
    factor = 2 ** (downsample + depth + 1)
    if rows % factor or cols % factor:
        limit = 0
        while rows % 2 ** (limit + 2) == 0 and cols % 2 ** (limit + 2) == 0:
            limit += 1
        raise ConfigError(
            f"network.network_depth={depth} with data.downsample={downsample} does not fit images of "
            f"{rows}x{cols}: the deepest layer would have an odd or fractional size; "
            f"network_depth + downsample must be <= {limit}"
        )
    return rows // 2**downsample, cols // 2**downsample
