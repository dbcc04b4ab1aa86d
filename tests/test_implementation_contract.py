"""What every dense implementation promises the harness, checked for PyTorch and TensorFlow alike: micro-batch
accumulation, optimizers, precisions with float32 master weights, results' types, and checkpoint errors.
Framework-specific behaviour (state internals, the device scatter) stays in each framework's test file."""
import numpy as np
import pytest
from quiet_tensorflow import tf  # noqa: F401  (TensorFlow quiet and on two threads before any test starts it)
from tiny import TINY_NETWORK, TINY_SHAPE

from benchmark import config, registry
from benchmark.data.pipeline import load_batch
from benchmark.data.synthetic import SyntheticSource
from benchmark.errors import DataError

FRAMEWORKS = ["torch", "tensorflow"]


def build(framework, *extra, mode="2D"):
    cfg = config.load(["run.id=t", *TINY_NETWORK, "run.seed=3", f"framework.name={framework}",
                       f"network.conv_mode={mode}", *extra])
    return registry.load_class(cfg)(cfg, TINY_SHAPE)


def batch(entries):
    return load_batch(SyntheticSource(16, seed=9), np.asarray(entries), downsample=5)


def pending_gradients(impl):
    """The gradients accumulated since the last update, one array per trainable weight."""
    if hasattr(impl, "accumulators"):  # TensorFlow keeps its own accumulators
        return [a.numpy().copy() for a in impl.accumulators]
    return [np.zeros(tuple(p.shape), np.float32) if p.grad is None else p.grad.detach().numpy().copy()
            for p in impl.model.parameters()]  # None: cleared


def master_weight_dtypes(impl):
    weights = impl.model.weights if hasattr(impl.model, "weights") else list(impl.model.parameters())
    return {str(w.dtype).replace("torch.", "") for w in weights}


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("scheme,mode", [("none", "2D"), ("light", "2D"), ("even", "2D"), ("focal", "2D"),
                                         ("light", "3D")])
def test_accumulation_equals_one_large_batch(framework, scheme, mode):
    """Two micro-batches of 2 give the gradient and update of one batch of 4 (no batch norm), up to float32
    summation order."""
    extra = ("network.batch_norm=false", f"mode.optimizer.loss_balance_scheme={scheme}")
    whole, split = build(framework, *extra, mode=mode), build(framework, *extra, mode=mode)
    for key, value in whole.export_weights().items():
        np.testing.assert_array_equal(value, split.export_weights()[key])  # same seed, same initial weights
    whole.accumulate(batch([0, 1, 2, 3]), 1.0)
    split.accumulate(batch([0, 1]), 0.5)
    split.accumulate(batch([2, 3]), 0.5)
    for a, b in zip(pending_gradients(whole), pending_gradients(split)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    whole.apply_update(1e-3)
    split.apply_update(1e-3)
    updated = split.export_weights()
    for key, value in whole.export_weights().items():
        np.testing.assert_allclose(value, updated[key], rtol=1e-4, atol=1e-6, err_msg=key)
    assert not any(np.any(g) for g in pending_gradients(split))  # cleared by the update


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_optimizers_reduce_the_loss_on_a_fixed_batch(framework, optimizer):
    impl = build(framework, f"mode.optimizer.name={optimizer}")
    fixed = batch([0, 1])
    first = float(impl.fetch(impl.accumulate(fixed, 1.0).loss))
    impl.apply_update(1e-2)
    for _ in range(4):
        impl.accumulate(fixed, 1.0)
        impl.apply_update(1e-2)
    assert float(impl.fetch(impl.evaluate(fixed).loss)) < first


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("precision", ["float32", "tf32", "mixed", "bfloat16"])
def test_every_precision_trains_with_float32_master_weights(framework, precision):
    impl = build(framework, f"run.precision={precision}", "network.weight_decay=1e-4")
    fixed = batch([0, 1])
    before = impl.export_weights()
    losses = []
    for _ in range(3):
        losses.append(float(impl.fetch(impl.accumulate(fixed, 1.0).loss)))
        impl.apply_update(1e-2)
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert master_weight_dtypes(impl) == {"float32"}
    assert any(not np.array_equal(value, before[key]) for key, value in impl.export_weights().items())
    result = impl.evaluate(fixed, with_predictions=True)
    predictions, confusion = impl.fetch(result.predictions), impl.fetch(result.confusion)
    assert predictions.dtype == np.uint8 and predictions.shape == (2, 3, *TINY_SHAPE)
    assert confusion.shape == (2, 3, 3, 3) and confusion.sum() == 2 * 3 * TINY_SHAPE[0] * TINY_SHAPE[1]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_missing_or_corrupt_checkpoint_is_one_clear_error(framework, tmp_path):
    impl = build(framework)
    suffix = impl.checkpoint_suffix()
    with pytest.raises(DataError, match="no such checkpoint"):
        impl.load(str(tmp_path / f"absent{suffix}"))
    truncated = tmp_path / f"truncated{suffix}"
    impl.save(str(truncated))
    truncated.write_bytes(truncated.read_bytes()[:200])
    garbage = tmp_path / f"garbage{suffix}"
    garbage.write_bytes(b"not a checkpoint")
    for path in (truncated, garbage):
        with pytest.raises(DataError, match=f"{path.name}: not a checkpoint"):
            impl.load(str(path))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_checkpoint_of_another_network_names_the_first_mismatch(framework, tmp_path):
    wider = build(framework, "network.n_initial_filters=3")
    path = tmp_path / f"wider{wider.checkpoint_suffix()}"
    wider.save(str(path))
    with pytest.raises(DataError, match="not a checkpoint of this network") as refused:
        build(framework).load(str(path))
    message = str(refused.value)
    assert "\n" not in message and ("size mismatch for" in message or "has shape" in message), message
