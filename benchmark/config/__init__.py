"""Configuration: schema, presets, command-line loading, validation and rendering."""
from __future__ import annotations

from typing import Sequence

from omegaconf import DictConfig

from benchmark.config.load import build
from benchmark.config.validate import check_supported, check_values

DEFAULT_OUTPUT_DIR = "output/{framework}/{network}/{id}/"


def load(tokens: Sequence[str]) -> DictConfig:
    """Parse and check command-line tokens; raises ConfigError with one line."""
    cfg = build(tokens)
    check_values(cfg)
    check_supported(cfg)
    cfg.run.output_dir = resolve_output_dir(cfg)
    return cfg


def resolve_output_dir(cfg: DictConfig) -> str:
    """`run.output_dir` may use {framework}, {network} and {id}."""
    return str(cfg.run.output_dir).format(
        framework=cfg.framework.name.value, network=cfg.network.name, id=cfg.run.id
    )
