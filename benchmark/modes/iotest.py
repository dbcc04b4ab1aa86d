"""mode=iotest: the input pipeline alone, as training drives it; no framework is imported.

It reports images/s as the consumer sees them (waiting for prepared batches)
and where the preparation time goes, per image: reading and decoding the
events, downsampling, assembling the batch (and densifying, with
`data.data_format` irrelevant here: batches stay voxels, as the GPU path
uses them). Synthetic events come from the pool made when the source is
opened (`data.synthetic_pool`; its size and making time are printed), so
only the gather is timed, as in training.
"""
from __future__ import annotations

import time

from omegaconf import DictConfig

from benchmark.datasets import open_loader
from benchmark.data.sampler import EpochSampler
from benchmark.reporting import Progress
from benchmark.session import resolve_seeds, start
from benchmark.throughput import Throughput
from benchmark.parallel.context import SINGLE, Parallel


def run(cfg: DictConfig, parallel: Parallel = SINGLE) -> int:
    session = start(cfg, parallel, needs_implementation=False)
    resolve_seeds(cfg, parallel)
    session.create_directory()
    session.print_config()
    session.save_config()
    source = session.source("file")
    sampler = EpochSampler(len(source), cfg.run.minibatch_size, seed=cfg.data.seed, rank=parallel.rank,
                           world_size=parallel.size)
    throughput = Throughput()
    voxels = 0
    progress = Progress(cfg.run.iterations, description="iotest", enabled=parallel.world_rank == 0)
    begin_all = time.perf_counter()
    with open_loader(cfg, source, sampler) as loader:
        for step in range(cfg.run.iterations):
            begin = time.perf_counter()
            batch = loader.get(step)
            rate = throughput.add(batch.batch_size, time.perf_counter() - begin)
            voxels += batch.n_voxels
            progress.advance(**{"img/s": f"{rate:.1f}"})
        stages = dict(loader.times.seconds)
        where = loader.description
    progress.close()
    images = cfg.run.iterations * sampler.local_batch_size
    rows, cols = session.image_shape
    if parallel.distributed:
        print(f"iotest of rank 0, which reads {sampler.local_batch_size} of every {cfg.run.minibatch_size} images "
              f"(the {parallel.size} ranks read disjoint shares)")
    print(
        f"iotest: {cfg.run.iterations} batches of {sampler.local_batch_size} images of 3x{rows}x{cols} "
        f"({voxels / images:,.0f} charged voxels per image after downsampling), prepared by {where}"
    )
    print("where the preparation time goes (ms per image, summed over workers):")
    for stage, seconds in stages.items():
        print(f"  {stage:<16} {1e3 * seconds / images:8.2f}")
    waited = sum(throughput.seconds)
    print(f"  {'consumer waited':<16} {1e3 * waited / images:8.2f}  (of {1e3 * (time.perf_counter() - begin_all) / images:.2f} wall)")
    print(throughput.report(), flush=True)
    return 0
