"""Figures of the data phases (Phase C overview)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import io  # noqa: E402


def plot_phase_c(data: dict, path) -> None:
    """Probe amplitude/phase, object amplitude/phase, a few patterns (log) and the scan by split."""
    train, test = data["train"], data["test"]
    probe, obj = train["probeGuess"], train["objectGuess"]
    fig, axes = plt.subplots(2, 4, figsize=(15, 7.5), constrained_layout=True)
    panels = [
        (np.abs(probe), "probe amplitude", "magma"),
        (np.angle(probe), "probe phase (rad)", "twilight"),
        (np.abs(obj), "object amplitude", "gray"),
        (np.angle(obj), "object phase (rad)", "viridis"),
    ]
    for ax, (img, title, cmap) in zip(axes[0], panels):
        im = ax.imshow(img, cmap=cmap)
        ax.set_title(title)
        fig.colorbar(im, ax=ax, shrink=0.8)
    n = len(train["diffraction"])
    for ax, j in zip(axes[1, :3], np.linspace(0, n - 1, 3).astype(int)):
        im = ax.imshow(np.log10(1.0 + train["diffraction"][j].astype(np.float64) ** 2), cmap="inferno")
        ax.set_title(f"train pattern {j}: log10(1 + counts)")
        fig.colorbar(im, ax=ax, shrink=0.8)
    ax = axes[1, 3]
    ax.imshow(np.abs(obj), cmap="gray", alpha=0.5)
    names = [str(v) for v in train["view_names"]]
    markers = ["o", "x", "s", "^"]
    for split, d, color in (("train", train, "tab:blue"), ("test", test, "tab:orange")):
        for vid, name in enumerate(names):
            sel = d["lattice"] == vid
            ax.scatter(d["xcoords"][sel], d["ycoords"][sel], s=6, c=color,
                       marker=markers[vid % 4], label=f"{split} / {name}")
    ax.axhline(float(train["midline"]), color="k", lw=0.8, ls="--")
    ax.set_title("scan positions (split at the midline)")
    ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(f"Phase C, dose {int(train['dose'])} photons/pattern, N={int(train['N'])}")
    io.save_figure(path, fig, dpi=90)
    plt.close(fig)
