"""A minibatch of events as charged voxels: what every data source yields.

Events are sparse (0.1-1 % of pixels charged), so a batch travels as flat
voxel arrays; dense images are made only where a consumer needs them
(`dense()` on the host, or a scatter on the accelerator). Labels are uint8.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

N_PLANES = 3
N_CLASSES = 3  # 0 background, 1 cosmic, 2 neutrino
BACKGROUND, COSMIC, NEUTRINO = 0, 1, 2


@dataclass
class VoxelBatch:
    """Charged voxels of `batch_size` events, each 3 planes of `image_shape`.

    One row per charged voxel, all events and planes concatenated:
    `event` (index in the batch), `plane` (0, 1, 2), `index` (y * W + x in the
    plane's image after downsampling), `value` (charge) and `label`.
    `entries` are the events' entry numbers in their file.
    """

    batch_size: int
    image_shape: Tuple[int, int]
    event: np.ndarray  # int32 [N]
    plane: np.ndarray  # int8 [N]
    index: np.ndarray  # int32 [N]; small types: batches cross process boundaries
    value: np.ndarray  # float32 [N]
    label: np.ndarray  # uint8 [N]
    entries: np.ndarray  # int64 [batch_size]

    @property
    def n_voxels(self) -> int:
        return int(self.value.shape[0])

    def flat_index(self) -> np.ndarray:
        """Index of each voxel in a dense [B, 3, H, W] array, flattened."""
        h, w = self.image_shape
        return (self.event.astype(np.int64) * N_PLANES + self.plane) * (h * w) + self.index

    def dense(self) -> Tuple[np.ndarray, np.ndarray]:
        """Dense image float32 [B, 3, H, W] and label uint8 [B, 3, H, W]."""
        h, w = self.image_shape
        shape = (self.batch_size, N_PLANES, h, w)
        image = np.zeros(shape, dtype=np.float32)
        label = np.zeros(shape, dtype=np.uint8)
        flat = self.flat_index()
        image.reshape(-1)[flat] = self.value
        label.reshape(-1)[flat] = self.label
        return image, label
