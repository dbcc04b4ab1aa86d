"""Settings shared by the tests: a tiny UResNet on 40x64 images, on the CPU, and the real sample's path."""
import os

import pytest

# Upstream's public 5-event example file, shipped with the repository so that a clone anywhere runs every test.
SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "cosmic_tagging_light.h5")


def require_sample() -> str:
    """SAMPLE's path; fails the calling test, naming the file, when it is missing (a skip would hide it)."""
    if not os.path.isfile(SAMPLE):
        pytest.fail(f"{SAMPLE} is missing: it ships with the repository (git checkout -- tests/data)", pytrace=False)
    return SAMPLE


TINY_NETWORK = [
    "data.downsample=5",  # 1280x2048 -> 40x64
    "network.network_depth=2",
    "network.n_initial_filters=2",
    "network.bottleneck_deepest=8",
    "network.blocks_deepest_layer=1",
    "network.blocks_final=1",
    "network.blocks_per_layer=1",
    "run.compute_mode=CPU",
]
TINY_SHAPE = (40, 64)


# Tiny networks for the model tests.
BATCH, HEIGHT, WIDTH = 2, 16, 32


def network(**options):
    """A NetworkConfig with `options` set."""
    from benchmark.config.schema import NetworkConfig

    config = NetworkConfig()
    for name, value in options.items():
        setattr(config, name, value)
    return config


def tiny(**options):
    """A network small enough to run dozens of times in a second or two."""
    sizes = dict(n_initial_filters=3, network_depth=2, bottleneck_deepest=8, blocks_per_layer=1,
                 blocks_deepest_layer=1, blocks_final=1, filter_size_deepest=3)
    return network(**{**sizes, **options})


def images(seed: int = 0):
    import torch

    return torch.randn(BATCH, 3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(seed))
