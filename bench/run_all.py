"""Run every benchmark and collect their figures into bench/results.md.

    .venv/bin/python bench/run_all.py            # or: make bench

Each benchmark writes its own page (shards.md, models.md, step.md, ptychi.md, pipeline.md,
pipeline_memory.md, pipeline_x2.md, exactness.md, stitch.md, plan.md, plan_scaling.md); the
learning curves (bench_learning.py, learning.md) and the full-size run of one dose
(bench_full_size.py, full_size.md: ``make bench-full-size``, about an hour) are run by hand. This script
runs them one after the other (never in parallel: they time themselves) and concatenates the
pages, with the machine and date, into results.md.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from common import machine

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STEPS = [
    ("shards.md", [sys.executable, str(HERE / "bench_shards.py")]),
    ("models.md", [sys.executable, str(HERE / "bench_models.py")]),
    ("step.md", [sys.executable, str(HERE / "bench_step.py")]),
    ("ptychi.md", [sys.executable, str(HERE / "bench_ptychi.py"), "--quick"]),
    ("pipeline.md", [sys.executable, str(HERE / "bench_pipeline.py")]),
    ("pipeline_memory.md", [sys.executable, str(HERE / "bench_pipeline.py"), "--memory-only"]),
    ("pipeline_x2.md", [sys.executable, str(HERE / "bench_pipeline.py"), "--overhead-only", "2",
                        "--chunk-sizes", "1024,4096"]),
    # needs a finished `make run` (results/); skipped without one
    ("exactness.md", [sys.executable, str(HERE / "bench_exactness.py")]),
    ("stitch.md", [sys.executable, str(HERE / "bench_stitch.py")]),
    ("plan.md", [sys.executable, str(ROOT / "tools" / "plan.py"), "--configfile", "config/study_fly64.yaml",
                 "--out", str(HERE / "_work" / "plan")]),
    ("plan_scaling.md", [sys.executable, str(HERE / "bench_plan.py")]),
]


def collect() -> str:
    parts = [f"# Benchmark results\n\nCollected by `make bench` on: {machine()}\n"]
    for page, _ in STEPS:
        path = HERE / page
        if path.exists():
            parts.append(path.read_text().replace("\n# ", "\n## ", 1).replace("# ", "## ", 1))
    return "\n".join(parts)


def main() -> None:
    for page, cmd in STEPS:
        if page in ("exactness.md", "stitch.md") and not (ROOT / "results" / "summary" / "metrics.csv").exists():
            print("no finished `make run` in results/: bench_exactness skipped")
            continue
        subprocess.run(cmd, cwd=ROOT, check=True)
        if page == "plan.md":
            (HERE / "plan.md").write_text((HERE / "_work" / "plan" / "plan.md").read_text())
    (HERE / "results.md").write_text(collect())


if __name__ == "__main__":
    if "--collect-only" in sys.argv:
        (HERE / "results.md").write_text(collect())
    else:
        main()
