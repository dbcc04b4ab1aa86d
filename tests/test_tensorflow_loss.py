"""The TensorFlow loss and confusion equal the torch ones: values, gradients, XLA."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from quiet_tensorflow import tf

from benchmark.config.schema import LossBalanceScheme
from implementations.tensorflow import confusion as tf_confusion
from implementations.tensorflow.loss import SegmentationLoss as TFLoss
from implementations.torch import confusion as torch_confusion
from implementations.torch.loss import SegmentationLoss as TorchLoss

TOLERANCE = 1e-5
B, P, C, H, W = 2, 3, 3, 8, 12


def _labels(rng, kind):
    labels = rng.choice(3, size=(B, P, H, W), p=[0.8, 0.15, 0.05]).astype(np.uint8)
    labels[..., 0, 0] = 2  # every event-plane has a neutrino pixel unless removed
    labels[..., 0, 1] = 1
    if kind == "no_neutrino":
        labels[labels == 2] = 0
    elif kind == "no_cosmic":
        labels[labels == 1] = 2
    return labels


def _case(kind, seed=0):
    rng = np.random.default_rng(seed)
    labels = _labels(rng, kind)
    logits = rng.normal(0.0, 2.0, size=(B, P, C, H, W)).astype(np.float32)
    if kind == "perfect":  # confident and right everywhere: focal weights underflow to 0
        logits = np.where(np.arange(C)[None, None, :, None, None] == labels[:, :, None], 200.0, -200.0)
        logits = logits.astype(np.float32)
    return logits, labels


def _torch(scheme, logits, labels):
    x = torch.tensor(logits, requires_grad=True)
    loss = TorchLoss(scheme)(x, torch.tensor(labels))
    loss.backward()
    return loss.item(), x.grad.numpy()


def _tf(scheme, logits, labels, fn=None):
    x = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = (fn or TFLoss(scheme))(x, tf.constant(labels))
    return float(loss.numpy()), tape.gradient(loss, x).numpy(), loss.dtype


def _close(a, b):
    return np.max(np.abs(np.asarray(a) - np.asarray(b))) <= TOLERANCE * max(1.0, np.max(np.abs(b)))


KINDS = ["random", "no_neutrino", "no_cosmic", "perfect"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("scheme", list(LossBalanceScheme))
def test_loss_and_gradient_match_torch(scheme, kind):
    logits, labels = _case(kind)
    ref_loss, ref_grad = _torch(scheme, logits, labels)
    loss, grad, dtype = _tf(scheme, logits, labels)
    assert dtype == tf.float32
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    assert abs(loss - ref_loss) <= TOLERANCE * max(abs(ref_loss), 1e-30) or abs(loss - ref_loss) < 1e-12
    assert _close(grad, ref_grad)
    if kind == "perfect" and scheme is LossBalanceScheme.focal:
        assert loss == 0.0 and ref_loss == 0.0


def test_half_precision_logits_are_cast():
    logits, labels = _case("random")
    ref_loss, _ = _torch(LossBalanceScheme.light, logits.astype(np.float16).astype(np.float32), labels)
    loss = TFLoss(LossBalanceScheme.light)(tf.constant(logits, tf.float16), tf.constant(labels))
    assert loss.dtype == tf.float32
    assert abs(float(loss) - ref_loss) <= TOLERANCE * abs(ref_loss)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        TFLoss(LossBalanceScheme.none)(tf.zeros([B, P, C, H, W]), tf.zeros([B, P, H, W + 1], tf.uint8))


@pytest.mark.parametrize("kind", KINDS)
def test_confusion_and_predictions_match_torch(kind):
    logits, labels = _case(kind, seed=1)
    ref_conf = torch_confusion.confusion(torch.tensor(logits), torch.tensor(labels)).numpy()
    ref_pred = torch_confusion.predictions(torch.tensor(logits)).numpy()
    conf = tf_confusion.confusion(tf.constant(logits), tf.constant(labels))
    pred = tf_confusion.predictions(tf.constant(logits))
    assert conf.dtype == tf.int64 and conf.shape == (B, P, C, C)
    assert pred.dtype == tf.uint8 and pred.shape == (B, P, H, W)
    np.testing.assert_array_equal(conf.numpy(), ref_conf)
    np.testing.assert_array_equal(pred.numpy(), ref_pred)
    assert conf.numpy().sum() == B * P * H * W


@pytest.mark.parametrize("scheme", list(LossBalanceScheme))
def test_xla_loss_and_confusion_match_torch(scheme):
    logits, labels = _case("random", seed=2)
    loss_fn = TFLoss(scheme)

    @tf.function(jit_compile=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = loss_fn(x, y)
        return loss, tape.gradient(loss, x), tf_confusion.confusion(x, y), tf_confusion.predictions(x)

    loss, grad, conf, pred = step(tf.constant(logits), tf.constant(labels))
    ref_loss, ref_grad = _torch(scheme, logits, labels)
    assert abs(float(loss) - ref_loss) <= TOLERANCE * abs(ref_loss)
    assert _close(grad.numpy(), ref_grad)
    np.testing.assert_array_equal(conf.numpy(), torch_confusion.confusion(torch.tensor(logits), torch.tensor(labels)).numpy())
    np.testing.assert_array_equal(pred.numpy(), torch_confusion.predictions(torch.tensor(logits)).numpy())
