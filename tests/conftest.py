"""Shared fixtures: small configs and data built in temporary folders."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny.yaml"


@pytest.fixture
def tiny_cfg() -> dict:
    """The tiny end-to-end config as a dict (a fresh copy per test)."""
    return copy.deepcopy(yaml.safe_load(TINY.read_text()))


@pytest.fixture(scope="session")
def tiny_phase_c(tmp_path_factory):
    """Phase C files of the tiny config at dose 1e5: {'train': path, 'test': path, 'plan': plan}."""
    from ptychostudy.config import build_plan
    from ptychostudy.dataset import write_phase_c

    plan = build_plan(yaml.safe_load(TINY.read_text()))
    d = tmp_path_factory.mktemp("phase_c")
    paths = {"train": d / "train.npz", "test": d / "test.npz"}
    write_phase_c(plan, 100000, paths)
    return {**paths, "plan": plan}


def rng(seed=0):
    return np.random.default_rng(seed)


def run_snakemake(workdir, *extra, config=TINY, timeout=1800, check=True):
    """Run the real workflow on ``config`` in ``workdir`` (local executor, default profile)."""
    import subprocess
    import sys

    # targets and flags first: --resources takes every following word as a resource
    cmd = [sys.executable, "-m", "snakemake", *extra, "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
           "--configfile", str(config), "--cores", "2", "--resources", "gpu=1"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"snakemake failed ({res.returncode}):\n{res.stdout[-4000:]}\n{res.stderr[-6000:]}")
    return res


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One complete run of the tiny config (shared by the end-to-end, determinism, SLURM tests).

    PTYCHOSTUDY_TINY_RUN=<dir> reuses a finished run of tests/data/tiny.yaml in <dir> (handy
    when iterating on the slow tests); the workflow is still run there, which is a no-op
    when everything is up to date.
    """
    import os

    reuse = os.environ.get("PTYCHOSTUDY_TINY_RUN")
    work = Path(reuse) if reuse else tmp_path_factory.mktemp("tiny_run")
    run_snakemake(work)
    return work
