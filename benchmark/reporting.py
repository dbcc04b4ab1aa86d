"""What a person sees: a progress bar on a terminal, plain lines otherwise."""
from __future__ import annotations

import sys
from typing import Dict, Mapping, Optional

# Short names for the metric line, in the order printed.
_SHORT = (
    ("Average/Total_Accuracy", "acc"),
    ("Average/Non_Bkg_Accuracy", "non-bkg"),
    ("Average/Cosmic_IoU", "cosmic-IoU"),
    ("Average/Neutrino_IoU", "nu-IoU"),
    ("Average/mIoU", "mIoU"),
)


def metric_line(prefix: str, loss: float, metrics: Mapping[str, float], extra: Optional[Dict[str, str]] = None) -> str:
    parts = [prefix, f"loss {loss:.4f}"]
    parts += [f"{short} {metrics[key]:.4f}" for key, short in _SHORT if key in metrics]
    parts += [f"{k} {v}" for k, v in (extra or {}).items()]
    return "  ".join(parts)


class Progress:
    """A tqdm bar when stdout is a terminal (and this is rank 0); plain lines otherwise."""

    def __init__(self, total: int, initial: int = 0, description: str = "", enabled: bool = True):
        self.bar = None
        self.enabled = enabled
        if enabled and sys.stdout.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=description, unit="step", dynamic_ncols=True)

    def advance(self, **postfix: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(1)

    def print(self, line: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
