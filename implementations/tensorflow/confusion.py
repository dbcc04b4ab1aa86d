"""TensorFlow twin of `implementations.torch.confusion`: predictions and confusion counts.

Graph/XLA friendly: the confusion is one segment sum over a flattened key
(event-plane, true class, predicted class), no host sync, no numpy.
"""
from __future__ import annotations

import tensorflow as tf

from benchmark.data.batch import N_CLASSES


def predictions(logits) -> tf.Tensor:
    """Predicted class uint8 [B, 3, H, W] from logits [B, 3, 3, H, W] (argmax over classes)."""
    return tf.cast(tf.argmax(logits, axis=2, output_type=tf.int32), tf.uint8)


def confusion(logits, labels) -> tf.Tensor:
    """Counts int64 [B, 3 planes, 3 true, 3 predicted] over all pixels of each event-plane.

    Labels must lie in [0, 3); they are not checked.
    """
    labels = tf.convert_to_tensor(labels)
    shape = tf.shape(labels)
    batch, planes = shape[0], shape[1]
    rows = batch * planes
    cells = N_CLASSES * N_CLASSES
    predicted = tf.argmax(logits, axis=2, output_type=tf.int32)
    cell = tf.reshape(tf.cast(labels, tf.int32) * N_CLASSES + predicted, [rows, -1])
    key = tf.range(rows, dtype=tf.int32)[:, None] * cells + cell
    counts = tf.math.unsorted_segment_sum(tf.ones_like(key, dtype=tf.int64), key, rows * cells)
    return tf.reshape(counts, tf.stack([batch, planes, N_CLASSES, N_CLASSES]))
