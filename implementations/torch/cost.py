"""FLOP, activation memory and a layer table, measured on the meta device.

Meta tensors carry shapes but no data, so the full 1280x2048 network can be
sized in a second on any machine, without allocating its activations.
"""
from __future__ import annotations

from typing import Callable, List, Tuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from benchmark.implementation import ModelCost


def _meta_input(image_shape: Tuple[int, int]) -> torch.Tensor:
    return torch.zeros(1, 3, *image_shape, device="meta", requires_grad=False)


def measure_cost(build: Callable[[], nn.Module], image_shape: Tuple[int, int]) -> ModelCost:
    """Forward FLOP, forward+backward FLOP and bytes saved for backward, per image."""
    with torch.device("meta"):
        model = build()
    model.train()
    parameters = {id(p) for p in model.parameters()}
    saved: dict = {}

    def pack(tensor: torch.Tensor):
        # Parameters are saved for backward too, but are not activations.
        if id(tensor) not in parameters:
            saved[id(tensor)] = tensor.numel() * tensor.element_size()
        return tensor

    with FlopCounterMode(display=False) as forward_counter:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            logits = model(_meta_input(image_shape))
    forward = forward_counter.get_total_flops()
    with FlopCounterMode(display=False) as backward_counter:
        logits.float().sum().backward()
    return ModelCost(
        forward_flop=float(forward),
        train_step_flop=float(forward + backward_counter.get_total_flops()),
        activation_bytes=float(sum(saved.values())),
    )


def layer_table(build: Callable[[], nn.Module], image_shape: Tuple[int, int]) -> str:
    """One row per leaf layer: name, type, output shape for one image, parameters."""
    with torch.device("meta"):
        model = build()
    model.eval()
    rows: List[Tuple[str, str, str, int]] = []

    def hook(name: str):
        def record(module: nn.Module, _inputs, output) -> None:
            params = sum(p.numel() for p in module.parameters(recurse=False) if p.requires_grad)
            rows.append((name, type(module).__name__, "x".join(map(str, output.shape)), params))

        return record

    handles = [
        module.register_forward_hook(hook(name))
        for name, module in model.named_modules()
        if name and not list(module.children())
    ]
    with torch.no_grad():
        model(_meta_input(image_shape))
    for handle in handles:
        handle.remove()
    width = max(len(r[0]) for r in rows)
    lines = [f"{'layer'.ljust(width)}  {'type':<16} {'output (planes folded into batch)':<34} parameters"]
    lines += [f"{n.ljust(width)}  {t:<16} {s:<34} {p:,}" for n, t, s, p in rows]
    return "\n".join(lines)
