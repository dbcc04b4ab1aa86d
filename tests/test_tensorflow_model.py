"""The Keras UResNets (2D and 3D) compute the same functions as the torch ones: parameter counts, logits,
batch norm, weight conversion."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from quiet_tensorflow import tf

from benchmark import config
from benchmark.config.presets import NETWORK_PRESETS
from benchmark.config.schema import Connection, ConvMode, Downsampling, GrowthRate, NetworkConfig, Upsampling
from implementations.tensorflow.convert import keras_to_torch, torch_to_keras
from implementations.tensorflow.uresnet2d import build_uresnet, count_parameters
from implementations.tensorflow.uresnet3d import build_uresnet3d
from implementations.torch.uresnet2d import UResNet
from implementations.torch.uresnet3d import UResNet3D

from tiny import images, network, tiny

TOLERANCE = 1e-4

# Every preset's trainable parameters, as PyTorch counts them (tests/test_uresnet2d.py and test_uresnet3d.py check PyTorch's).
PRESET_PARAMETERS = {"uresnet": 18_382_131, "a21": 8_510_547, "polaris": 1_926_403, "scc21": 18_367_891,
                     "uresnet3d": 18_381_459}

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


# The 3D network's options: block_concat does not apply to it.
VARIANTS_3D = {
    "default": dict(),
    "sum_plain": dict(connections=Connection.sum, residual=False),
    "none_conv_samplers": dict(connections=Connection.none, downsampling=Downsampling.convolutional,
                               upsampling=Upsampling.convolutional),
    "concat_convT_multiplicative": dict(upsampling=Upsampling.convolutional, growth_rate=GrowthRate.multiplicative),
    "no_batch_norm_no_bias": dict(batch_norm=False, bias=False, downsampling=Downsampling.convolutional),
}


def torch_model(config: NetworkConfig, per_plane: bool = True, model_class=UResNet) -> torch.nn.Module:
    """A seeded torch model with random batch norm parameters and running statistics, so that they matter."""
    torch.manual_seed(0)
    model = UResNet(config, per_plane_batch_norm=per_plane) if model_class is UResNet else model_class(config)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
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


def twins_3d(**options):
    config = tiny(**options)
    reference = torch_model(config, model_class=UResNet3D)
    model = build_uresnet3d(config)
    torch_to_keras(reference.state_dict(), model)
    return reference, model


@pytest.mark.parametrize("preset", [name for name, values in NETWORK_PRESETS.items() if values.get("conv_mode") != "sparse"])
def test_parameter_count_matches_torch_for_every_dense_preset(preset):
    cfg = config.load(["run.id=x", f"network={preset}"])
    build = build_uresnet3d if cfg.network.conv_mode == ConvMode.conv_3D else build_uresnet
    assert count_parameters(build(cfg.network)) == PRESET_PARAMETERS[preset]


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


def test_3d_only_the_deepest_block_mixes_planes():
    model = build_uresnet3d(network())
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.Conv3D) and layer.kernel_size[0] != 1:
            assert layer.name.rsplit(".", 2)[-2] in ("merger", "splitter"), layer.name
            assert layer.kernel_size == (3, 1, 1) and layer.padding == "same"


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("variant", VARIANTS_3D)
def test_3d_logits_and_running_statistics_match_torch(variant, training):
    reference, model = twins_3d(**VARIANTS_3D[variant])
    with torch.no_grad():
        expected = reference.train(training)(images()).numpy()
    actual = model(images().numpy(), training=training)
    assert actual.shape == expected.shape == (2, 3, 3, 16, 32)
    assert relative_difference(actual, expected) < TOLERANCE
    updated = keras_to_torch(model)
    for key, value in reference.state_dict().items():
        if "running" in key:
            assert relative_difference(updated[key], value) < TOLERANCE, key


def test_3d_keras_to_torch_round_trips():
    reference, model = twins_3d(upsampling=Upsampling.convolutional, downsampling=Downsampling.convolutional)
    state = keras_to_torch(model)
    expected = {key: value for key, value in reference.state_dict().items() if not key.endswith("num_batches_tracked")}
    assert state.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(state[key], value), key
    UResNet3D(tiny(upsampling=Upsampling.convolutional, downsampling=Downsampling.convolutional)).load_state_dict(state)
