"""The Keras UResNet computes the same function as the torch one: parameter counts, logits, batch norm, weight conversion."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from quiet_tensorflow import tf

from benchmark.config.schema import Connection, Downsampling, GrowthRate, NetworkConfig, Upsampling
from implementations.tensorflow.convert import keras_to_torch, torch_to_keras
from implementations.tensorflow.uresnet2d import build_uresnet, count_parameters
from implementations.torch.uresnet2d import UResNet

from tiny import images, network, tiny

TOLERANCE = 1e-4

PRESETS = {
    "uresnet": (dict(), 18_382_131),
    "a21": (dict(n_initial_filters=8, residual=False, blocks_final=0, connections=Connection.sum), 8_510_547),
    "polaris": (dict(blocks_deepest_layer=2, blocks_final=2, network_depth=7, bottleneck_deepest=96,
                     residual=False, connections=Connection.sum), 1_926_403),
}

# Each option off its default at least once, some together.
VARIANTS = {
    "default": dict(),
    "sum_plain": dict(connections=Connection.sum, residual=False),
    "none_conv_samplers": dict(connections=Connection.none, downsampling=Downsampling.convolutional,
                               upsampling=Upsampling.convolutional),
    "concat_convT_block_concat": dict(upsampling=Upsampling.convolutional, block_concat=True),
    "no_batch_norm_no_bias": dict(batch_norm=False, bias=False, downsampling=Downsampling.convolutional),
    "block_concat_sum_multiplicative": dict(block_concat=True, connections=Connection.sum,
                                            growth_rate=GrowthRate.multiplicative),
}


def relative_difference(actual, expected) -> float:
    """Largest absolute difference, relative to the largest magnitude of `expected`."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def torch_model(config: NetworkConfig, per_plane: bool = True) -> UResNet:
    """A seeded torch model with random batch norm parameters and running statistics, so that they matter."""
    torch.manual_seed(0)
    model = UResNet(config, per_plane_batch_norm=per_plane)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
    return model


def twins(per_plane: bool = True, **options):
    config = tiny(**options)
    reference = torch_model(config, per_plane)
    model = build_uresnet(config, per_plane_batch_norm=per_plane)
    torch_to_keras(reference.state_dict(), model)
    return reference, model


@pytest.mark.parametrize("preset", PRESETS)
def test_parameter_count_matches_torch(preset):
    options, expected = PRESETS[preset]
    assert count_parameters(build_uresnet(network(**options))) == expected


@pytest.mark.parametrize("variant", VARIANTS)
def test_eval_logits_match_torch(variant):
    reference, model = twins(**VARIANTS[variant])
    with torch.no_grad():
        expected = reference.eval()(images()).numpy()
    actual = model(images().numpy(), training=False)
    assert actual.shape == expected.shape == (2, 3, 3, 16, 32)
    assert relative_difference(actual, expected) < TOLERANCE


@pytest.mark.parametrize("per_plane", [True, False], ids=["per_plane", "pooled"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_training_logits_and_running_statistics_match_torch(variant, per_plane):
    reference, model = twins(per_plane, **VARIANTS[variant])
    with torch.no_grad():
        expected = reference.train()(images()).numpy()
    actual = model(images().numpy(), training=True)
    assert relative_difference(actual, expected) < TOLERANCE
    updated = keras_to_torch(model)
    for key, value in reference.state_dict().items():
        if "running" in key:  # per plane: three updates per step outside the mixed deepest block
            assert relative_difference(updated[key], value) < TOLERANCE, key


def test_per_plane_statistics_differ_from_pooled():
    """Per-plane normalisation is not the pooled one, so the test above does check the plane slicing."""
    config = tiny()
    per_plane, pooled = build_uresnet(config), build_uresnet(config, per_plane_batch_norm=False)
    torch_to_keras(torch_model(config).state_dict(), per_plane)
    torch_to_keras(keras_to_torch(per_plane), pooled)
    x = images().numpy() * np.array([1.0, 3.0, 0.2], np.float32)[None, :, None, None]
    assert relative_difference(per_plane(x, training=True), pooled(x, training=True)) > 1e-2


def test_keras_to_torch_round_trips():
    reference, model = twins(upsampling=Upsampling.convolutional)
    state = keras_to_torch(model)
    expected = {key: value for key, value in reference.state_dict().items() if not key.endswith("num_batches_tracked")}
    assert state.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(state[key], value), key
    restored = UResNet(tiny(upsampling=Upsampling.convolutional))
    restored.load_state_dict(state)  # strict: every parameter and buffer present
