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
        # (a chunk of diffraction, and of targets for the Baseline); diagnostics run in batches
        return int(TF_MB + 2 * _chunk_bytes(plan, 4 + 8) / MB)
    if rule == "infer_chunk":
        # TensorFlow and the model; one chunk's diffraction in and predicted patches out
        return int(TF_MB + 1.5 * _chunk_bytes(plan, 4 + 8) / MB)
    if rule == "merge_chunks":
        # the canvas (complex128), its weight (float64), the previous object and the result
        # (complex64 each), and a block of groups (the predictions are never held whole)
        return int(BASE_MB + (16 + 8 + 8 + 8) * obj / MB + 200)
    if rule in ("reconstruct_ptychi", "reconstruct_ptychi_replicate"):
        # torch and ptychi; the view's patterns of the split in counts (float32), about three
        # copies inside ptychi; the object buffer and its gradients
        n = plan.views[view].n_positions(split) if view else max(v.n_positions() for v in plan.views.values())
        return int(TORCH_MB + 4 * n * plan.N**2 * 4 / MB + 16 * obj / MB)
    if rule == "compare_split":
        # the truth and one object per arm (complex64), the aligned crops in complex128, metrics
        return int(BASE_MB + (arms + 2) * 24 * obj / MB)
    if rule == "summarize_study":
        cells = len(plan.doses) * len(plan.views)
        return int(BASE_MB + 500 + 16 * obj * cells / MB)
    raise ValueError(f"no memory model for rule {rule!r}")


_BENCHMARK = re.compile(r"benchmarks/(phase_c|phase_d|phase_e|inference|phase_f|phase_g|summary)/(.*)\.tsv$")


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
