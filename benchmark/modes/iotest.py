"""mode=iotest: the input pipeline alone, as training would drive it; no framework is imported."""
from __future__ import annotations

import time

from omegaconf import DictConfig

from benchmark.data.pipeline import Loader
from benchmark.data.sampler import EpochSampler
from benchmark.reporting import Progress
from benchmark.session import resolve_seeds, start
from benchmark.throughput import Throughput


def run(cfg: DictConfig) -> int:
    session = start(cfg)
    resolve_seeds(cfg)
    session.directory.create()
    session.print_config()
    session.save_config()
    source = session.source("file")
    sampler = EpochSampler(len(source), cfg.run.minibatch_size, seed=cfg.data.seed)
    throughput = Throughput()
    voxels = 0
    progress = Progress(cfg.run.iterations, description="iotest")
    with Loader(source, sampler, downsample=cfg.data.downsample) as loader:
        for step in range(cfg.run.iterations):
            begin = time.perf_counter()
            batch = loader.get(step)
            batch.dense()  # what a consumer of dense host arrays would also pay
            rate = throughput.add(batch.batch_size, time.perf_counter() - begin)
            voxels += batch.n_voxels
            progress.advance(**{"img/s": f"{rate:.1f}"})
    progress.close()
    rows, cols = session.image_shape
    print(
        f"iotest: {cfg.run.iterations} batches of {cfg.run.minibatch_size} images of 3x{rows}x{cols}, "
        f"{voxels / (cfg.run.iterations * cfg.run.minibatch_size):,.0f} charged voxels per image"
    )
    print(throughput.report(), flush=True)
    return 0
