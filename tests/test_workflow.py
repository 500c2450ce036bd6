"""End to end: the real Snakemake on the tiny config, every phase, every cell, every replicate;
reruns of only what a config edit changes; every job within its memory request."""

import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, TINY
from ptychostudy import io
from ptychostudy.config import SCORED_SPLITS, SPLITS, build_plan
from ptychostudy.phase_c import validate_phase_c
from ptychostudy.resources import benchmark_job, benchmark_log, job_peak_mb, logged_peak_mb, mem_mb
from ptychostudy.shards import load_chunk

PLAN = build_plan(yaml.safe_load(TINY.read_text()))


def test_phase_c_files_are_canonical(tiny_run):
    for dose in PLAN.doses:
        objects = []
        for split in SPLITS:
            d = validate_phase_c(tiny_run / f"results/phase_c/dose_{dose}/{split}.npz")
            objects.append(d["objectGuess"])
            assert len(d["xcoords"]) == sum(v.n_positions(split) for v in PLAN.views.values())
        assert not np.allclose(objects[0], objects[2])  # test content is its own object
        assert (tiny_run / f"results/phase_c/dose_{dose}/overview.png").stat().st_size > 10_000


def test_phase_d_groups_and_chunks_follow_the_plan(tiny_run):
    for dose in PLAN.doses:
        for view in PLAN.view_names:
            for split in SPLITS:
                cell = tiny_run / f"results/phase_d/dose_{dose}/{view}/{split}"
                groups = io.load_npz(cell / "groups.npz")
                assert len(groups["members"]) == PLAN.views[view].n_groups(split)
                chunks = sorted((cell / "chunks").glob("chunk_*.npz"))
                assert [p.stem[-4:] for p in chunks] == PLAN.chunk_ids(view, split)
                ids = np.concatenate([load_chunk(p, n=PLAN.N, c=PLAN.C)["group_index"] for p in chunks])
                np.testing.assert_array_equal(ids, np.arange(len(groups["members"])))
                overlap = json.loads((cell / "overlap.json").read_text())
                assert abs(overlap["linear"] - PLAN.views[view].overlap) < 0.1
                assert overlap["n_patterns"] == PLAN.views[view].n_positions(split)
                assert 0 <= overlap["group_footprint_overlap"] <= 1 and overlap["photons_per_px2"] > 0


def test_every_arm_of_every_cell_and_replicate_is_in_the_summary(tiny_run):
    table = pd.read_csv(tiny_run / "results/summary/metrics.csv")
    assert {"dose", "view", "split", "seed", "model", "metric", "amplitude", "phase"} <= set(table.columns)
    cells = table.groupby(["dose", "view", "split", "seed"])["model"].apply(set)
    assert len(cells) == len(PLAN.doses) * len(PLAN.view_names) * len(SCORED_SPLITS) * len(PLAN.replicates)
    assert set(table.split) == set(SCORED_SPLITS)  # validation only chooses: never scored
    for models in cells:
        assert set(PLAN.models) <= models
    ssim = table[table.metric == "ssim"]
    assert ssim.phase.notna().all() and (ssim.phase <= 1.0 + 1e-9).all()
    for name in ("summary.md", "metrics_vs_dose_phase.png", "metrics_vs_dose_amplitude.png",
                 "montage_test_phase.png", "metrics_stats.csv", "differences.csv", "views.csv"):
        assert (tiny_run / "results/summary" / name).stat().st_size > 0
    stats = pd.read_csv(tiny_run / "results/summary/metrics_stats.csv")
    nets = stats[stats.model.isin(PLAN.nn_models)]
    assert (nets.n == len(PLAN.replicates)).all()
    views = pd.read_csv(tiny_run / "results/summary/views.csv")
    train = views[views.split == "train"].set_index(["dose", "view"])
    for model in PLAN.nn_models:  # the overlap axis: each network's budget is the same in every view
        assert train.groupby("dose")[f"{model}_samples"].nunique().eq(1).all()
    assert train.groupby("dose")["patterns"].nunique().eq(1).all()


def test_lsqml_beats_the_flat_object_at_the_top_dose(tiny_run):
    """Science on the tiny config: the iterative arm reconstructs the unseen test object."""
    table = pd.read_csv(tiny_run / "results/summary/metrics.csv")
    s = table[(table.metric == "ssim") & (table.split == "test") & (table.view == "dense")
              & (table.dose == max(PLAN.doses))].groupby("model").phase.mean()
    assert s["ptychi"] > s["trivial"] + 0.05, s


def test_models_and_inference_outputs_exist_for_every_chunk_and_replicate(tiny_run):
    for dose in PLAN.doses:
        for view in PLAN.view_names:
            for model in PLAN.nn_models:
                for seed in PLAN.replicates:
                    stem = tiny_run / f"results/phase_e/dose_{dose}/{view}/{model}/seed_{seed}"
                    assert (stem / "model.keras").is_file()
                    hist = pd.read_csv(stem / "history.csv")
                    assert hist["val_loss"].notna().all() and hist["selected"].sum() == 1
                    for split in SCORED_SPLITS:
                        base = tiny_run / f"results/inference/dose_{dose}/{view}/{split}/{model}/seed_{seed}"
                        for cid in PLAN.chunk_ids(view, split):
                            pred = io.load_npz(base / f"chunk_{cid}.npz", required=("patches", "positions"))
                            assert pred["patches"].dtype == np.complex64
                        merged = io.load_npz(base / "merged.npz", required=("object",))
                        assert merged["object"].shape == (PLAN.object_size, PLAN.object_size)
                assert not (tiny_run / f"results/inference/dose_{dose}/{view}/validation").exists()


def test_every_gpu_job_log_names_its_device(tiny_run):
    """Training, chunk inference and LSQML claim a device first and say which (the CPU without a GPU)."""
    logs = sorted((tiny_run / "logs/phase_e").rglob("seed_*.log"))
    logs += sorted((tiny_run / "logs/inference").rglob("chunk_*.log"))
    logs += sorted((tiny_run / "logs/phase_f").rglob("*.log"))
    assert len(logs) > len(PLAN.doses) * 4
    for path in logs:
        assert re.search(r"INFO ptychostudy: device: (CPU|GPU \S+)", path.read_text()), path


def test_every_job_stays_within_its_memory_request(tiny_run):
    """Every job logs its exact peak RSS at exit (Snakemake's benchmark files only sample it);
    the request is derived from the data sizes (ptychostudy.resources)."""
    files = sorted((tiny_run / "benchmarks").rglob("*.tsv"))
    assert len(files) > 50
    for path in files:
        assert logged_peak_mb(benchmark_log(path)) is not None, benchmark_log(path)
        rule, view, split = benchmark_job(path)
        peak = job_peak_mb(path)
        assert 50 < peak < mem_mb(PLAN, rule, view, split), (path, peak, mem_mb(PLAN, rule, view, split))


def _planned(workdir, overlay=None) -> dict:
    """rule -> jobs a dry run of the tiny config in ``workdir`` would run, with the config file
    ``overlay`` laid over it (Snakemake merges later config files key by key)."""
    configs = [str(TINY)] + ([str(overlay)] if overlay else [])
    res = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
                          "--configfile", *configs], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    counts, table = {}, False
    for line in (res.stdout + res.stderr).splitlines():
        parts = line.split()
        if line.startswith("job ") and "count" in line:
            table = True
        elif table and len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
        elif table and counts and not line.strip():
            break
    counts.pop("total", None)
    counts.pop("all", None)
    return counts


@pytest.mark.parametrize(
    "edit, allowed",
    [
        ({"ptychi": {"epochs": 6}}, {"reconstruct_ptychi", "compare_split", "summarize_study"}),
        ({"pinn": {"filters": 4, "epochs": 3}},
         {"train_pinn", "infer_chunk", "merge_chunks", "compare_split", "summarize_study"}),
        ({"replicates": [7, 11, 13]},
         {"train_pinn", "train_baseline", "infer_chunk", "merge_chunks", "compare_split", "summarize_study"}),
    ],
    ids=["ptychi.epochs", "pinn.epochs", "a training seed"],
)
def test_a_config_edit_reruns_only_the_jobs_that_read_it(tiny_run, tmp_path, edit, allowed):
    import yaml

    assert _planned(tiny_run) == {}  # the finished run is up to date
    overlay = tmp_path / "edit.yaml"
    overlay.write_text(yaml.safe_dump(edit))
    planned = _planned(tiny_run, overlay)
    assert planned and set(planned) <= allowed, planned
    if "pinn" in edit:
        assert "train_baseline" not in planned and "reconstruct_ptychi" not in planned


def test_the_report_of_a_finished_run_builds(tiny_run, tmp_path):
    """`snakemake --report` on the finished tiny run: one self-contained HTML file that carries
    the captions of workflow/report/ and the summary's figures (the catalog's `report: true`)."""
    report = tmp_path / "report.html"
    res = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tiny_run),
                          "--configfile", str(TINY), "--report", str(report)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    html = report.read_text(errors="replace")
    assert len(html) > 100_000
    for text in ("montage_test_phase.png", "metrics_vs_dose_phase.png", "summary.md"):
        assert text in html, text
