"""Study summary: all cells' metrics in one tidy table, metric-vs-dose plots, a montage, a report table.

Inputs are the Phase G outputs of every dose × view × split (``comparison_metrics.csv`` and
``aligned.npz``); nothing is recomputed here. In the plots the test split (held out from
training) is drawn solid and the train split dashed; the ``trivial`` reference is grey.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from . import metrics as M
from .compare import METRIC_COLUMNS, TRIVIAL
from .io import DataError, atomic_path, load_npz, save_csv, save_figure

log = logging.getLogger(__name__)

#: metrics drawn against dose, with their axis label and whether the y axis is logarithmic
PLOT_METRICS = {
    "mae": ("MAE", False),
    "mse": ("MSE", True),
    "psnr": ("PSNR (dB)", False),
    "ssim": ("SSIM", False),
    "ms_ssim": ("MS-SSIM", False),
    "frc50_px": ("FRC 0.5 resolution (px)", False),
    "frc17_px": ("FRC 1/7 resolution (px)", False),
    "wall_time_s": ("wall time (s)", True),
}
MODEL_ORDER = ("pinn", "baseline", "ptychi", TRIVIAL)
MODEL_COLORS = {"pinn": "tab:blue", "baseline": "tab:orange", "ptychi": "tab:green", TRIVIAL: "0.55"}
#: columns of summary.md: (label, metric, component, format)
MARKDOWN_COLUMNS = (
    ("phase SSIM", "ssim", "phase", "{:.3f}"),
    ("phase MS-SSIM", "ms_ssim", "phase", "{:.3f}"),
    ("phase PSNR (dB)", "psnr", "phase", "{:.1f}"),
    ("phase MAE (rad)", "mae", "phase", "{:.3f}"),
    ("phase FRC50 (px)", "frc50_px", "phase", "{:.1f}"),
    ("phase FRC1/7 (px)", "frc17_px", "phase", "{:.1f}"),
    ("amp. SSIM", "ssim", "amplitude", "{:.3f}"),
    ("amp. FRC50 (px)", "frc50_px", "amplitude", "{:.1f}"),
    ("counts pred./meas.", "counts_ratio", "amplitude", "{:.3f}"),
    ("wall time (s)", "wall_time_s", "amplitude", "{:.3g}"),
)


def _model_rank(name: str) -> tuple:
    return (MODEL_ORDER.index(name) if name in MODEL_ORDER else len(MODEL_ORDER) - 0.5, name)


def ordered_models(names) -> list:
    return sorted(set(names), key=_model_rank)


def collect_metrics(paths) -> pd.DataFrame:
    """Concatenate every cell's ``comparison_metrics.csv`` into one tidy table."""
    frames = []
    for path in paths:
        try:
            df = pd.read_csv(path)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise DataError(f"{path}: not a readable metrics CSV: {exc}") from exc
        missing = [c for c in METRIC_COLUMNS if c not in df.columns]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}; expected {METRIC_COLUMNS}")
        frames.append(df[METRIC_COLUMNS])
    if not frames:
        raise ValueError("collect_metrics: no metrics files given")
    table = pd.concat(frames, ignore_index=True)
    table["dose"] = table["dose"].astype(np.int64)
    table["_rank"] = table["model"].map(lambda m: _model_rank(m)[0])
    table = table.sort_values(["dose", "view", "split", "_rank", "model"], kind="stable")
    return table.drop(columns="_rank").reset_index(drop=True)


def metrics_vs_dose_figure(table: pd.DataFrame, component: str, metrics=tuple(PLOT_METRICS)) -> Figure:
    """Grid metrics × views: each metric against dose (log x), a line per model, test solid, train dashed."""
    views = list(dict.fromkeys(table["view"]))
    models = ordered_models(table["model"])
    metrics = [m for m in metrics if m in set(table["metric"])]
    fig = Figure(figsize=(3.6 * len(views) + 1.5, 2.3 * len(metrics) + 0.6), layout="constrained")
    axes = fig.subplots(len(metrics), len(views), squeeze=False, sharex=True)
    for i, metric in enumerate(metrics):
        label, logy = PLOT_METRICS.get(metric, (metric, False))
        for j, view in enumerate(views):
            ax = axes[i, j]
            sub = table[(table.metric == metric) & (table.view == view)]
            for model in models:
                for split, style in (("test", "-"), ("train", "--")):
                    s = sub[(sub.model == model) & (sub.split == split)].sort_values("dose")
                    y = s[component].to_numpy(dtype=np.float64)
                    y = np.where(np.isfinite(y), y, np.nan)  # PSNR inf (perfect), FRC inf (nothing resolved)
                    if not len(s) or np.all(np.isnan(y)):
                        continue
                    ax.plot(s["dose"], y, style, marker="o", ms=3.5, color=MODEL_COLORS.get(model),
                            label=f"{model} ({split})")
            ax.set_xscale("log")
            v = sub[component].to_numpy(dtype=np.float64)
            if logy and np.any(np.isfinite(v) & (v > 0)):
                ax.set_yscale("log")
            if i == 0:
                ax.set_title(f"{view} view")
            if j == 0:
                ax.set_ylabel(label)
            if i == len(metrics) - 1:
                ax.set_xlabel("dose (photons / pattern)")
            ax.grid(True, which="major", alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize=8)
    fig.suptitle(f"{component} metrics against dose")
    return fig


def montage_figure(aligned_paths, cells) -> Figure:
    """Phase of every model's aligned reconstruction: rows dose × view, columns ground truth and models.

    Uses the test-split cells when there are any (held-out data), otherwise all cells. Each
    row shares the ground truth's colour limits.
    """
    aligned_paths, cells = list(aligned_paths), list(cells)
    if len(aligned_paths) != len(cells):
        raise ValueError(f"montage: {len(aligned_paths)} aligned files but {len(cells)} cell labels")
    parsed = []
    for path, cell in zip(aligned_paths, cells):
        parts = str(cell).split("/")
        if len(parts) != 3:
            raise ValueError(f"montage: cell label {cell!r} is not 'dose/view/split' ({path})")
        parsed.append((int(parts[0].removeprefix("dose_")), parts[1], parts[2], path))
    if any(p[2] == "test" for p in parsed):
        parsed = [p for p in parsed if p[2] == "test"]
    parsed.sort(key=lambda p: (p[0], p[1], p[2]))
    rows = []
    for dose, view, split, path in parsed:
        d = load_npz(path, required=("truth", "models"))
        models = [m for m in d["models"].tolist() if m != TRIVIAL]
        for m in models:
            if f"object_{m}" not in d:
                raise DataError(f"{path}: missing key 'object_{m}' listed in 'models'")
        rows.append((f"dose {dose}\n{view} / {split}", d["truth"], {m: d[f"object_{m}"] for m in models}))
    columns = ordered_models(m for _, _, objs in rows for m in objs)
    ncol = 1 + len(columns)
    fig = Figure(figsize=(2.2 * ncol + 1.0, 2.2 * len(rows) + 0.6), layout="constrained")
    axes = fig.subplots(len(rows), ncol, squeeze=False)
    for i, (label, truth, objs) in enumerate(rows):
        phi_t = M.truth_phase(truth)
        vmin, vmax = float(phi_t.min()), float(phi_t.max())
        for j, name in enumerate(["ground truth"] + columns):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=10)
            if j == 0:
                ax.set_ylabel(label, fontsize=9)
                img = phi_t
            elif name in objs:
                img = M.components(objs[name], truth)["phase"][0]
            else:
                ax.set_axis_off()
                continue
            im = ax.imshow(img, cmap="viridis", vmin=vmin, vmax=vmax, interpolation="nearest")
        fig.colorbar(im, ax=list(axes[i]), shrink=0.85, label="phase (rad)")
    return fig


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub-markdown table per cell and model of the headline metrics (test split first)."""
    index = ["dose", "view", "split", "model"]
    wide = {comp: table.groupby(index + ["metric"])[comp].first().unstack("metric") for comp in ("amplitude", "phase")}
    keys = sorted(wide["phase"].index, key=lambda k: (k[2] != "test", k[0], k[1], _model_rank(k[3])))
    head = ["dose", "view", "split", "model"] + [c[0] for c in MARKDOWN_COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 4 + ["---:"] * len(MARKDOWN_COLUMNS)) + "|"]
    for key in keys:
        cells = [str(k) for k in key]
        for _, metric, comp, fmt in MARKDOWN_COLUMNS:
            v = float(wide[comp].at[key, metric]) if metric in wide[comp].columns else np.nan
            cells.append("–" if np.isnan(v) else fmt.format(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summarize(
    metrics_paths,
    aligned_paths,
    cells,
    table_path,
    phase_plot,
    amplitude_plot,
    montage_path,
    markdown_path,
) -> pd.DataFrame:
    """Write ``summary/metrics.csv``, the two metric-vs-dose figures, the phase montage and summary.md."""
    metrics_paths = list(metrics_paths)
    table = collect_metrics(metrics_paths)
    save_csv(table_path, table)
    for component, path in (("phase", phase_plot), ("amplitude", amplitude_plot)):
        save_figure(path, metrics_vs_dose_figure(table, component), dpi=110)
    save_figure(montage_path, montage_figure(aligned_paths, cells), dpi=110)
    text = (
        "# Study summary\n\nMetrics of every arm against the ground truth after alignment "
        "(crop to the scanned region, sub-pixel registration, global phase and amplitude scale "
        "removed). FRC resolutions are periods in pixels at the 0.5 and 1/7 thresholds "
        "(2 px = Nyquist: never crossed; inf: nothing resolved). `trivial` is a flat object "
        "(amplitude 1, phase 0) scored the same way.\n\n" + markdown_table(table)
    )
    with atomic_path(markdown_path, ".md") as tmp, open(tmp, "w") as fh:
        fh.write(text)
    log.info("summary of %d cells: %d rows -> %s", len(metrics_paths), len(table), table_path)
    return table
