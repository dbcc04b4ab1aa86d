"""A picture of one event: each plane's charge, true labels and (optionally) predictions."""
from __future__ import annotations

from typing import Optional

import numpy as np

# RGB per class for charged pixels; uncharged pixels stay white.
CLASS_COLOURS = np.array([[0.55, 0.55, 0.55], [0.12, 0.47, 0.71], [0.84, 0.15, 0.16]])
PLANE_NAMES = ("plane 0 (induction, +60 deg)", "plane 1 (induction, -60 deg)", "plane 2 (collection)")


def label_colours(label: np.ndarray, charged: np.ndarray) -> np.ndarray:
    rgb = np.ones(label.shape + (3,))
    rgb[charged] = CLASS_COLOURS[label[charged]]
    return rgb


def render_event(image: np.ndarray, label: np.ndarray, prediction: Optional[np.ndarray], title: str, out: str) -> None:
    """`image` float32 [3, H, W], `label`/`prediction` uint8 [3, H, W]; writes a PNG to `out`."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Patch

    columns = 3 if prediction is not None else 2
    height, width = image.shape[1:]
    fig, axes = plt.subplots(3, columns, figsize=(4.2 * columns * width / max(height, width) * 1.6, 9.5), squeeze=False)
    charged = image > 0
    positive = image[charged]
    norm = LogNorm(vmin=max(positive.min(), 1e-3), vmax=positive.max()) if positive.size else None
    for plane in range(3):
        shown = np.where(charged[plane], image[plane], np.nan)
        axes[plane, 0].imshow(shown, cmap="viridis", norm=norm, interpolation="nearest", aspect="auto")
        axes[plane, 0].set_ylabel(PLANE_NAMES[plane], fontsize=8)
        axes[plane, 1].imshow(label_colours(label[plane], charged[plane]), interpolation="nearest", aspect="auto")
        if prediction is not None:
            axes[plane, 2].imshow(label_colours(prediction[plane], charged[plane]), interpolation="nearest", aspect="auto")
    for column, name in enumerate(["charge (log)", "true labels", "predicted labels"][:columns]):
        axes[0, column].set_title(name, fontsize=10)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    legend = [Patch(color=c, label=n) for c, n in zip(CLASS_COLOURS, ("background", "cosmic", "neutrino"))]
    fig.legend(handles=legend, loc="lower center", ncol=3, fontsize=9)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    fig.savefig(out, dpi=110)
    plt.close(fig)
