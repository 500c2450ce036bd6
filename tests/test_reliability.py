"""Reliability: interruption and resume, determinism across runs, bad input through the workflow."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, TINY, run_snakemake
from ptychostudy import io
from ptychostudy.config import SCORED_SPLITS, build_plan

PLAN = build_plan(yaml.safe_load(TINY.read_text()))
RUN_DEPENDENT = {"wall_time_s"}
pytestmark = pytest.mark.slow


def chunk_predictions(work):
    return sorted((work / "results" / "inference").rglob("chunk_*.npz"))


def comparable_metrics(work):
    table = pd.read_csv(work / "results" / "summary" / "metrics.csv")
    table = table[~table.metric.isin(RUN_DEPENDENT)]
    return table.sort_values(["dose", "view", "split", "seed", "model", "metric"]).reset_index(drop=True)


def job_counts(text):
    """rule -> jobs from the 'Job stats' table that snakemake prints before running."""
    counts, in_table = {}, False
    for line in text.splitlines():
        if line.startswith("Job stats:"):
            in_table, counts = True, {}
            continue
        parts = line.split()
        if in_table and len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
        elif in_table and counts and not line.strip():
            in_table = False
    return counts


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory):
    """A run killed with SIGKILL among the chunk inference jobs, then resumed to the end."""
    work = tmp_path_factory.mktemp("interrupted")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work),
           "--configfile", str(TINY), "--cores", "2", "--resources", "gpu=1"]
    total = sum(len(PLAN.chunk_ids(v, s)) for v in PLAN.view_names for s in SCORED_SPLITS)
    total *= len(PLAN.doses) * len(PLAN.nn_models) * len(PLAN.replicates)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 1800
    try:
        while len(chunk_predictions(work)) < 4:
            assert proc.poll() is None, "the workflow ended before it could be interrupted"
            assert time.monotonic() < deadline, "no chunk inference within 30 minutes"
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the scheduler and every running job
        proc.wait()
    done = {p: p.stat().st_mtime_ns for p in chunk_predictions(work)}
    assert 4 <= len(done) < total
    # nothing at a final name is partial: every file there loads
    partial = [p for p in (work / "results").rglob("*.npz") if p.is_file()]
    for path in partial:
        io.load_npz(path)
    # the README's way back after a crash: the stale lock is cleared (no live run), then rerun
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "clear_stale_lock.py"), "--directory", str(work), "--",
                          *cmd], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "no longer alive" in res.stderr, res.stderr[-2000:]
    assert not list((work / ".snakemake" / "locks").glob("*.lock"))
    resumed = run_snakemake(work)
    return dict(work=work, done=done, total=total, log=resumed.stdout + resumed.stderr)


def test_resume_runs_only_the_unfinished_chunk_jobs(interrupted_run):
    """Resume runs the missing chunk jobs plus at most the ones in flight at the kill.

    A job killed after its output was renamed into place but before snakemake recorded it as
    complete is marked incomplete and redone; with --cores 2 at most two jobs were in flight.
    """
    counts = job_counts(interrupted_run["log"])
    done = interrupted_run["done"]
    redone = [p for p, mtime in done.items() if p.stat().st_mtime_ns != mtime]
    assert len(redone) <= 2, f"finished chunk predictions recomputed: {redone}"
    assert counts.get("infer_chunk") == interrupted_run["total"] - len(done) + len(redone)


def test_interrupted_run_ends_with_the_uninterrupted_metrics(interrupted_run, tiny_run):
    got, want = comparable_metrics(interrupted_run["work"]), comparable_metrics(tiny_run)
    pd.testing.assert_frame_equal(got[["dose", "view", "split", "seed", "model", "metric"]],
                                  want[["dose", "view", "split", "seed", "model", "metric"]])
    for col in ("amplitude", "phase"):
        np.testing.assert_allclose(got[col].to_numpy(float), want[col].to_numpy(float),
                                   rtol=1e-4, atol=1e-6, equal_nan=True, err_msg=col)


def test_same_seeds_give_bitwise_identical_data_files(interrupted_run, tiny_run):
    a, b = interrupted_run["work"] / "results", tiny_run / "results"
    files = sorted(p.relative_to(b) for p in list((b / "phase_c").rglob("*.npz")) + list((b / "phase_d").rglob("*.npz")))
    assert len(files) > 10
    for rel in files:
        # the zip container stamps write times; the arrays themselves must match bit for bit
        got, want = io.load_npz(a / rel), io.load_npz(b / rel)
        assert got.keys() == want.keys(), rel
        for key in want:
            assert got[key].dtype == want[key].dtype and got[key].tobytes() == want[key].tobytes(), f"{rel}:{key}"


def test_corrupt_chunk_stops_its_job_naming_file_and_key(tiny_run, tmp_path):
    """A truncated chunk: the inference job fails non-zero, names the file, writes nothing."""
    import shutil

    work = tmp_path / "copy"
    shutil.copytree(tiny_run, work, symlinks=True, ignore=shutil.ignore_patterns(".snakemake"))
    view, split, model = PLAN.view_names[0], "test", PLAN.nn_models[0]
    dose, seed = PLAN.doses[0], PLAN.replicates[0]
    chunk = work / f"results/phase_d/dose_{dose}/{view}/{split}/chunks/chunk_0000.npz"
    pred = work / f"results/inference/dose_{dose}/{view}/{split}/{model}/seed_{seed}/chunk_0000.npz"
    chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 3])
    pred.unlink()
    res = run_snakemake(work, str(pred.relative_to(work)), check=False)
    assert res.returncode != 0
    log = (work / f"logs/inference/dose_{dose}/{view}/{split}/{model}/seed_{seed}/chunk_0000.log").read_text()
    assert str(chunk.name) in log and ("truncated" in log or "corrupt" in log)
    assert not pred.exists()


def test_dropped_predictions_keep_the_exact_merge_and_resume(tiny_run, tmp_path):
    """`inference.keep_predictions: false`: each split's chunk predictions are deleted once it is
    merged; the merged objects equal the kept-predictions run's, and a run stopped after some
    merges resumes without recomputing the deleted chunks."""
    cfg = yaml.safe_load(TINY.read_text())
    dose = max(PLAN.doses)
    cfg.update(doses=[dose], models=["pinn", "baseline"], replicates=PLAN.replicates[:1])
    cfg["inference"]["keep_predictions"] = False
    config = tmp_path / "drop.yaml"
    config.write_text(yaml.safe_dump(cfg))
    work = tmp_path / "run"
    view, model = PLAN.view_names[0], "pinn"
    first = f"results/inference/dose_{dose}/{view}/test/{model}/seed_{PLAN.replicates[0]}/merged.npz"
    run_snakemake(work, first, config=config)  # a run that stops after one split's merge
    assert (work / first).is_file() and not list((work / first).parent.glob("chunk_*.npz"))
    resumed = run_snakemake(work, config=config)
    counts = job_counts(resumed.stdout + resumed.stderr)
    all_chunks = sum(len(PLAN.chunk_ids(v, s)) for v in PLAN.view_names for s in SCORED_SPLITS) * 2
    assert counts.get("infer_chunk") == all_chunks - len(PLAN.chunk_ids(view, "test"))
    assert chunk_predictions(work) == []  # every split merged: no chunk prediction is left
    for merged in sorted((work / "results" / "inference").rglob("merged.npz")):
        got = io.load_npz(merged)["object"]
        want = io.load_npz(tiny_run / merged.relative_to(work))["object"]
        np.testing.assert_array_equal(got, want, err_msg=str(merged.relative_to(work)))
    # complete: nothing left to do, although the chunk predictions are gone
    dry = run_snakemake(work, "-n", config=config)
    assert "Nothing to be done" in dry.stdout + dry.stderr
