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
    """Phase C files of the tiny config at dose 1e5: {split: path for each split, 'plan': plan}."""
    from ptychostudy.config import SPLITS, build_plan
    from ptychostudy.phase_c import write_phase_c

    plan = build_plan(yaml.safe_load(TINY.read_text()))
    d = tmp_path_factory.mktemp("phase_c")
    paths = {s: d / f"{s}.npz" for s in SPLITS}
    write_phase_c(plan.geometry, 100000, paths)
    return {**paths, "plan": plan}


SCRIPT_RUNNER = """
import runpy, sys, types
from types import SimpleNamespace as NS
class Named(list):
    def __init__(self, items=(), **named):
        super().__init__(items); self.__dict__.update(named)
args = {args!r}
smk = NS(
    input=Named(**args["input"]), output=Named(**args["output"]), params=NS(**args["params"]),
    wildcards=NS(**args["wildcards"]), threads=1, log=[args["log"]],
)
runpy.run_path(args["script"], init_globals={{"snakemake": smk}}, run_name="__main__")
"""


def run_script(script, tmp_path, check=True, **args):
    """Run a workflow script in a fresh process (only its own imports) with a stand-in ``snakemake``.

    ``args``: input, output, params, wildcards (dicts of named entries). With ``check`` the
    script must succeed and its log text is returned; without, the CompletedProcess (with the
    log text as ``.log``) is returned for the caller to inspect a failure.
    """
    import os
    import subprocess
    import sys

    log = tmp_path / f"{script}.log"
    args = dict(args, script=str(ROOT / "workflow" / "scripts" / script), log=str(log))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", SCRIPT_RUNNER.format(args=args)], check=False,
                         capture_output=True, text=True, env=env, timeout=300)
    if check:
        assert res.returncode == 0, res.stderr[-3000:]
        return log.read_text()
    res.log = log.read_text() if log.exists() else ""
    return res


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
