"""Weights between the torch UResNet and its Keras twin, matched by layer name.

Every Keras layer with weights is named after the torch module it twins, so
a torch key is "<layer name>.<parameter>". Kernels change layout only:
Conv2d OIHW <-> Conv2D HWIO and ConvTranspose2d IOHW <-> Conv2DTranspose
HWOI are both the permutation (2, 3, 1, 0) one way and (3, 2, 0, 1) back.
torch's `num_batches_tracked` is not kept in Keras (it only matters for
momentum=None); `keras_to_torch` leaves it out and torch's load tolerates that.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import keras
import numpy as np

from .uresnet2d import TorchBatchNorm

TO_KERAS = (2, 3, 1, 0)
TO_TORCH = (3, 2, 0, 1)


def _pairs(layer: keras.layers.Layer) -> List[Tuple[str, keras.Variable, bool]]:
    """(torch key, Keras variable, is a kernel) for each weight of `layer`."""
    if isinstance(layer, TorchBatchNorm):
        return [(f"{layer.name}.weight", layer.gamma, False), (f"{layer.name}.bias", layer.beta, False),
                (f"{layer.name}.running_mean", layer.moving_mean, False),
                (f"{layer.name}.running_var", layer.moving_variance, False)]
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
        pairs = [(f"{layer.name}.weight", layer.kernel, True)]
        if layer.use_bias:
            pairs.append((f"{layer.name}.bias", layer.bias, False))
        return pairs
    if layer.weights:
        raise TypeError(f"no torch twin known for layer {layer.name} ({type(layer).__name__})")
    return []


def _all_pairs(keras_model: keras.Model) -> List[Tuple[str, keras.Variable, bool]]:
    return [pair for layer in keras_model.layers for pair in _pairs(layer)]


def _numpy(value) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def torch_to_keras(torch_state_dict: Dict[str, object], keras_model: keras.Model) -> None:
    """Load a torch UResNet's state_dict into the Keras twin; every weight on both sides must match."""
    pairs = _all_pairs(keras_model)
    expected = {key for key in torch_state_dict if not key.endswith("num_batches_tracked")}
    missing = sorted({key for key, _, _ in pairs} - expected)
    unused = sorted(expected - {key for key, _, _ in pairs})
    if missing or unused:
        raise KeyError(f"torch/keras mismatch: missing in torch {missing}, unused torch keys {unused}")
    for key, variable, is_kernel in pairs:
        value = _numpy(torch_state_dict[key])
        variable.assign(value.transpose(TO_KERAS) if is_kernel else value)


def keras_to_torch(keras_model: keras.Model) -> Dict[str, "torch.Tensor"]:
    """The torch UResNet state_dict (without num_batches_tracked) of the Keras twin's weights."""
    import torch

    state = {}
    for key, variable, is_kernel in _all_pairs(keras_model):
        value = keras.ops.convert_to_numpy(variable)
        state[key] = torch.from_numpy(np.ascontiguousarray(value.transpose(TO_TORCH) if is_kernel else value))
    return state
