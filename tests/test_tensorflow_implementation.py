"""The TensorFlow implementations (2D, 3D): the voxel scatter, their state, and one training step equal to the
torch implementation's from the same weights (what every implementation promises is in
test_implementation_contract.py)."""
import numpy as np
import pytest
import torch
from quiet_tensorflow import tf
from tiny import TINY_NETWORK, TINY_SHAPE

from benchmark import config
from benchmark.data.pipeline import load_batch
from benchmark.data.synthetic import SyntheticSource
from implementations.tensorflow.convert import (
    keras_to_torch, to_keras_axes, to_torch_axes, torch_pairs, torch_to_keras)
from implementations.tensorflow.implementation import TensorFlowDense2D, TensorFlowDense3D
from implementations.torch.implementation import TorchDense2D, TorchDense3D

SHAPE = TINY_SHAPE
TINY = ["run.id=t", *TINY_NETWORK, "run.seed=3"]
DIFFERENCES = {}


def cfg(framework, *extra):
    return config.load(TINY + [f"framework.name={framework}", *extra])


def build(*extra, mode="2D"):
    return {"2D": TensorFlowDense2D, "3D": TensorFlowDense3D}[mode](cfg("tensorflow", *extra), SHAPE)


def batch(entries):
    return load_batch(SyntheticSource(16, seed=9), np.asarray(entries), downsample=5)


def weights(impl):
    return [v.numpy().copy() for v in impl.model.weights]


def accumulated_gradients(impl):
    """The TensorFlow implementation's accumulated gradients by torch parameter name, in torch's layout."""
    index = {id(variable): i for i, variable in enumerate(impl.trainable)}
    gradients = {}
    for key, variable, is_kernel in torch_pairs(impl.model):
        if id(variable) in index:
            value = impl.accumulators[index[id(variable)]].numpy()
            gradients[key] = value.transpose(to_torch_axes(value.ndim)) if is_kernel else value
    return gradients


def assert_close_gradients(actual, expected, tolerance=1e-3):
    """Every parameter's gradient within `tolerance` of that parameter's largest gradient."""
    assert actual.keys() == expected.keys()
    for key in expected:
        scale = float(np.abs(expected[key]).max())
        np.testing.assert_allclose(actual[key], expected[key], rtol=0, atol=tolerance * scale, err_msg=key)


def test_dense_scatter_equals_batch_dense():
    impl = build()
    sample = batch([0, 1, 2])
    image, label = impl._dense(sample)
    want_image, want_label = sample.dense()
    assert label.dtype == tf.uint8
    np.testing.assert_array_equal(image.numpy(), want_image)
    np.testing.assert_array_equal(label.numpy(), want_label)


def test_save_load_round_trip(tmp_path):
    path = str(tmp_path / f"model{TensorFlowDense2D.checkpoint_suffix(None)}")
    impl = build()
    fixed = batch([0, 1])
    impl.accumulate(fixed, 1.0)
    impl.apply_update(1e-3)
    impl.accumulate(fixed, 0.5)  # a pending accumulation is part of the state
    impl.save(path)
    saved = {name: [v.numpy().copy() for v in group] for name, group in impl._state_groups().items()}
    other = build("run.seed=4")
    other.load(path)
    for name, group in other._state_groups().items():
        for a, b in zip(saved[name], group):
            np.testing.assert_array_equal(a, b.numpy())
    # the restored optimizer continues exactly as the original
    impl.apply_update(1e-3)
    other.apply_update(1e-3)
    for a, b in zip(weights(impl), weights(other)):
        np.testing.assert_array_equal(a, b)
    fresh = build("run.seed=5")
    fresh.load(path, weights_only=True)
    for a, b in zip(saved["model"], weights(fresh)):
        np.testing.assert_array_equal(a, b)
    assert int(fresh.optimizer.iterations.numpy()) == 0


@pytest.mark.parametrize("mode", ["2D", "3D"])
def test_description_and_cost_match_torch(mode):
    impl = build(f"network.conv_mode={mode}", mode=mode)
    reference = {"2D": TorchDense2D, "3D": TorchDense3D}[mode](cfg("torch", f"network.conv_mode={mode}"), SHAPE)
    assert impl.parameter_count() == reference.parameter_count()
    assert "initial_convolution.conv" in impl.layer_summary()
    assert impl.describe()["framework"].startswith("TensorFlow")
    cost, torch_cost = impl.cost(SHAPE), reference.cost(SHAPE)
    np.testing.assert_allclose(cost.forward_flop, torch_cost.forward_flop, rtol=0.02)
    assert cost.train_step_flop == 3 * cost.forward_flop and cost.activation_bytes > 0


@pytest.mark.parametrize("mode", ["2D", "3D"])
@pytest.mark.parametrize("batch_norm", ["true", "false"])
def test_one_step_equals_torch(batch_norm, mode):
    """Same weights, same batch: the same loss and the same adam update as torch's implementation."""
    # With batch norm a conv bias has a zero gradient up to rounding noise, whose sign Adam's
    # first step turns into a full +-lr update: those networks are compared without conv bias.
    # Convolutional upsampling: the L2 term must leave transposed kernels out in both frameworks.
    extra = (f"network.batch_norm={batch_norm}", f"network.bias={'false' if batch_norm == 'true' else 'true'}",
             "network.weight_decay=1e-3", f"network.conv_mode={mode}", "network.upsampling=convolutional")
    reference = {"2D": TorchDense2D, "3D": TorchDense3D}[mode](cfg("torch", *extra), SHAPE)
    impl = build(*extra, mode=mode)
    torch_to_keras(reference.model.state_dict(), impl.model)
    sample = batch([0, 1])
    want = float(reference.accumulate(sample, 1.0).loss)
    got = float(impl.fetch(impl.accumulate(sample, 1.0).loss))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # Adam's first update is about lr x sign(gradient): the gradients themselves are compared first.
    # TensorFlow's float32 batch-norm gradient over the 3D model's [B, C, 3, H, W] sums is 1.3e-3 of its scale
    # from a float64 reference for one bias of the tiny network (torch's: 3.7e-5): rounding, allowed twice over.
    tolerance = 2.5e-3 if (mode, batch_norm) == ("3D", "true") else 1e-3
    assert_close_gradients(accumulated_gradients(impl),
                           {name: p.grad.numpy() for name, p in reference.model.named_parameters()}, tolerance)
    reference.apply_update(1e-3)
    impl.apply_update(1e-3)
    expected = reference.model.state_dict()
    worst = 0.0
    for key, value in keras_to_torch(impl.model).items():
        a, b = value.numpy(), expected[key].numpy()
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=key)
        worst = max(worst, float(np.max(np.abs(a - b))))
    print(f"{mode} batch_norm={batch_norm}: loss {got} vs {want}, max |weight difference| {worst:.3g}")


def set_accumulated_gradients(impl, gradients):
    """Make `gradients` (by torch parameter name, torch's layout) the TensorFlow implementation's accumulated ones."""
    index = {id(variable): i for i, variable in enumerate(impl.trainable)}
    for key, variable, is_kernel in torch_pairs(impl.model):
        if id(variable) in index:
            value = gradients[key].transpose(to_keras_axes(gradients[key].ndim)) if is_kernel else gradients[key]
            impl.accumulators[index[id(variable)]].assign(value)


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_the_update_rule_is_torchs(optimizer):
    """Same weights, same gradients: the same weights after each of three updates as torch.optim's, to float32
    rounding. The gradients span four decades, so eps (RMSprop's is 1e-4, added to sqrt(avg)) and the running
    averages over steps (alpha, the betas, bias corrections) all matter."""
    extra = (f"mode.optimizer.name={optimizer}", "network.weight_decay=0")
    reference = TorchDense2D(cfg("torch", *extra), SHAPE)
    impl = build(*extra)
    torch_to_keras(reference.model.state_dict(), impl.model)
    random = np.random.default_rng(0)
    for step, learning_rate in enumerate([1e-3, 3e-3, 1e-3]):
        gradients = {}
        for name, parameter in reference.model.named_parameters():
            scale = 10.0 ** random.uniform(-4, 0, parameter.shape)
            gradients[name] = (random.standard_normal(parameter.shape) * scale).astype(np.float32)
            parameter.grad = torch.from_numpy(gradients[name].copy())
        set_accumulated_gradients(impl, gradients)
        reference.apply_update(learning_rate)
        impl.apply_update(learning_rate)
        expected = reference.model.state_dict()
        for key, value in keras_to_torch(impl.model).items():
            # A few float32 ulps of the weight (measured: at most 1.2e-7), as sqrt and division round in another
            # order; Keras' own RMSprop (eps inside the sqrt, rho 0.9 or epsilon 1e-7) misses by orders more.
            np.testing.assert_allclose(value.numpy(), expected[key].numpy(), rtol=2e-6, atol=1e-7,
                                       err_msg=f"step {step}: {key}")


def test_xla_compiles_the_steps_and_computes_torchs_step():
    """framework.xla=true compiles the steps; from torch's weights they give torch's loss and gradients."""
    # No conv bias: under batch norm its gradient is rounding noise (see test_one_step_equals_torch).
    extra = ("network.bias=false", "network.weight_decay=1e-3")
    reference = TorchDense2D(cfg("torch", *extra), SHAPE)
    plain, compiled = build(*extra), build(*extra, "framework.xla=true")
    assert compiled._train_step._jit_compile and not plain._train_step._jit_compile
    torch_to_keras(reference.model.state_dict(), compiled.model)
    sample = batch([0, 1])
    want = float(reference.accumulate(sample, 1.0).loss)
    np.testing.assert_allclose(float(compiled.fetch(compiled.accumulate(sample, 1.0).loss)), want, rtol=1e-5)
    assert_close_gradients(accumulated_gradients(compiled),
                           {name: p.grad.numpy() for name, p in reference.model.named_parameters()})


ENVIRONMENT_PROBE = """
import os, sys
sys.path.insert(0, {root!r})
seen = {{}}

class Probe:  # records the environment at the moment tensorflow is first imported
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" and not seen:
            seen["marker"] = os.environ.get("BENCHMARK_TEST_MARKER")
        return None

sys.meta_path.insert(0, Probe())
from benchmark.cli import main
status = main(["mode=summary", "run.id=env", "run.output_dir={out}", "framework.name=tensorflow", "run.compute_mode=CPU",
               "network=a21", "framework.environment_variables.BENCHMARK_TEST_MARKER=set-before-import",
               "framework.intra_op_parallelism_threads=1", "framework.inter_op_parallelism_threads=1"])
import tensorflow as tf
print("probe", status, seen.get("marker"), tf.config.threading.get_intra_op_parallelism_threads(),
      tf.config.threading.get_inter_op_parallelism_threads())
"""


def test_environment_is_exported_before_import_and_threads_are_honoured(tmp_path):
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = ENVIRONMENT_PROBE.format(root=root, out=str(tmp_path / "run"))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("BENCHMARK_TEST_MARKER", None)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    probe = [line for line in done.stdout.splitlines() if line.startswith("probe ")]
    assert probe == ["probe 0 set-before-import 1 1"], done.stdout[-2000:] + done.stderr[-2000:]
