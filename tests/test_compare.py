"""Phase G comparison and the study summary: tidy tables, every model × metric, files on disk."""

import numpy as np
import pandas as pd
import pytest

from ptychostudy import metrics as M
from ptychostudy.compare import (
    FRC_COLUMNS,
    METRIC_COLUMNS,
    TRIVIAL,
    compare_cell,
    compare_split_files,
)
from ptychostudy.io import DataError, load_npz, save_npz
from ptychostudy.conventions import fourier_shift
from ptychostudy.simulate import make_object
from ptychostudy.summary import collect_metrics, markdown_table, replicate_stats, summarize

L = 112
EXTRA = {"wall_time_s", "offset_dy", "offset_dx", "offset_rejected", "measured_dy", "measured_dx", "scale",
         "phase_offset", "counts_ratio"}


@pytest.fixture(scope="module")
def truth():
    return make_object(L, 21)


def arms_for(truth, seed=0):
    rng = np.random.default_rng(seed)
    noise = 0.05 * (rng.standard_normal(truth.shape) + 1j * rng.standard_normal(truth.shape))
    shifted = fourier_shift(truth[None].astype(np.complex128), np.array([[0.4, -0.6]]))[0]
    return {
        "pinn": ((truth + noise).astype(np.complex64), 1.5, 1.02),
        "ptychi": ((0.7 * np.exp(1j) * shifted).astype(np.complex64), 30.0),
    }


def test_compare_cell_is_tidy_and_complete(truth):
    region = (slice(30, 80), slice(25, 90))
    table, aligned, frc = compare_cell(truth, region, arms_for(truth), 1000, "dense", "test", seed=11)
    assert list(table.columns) == METRIC_COLUMNS and (table.seed == 11).all()
    assert set(table.model) == {"pinn", "ptychi", TRIVIAL}
    assert set(table.metric) == set(M.METRIC_NAMES) | EXTRA
    counts = table.groupby(["model", "metric"]).size()
    assert len(counts) == 3 * len(set(M.METRIC_NAMES) | EXTRA) and (counts == 1).all()
    assert (table.dose == 1000).all() and (table.view == "dense").all() and (table.split == "test").all()
    v = table.set_index(["model", "metric"])
    assert v.loc[("ptychi", "wall_time_s"), "amplitude"] == 30.0
    assert v.loc[("ptychi", "offset_dy"), "phase"] == pytest.approx(0.6, abs=0.05)
    assert v.loc[("ptychi", "offset_dx"), "phase"] == pytest.approx(-0.4, abs=0.05)
    assert v.loc[("ptychi", "offset_rejected"), "phase"] == 0.0
    assert v.loc[("ptychi", "measured_dy"), "phase"] == v.loc[("ptychi", "offset_dy"), "phase"]
    assert np.isnan(v.loc[("pinn", "scale"), "phase"]) and np.isnan(v.loc[("pinn", "phase_offset"), "amplitude"])
    assert v.loc[("pinn", "counts_ratio"), "phase"] == 1.02 and np.isnan(v.loc[("ptychi", "counts_ratio"), "amplitude"])
    for arm in ("pinn", "ptychi"):  # every arm beats the trivial reference on phase SSIM
        assert v.loc[(arm, "ssim"), "phase"] > v.loc[(TRIVIAL, "ssim"), "phase"]
    assert aligned["truth"].shape == (50, 65) and aligned["pinn"].shape == (50, 65)
    assert list(frc.columns) == FRC_COLUMNS
    assert set(frc.component) == set(M.COMPONENTS) and set(frc.model) == {"pinn", "ptychi", TRIVIAL}


def write_cell(tmp_path, truth, dose, view, split):
    """Phase C, groups and arm files of one cell, as the workflow would leave them."""
    rng = np.random.default_rng(dose)
    n = 60
    x = rng.uniform(30, 82, n)
    y = rng.uniform(60, 90, n) if split == "test" else rng.uniform(22, 50, n)
    base = tmp_path / f"dose_{dose}" / view / split
    phase_c = base / "phase_c.npz"
    save_npz(phase_c, objectGuess=truth, xcoords=x, ycoords=y, probeGuess=np.ones((16, 16), np.complex64))
    groups = base / "groups.npz"
    save_npz(groups, view_index=np.arange(0, n, 2, dtype=np.int64))
    arm_paths = {}
    for name, (obj, wall, *_) in arms_for(truth, dose).items():
        arm_paths[name] = base / f"{name}.npz"
        save_npz(arm_paths[name], object=obj, wall_time_s=wall)
    names = {"metrics": "comparison_metrics.csv", "aligned": "aligned.npz", "frc": "frc.csv", "figure": "comparison.png"}
    out = {k: base / f for k, f in names.items()}
    return phase_c, groups, arm_paths, out


def test_compare_split_files_and_summary(tmp_path, truth):
    cells, metric_paths, aligned_paths = [], [], []
    for dose in (1000, 100000):
        for view in ("dense", "sparse"):
            for split in ("train", "test"):
                for seed in (7, 11):
                    phase_c, groups, arm_paths, out = write_cell(tmp_path / f"seed_{seed}", truth, dose, view, split)
                    table = compare_split_files(phase_c, groups, arm_paths, out["metrics"], out["aligned"],
                                                out["frc"], out["figure"], dose=dose, view=view, split=split,
                                                seed=seed)
                    for f in out.values():
                        assert f.is_file()
                    back = pd.read_csv(out["metrics"])
                    assert list(back.columns) == METRIC_COLUMNS and len(back) == len(table)
                    a = load_npz(out["aligned"], required=("truth", "crop", "models"))
                    assert set(a["models"].tolist()) == {"pinn", "ptychi", TRIVIAL}
                    assert a["object_pinn"].shape == a["truth"].shape and int(a["seed"]) == seed
                    cells.append(f"dose_{dose}/{view}/{split}/seed_{seed}")
                    metric_paths.append(out["metrics"])
                    aligned_paths.append(out["aligned"])

    s = tmp_path / "summary"
    outputs = {k: s / f for k, f in (("table", "metrics.csv"), ("stats", "stats.csv"), ("differences", "diff.csv"),
                                     ("views", "views.csv"), ("phase_plot", "phase.png"),
                                     ("amplitude_plot", "amplitude.png"), ("montage", "montage.png"),
                                     ("markdown", "summary.md"))}
    table = summarize(metric_paths, aligned_paths, cells, outputs)
    for f in outputs.values():
        assert f.is_file()
    assert len(table) == sum(len(pd.read_csv(p)) for p in metric_paths)
    assert set(table.dose) == {1000, 100000} and set(table.seed) == {7, 11}
    stats = pd.read_csv(outputs["stats"])
    assert (stats.n == 2).all()
    diff = pd.read_csv(outputs["differences"])
    assert {"pinn − ptychi", "dense − sparse"} <= set(diff.comparison)
    md = outputs["markdown"].read_text()
    assert "| dose | view | split | model | phase SSIM" in md
    assert md.count("| 1000 | dense | test |") == 3  # pinn, ptychi, trivial
    assert "margin" in md and "PtychoPINN − flat" in md and "95 % interval" in md


def test_arm_with_wrong_shape_names_file(tmp_path, truth):
    phase_c, groups, arm_paths, out = write_cell(tmp_path, truth, 1000, "dense", "test")
    save_npz(arm_paths["pinn"], object=np.zeros((8, 8), np.complex64), wall_time_s=1.0)
    with pytest.raises(DataError, match="pinn.npz.*'object'"):
        compare_split_files(phase_c, groups, arm_paths, out["metrics"], out["aligned"], out["frc"],
                            out["figure"], dose=1000, view="dense", split="test")
    assert not out["metrics"].exists()


def test_markdown_and_collect(tmp_path, truth):
    table, _, _ = compare_cell(truth, (slice(30, 80), slice(25, 90)), arms_for(truth), 1000, "sparse", "test")
    p = tmp_path / "m.csv"
    table.to_csv(p, index=False)
    back = collect_metrics([p])
    assert list(back.model.unique()) == ["pinn", "ptychi", TRIVIAL]
    md = markdown_table(replicate_stats(back))
    assert md.splitlines()[0].startswith("| dose | view | split | model |")
    assert len(md.splitlines()) == 2 + 3
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="bad.csv"):
        collect_metrics([bad])


def test_nan_in_scanned_region_is_an_error(tmp_path, truth):
    phase_c, groups, arm_paths, out = write_cell(tmp_path, truth, 1000, "dense", "test")
    obj = truth.copy()
    obj[0, 0] = np.nan  # outside the scanned region: tolerated (set to 0)
    save_npz(arm_paths["pinn"], object=obj, wall_time_s=1.0)
    compare_split_files(phase_c, groups, arm_paths, out["metrics"], out["aligned"], out["frc"],
                        out["figure"], dose=1000, view="dense", split="test")
    obj[75, 50] = np.nan
    save_npz(arm_paths["pinn"], object=obj, wall_time_s=1.0)
    with pytest.raises(DataError, match="pinn.npz.*scanned region"):
        compare_split_files(phase_c, groups, arm_paths, out["metrics"], out["aligned"], out["frc"],
                            out["figure"], dose=1000, view="dense", split="test")
