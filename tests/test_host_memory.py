"""On the CPU a training step reuses the last one's memory instead of page-faulting fresh mappings in
(implementations/torch/host_memory.py)."""
import resource

import numpy as np

from benchmark import config
from benchmark.data.pipeline import load_batch
from benchmark.data.synthetic import SyntheticSource
from implementations.torch.host_memory import keep_freed_host_memory
from implementations.torch.implementation import TorchDense2D

# 640x1024 images, so that the folded first level's tensors (3 x 8 x 640 x 1024 floats, 63 MB) are past glibc's
# largest mmap threshold (32 MiB), with a network shallow enough for a step of about a second
FULL_WIDTH_SHALLOW = ["run.id=m", "data.downsample=1", "network.network_depth=2", "network.n_initial_filters=8",
                      "network.bottleneck_deepest=8", "network.blocks_deepest_layer=1", "network.blocks_final=0",
                      "network.blocks_per_layer=1", "run.compute_mode=CPU", "run.seed=1"]


def _page_faults(function) -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    function()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_training_steps_on_the_cpu_reuse_freed_memory():
    impl = TorchDense2D(config.load(FULL_WIDTH_SHALLOW), (640, 1024))  # tells glibc, as every CPU run does
    assert keep_freed_host_memory()  # idempotent; glibc on Linux, where the benchmark runs
    batch = load_batch(SyntheticSource(2, seed=1), np.arange(1), downsample=1)

    def step():
        impl.accumulate(batch, 1.0)
        impl.apply_update(1e-4)

    faults = [_page_faults(step) for _ in range(5)]
    # The first step grows the heap (and now and then a later one a little, where alignment leaves a freed
    # block a few bytes short); fresh mappings would fault in every 4 KiB page of every large tensor again:
    # some 500,000 faults a step here.
    assert sorted(faults[2:])[1] < 0.05 * faults[0], faults
