"""Phase G: compare every arm of one dose × view × split cell with the ground truth.

Each arm's stitched object (L, L) is aligned and scored by :mod:`ptychostudy.metrics` over the
split's scanned region (the integer bounding box of the view's scan positions in that split).
A ``trivial`` reference (amplitude 1, phase 0 everywhere) goes through exactly the same steps,
so "beats trivial" is a fair floor for every arm.

``comparison_metrics.csv`` is tidy, one row per model × metric, columns
``dose, view, split, seed, model, metric, amplitude, phase`` (``seed``: the replicate's training
seed). Besides the image metrics (:data:`ptychostudy.metrics.METRIC_NAMES`) every model has the
rows

- ``wall_time_s``: reconstruction wall time (prediction for the networks, LSQML for ptychi;
  0 for trivial), the same value in both columns;
- ``offset_dy``, ``offset_dx``: the registration shift (pixels) applied to the reconstruction,
  the same value in both columns (the shift is of the complex image); 0 when rejected;
- ``offset_rejected``: 1 when the registration measured a shift beyond ``max_shift`` and it
  was not applied, else 0; ``measured_dy``, ``measured_dx``: the shift it measured, applied
  or not. Positions and probe are known, so an honest reconstruction needs no shift: the
  summary flags any cell shifted by more than :data:`SHIFT_FLAG_PX` or rejected;
- ``scale`` (amplitude column only) and ``phase_offset`` (radians, phase column only): the
  global corrections applied before scoring; the other column is NaN;
- ``counts_ratio``: the median over the split's patterns of the total counts the arm's exported
  patches predict with the probe over the measured total (the networks' ``merged.npz``; NaN for
  arms that do not record it), the same value in both columns. ≈ 1 when the export explains
  the data.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from . import metrics as M
from .io import DataError, check_array, load_npz, save_csv, save_figure, save_npz

log = logging.getLogger(__name__)

TRIVIAL = "trivial"
METRIC_COLUMNS = ["dose", "view", "split", "seed", "model", "metric", "amplitude", "phase"]
FRC_COLUMNS = ["dose", "view", "split", "seed", "model", "component", "ring", "frequency", "frc"]
#: a registration shift (pixels, either axis) above this is flagged in the summary
SHIFT_FLAG_PX = 1.0


def trivial_object(shape) -> np.ndarray:
    """The reference every arm must beat: flat amplitude 1, zero phase."""
    return np.ones(shape, dtype=np.complex64)


def compare_cell(
    truth: np.ndarray,
    region,
    arms: dict,
    dose,
    view: str,
    split: str,
    seed: int = 0,
    **align_kw,
) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Score each arm ``name -> (object (L, L) complex, wall_time_s[, counts_ratio])`` and the trivial reference.

    Returns the tidy metrics table, the aligned arrays (``truth`` crop, one entry per model,
    ``crop`` = (y0, y1, x0, x1) in object pixels) and the tidy FRC curves.
    """
    models = dict(arms)
    if TRIVIAL not in models:
        models[TRIVIAL] = (trivial_object(truth.shape), 0.0)
    rows, frc_rows = [], []
    aligned = {}
    cell = {"dose": dose, "view": view, "split": split, "seed": int(seed)}
    for name, (obj, wall, *more) in models.items():
        ratio = float(more[0]) if more else np.nan
        obj = np.asarray(obj)
        if obj.shape != truth.shape:
            raise ValueError(f"arm '{name}': object shape {obj.shape} differs from the ground truth {truth.shape}")
        a = M.align(obj, truth, region, **align_kw)
        if a.shift_rejected:
            log.warning("arm '%s': registration measured a shift of %s px, beyond the limit: not applied", name,
                        np.round(a.measured, 2).tolist())
        values, curves = M.evaluate(a)
        aligned[name] = a.recon
        aligned.setdefault("truth", a.truth)
        aligned.setdefault("crop", np.asarray(a.crop, dtype=np.int64))
        for metric in M.METRIC_NAMES:
            rows.append({**cell, "model": name, "metric": metric,
                         "amplitude": values["amplitude"][metric], "phase": values["phase"][metric]})
        extra = [
            ("wall_time_s", float(wall), float(wall)),
            ("offset_dy", a.offset[0], a.offset[0]),
            ("offset_dx", a.offset[1], a.offset[1]),
            ("offset_rejected", float(a.shift_rejected), float(a.shift_rejected)),
            ("measured_dy", a.measured[0], a.measured[0]),
            ("measured_dx", a.measured[1], a.measured[1]),
            ("scale", a.scale, np.nan),
            ("phase_offset", np.nan, a.phase_offset),
            ("counts_ratio", ratio, ratio),
        ]
        rows += [{**cell, "model": name, "metric": m, "amplitude": va, "phase": vp} for m, va, vp in extra]
        for comp, (freq, frc) in curves.items():
            frc_rows.append(pd.DataFrame({**cell, "model": name, "component": comp,
                                          "ring": np.arange(len(freq)), "frequency": freq, "frc": frc}))
    table = pd.DataFrame(rows, columns=METRIC_COLUMNS)
    table[["amplitude", "phase"]] = table[["amplitude", "phase"]].astype(np.float64)
    frc_table = pd.concat(frc_rows, ignore_index=True)[FRC_COLUMNS]
    return table, aligned, frc_table


def comparison_figure(aligned: dict, table: pd.DataFrame | None = None, title: str = "") -> Figure:
    """Rows amplitude and phase; columns the ground truth and each arm (not trivial), shared limits per row.

    The colour limits of a row are the ground truth's range, so an arm's over- or undershoot
    shows as saturation rather than rescaling its panel.
    """
    names = [k for k in aligned if k not in ("truth", "crop", TRIVIAL)]
    truth = aligned["truth"]
    panels = [("ground truth", truth)] + [(n, aligned[n]) for n in names]
    fig = Figure(figsize=(2.6 * len(panels) + 0.8, 5.4), layout="constrained")
    axes = fig.subplots(2, len(panels), squeeze=False)
    for row, comp in enumerate(M.COMPONENTS):
        images = [M.components(img, truth)[comp][0] for _, img in panels]
        vmin, vmax = float(images[0].min()), float(images[0].max())
        for col, ((label, _), img) in enumerate(zip(panels, images)):
            ax = axes[row, col]
            im = ax.imshow(img, cmap="gray" if comp == "amplitude" else "viridis",
                           vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            head = label
            if table is not None and label != "ground truth":
                sel = table[(table.model == label) & (table.metric == "ssim")]
                if len(sel):
                    head += f"\nSSIM {float(sel[comp].iloc[0]):.3f}"
            ax.set_title(head, fontsize=9)
            if col == 0:
                ax.set_ylabel(comp + (" (rad)" if comp == "phase" else ""))
        fig.colorbar(im, ax=list(axes[row]), shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


def load_arm(path, name: str, shape, region=None) -> tuple[np.ndarray, float, float]:
    """An arm's stitched object, wall time and counts ratio (NaN if absent) from ``merged.npz``
    or ``ptychi.npz``.

    NaN/inf inside the scanned ``region`` is an error; outside it (never scored) it is set to 0.
    """
    d = load_npz(path, required=("object", "wall_time_s"), only=("object", "wall_time_s", "counts_ratio"))
    obj = d["object"]
    check_array(path, "object", obj, ndim=2, shape=shape)
    if not np.iscomplexobj(obj):
        raise DataError(f"{path}: key 'object' has dtype {obj.dtype}, expected a complex object (arm '{name}')")
    bad = ~np.isfinite(obj)
    if bad.any():
        if region is not None and bad[M.region_slices(region)].any():
            raise DataError(f"{path}: key 'object' has NaN or infinite values in the scanned region (arm '{name}')")
        log.warning("%s: %d non-finite pixels outside the scanned region set to 0", path, int(bad.sum()))
        obj = np.where(bad, 0, obj).astype(obj.dtype)
    return obj, float(d["wall_time_s"]), float(d.get("counts_ratio", np.nan))


def view_region(phase_c: dict, groups: dict, shape, groups_path="groups.npz") -> tuple[slice, slice]:
    """The split's scanned region of a view: the bounding box of its positions (``view_index``)."""
    idx = np.asarray(groups["view_index"], dtype=np.int64)
    n = len(phase_c["xcoords"])
    if idx.size == 0 or idx.min() < 0 or idx.max() >= n:
        raise DataError(f"{groups_path}: key 'view_index' must index the {n} positions of the Phase C split")
    return M.region_from_positions(phase_c["xcoords"][idx], phase_c["ycoords"][idx], shape)


def compare_split_files(
    phase_c_path,
    groups_path,
    arm_paths: dict,
    metrics_path,
    aligned_path,
    frc_path,
    figure_path,
    dose,
    view: str,
    split: str,
    seed: int = 0,
) -> pd.DataFrame:
    """Read one cell's ground truth, region and arms; write metrics CSV, aligned NPZ, FRC CSV, figure."""
    keys = ("objectGuess", "xcoords", "ycoords")
    c = load_npz(phase_c_path, required=keys, only=keys)
    g = load_npz(groups_path, required=("view_index",), only=("view_index",))
    truth = c["objectGuess"]
    region = view_region(c, g, truth.shape, groups_path)
    arms = {name: load_arm(path, name, truth.shape, region) for name, path in arm_paths.items()}
    table, aligned, frc = compare_cell(truth, region, arms, dose, view, split, seed)
    models = [k for k in aligned if k not in ("truth", "crop")]
    save_npz(
        aligned_path,
        truth=aligned["truth"].astype(np.complex64),
        crop=aligned["crop"],
        seed=np.int64(seed),
        models=np.asarray(models, dtype=str),
        dose=np.int64(int(dose)),
        view=np.asarray(view, dtype=str),
        split=np.asarray(split, dtype=str),
        **{f"object_{k}": aligned[k].astype(np.complex64) for k in models},
    )
    save_csv(metrics_path, table)
    save_csv(frc_path, frc)
    fig = comparison_figure(aligned, table, f"dose {dose}, {view} view, {split} split, training seed {seed}")
    save_figure(figure_path, fig, dpi=110)
    phase_ssim = table[table.metric == "ssim"].set_index("model")["phase"].round(3).to_dict()
    log.info("dose %s %s %s: region %s, phase SSIM %s", dose, view, split, aligned["crop"].tolist(), phase_ssim)
    return table
