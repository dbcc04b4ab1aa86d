"""Weights between the torch UResNet and its Keras twin, matched by layer name.

Every Keras layer with weights is named after the torch module it twins, so
a torch key is "<layer name>.<parameter>". Kernels change layout only: the
torch (out, in, *spatial) of a convolution and (in, out, *spatial) of a
transposed one become Keras' (*spatial, in, out) and (*spatial, out, in),
the same permutation for both: (2, 3, 1, 0) in 2D, (2, 3, 4, 1, 0) in 3D.
torch's `num_batches_tracked` is not kept in Keras (it only matters for
momentum=None); `keras_to_torch` leaves it out and torch's load tolerates that.
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

import keras
import numpy as np

from .blocks import TorchBatchNorm

CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.Conv2DTranspose, keras.layers.Conv3D, keras.layers.Conv3DTranspose)


def to_keras_axes(ndim: int) -> Tuple[int, ...]:
    """The transpose taking a torch kernel of `ndim` axes to Keras' layout."""
    return tuple(range(2, ndim)) + (1, 0)


def to_torch_axes(ndim: int) -> Tuple[int, ...]:
    return tuple(int(axis) for axis in np.argsort(to_keras_axes(ndim)))


def _layer_pairs(layer: keras.layers.Layer) -> List[Tuple[str, keras.Variable, bool]]:
    """(torch key, Keras variable, is a kernel) for each weight of `layer`."""
    if isinstance(layer, TorchBatchNorm):
        return [(f"{layer.name}.weight", layer.gamma, False), (f"{layer.name}.bias", layer.beta, False),
                (f"{layer.name}.running_mean", layer.moving_mean, False),
                (f"{layer.name}.running_var", layer.moving_variance, False)]
    if isinstance(layer, CONVOLUTIONS):
        pairs = [(f"{layer.name}.weight", layer.kernel, True)]
        if layer.use_bias:
            pairs.append((f"{layer.name}.bias", layer.bias, False))
        return pairs
    if layer.weights:
        raise TypeError(f"no torch twin known for layer {layer.name} ({type(layer).__name__})")
    return []


def torch_pairs(keras_model: keras.Model) -> List[Tuple[str, keras.Variable, bool]]:
    """(torch state_dict key, Keras variable, is a kernel) for every weight of the model."""
    return [pair for layer in keras_model.layers for pair in _layer_pairs(layer)]


def _numpy(value) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def torch_to_keras(torch_state_dict: Dict[str, Any], keras_model: keras.Model) -> None:
    """Load a torch UResNet's (2D or 3D) state_dict into the Keras twin; every weight on both sides must match."""
    pairs = torch_pairs(keras_model)
    expected = {key for key in torch_state_dict if not key.endswith("num_batches_tracked")}
    missing = sorted({key for key, _, _ in pairs} - expected)
    unused = sorted(expected - {key for key, _, _ in pairs})
    if missing or unused:
        raise KeyError(f"torch/keras mismatch: {len(missing)} missing in torch {missing[:5]}, "
                       f"{len(unused)} unused torch keys {unused[:5]}")
    values = []
    for key, variable, is_kernel in pairs:  # every shape checked before anything is assigned
        value = _numpy(torch_state_dict[key])
        value = value.transpose(to_keras_axes(value.ndim)) if is_kernel else value
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(f"{key} has shape {value.shape} in Keras' layout, the network needs {tuple(variable.shape)}")
        values.append(value)
    for (_, variable, _), value in zip(pairs, values):
        variable.assign(value)


def keras_to_arrays(keras_model: keras.Model) -> Dict[str, np.ndarray]:
    """The torch UResNet state_dict (without num_batches_tracked) of the Keras twin's weights, as numpy arrays."""
    state = {}
    for key, variable, is_kernel in torch_pairs(keras_model):
        value = keras.ops.convert_to_numpy(variable)
        state[key] = np.ascontiguousarray(value.transpose(to_torch_axes(value.ndim)) if is_kernel else value)
    return state


def keras_to_torch(keras_model: keras.Model) -> Dict[str, "torch.Tensor"]:
    """`keras_to_arrays` as torch tensors, ready for `load_state_dict`."""
    import torch

    return {key: torch.from_numpy(value) for key, value in keras_to_arrays(keras_model).items()}
