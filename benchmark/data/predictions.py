"""Inference predictions as a larcv3 file: the input's voxels with a predicted label each.

The file holds the input charge (`sbndwire`), the true labels
(`sbnd_cosmicseg`) and the prediction (`cosmictagger_prediction`), all with
the input's voxel ids at full resolution, so it is self-contained for
`python -m benchmark.data show --prediction`. A network that ran on
downsampled images gives each full-resolution voxel the prediction of its
block.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from benchmark.data.larcv import LarcvSource
from benchmark.data.larcv_writer import LarcvWriter
from benchmark.data.pipeline import load_batch
from benchmark.data.source import Event

PREDICTION_PRODUCER = "cosmictagger_prediction"
PRODUCERS = ("sbndwire", "sbnd_cosmicseg", PREDICTION_PRODUCER)


def block_predictions(event: Event, predicted: np.ndarray, columns: int, downsample: int) -> Tuple[np.ndarray, ...]:
    """Per plane, the predicted label of every charged voxel of `event`.

    `predicted` is uint8 [3, H, W] at the network's resolution.
    """
    planes = []
    for p, index in enumerate(event.index):
        y, x = np.divmod(index, columns)
        planes.append(predicted[p, y >> downsample, x >> downsample])
    return tuple(planes)


class PredictionWriter:
    def __init__(self, path: str, full_shape: Tuple[int, int], downsample: int):
        self.columns = full_shape[1]
        self.downsample = downsample
        self._writer = LarcvWriter(path, full_shape, PRODUCERS)

    def add(self, event: Event, predicted: np.ndarray) -> None:
        labels = block_predictions(event, predicted, self.columns, self.downsample)
        self._writer.append(
            {
                "sbndwire": (event.index, event.value),
                "sbnd_cosmicseg": (event.index, [l.astype(np.float32) for l in event.label]),
                PREDICTION_PRODUCER: (event.index, [l.astype(np.float32) for l in labels]),
            }
        )

    def close(self) -> None:
        self._writer.close()


def read_prediction(path: str, entry: int, downsample: int) -> np.ndarray:
    """Predicted labels of one event as uint8 [3, H, W] (block maximum when downsampled)."""
    source = LarcvSource(path, label_producer=PREDICTION_PRODUCER)
    _, label = load_batch(source, [entry], downsample).dense()
    return label[0]
