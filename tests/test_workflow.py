"""End to end: the real Snakemake on the tiny config, every phase, every cell."""

import json
import re

import numpy as np
import pandas as pd
import yaml

from conftest import TINY
from ptychostudy import io
from ptychostudy.config import SPLITS, build_plan
from ptychostudy.dataset import validate_phase_c
from ptychostudy.shards import load_chunk

PLAN = build_plan(yaml.safe_load(TINY.read_text()))


def test_phase_c_files_are_canonical(tiny_run):
    for dose in PLAN.doses:
        for split in SPLITS:
            d = validate_phase_c(tiny_run / f"results/phase_c/dose_{dose}/{split}.npz")
            assert d["diffraction"].shape[1:] == (PLAN.N, PLAN.N)
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


def test_every_arm_of_every_cell_is_in_the_summary(tiny_run):
    table = pd.read_csv(tiny_run / "results/summary/metrics.csv")
    assert {"dose", "view", "split", "model", "metric", "amplitude", "phase"} <= set(table.columns)
    cells = table.groupby(["dose", "view", "split"])["model"].apply(set)
    assert len(cells) == len(PLAN.doses) * len(PLAN.view_names) * 2
    for models in cells:
        assert set(PLAN.models) <= models
    ssim = table[table.metric == "ssim"]
    assert ssim.phase.notna().all() and (ssim.phase <= 1.0 + 1e-9).all()
    for name in ("summary.md", "metrics_vs_dose_phase.png", "metrics_vs_dose_amplitude.png",
                 "montage_test_phase.png"):
        assert (tiny_run / "results/summary" / name).stat().st_size > 0


def test_models_and_inference_outputs_exist_for_every_chunk(tiny_run):
    for dose in PLAN.doses:
        for view in PLAN.view_names:
            for model in PLAN.nn_models:
                assert (tiny_run / f"results/phase_e/dose_{dose}/{view}/{model}/model.keras").is_file()
                for split in SPLITS:
                    base = tiny_run / f"results/inference/dose_{dose}/{view}/{split}/{model}"
                    for cid in PLAN.chunk_ids(view, split):
                        pred = io.load_npz(base / f"chunk_{cid}.npz", required=("patches", "positions"))
                        assert pred["patches"].dtype == np.complex64
                    merged = io.load_npz(base / "merged.npz", required=("object",))
                    assert merged["object"].shape == (PLAN.object_size, PLAN.object_size)


def test_every_gpu_job_log_names_its_device(tiny_run):
    """Training, chunk inference and LSQML claim a device first and say which (the CPU without a GPU)."""
    logs = [tiny_run / f"logs/phase_e/dose_{d}/{v}/{m}.log" for d in PLAN.doses for v in PLAN.view_names
            for m in PLAN.nn_models]
    logs += sorted((tiny_run / "logs/inference").rglob("chunk_*.log"))
    logs += sorted((tiny_run / "logs/phase_f").rglob("*.log"))
    assert len(logs) > len(PLAN.doses) * 4
    for path in logs:
        assert re.search(r"INFO ptychostudy: device: (CPU|GPU \S+)", path.read_text()), path
