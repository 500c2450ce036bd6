"""Job set-up: a GPU job that finds no GPU where the machine has one says so in its log."""

import os
import subprocess
import sys

from conftest import ROOT

CODE = """
from ptychostudy.runtime import configure_tensorflow, machine_gpus, setup_logging
setup_logging(None)
print("machine GPUs:", machine_gpus())
configure_tensorflow(1)
"""


def run_with_nvidia_smi(tmp_path, listing: str) -> str:
    """Run CODE with an ``nvidia-smi`` stand-in on PATH that prints ``listing`` for ``-L``."""
    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\nprintf '{listing}'\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT / "src"),
           "CUDA_VISIBLE_DEVICES": "0"}
    res = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout + res.stderr


def test_missing_cuda_build_is_reported(tmp_path):
    out = run_with_nvidia_smi(tmp_path, "GPU 0: NVIDIA Test GPU (UUID: GPU-0)\\n")
    assert "machine GPUs: 1" in out
    # this machine's TensorFlow sees no GPU (no driver here): the job must say why it runs on the CPU
    assert "GPUs: none (CPU)" in out and "TensorFlow sees none" in out and "and-cuda" in out


def test_no_warning_without_a_gpu(tmp_path):
    out = run_with_nvidia_smi(tmp_path, "")
    assert "machine GPUs: 0" in out and "GPUs: none (CPU)" in out
    assert "TensorFlow sees none" not in out


def test_a_job_logs_its_exact_peak_memory_at_exit(tmp_path):
    """The peak a job logs covers a short burst that a sampler would miss, and reads back."""
    from ptychostudy.resources import job_peak_mb

    log = tmp_path / "logs/phase_x/job.log"
    code = ("from ptychostudy.runtime import setup_logging\n"
            f"setup_logging({str(log)!r})\n"
            "import numpy as np\n"
            "a = np.ones(400 * 10**6 // 8); del a\n")  # 400 MB for a moment
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    bench = tmp_path / "benchmarks/phase_x/job.tsv"
    bench.parent.mkdir(parents=True)
    bench.write_text("s\tmax_rss\n0.1\t30.0\n")  # what a sampler saw: the interpreter alone
    assert 400 < job_peak_mb(bench) < 400 + 300
    log.unlink()
    assert job_peak_mb(bench) == 30.0 * 2**20 / 1e6  # without the logged line: the sampled figure
