"""mode=summary: size a run without training: layers, parameters, FLOP and memory per image."""
from __future__ import annotations

from omegaconf import DictConfig

from benchmark.session import resolve_seeds, start
from benchmark.parallel.context import SINGLE, Parallel


def run(cfg: DictConfig, parallel: Parallel = SINGLE) -> int:
    session = start(cfg, parallel, needs_data=False)
    resolve_seeds(cfg, parallel)
    session.create_directory()
    session.print_config()
    session.save_config()
    impl = session.implementation()
    rows, cols = session.image_shape
    print(impl.layer_summary())
    cost = impl.cost(session.image_shape)
    parameters = impl.parameter_count()
    batch = cfg.run.minibatch_size
    # float32 weights + gradients + two Adam moments; activations scale with the batch.
    state_bytes = parameters * 4 * 4
    lines = [
        f"-- SUMMARY -- {cfg.network.name} at 3x{rows}x{cols} (data.downsample={cfg.data.downsample})",
        f"  trainable parameters....: {parameters:,}",
        f"  forward FLOP per image..: {cost.forward_flop / 1e9:,.1f} G",
        f"  training FLOP per image.: {cost.train_step_flop / 1e9:,.1f} G (forward + backward, {cost.train_step_flop_note})",
        f"  activations per image...: {cost.activation_bytes / 2**30:,.2f} GiB (float32 tensors kept for the backward pass)",
        f"  weights + optimizer.....: {state_bytes / 2**30:,.2f} GiB",
        f"  estimate for a batch of {batch}: {(cost.activation_bytes * batch + state_bytes) / 2**30:,.2f} GiB",
    ]
    print("\n".join(lines), flush=True)
    return 0
