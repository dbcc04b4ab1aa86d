"""TensorFlow twin of `implementations.torch.loss`: weighted per-pixel cross entropy.

Same formula, weights and guards (see the torch module's docstring):

    loss = sum_p  mean_b  [ sum_i w_bi * CE_bi / sum_i w_bi ]

with the weights w computed under stop-gradient, normalised PER EVENT-plane,
and an event-plane whose weights sum to 0 contributing 0 (never NaN).
Graph/XLA friendly: no numpy, no Python-side data-dependent control flow.
"""
from __future__ import annotations

import tensorflow as tf

from benchmark.config.schema import LossBalanceScheme
from benchmark.data.batch import N_CLASSES

LIGHT_WEIGHTS = (1.0, 1.5, 10.0)  # background, cosmic, neutrino
EVEN_SCALE = 0.3333


class SegmentationLoss:
    """Callable (logits [B, 3, 3, H, W], labels [B, 3, H, W]) -> float32 scalar."""

    def __init__(self, scheme: LossBalanceScheme) -> None:
        self.scheme = LossBalanceScheme(scheme)

    def __call__(self, logits, labels) -> tf.Tensor:
        logits = tf.convert_to_tensor(logits)
        labels = tf.convert_to_tensor(labels)
        ls, ys = logits.shape, labels.shape
        if (ls.rank is not None and ls.rank != 5) or (ls.rank == 5 and ls[2] is not None and ls[2] != N_CLASSES) \
                or (ls.rank == 5 and ys.rank is not None
                    and not (ls[:2].concatenate(ls[3:])).is_compatible_with(ys)):
            raise ValueError(f"logits [B, P, {N_CLASSES}, H, W] and labels [B, P, H, W] do not match: "
                             f"{ls}, {ys}")
        shape = tf.shape(labels)
        batch, planes = shape[0], shape[1]
        rows = batch * planes
        flat_logits = tf.reshape(tf.cast(logits, tf.float32), [rows, N_CLASSES, -1])  # [rows, C, pixels]
        flat_labels = tf.reshape(tf.cast(labels, tf.int32), [rows, -1])  # [rows, pixels]
        one_hot = tf.one_hot(flat_labels, N_CLASSES, axis=1, dtype=tf.float32)  # [rows, C, pixels]
        cross_entropy = (tf.reduce_logsumexp(flat_logits, axis=1)
                         - tf.reduce_sum(flat_logits * one_hot, axis=1))  # [rows, pixels]
        per_row = self._weighted_mean(cross_entropy, flat_labels, one_hot)
        return tf.reduce_sum(tf.reduce_mean(tf.reshape(per_row, [batch, planes]), axis=0))

    def _weighted_mean(self, cross_entropy, labels, one_hot):
        if self.scheme is LossBalanceScheme.none:
            return tf.reduce_mean(cross_entropy, axis=-1)
        weights = tf.stop_gradient(self._weights(tf.stop_gradient(cross_entropy), labels, one_hot))
        total = tf.reduce_sum(weights, axis=-1)
        # All-zero weights mean a zero numerator too: divide by 1 to get 0, not 0/0.
        total = tf.stop_gradient(tf.where(total > 0, total, tf.ones_like(total)))
        return tf.reduce_sum(weights * cross_entropy, axis=-1) / total

    def _weights(self, cross_entropy, labels, one_hot):
        if self.scheme is LossBalanceScheme.light:
            return tf.gather(tf.constant(LIGHT_WEIGHTS, tf.float32), labels)
        if self.scheme is LossBalanceScheme.even:
            # Counts of integers: exact in float32 below 2**24 pixels per event-plane.
            counts = tf.reduce_sum(one_hot, axis=-1, keepdims=True)  # [rows, C, 1]
            own = tf.reduce_sum(one_hot * counts, axis=1)  # [rows, pixels]
            return EVEN_SCALE / (own + 1.0)
        # CE = -log p_t, so 1 - p_t = -expm1(-CE); expm1 keeps precision as p_t -> 1.
        return tf.square(tf.math.expm1(-cross_entropy))
