"""Figures of the data phases (Phase C overview)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import io  # noqa: E402

MARKERS = ("o", "x", "s", "^")


def plot_phase_c(data: dict, path) -> None:
    """Probe, one pattern per view, and every split's object phase with its views' scan positions.

    ``data``: what :func:`ptychostudy.phase_c.write_phase_c` returns, per split.
    """
    splits = list(data)
    first = data[splits[0]]
    probe = first["probeGuess"]
    names = [str(v) for v in first["view_names"]]
    ncol = max(len(splits), 2 + len(first["examples"]))
    fig, axes = plt.subplots(2, ncol, figsize=(4.2 * ncol, 8), constrained_layout=True, squeeze=False)
    top = [(np.abs(probe), "probe amplitude", "magma"), (np.angle(probe), "probe phase (rad)", "twilight")]
    top += [(np.log10(1.0 + ex.astype(np.float64) ** 2), f"{splits[0]}, {names[v]} view: log10(1 + counts)",
             "inferno") for v, ex in enumerate(first["examples"])]
    for ax, (img, title, cmap) in zip(axes[0], top):
        im = ax.imshow(img, cmap=cmap)
        ax.set_title(title, fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    for ax in axes[0, len(top):]:
        ax.set_axis_off()
    for ax, split in zip(axes[1], splits):
        d = data[split]
        im = ax.imshow(np.angle(d["objectGuess"]), cmap="viridis")
        for vid, name in enumerate(names):
            sel = d["lattice"] == vid
            ax.scatter(d["xcoords"][sel], d["ycoords"][sel], s=4, c=f"C{vid + 1}", marker=MARKERS[vid % 4],
                       label=f"{name} ({int(sel.sum())} positions)")
        ax.set_title(f"{split} object phase (rad) and scans", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
        fig.colorbar(im, ax=ax, shrink=0.8)
    for ax in axes[1, len(splits):]:
        ax.set_axis_off()
    fig.suptitle(f"Phase C, dose {int(first['dose'])} photons/pattern, N={int(first['N'])}: "
                 "one independent object per split")
    io.save_figure(path, fig, dpi=80)
    plt.close(fig)
