"""What every mode does first: seeds, output directory, data geometry, the implementation."""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from typing import Dict, Tuple

from omegaconf import DictConfig

from benchmark import registry
from benchmark.config.render import config_lines, config_yaml
from benchmark.config.validate import check_image_shape
from benchmark.datasets import full_shape_for_sizing, open_source
from benchmark.data.source import EventSource
from benchmark.implementation import Implementation
from benchmark.output import RunDirectory
from benchmark.parallel.context import SINGLE, Parallel


def resolve_seeds(cfg: DictConfig, parallel: Parallel = SINGLE) -> None:
    """Seed 0 means "draw one": the drawn value is put into the configuration, so it is logged and saved.

    The instance's rank 0 draws, so that its ranks agree.
    """
    for section in (cfg.run, cfg.data):
        if section.seed == 0:
            section.seed = parallel.comm.bcast(secrets.randbelow(2**31 - 2) + 1 if parallel.is_root else None)


@dataclass
class Session:
    cfg: DictConfig
    directory: RunDirectory
    image_shape: Tuple[int, int]
    opened: Dict[str, EventSource] = field(default_factory=dict)
    parallel: Parallel = SINGLE

    def source(self, which: str) -> EventSource:
        """"file" or "aux_file"; synthetic streams depend on the (resolved) data seed."""
        if which not in self.opened:
            self.opened[which] = open_source(self.cfg, which)
        return self.opened[which]

    def print_config(self) -> None:
        print("\n".join(config_lines(self.cfg)), flush=True)

    def create_directory(self) -> None:
        """The instance's rank 0 creates the output directory; the other ranks wait for it."""
        if self.parallel.is_root:
            self.directory.create()
        self.parallel.comm.barrier()

    def save_config(self) -> None:
        if self.parallel.is_root:
            self.directory.save_config(config_yaml(self.cfg), self.cfg.mode.name.value)

    def implementation(self) -> Implementation:
        cls = registry.load_class(self.cfg)
        impl = cls(self.cfg, self.image_shape, self.parallel)
        versions = ", ".join(value if key == "framework" else f"{key} {value}" for key, value in impl.describe().items())
        print(f"implementation: {impl.name} on {impl.device_description()}" + (f" ({versions})" if versions else ""),
              flush=True)
        print(f"trainable parameters: {impl.parameter_count():,}", flush=True)
        return impl


def start(cfg: DictConfig, parallel: Parallel = SINGLE, needs_data: bool = True,
          needs_implementation: bool = True) -> Session:
    """Check what can be checked before any work; the caller creates the output directory.

    Seeds are resolved after a resumed run's checkpoint is read, so the
    caller resolves them; sources that depend on the data seed open lazily.
    Instance k of a weak-scaling job (`run.instances`) writes to
    `run.output_dir`/instance-k and adds k to the seeds it was given.
    """
    registry.check_available(cfg)
    if needs_implementation:
        registry.load_class(cfg).check(cfg)
    if parallel.instances > 1:
        cfg.run.output_dir = os.path.join(cfg.run.output_dir, f"instance-{parallel.instance}")
        for section in (cfg.run, cfg.data):
            if section.seed:
                section.seed += parallel.instance
    opened: Dict[str, EventSource] = {}
    if needs_data and not cfg.data.synthetic:
        opened["file"] = open_source(cfg, "file")
        full_shape = opened["file"].full_shape
    else:
        full_shape = full_shape_for_sizing(cfg)
    image_shape = check_image_shape(full_shape, cfg.data.downsample, cfg.network.network_depth)
    directory = RunDirectory(cfg.run.output_dir)
    return Session(cfg=cfg, directory=directory, image_shape=image_shape, opened=opened, parallel=parallel)
