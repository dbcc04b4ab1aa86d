"""Settings shared by the tests: a tiny UResNet on 40x64 images, on the CPU."""

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
