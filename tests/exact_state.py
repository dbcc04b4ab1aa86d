"""Bit-for-bit comparison of the whole training state two checkpoints hold (model, optimizer, loss scaler, RNG).

An exact resume must end where an uninterrupted run ends: not losses that agree to six printed digits, but
every bit of every tensor. torch checkpoints (.pt) and TensorFlow's (.tf.npz) are read on the CPU.
"""
import os
from typing import Dict

import numpy as np


def checkpoint_state(path) -> Dict[str, object]:
    """Every value a checkpoint holds, by a flat key ("optimizer/state/3/exp_avg"): arrays, or plain values."""
    path = str(path)
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    import torch

    flat: Dict[str, object] = {}

    def visit(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                visit(f"{prefix}/{key}", item)
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                visit(f"{prefix}/{index}", item)
        elif isinstance(value, torch.Tensor):
            tensor = value.detach().cpu()
            if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16: compare the bit patterns
                tensor = tensor.view(torch.int16)
            flat[prefix] = tensor.numpy()
        else:
            flat[prefix] = value

    visit("", torch.load(path, map_location="cpu", weights_only=True))
    return flat


def assert_same_state(path_a, path_b) -> None:
    """The two checkpoints hold the same keys and, for every one, the same bits."""
    a, b = checkpoint_state(path_a), checkpoint_state(path_b)
    assert a.keys() == b.keys(), f"{path_a} and {path_b} hold different entries: {sorted(a.keys() ^ b.keys())[:5]}"
    assert any(isinstance(value, np.ndarray) for value in a.values())
    for key in a:
        if not isinstance(a[key], np.ndarray):
            assert a[key] == b[key], key
            continue
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        assert a[key].tobytes() == b[key].tobytes(), f"{key}: equal values, different bits (signed zeros or NaNs)"


def assert_same_checkpoints(run_a, run_b, steps) -> None:
    """Checkpoints `steps` of two run folders hold the same state, bit for bit."""
    for step in steps:
        names = [[name for name in os.listdir(os.path.join(run, "checkpoints")) if name.startswith(f"model-{step}.")]
                 for run in (run_a, run_b)]
        assert len(names[0]) == 1 and names[0] == names[1], names
        assert_same_state(os.path.join(run_a, "checkpoints", names[0][0]), os.path.join(run_b, "checkpoints", names[1][0]))
