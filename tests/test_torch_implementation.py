"""The PyTorch implementation's own behaviour: weight decay, the voxel scatter, its state, its cost (what every
implementation promises is in test_implementation_contract.py)."""
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
    restored = other.model.state_dict()
    for key, value in impl.model.state_dict().items():
        assert torch.equal(restored[key], value), key  # bit for bit, not merely close
    want, got = impl.optimizer.state_dict()["state"], other.optimizer.state_dict()["state"]
    assert want and got.keys() == want.keys()
    for index, moments in want.items():
        for name, value in moments.items():
            assert torch.equal(got[index][name], value), (index, name)


class _NotATensor:
    pass


def test_a_pickle_holding_other_objects_is_refused_without_torchs_advice(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"model": _NotATensor()}, path)
    with pytest.raises(DataError, match="other.pt: not a checkpoint written by this benchmark") as refused:
        build().load(str(path))
    assert "weights_only" not in str(refused.value)  # torch's text advises loading untrusted code


def test_cost_of_a_tiny_network():
    cost = build().cost(SHAPE)
    assert 0 < cost.forward_flop < cost.train_step_flop
    assert cost.train_step_flop == pytest.approx(3 * cost.forward_flop, rel=0.1)
    assert cost.activation_bytes > 0
