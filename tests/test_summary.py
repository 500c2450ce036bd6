"""The study summary's statistics against independent computations: spread across replicates,
paired differences with Student-t intervals, registration flags, the overlap-axis table."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ptychostudy.compare import METRIC_COLUMNS
from ptychostudy.summary import differences, replicate_stats, shift_flags, t_interval, view_table


def _table(values: dict) -> pd.DataFrame:
    """values: (dose, view, split, seed, model, metric) -> phase value (amplitude = phase + 1)."""
    rows = [dict(zip(METRIC_COLUMNS[:6], k), amplitude=v + 1.0, phase=v) for k, v in values.items()]
    return pd.DataFrame(rows, columns=METRIC_COLUMNS)


def _cells(rng, seeds=(7, 11, 19)):
    values = {}
    bases = {seed: rng.normal(0.5, 0.05) for seed in seeds}  # a replicate's own luck, shared by its cells
    for view, shift in (("dense", 0.2), ("sparse", 0.0)):
        for seed in seeds:
            base = bases[seed]
            values[(1000, view, "test", seed, "pinn", "ssim")] = base + shift + 0.1
            values[(1000, view, "test", seed, "baseline", "ssim")] = base + shift + rng.normal(0, 0.05)
            values[(1000, view, "test", seed, "ptychi", "ssim")] = 0.9
            values[(1000, view, "test", seed, "trivial", "ssim")] = 0.2
    return values


def test_replicate_stats_are_mean_sd_and_n():
    values = _cells(np.random.default_rng(0))
    st = replicate_stats(_table(values))
    row = st[(st.model == "pinn") & (st.view == "dense") & (st.component == "phase")].iloc[0]
    v = [values[(1000, "dense", "test", s, "pinn", "ssim")] for s in (7, 11, 19)]
    assert row["mean"] == pytest.approx(np.mean(v), abs=1e-12)
    assert row["sd"] == pytest.approx(np.std(v, ddof=1), abs=1e-12)
    assert row["n"] == 3
    amp = st[(st.model == "pinn") & (st.view == "dense") & (st.component == "amplitude")].iloc[0]
    assert amp["mean"] == pytest.approx(np.mean(v) + 1.0)


def test_an_unresolved_frc_counts_as_a_replicate():
    """One replicate's FRC never crosses the threshold (inf): n still counts it, and the cell's
    mean is inf, not the mean of the replicates that resolved something."""
    values = {(1000, "dense", "test", 7, "pinn", "frc50_px"): 9.0, (1000, "dense", "test", 11, "pinn", "frc50_px"): np.inf}
    row = replicate_stats(_table(values)).query("component == 'phase'").iloc[0]
    assert row["n"] == 2 and np.isinf(row["mean"]) and np.isnan(row["sd"])


def test_t_interval_matches_the_textbook_formula():
    v = np.array([0.11, 0.07, 0.16, 0.09])
    mean, lo, hi, n = t_interval(v)
    half = stats.t.ppf(0.975, 3) * v.std(ddof=1) / 2.0
    assert (mean, lo, hi, n) == pytest.approx((v.mean(), v.mean() - half, v.mean() + half, 4))
    m1, lo1, hi1, n1 = t_interval([0.3])
    assert m1 == 0.3 and np.isnan(lo1) and np.isnan(hi1) and n1 == 1


def test_differences_are_paired_by_replicate_and_claimed_only_when_the_interval_excludes_zero():
    values = _cells(np.random.default_rng(1))
    diff = differences(_table(values), metrics=("ssim",))
    d = diff[(diff.metric == "ssim") & (diff.component == "phase")].set_index(["comparison", "view"])
    # PINN − Baseline: paired per seed, differences = 0.1 − noise
    paired = [values[(1000, "dense", "test", s, "pinn", "ssim")] - values[(1000, "dense", "test", s, "baseline", "ssim")]
              for s in (7, 11, 19)]
    mean, lo, hi, n = t_interval(paired)
    row = d.loc[("pinn − baseline", "dense")]
    assert (row["mean"], row["ci_low"], row["ci_high"], row["n"]) == pytest.approx((mean, lo, hi, n))
    assert row["claimed"] == bool(lo > 0 or hi < 0)
    # dense − sparse of the PINN: exactly +0.2 per seed (paired), a zero-width interval excluding 0
    ds = d.loc[("dense − sparse", "pinn")]
    assert ds["mean"] == pytest.approx(0.2) and ds["ci_low"] == pytest.approx(0.2) and ds["claimed"]
    assert ds["better"] == "dense"
    # the flat object has no dense − sparse; LSQML's value does not depend on the training seed,
    # so its dense − sparse is one measurement (n = 1), not three, and is never claimed
    assert ("dense − sparse", "trivial") not in d.index
    lsq = d.loc[("dense − sparse", "ptychi")]
    assert lsq["n"] == 1 and lsq["mean"] == pytest.approx(0.0) and not lsq["claimed"]
    # one replicate: no interval, nothing claimed
    one = {k: v for k, v in values.items() if k[3] == 7}
    d1 = differences(_table(one), metrics=("ssim",))
    assert not d1["claimed"].any() and d1["ci_low"].isna().all()


def test_differences_know_which_metrics_are_better_lower():
    values = {}
    for seed in (1, 2, 3):
        values[(1000, "dense", "test", seed, "pinn", "mae")] = 0.1 + 0.001 * seed
        values[(1000, "dense", "test", seed, "baseline", "mae")] = 0.3
    diff = differences(_table(values), metrics=("mae",))
    row = diff[(diff.comparison == "pinn − baseline") & (diff.component == "phase")].iloc[0]
    assert row["mean"] < 0 and row["claimed"] and row["better"] == "pinn"


def test_shift_flags_catch_large_and_rejected_shifts():
    rows = []
    for model, (dy, dx, rejected) in {"pinn": (0.3, -0.2, 0), "baseline": (1.4, 0.0, 0), "ptychi": (0.0, 0.0, 1)}.items():
        for metric, v in (("offset_dy", dy), ("offset_dx", dx), ("offset_rejected", rejected)):
            rows.append({"dose": 1000, "view": "dense", "split": "test", "seed": 7, "model": model,
                         "metric": metric, "amplitude": v, "phase": v})
    flags = shift_flags(pd.DataFrame(rows, columns=METRIC_COLUMNS))
    assert sorted(flags.model) == ["baseline", "ptychi"]


def test_view_table_reads_overlaps_and_training_budgets(tmp_path):
    overlaps, histories = [], []
    for view, step in (("dense", 7.2), ("sparse", 19.3)):
        for split in ("train", "test"):
            p = tmp_path / f"results/phase_d/dose_1000/{view}/{split}/overlap.json"
            p.parent.mkdir(parents=True)
            p.write_text(json.dumps({"linear": 1 - step / 24, "n_patterns": 576, "n_groups": 1024,
                                     "photons_per_px2": 1000 / step**2, "group_footprint_overlap": 1.0,
                                     "mean_nn_distance_px": step}))
            overlaps.append(p)
        for model in ("pinn", "baseline"):
            for seed in (7, 11):
                h = tmp_path / f"results/phase_e/dose_1000/{view}/{model}/seed_{seed}/history.csv"
                h.parent.mkdir(parents=True)
                pd.DataFrame({"epoch": [1, 2], "steps": [64, 128], "samples": [1024, 2048],
                              "selected": [False, True]}).to_csv(h, index=False)
                histories.append(h)
    t = view_table(overlaps, histories)
    assert len(t) == 4
    train = t[t.split == "train"].set_index("view")
    assert (train["pinn_steps"] == 128).all() and (train["baseline_samples"] == 2048).all()
    assert train.loc["sparse", "photons_per_px2"] < train.loc["dense", "photons_per_px2"]
    assert t[t.split == "test"]["pinn_steps"].isna().all()
