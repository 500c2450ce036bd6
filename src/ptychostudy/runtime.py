"""Process set-up shared by the workflow's scripts: logging to the job's log, thread counts, devices.

Call these first thing in a script, before TensorFlow or torch run their first op: thread pools
are fixed at that moment, and the job's ``threads`` is what the scheduler reserved.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import subprocess
import sys


def setup_logging(log_path: str | None) -> logging.Logger:
    """Send Python logging (and uncaught exceptions) of this job to its Snakemake log file."""
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_path:
        os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    logger = logging.getLogger("ptychostudy")

    def _hook(exc_type, exc, tb):
        logger.error("failed: %s", exc, exc_info=(exc_type, exc, tb))

    sys.excepthook = _hook
    atexit.register(_log_peak_rss, logger)
    return logger


#: the line every job's log ends with; ``ptychostudy.resources.logged_peak_mb`` reads it back
PEAK_RSS_LINE = "peak RSS of this job: {:.0f} MB"


def peak_rss_mb() -> float | None:
    """This process's peak resident memory (``VmHWM``, MB = 10⁶ bytes), None where /proc has none.

    Exact, unlike Snakemake's benchmark files, which sample the RSS every second for the first
    30 s of a job and every 30 s after, and so miss short peaks of long jobs.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return None


def _log_peak_rss(logger: logging.Logger) -> None:
    peak = peak_rss_mb()
    if peak is not None:
        logger.info(PEAK_RSS_LINE.format(peak))


def limit_cpu_threads(threads: int) -> None:
    """Cap BLAS/OpenMP pools through the environment (effective before numpy-heavy libraries start)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ[var] = str(max(int(threads), 1))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def configure_tensorflow(threads: int):
    """Import TensorFlow with the job's thread budget and GPU memory growth; returns the module.

    The device comes from ``CUDA_VISIBLE_DEVICES`` (set by SLURM's GPU allocation or by the
    user); without a GPU TensorFlow runs on the CPU.
    """
    limit_cpu_threads(threads)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(max(int(threads), 1))
    tf.config.threading.set_inter_op_parallelism_threads(max(int(threads), 1))
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    log = logging.getLogger("ptychostudy")
    log.info("TensorFlow %s, GPUs: %s, threads: %d", tf.__version__, [g.name for g in gpus] or "none (CPU)", threads)
    if not gpus and machine_gpus() and os.environ.get("CUDA_VISIBLE_DEVICES", None) != "":
        log.warning("this machine has an NVIDIA GPU (nvidia-smi) but TensorFlow sees none: the job runs on the "
                    "CPU. Install the CUDA build (`make` does when nvidia-smi lists a GPU): "
                    "pip install 'tensorflow[and-cuda]==%s'", tf.__version__)
    return tf


def machine_gpus() -> int:
    """Number of NVIDIA GPUs ``nvidia-smi -L`` lists (0 without the tool or a GPU)."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU") for line in out.splitlines())


def configure_torch(threads: int):
    """Import torch with the job's thread budget; returns the module."""
    limit_cpu_threads(threads)
    import torch

    torch.set_num_threads(max(int(threads), 1))
    return torch
