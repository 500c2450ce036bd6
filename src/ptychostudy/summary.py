"""Study summary: every cell and replicate in one tidy table, their spread, the study's differences
with intervals, the overlap axis, metric-vs-dose plots, a montage and summary.md.

Inputs are the Phase G outputs of every dose × view × scored split × replicate
(``comparison_metrics.csv``, ``aligned.npz``), the training histories and the views'
``overlap.json``; nothing is recomputed here.

Statistics (docs/design.md, "Replicates"): a replicate is one training seed; per cell × arm ×
metric the summary gives the mean, the sample standard deviation and n across replicates. A
difference the study is about (PINN − Baseline, PINN − LSQML, dense − sparse for each arm) is
taken per replicate (paired by training seed: the same seed trains both networks of a dose and
view), and reported as the mean of the paired differences with its two-sided 95 % Student-t
interval, ``mean ± t(0.975, n − 1) · sd / √n``. With one replicate there is no interval, and a
difference is *claimed* only when its interval excludes zero.
"""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from . import metrics as M
from .compare import METRIC_COLUMNS, SHIFT_FLAG_PX, TRIVIAL
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
MODEL_LABELS = {"pinn": "PtychoPINN", "baseline": "Baseline", "ptychi": "LSQML", TRIVIAL: "flat object"}
MODEL_COLORS = {"pinn": "tab:blue", "baseline": "tab:orange", "ptychi": "tab:green", TRIVIAL: "0.55"}
#: columns of the full table in summary.md: (label, metric, component, format)
MARKDOWN_COLUMNS = (
    ("phase SSIM", "ssim", "phase", "{:.3f}"),
    ("phase MS-SSIM", "ms_ssim", "phase", "{:.3f}"),
    ("phase PSNR (dB)", "psnr", "phase", "{:.1f}"),
    ("phase MAE (rad)", "mae", "phase", "{:.3f}"),
    ("phase FRC50 (px)", "frc50_px", "phase", "{:.1f}"),
    ("amp. SSIM", "ssim", "amplitude", "{:.3f}"),
    ("amp. FRC50 (px)", "frc50_px", "amplitude", "{:.1f}"),
    ("counts pred./meas.", "counts_ratio", "amplitude", "{:.3f}"),
    ("wall time (s)", "wall_time_s", "amplitude", "{:.3g}"),
)
#: the image metrics whose differences are tabulated, with the sign of "better"
DIFFERENCE_METRICS = {"ssim": 1, "ms_ssim": 1, "psnr": 1, "mae": -1, "frc50_px": -1}
CELL = ["dose", "view", "split"]


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
    table["seed"] = table["seed"].astype(np.int64)
    table["_rank"] = table["model"].map(lambda m: _model_rank(m)[0])
    table = table.sort_values(["dose", "view", "split", "seed", "_rank", "model"], kind="stable")
    return table.drop(columns="_rank").reset_index(drop=True)


def _long(table: pd.DataFrame) -> pd.DataFrame:
    """One value per row: columns dose, view, split, seed, model, metric, component, value."""
    return table.melt(id_vars=["dose", "view", "split", "seed", "model", "metric"],
                      value_vars=["amplitude", "phase"], var_name="component", value_name="value")


def replicate_stats(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample standard deviation (NaN for n = 1) and n across replicates, per cell × arm × metric × component.

    A missing value (NaN) is left out; an infinite one (an FRC resolution never reached) is kept,
    so n counts every replicate and the mean of such a cell is inf (its sd NaN), not the mean of
    the replicates that happened to resolve something."""
    long = _long(table)
    long = long[~np.isnan(long["value"].astype(np.float64))]
    g = long.groupby(CELL + ["model", "metric", "component"], sort=False)["value"]
    out = g.agg(mean="mean", sd="std", n="count").reset_index()
    out["n"] = out["n"].astype(np.int64)
    return out


def t_interval(values) -> tuple[float, float, float, int]:
    """(mean, low, high, n): the two-sided 95 % Student-t interval of the mean; no interval for n < 2."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    mean = float(v.mean())
    if n < 2:
        return mean, float("nan"), float("nan"), n
    half = float(stats.t.ppf(0.975, n - 1) * v.std(ddof=1) / np.sqrt(n))
    return mean, mean - half, mean + half, n


def differences(table: pd.DataFrame, metrics=tuple(DIFFERENCE_METRICS)) -> pd.DataFrame:
    """The study's differences, paired by replicate: PINN − Baseline and PINN − LSQML per cell,
    dense − sparse per arm (for the first two views when there are more). Columns: comparison,
    dose, view, split, metric, component, mean, ci_low, ci_high, n, claimed (the interval
    excludes 0), better (which side the interval favours, by the metric's sense).

    A difference whose value is the same for every replicate (both sides independent of the
    training seed, as LSQML's dense − sparse with its deterministic engine) counts as one
    measurement (n = 1, no interval, never claimed); the flat object has no dense − sparse."""
    long = _long(table[table.metric.isin(metrics)])
    wide = long.pivot_table(index=["dose", "view", "split", "seed", "metric", "component"], columns="model",
                            values="value", aggfunc="first")
    rows = []

    def add(name, view, keys, diff, sense):
        mean, lo, hi, n = t_interval(diff)
        claimed = bool(n >= 2 and (lo > 0 or hi < 0))
        better = "" if not claimed else (name.split(" − ")[0] if (mean > 0) == (sense > 0) else name.split(" − ")[1])
        rows.append({"comparison": name, "dose": keys[0], "view": view, "split": keys[1], "metric": keys[2],
                     "component": keys[3], "mean": mean, "ci_low": lo, "ci_high": hi, "n": n,
                     "claimed": claimed, "better": better})

    for a, b in (("pinn", "baseline"), ("pinn", "ptychi")):
        if a not in wide.columns or b not in wide.columns:
            continue
        d = (wide[a] - wide[b]).rename("d").reset_index()
        for (dose, view, split, metric, comp), grp in d.groupby(["dose", "view", "split", "metric", "component"]):
            add(f"{a} − {b}", view, (dose, split, metric, comp), grp["d"], DIFFERENCE_METRICS.get(metric, 1))
    views = list(dict.fromkeys(table["view"]))
    if len(views) >= 2:
        v1, v2 = views[:2]
        for arm in [m for m in ordered_models(wide.columns) if m != TRIVIAL]:
            s = wide[arm].unstack("view")
            if v1 not in s.columns or v2 not in s.columns:
                continue
            d = (s[v1] - s[v2]).rename("d").reset_index()
            # an arm whose value is the same for every replicate in both views (LSQML with its
            # deterministic engine) gives one measurement, repeated, not n of them
            fixed = s.groupby(["dose", "split", "metric", "component"]).agg(lambda v: np.ptp(v.dropna()) == 0)
            for (dose, split, metric, comp), grp in d.groupby(["dose", "split", "metric", "component"]):
                if fixed.loc[(dose, split, metric, comp), [v1, v2]].all():
                    grp = grp.iloc[:1]
                add(f"{v1} − {v2}", arm, (dose, split, metric, comp), grp["d"], DIFFERENCE_METRICS.get(metric, 1))
    cols = ["comparison", "dose", "view", "split", "metric", "component", "mean", "ci_low", "ci_high", "n",
            "claimed", "better"]
    return pd.DataFrame(rows, columns=cols)


_HISTORY = re.compile(r"dose_(\d+)/([^/]+)/([^/]+)/seed_(\d+)/history\.csv$")
_OVERLAP = re.compile(r"dose_(\d+)/([^/]+)/([^/]+)/overlap\.json$")


def view_table(overlap_paths, history_paths) -> pd.DataFrame:
    """The overlap axis: per dose × view × split, what the view's data hold (``overlap.json``:
    measured linear overlap, patterns, groups, photons per px², fraction of group members whose
    footprints overlap another's) and, for the train split, each network's optimisation budget
    (steps and samples of the training it ran, mean over replicates) from its history."""
    rows = []
    for path in overlap_paths:
        m = _OVERLAP.search(str(path))
        if not m:
            raise DataError(f"{path}: expected .../dose_<d>/<view>/<split>/overlap.json")
        with open(path) as fh:
            o = json.load(fh)
        rows.append({"dose": int(m.group(1)), "view": m.group(2), "split": m.group(3),
                     "linear_overlap": o.get("linear"), "patterns": o.get("n_patterns", o.get("n_positions")),
                     "groups": o.get("n_groups"), "photons_per_px2": o.get("photons_per_px2"),
                     "group_footprint_overlap": o.get("group_footprint_overlap"),
                     "step_px": o.get("mean_nn_distance_px")})
    table = pd.DataFrame(rows)
    budget = {}
    for path in history_paths:
        m = _HISTORY.search(str(path))
        if not m:
            raise DataError(f"{path}: expected .../dose_<d>/<view>/<model>/seed_<s>/history.csv")
        h = pd.read_csv(path)
        key = (int(m.group(1)), m.group(2), m.group(3))
        budget.setdefault(key, []).append((h["steps"].iloc[-1], h["samples"].iloc[-1],
                                           int(h.loc[h["selected"], "epoch"].iloc[0]) if "selected" in h else np.nan))
    for (dose, view, model), runs in budget.items():
        sel = (table.dose == dose) & (table.view == view) & (table.split == "train")
        arr = np.asarray(runs, dtype=np.float64)
        table.loc[sel, f"{model}_steps"] = arr[:, 0].mean()
        table.loc[sel, f"{model}_samples"] = arr[:, 1].mean()
        table.loc[sel, f"{model}_selected_epoch"] = arr[:, 2].mean()
    return table.sort_values(["dose", "view", "split"]).reset_index(drop=True) if len(table) else table


def shift_flags(table: pd.DataFrame) -> pd.DataFrame:
    """Cells × replicates × arms whose registration applied a shift above ``SHIFT_FLAG_PX`` on
    either axis, or measured one beyond its limit (rejected)."""
    t = table[table.metric.isin(["offset_dy", "offset_dx", "offset_rejected", "measured_dy", "measured_dx"])]
    w = t.pivot_table(index=["dose", "view", "split", "seed", "model"], columns="metric", values="amplitude",
                      aggfunc="first")
    if w.empty:
        return w.reset_index()
    applied = np.maximum(w.get("offset_dy", 0).abs(), w.get("offset_dx", 0).abs())
    flagged = (applied > SHIFT_FLAG_PX) | (w.get("offset_rejected", 0) > 0)
    return w[flagged].reset_index()


def _stat(stats_table: pd.DataFrame, metric: str, component: str) -> pd.DataFrame:
    s = stats_table[(stats_table.metric == metric) & (stats_table.component == component)]
    return s.set_index(CELL + ["model"])


def metrics_vs_dose_figure(stats_table: pd.DataFrame, component: str, metrics=tuple(PLOT_METRICS)) -> Figure:
    """Grid metrics × views: each metric's mean against dose (log x), error bars ± one sd across
    replicates, a line per model, test solid, train dashed."""
    views = list(dict.fromkeys(stats_table["view"]))
    models = ordered_models(stats_table["model"])
    metrics = [m for m in metrics if m in set(stats_table["metric"])]
    fig = Figure(figsize=(3.6 * len(views) + 1.5, 2.3 * len(metrics) + 0.6), layout="constrained")
    axes = fig.subplots(len(metrics), len(views), squeeze=False, sharex=True)
    for i, metric in enumerate(metrics):
        label, logy = PLOT_METRICS.get(metric, (metric, False))
        sub_all = stats_table[(stats_table.metric == metric) & (stats_table.component == component)]
        for j, view in enumerate(views):
            ax = axes[i, j]
            sub = sub_all[sub_all.view == view]
            for model in models:
                for split, style in (("test", "-"), ("train", "--")):
                    s = sub[(sub.model == model) & (sub.split == split)].sort_values("dose")
                    y = s["mean"].to_numpy(dtype=np.float64)
                    y = np.where(np.isfinite(y), y, np.nan)  # PSNR inf (perfect), FRC inf (nothing resolved)
                    if not len(s) or np.all(np.isnan(y)):
                        continue
                    err = np.nan_to_num(s["sd"].to_numpy(dtype=np.float64), nan=0.0)
                    ax.errorbar(s["dose"], y, yerr=err, fmt=style, marker="o", ms=3.5, capsize=2,
                                color=MODEL_COLORS.get(model), label=f"{MODEL_LABELS.get(model, model)} ({split})")
            ax.set_xscale("log")
            v = sub["mean"].to_numpy(dtype=np.float64)
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
    n = int(stats_table["n"].max()) if len(stats_table) else 0
    fig.suptitle(f"{component} metrics against dose (mean ± sd over {n} replicate{'s' if n != 1 else ''})")
    return fig


_CELL_LABEL = re.compile(r"^dose_(\d+)/([^/]+)/([^/]+)/seed_(\d+)$")


def montage_figure(aligned_paths, cells) -> Figure:
    """Phase of every model's aligned reconstruction: rows dose × view, columns ground truth and models.

    Uses the test-split cells of the first replicate when there are any (held-out data),
    otherwise all cells of the first replicate. Each row shares the ground truth's colour limits.
    """
    aligned_paths, cells = list(aligned_paths), list(cells)
    if len(aligned_paths) != len(cells):
        raise ValueError(f"montage: {len(aligned_paths)} aligned files but {len(cells)} cell labels")
    parsed = []
    for path, cell in zip(aligned_paths, cells):
        m = _CELL_LABEL.match(str(cell))
        if not m:
            raise ValueError(f"montage: cell label {cell!r} is not 'dose_<d>/<view>/<split>/seed_<s>' ({path})")
        parsed.append((int(m.group(1)), m.group(2), m.group(3), int(m.group(4)), path))
    first_seed = parsed[0][3]
    parsed = [p for p in parsed if p[3] == first_seed]
    if any(p[2] == "test" for p in parsed):
        parsed = [p for p in parsed if p[2] == "test"]
    parsed.sort(key=lambda p: (p[0], p[1], p[2]))
    rows = []
    for dose, view, split, seed, path in parsed:
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
        phi_t = M.display_phase(truth)
        vmin, vmax = float(phi_t.min()), float(phi_t.max())
        for j, name in enumerate(["ground truth"] + columns):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(MODEL_LABELS.get(name, name), fontsize=10)
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
    fig.suptitle(f"test-split phase, training seed {first_seed}")
    return fig


def markdown_rows(head, rows, right_from: int | None = None) -> str:
    """A markdown table: ``head`` (column names), ``rows`` (lists of cell strings); columns from
    index ``right_from`` on are right-aligned (numbers), the others left-aligned."""
    right_from = len(head) if right_from is None else right_from
    align = ["---"] * right_from + ["---:"] * (len(head) - right_from)
    lines = ["| " + " | ".join(map(str, head)) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(map(str, cells)) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def markdown_frame(frame: pd.DataFrame, fmt: str = "{:.2f}", right_from: int | None = None) -> str:
    """``frame`` as a markdown table, floats formatted with ``fmt``, missing values as "–"."""
    def cell(v):
        if isinstance(v, float):
            return fmt.format(v) if np.isfinite(v) else "–"
        return str(v)

    return markdown_rows(list(frame.columns), [[cell(r[c]) for c in frame.columns] for _, r in frame.iterrows()],
                         right_from)


def _fmt(mean, sd, n, fmt="{:.3f}") -> str:
    if not np.isfinite(mean):
        return "–"
    if n >= 2 and np.isfinite(sd):
        return f"{fmt.format(mean)} ± {fmt.format(sd)}"
    return fmt.format(mean)


def headline_table(stats_table: pd.DataFrame, split: str = "test", metric: str = "ssim",
                   component: str = "phase") -> str:
    """Mean ± sd (n) of one metric per dose × view and arm, and each arm's margin over the flat object."""
    s = _stat(stats_table, metric, component)
    keys = sorted({(k[0], k[1]) for k in s.index if k[2] == split})
    arms = [m for m in ordered_models(s.index.get_level_values("model")) if m != TRIVIAL]
    head = ["dose", "view"] + [MODEL_LABELS.get(a, a) for a in arms] + ["flat object"] + \
        [f"{MODEL_LABELS.get(a, a)} − flat" for a in arms] + ["n"]
    rows = []
    for dose, view in keys:
        def get(model, col="mean"):
            k = (dose, view, split, model)
            return float(s.at[k, col]) if k in s.index else float("nan")

        flat = get(TRIVIAL)
        n = int(max((s.at[(dose, view, split, a), "n"] for a in arms if (dose, view, split, a) in s.index), default=0))
        cells = [str(dose), view] + [_fmt(get(a), get(a, "sd"), n) for a in arms] + [f"{flat:.3f}"]
        cells += [f"{get(a) - flat:+.3f}" if np.isfinite(get(a)) else "–" for a in arms] + [str(n)]
        rows.append(cells)
    return markdown_rows(head, rows, right_from=2)


def difference_table(diff: pd.DataFrame, metric: str = "ssim", component: str = "phase") -> str:
    """The differences of one metric, mean [95 % interval] (n), the claimed ones in bold."""
    d = diff[(diff.metric == metric) & (diff.component == component)]
    rows = []
    for _, r in d.sort_values(["comparison", "view", "split", "dose"]).iterrows():
        ci = "–" if not np.isfinite(r["ci_low"]) else f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
        mean = f"{r['mean']:+.3f}"
        rows.append([r["comparison"], r["view"], r["split"], r["dose"], f"**{mean}**" if r["claimed"] else mean, ci,
                     r["n"], ("yes: " + r["better"]) if r["claimed"] else "no"])
    return markdown_rows(["comparison", "view / arm", "split", "dose", "mean", "95 % interval", "n", "claimed"],
                         rows, right_from=3)


def markdown_table(stats_table: pd.DataFrame) -> str:
    """A table per cell and model of the headline metrics (means over replicates; test split first)."""
    wide = {}
    for _, metric, comp, _ in MARKDOWN_COLUMNS:
        wide[(metric, comp)] = _stat(stats_table, metric, comp)
    keys = sorted({k for w in wide.values() for k in w.index}, key=lambda k: (k[2] != "test", k[0], k[1],
                                                                               _model_rank(k[3])))
    head = ["dose", "view", "split", "model"] + [c[0] for c in MARKDOWN_COLUMNS]
    rows = []
    for key in keys:
        cells = [str(k) for k in key]
        for _, metric, comp, fmt in MARKDOWN_COLUMNS:
            w = wide[(metric, comp)]
            v = float(w.at[key, "mean"]) if key in w.index else np.nan
            cells.append("–" if np.isnan(v) else fmt.format(v))
        rows.append(cells)
    return markdown_rows(head, rows, right_from=4)


def view_markdown(views: pd.DataFrame) -> str:
    cols = [("dose", "{}"), ("view", "{}"), ("split", "{}"), ("linear_overlap", "{:.2f}"), ("step_px", "{:.1f}"),
            ("patterns", "{}"), ("groups", "{}"), ("photons_per_px2", "{:.3g}"), ("group_footprint_overlap", "{:.2f}"),
            ("pinn_steps", "{:.0f}"), ("pinn_samples", "{:.0f}"), ("baseline_steps", "{:.0f}"),
            ("baseline_samples", "{:.0f}")]
    cols = [(c, f) for c, f in cols if c in views.columns]
    rows = [["–" if (isinstance(r[c], float) and not np.isfinite(r[c])) or r[c] is None else f.format(r[c])
             for c, f in cols] for _, r in views.iterrows()]
    return markdown_rows([c for c, _ in cols], rows)


def summarize(metrics_paths, aligned_paths, cells, outputs: dict, history_paths=(), overlap_paths=()) -> pd.DataFrame:
    """Write every summary output; ``outputs`` maps table, stats, differences, views, markdown,
    phase_plot, amplitude_plot and montage to paths."""
    metrics_paths = list(metrics_paths)
    table = collect_metrics(metrics_paths)
    save_csv(outputs["table"], table)
    st = replicate_stats(table)
    save_csv(outputs["stats"], st)
    diff = differences(table)
    save_csv(outputs["differences"], diff)
    views = view_table(overlap_paths, history_paths)
    save_csv(outputs["views"], views)
    for component, key in (("phase", "phase_plot"), ("amplitude", "amplitude_plot")):
        save_figure(outputs[key], metrics_vs_dose_figure(st, component), dpi=110)
    save_figure(outputs["montage"], montage_figure(aligned_paths, cells), dpi=110)
    flags = shift_flags(table)
    n_rep = table["seed"].nunique()
    flag_text = ("No reconstruction needed a registration shift above "
                 f"{SHIFT_FLAG_PX:g} px, and none was rejected.\n" if flags.empty else
                 f"**{len(flags)} reconstruction(s) shifted by more than {SHIFT_FLAG_PX:g} px or rejected** "
                 "(positions and probe are known: an honest reconstruction needs no shift):\n\n"
                 + markdown_frame(flags))
    text = (
        "# Study summary\n\n"
        f"{n_rep} replicate(s) (training seeds {sorted(table['seed'].unique().tolist())}). Every arm aligned "
        "alike (crop to the split's scanned region, sub-pixel registration, global phase and amplitude scale "
        "removed); phase metrics after shifting both images so that the truth's minimum is 0. `flat object`: "
        "amplitude 1, phase 0, scored the same way. Values are means over replicates ± one standard deviation.\n\n"
        "## Test split, phase SSIM, and each arm's margin over the flat object\n\n"
        + headline_table(st)
        + "\n## Differences (phase SSIM), paired by replicate, 95 % t-interval\n\n"
        "A difference is claimed only when its interval excludes 0 (n ≥ 2).\n\n"
        + difference_table(diff)
        + "\n## Registration\n\n" + flag_text
        + "\n## The overlap axis: what each view's data and training hold\n\n"
        "Linear overlap measured to the nearest neighbour; photons per object pixel²; the fraction of group "
        "members whose probe footprint overlaps another member's; each network's optimisation steps and "
        "samples (train rows; mean over replicates).\n\n" + view_markdown(views)
        + "\n## All cells (means over replicates)\n\nFRC resolutions are periods in pixels at the 0.5 "
        "threshold (2 px = Nyquist: never crossed; inf: nothing resolved).\n\n" + markdown_table(st)
    )
    with atomic_path(outputs["markdown"], ".md") as tmp, open(tmp, "w") as fh:
        fh.write(text)
    log.info("summary of %d cells: %d rows, %d replicate(s) -> %s", len(metrics_paths), len(table), n_rep,
             outputs["table"])
    return table
