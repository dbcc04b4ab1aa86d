"""The PyTorch implementation behind the harness interface: accumulation, optimizers, precision, state."""
import numpy as np
import pytest
import torch
from tiny import TINY_NETWORK, TINY_SHAPE

from benchmark import config
from benchmark.data.pipeline import load_batch
from benchmark.data.synthetic import SyntheticSource
from benchmark.errors import DataError
from implementations.torch.implementation import TorchDense2D

SHAPE = TINY_SHAPE
TINY = ["run.id=t", *TINY_NETWORK, "run.seed=3"]


def build(*extra):
    return TorchDense2D(config.load(TINY + list(extra)), SHAPE)


def batch(entries):
    return load_batch(SyntheticSource(16, seed=9), np.asarray(entries), downsample=5)


def gradients(impl):
    return [p.grad.clone() for p in impl.model.parameters()]


@pytest.mark.parametrize("scheme", ["none", "light", "even", "focal"])
def test_accumulation_equals_one_large_batch(scheme):
    """Two micro-batches of 2 give the gradient and update of one batch of 4 (no batch norm).

    Equal up to float32 summation order (the batch reduction in the weight
    gradients runs over 4 images at once or 2 + 2).
    """
    extra = ("network.batch_norm=false", f"mode.optimizer.loss_balance_scheme={scheme}")
    whole, split = build(*extra), build(*extra)
    whole.accumulate(batch([0, 1, 2, 3]), 1.0)
    split.accumulate(batch([0, 1]), 0.5)
    split.accumulate(batch([2, 3]), 0.5)
    for a, b in zip(gradients(whole), gradients(split)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    whole.apply_update(1e-3)
    split.apply_update(1e-3)
    for a, b in zip(whole.model.parameters(), split.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_optimizers_reduce_the_loss_on_a_fixed_batch(optimizer):
    impl = build(f"mode.optimizer.name={optimizer}")
    fixed = batch([0, 1])
    first = float(impl.fetch(impl.accumulate(fixed, 1.0).loss))
    impl.apply_update(1e-2)
    for _ in range(5):
        impl.accumulate(fixed, 1.0)
        impl.apply_update(1e-2)
    last = float(impl.fetch(impl.evaluate(fixed).loss))
    assert last < first


@pytest.mark.parametrize("precision", ["float32", "tf32", "mixed", "bfloat16"])
def test_every_precision_trains_with_float32_master_weights(precision):
    impl = build(f"run.precision={precision}")
    result = impl.accumulate(batch([0, 1]), 1.0)
    impl.apply_update(1e-3)
    assert np.isfinite(impl.fetch(result.loss))
    assert all(p.dtype == torch.float32 for p in impl.model.parameters())
    counts = impl.fetch(result.confusion)
    assert counts.shape == (2, 3, 3, 3) and counts.sum() == 2 * 3 * SHAPE[0] * SHAPE[1]


def test_weight_decay_adds_the_l2_term():
    plain, decayed = build(), build("network.weight_decay=0.1")
    plain.accumulate(batch([0, 1]), 1.0)
    decayed.accumulate(batch([0, 1]), 1.0)
    conv = decayed.model.initial_convolution.conv.weight
    expected = plain.model.initial_convolution.conv.weight.grad + 0.2 * conv.detach()
    torch.testing.assert_close(conv.grad, expected, rtol=1e-5, atol=1e-6)


def test_dense_scatter_matches_the_voxels():
    impl = build()
    b = batch([4, 5])
    image, label = impl._to_device(b)
    dense_image, dense_label = b.dense()
    np.testing.assert_array_equal(image.numpy(), dense_image)
    np.testing.assert_array_equal(label.numpy(), dense_label)
    assert label.dtype == torch.uint8


def test_save_and_load_restore_state(tmp_path):
    impl = build()
    impl.accumulate(batch([0, 1]), 1.0)
    impl.apply_update(1e-3)
    path = str(tmp_path / "model.pt")
    impl.save(path)
    other = build("run.seed=4")
    other.load(path)
    for a, b in zip(impl.model.state_dict().values(), other.model.state_dict().values()):
        torch.testing.assert_close(a, b)
    assert other.optimizer.state_dict()["state"].keys() == impl.optimizer.state_dict()["state"].keys()


def test_corrupt_checkpoint_is_one_clear_error(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="broken.pt: not a checkpoint of this network"):
        build().load(str(path))
    with pytest.raises(DataError, match="no such checkpoint"):
        build().load(str(tmp_path / "missing.pt"))


def test_cost_of_a_tiny_network():
    cost = build().cost(SHAPE)
    assert 0 < cost.forward_flop < cost.train_step_flop
    assert cost.train_step_flop == pytest.approx(3 * cost.forward_flop, rel=0.1)
    assert cost.activation_bytes > 0
