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
