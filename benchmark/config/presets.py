"""Named presets chosen by group on the command line (`network=a21`).

A preset is a set of overrides on top of the schema defaults; the network
presets are the original CosmicTagger ones.
"""
from __future__ import annotations

from typing import Dict, Mapping

NETWORK_PRESETS: Dict[str, Mapping[str, object]] = {
    # The default network: 18,382,131 trainable parameters.
    "uresnet": {},
    # The Aurora acceptance model: 8,510,547 parameters.
    "a21": {"n_initial_filters": 8, "residual": False, "blocks_final": 0, "connections": "sum"},
    # 1,926,403 parameters; depth 7 needs data.downsample=0 at 1280 rows.
    "polaris": {
        "blocks_deepest_layer": 2,
        "blocks_final": 2,
        "network_depth": 7,
        "bottleneck_deepest": 96,
        "residual": False,
        "connections": "sum",
    },
    # The default without batch normalisation.
    "scc21": {"batch_norm": False},
    # The default with the planes as a depth axis (3D convolutions): 18,381,459 parameters.
    "uresnet3d": {"conv_mode": "3D"},
    # The default on spconv: the charged pixels only (see implementations/torch/uresnet_sparse.py).
    "uresnet_sparse": {"conv_mode": "sparse"},
}

# `data=synthetic` / `data=real` as in the original's data group.
DATA_PRESETS: Dict[str, Mapping[str, object]] = {
    "real": {"synthetic": False},
    "synthetic": {"synthetic": True},
}
