"""Memory each rule's job asks for, derived from the data sizes of the plan (first attempt).

The workflow multiplies these by the attempt number (retries under SLURM); the end-to-end test
compares them with the peak RSS every job of the tiny run reached (tests/test_workflow.py), and
``bench/bench_full_size.py`` with the peaks of one dose of the study at its real size. Every
figure is a fixed interpreter cost plus the arrays the job holds at once, as its code holds them:
no job holds a split, only a chunk, a block of groups, or the objects.
"""

from __future__ import annotations

import re
from pathlib import Path

#: interpreter with numpy, scipy and matplotlib; with TensorFlow (and a model); with torch and ptychi
BASE_MB, TF_MB, TORCH_MB = 500, 1500, 1200
#: a training job's batch working set at N = 128 (activations, gradients, the optimiser's state),
#: scaled by N²; the Baseline at the study's size peaked ~300 MB above its two chunk buffers
TRAIN_WORK_MB = 1000
MB = 1e6


def _chunk_bytes(plan, per_pixel: int) -> float:
    """Bytes of a chunk-sized array with ``per_pixel`` bytes per member pixel (C members of N²)."""
    return plan.chunk_size * plan.C * plan.N**2 * per_pixel


def _object_px(plan) -> int:
    return plan.object_size**2


def mem_mb(plan, rule: str, view: str | None = None, split: str | None = None, arms: int = 3) -> int:
    """MB the job of ``rule`` asks for (attempt 1)."""
    obj = _object_px(plan)
    if rule == "simulate_dose":
        # the three split objects (complex64) and the generator's float64 fields of one, and one
        # batch of 256 patterns in complex128 FFT work arrays; the diffraction is streamed to disk
        return int(BASE_MB + (3 * 8 + 6 * 8) * obj / MB + 256 * plan.N**2 * 64 / MB)
    if rule == "group_view":
        return BASE_MB
    if rule == "shard_chunk":
        # one chunk's diffraction (float32) and true patches (complex64), each once more while
        # transposed into the chunk layout; the split's object
        return int(BASE_MB + 2 * _chunk_bytes(plan, 4 + 8) / MB + 2 * 8 * obj / MB)
    if rule in ("train_pinn", "train_baseline"):
        # TensorFlow and the model; the streamed chunk's samples in the in-chunk shuffle buffer
        # (a chunk of diffraction, and of targets for the Baseline), two at a chunk boundary; the
        # model's batch working set (diagnostics run in batches)
        return int(TF_MB + 2 * _chunk_bytes(plan, 4 + 8) / MB + TRAIN_WORK_MB * (plan.N / 128) ** 2)
    if rule == "infer_chunk":
        # TensorFlow and the model; one chunk's diffraction in (float32) and predicted patches out
        # (complex64, written without a copy), a batch's tensors
        return int(TF_MB + 1.5 * _chunk_bytes(plan, 4 + 8) / MB)
    if rule == "merge_chunks":
        # the canvas (complex128), its weight (float64), the previous object and the result
        # (complex64 each), and a block of groups: its patches (complex64) and their sub-pixel
        # contributions (complex128 values, float64 weights, int64 indices); never the split
        from .stitch import GROUP_BLOCK

        block = GROUP_BLOCK * plan.C * plan.N**2 * (8 + 16 + 8 + 8)
        return int(BASE_MB + (16 + 8 + 8 + 8) * obj / MB + block / MB)
    if rule in ("reconstruct_ptychi", "reconstruct_ptychi_replicate"):
        # torch and ptychi; the view's patterns of the split: amplitudes and counts (float32),
        # and ptychi's copies (its data, FFT-shifted, and the valid-pixel mask), six in all at
        # once (measured: 2.7 GB at 5,184 positions of N = 128, bench/full_size.md); the
        # object buffer and its gradients
        n = plan.views[view].n_positions(split) if view else max(v.n_positions() for v in plan.views.values())
        return int(TORCH_MB + 6 * n * plan.N**2 * 4 / MB + 16 * obj / MB)
    if rule == "compare_split":
        # the truth and one object per arm (complex64), the aligned crops in complex128, metrics
        return int(BASE_MB + (arms + 2) * 24 * obj / MB)
    if rule == "summarize_study":
        cells = len(plan.doses) * len(plan.views)
        return int(BASE_MB + 500 + 16 * obj * cells / MB)
    raise ValueError(f"no memory model for rule {rule!r}")


_PEAK = re.compile(r"peak RSS of this job: ([0-9.]+) MB")
_BENCHMARK = re.compile(r"benchmarks/(phase_c|phase_d|phase_e|inference|phase_f|phase_g|summary)/(.*)\.tsv$")


def logged_peak_mb(log_path) -> float | None:
    """The peak RSS (MB) a job logged at its exit (``runtime.setup_logging``), None if it did not."""
    peak = None
    try:
        for line in Path(log_path).read_text(errors="replace").splitlines():
            m = _PEAK.search(line)
            if m:
                peak = float(m.group(1))
    except OSError:
        return None
    return peak


def benchmark_log(benchmark_path) -> Path:
    """The log of the job whose Snakemake benchmark file is ``benchmark_path``: the same path
    under ``logs/`` instead of ``benchmarks/``, ``.log`` for ``.tsv``, as every rule names them."""
    parts = Path(benchmark_path).parts
    i = len(parts) - 1 - parts[::-1].index("benchmarks")
    return Path(*parts[:i], "logs", *parts[i + 1:]).with_suffix(".log")


def job_peak_mb(benchmark_path) -> float:
    """A finished job's peak RSS (MB): what it logged at exit (exact), or else the largest sample
    of its Snakemake benchmark file (a lower bound: sampled every 30 s after the first 30 s)."""
    logged = logged_peak_mb(benchmark_log(benchmark_path))
    if logged is not None:
        return logged
    import pandas as pd

    return float(pd.read_csv(benchmark_path, sep="\t")["max_rss"].iloc[-1]) * 2**20 / 1e6


def benchmark_job(path) -> tuple[str, str | None, str | None]:
    """(rule, view, split) of a job from the path of its Snakemake benchmark file (the rules'
    ``benchmark:`` patterns, workflow/rules/*.smk); view and split are None where the rule has none."""
    phase, rest = _BENCHMARK.search(Path(path).as_posix()).groups()
    parts = rest.split("/")
    if phase == "phase_c":
        return "simulate_dose", None, None
    if phase == "phase_d":
        return ("group_view" if parts[-1] == "group" else "shard_chunk"), parts[1], parts[2]
    if phase == "phase_e":
        return "train_" + parts[2], parts[1], None
    if phase == "inference":
        return ("merge_chunks" if parts[-1] == "merge" else "infer_chunk"), parts[1], parts[2]
    if phase == "phase_f":
        return "reconstruct_ptychi", parts[1], parts[2]
    if phase == "phase_g":
        return "compare_split", parts[1], parts[2]
    return "summarize_study", None, None
