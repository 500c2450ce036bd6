"""Plan a study without data: job counts per rule and per resource, and the rule graph.

    .venv/bin/python tools/plan.py --configfile config/study_fly64.yaml --out results/plan

Runs ``snakemake -n`` (nothing executes, no data needed) and reads every planned job with its
resources, prints a table of jobs per rule (GPU or CPU) and the totals, and writes
``plan.md``, ``rulegraph.dot`` and, when graphviz's ``dot`` is installed, ``rulegraph.svg``
under ``--out``.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
JOB_HEAD = re.compile(r"^(?:local)?rule (\w+):\s*$")
RESOURCES = re.compile(r"^\s+resources:\s*(.*)$")


def dry_run(configfile: str, workdir: str) -> tuple[str, float]:
    """Text of a non-quiet dry run (one block per job) and its wall time."""
    start = time.perf_counter()
    res = subprocess.run(
        SNAKEMAKE + ["-n", "--configfile", str(Path(configfile).resolve()), "-d", workdir, "--forceall"],
        capture_output=True, text=True,
    )
    elapsed = time.perf_counter() - start
    if res.returncode != 0:
        sys.exit(f"snakemake -n failed:\n{res.stderr[-3000:]}")
    return res.stdout + res.stderr, elapsed


def count_jobs(text: str) -> dict:
    """rule -> {'jobs': n, 'gpu': n_gpu_jobs} from the job blocks of a dry run."""
    counts: dict = collections.defaultdict(lambda: {"jobs": 0, "gpu": 0})
    rule = None
    for line in text.splitlines():
        head = JOB_HEAD.match(line)
        if head:
            rule = head.group(1)
            counts[rule]["jobs"] += 1
            continue
        res = RESOURCES.match(line)
        if res and rule is not None:
            if re.search(r"(^|,\s*)gpu=([1-9]\d*)", res.group(1)):
                counts[rule]["gpu"] += 1
    return dict(counts)


def table(counts: dict, seconds: float, configfile: str) -> str:
    lines = [
        f"Plan of `{configfile}` (snakemake -n: {seconds:.1f} s)",
        "",
        "| rule | jobs | GPU jobs |",
        "|---|---:|---:|",
    ]
    for rule, c in sorted(counts.items(), key=lambda kv: -kv[1]["jobs"]):
        lines.append(f"| {rule} | {c['jobs']} | {c['gpu']} |")
    total = sum(c["jobs"] for c in counts.values())
    gpu = sum(c["gpu"] for c in counts.values())
    lines.append(f"| **total** | **{total}** | **{gpu}** (CPU jobs: {total - gpu}) |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configfile", default="config/study_fly64.yaml")
    ap.add_argument("--out", default="results/plan")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        text, seconds = dry_run(args.configfile, work)
        graph = subprocess.run(
            SNAKEMAKE + ["--rulegraph", "--configfile", str(Path(args.configfile).resolve()), "-d", work],
            capture_output=True, text=True, check=True,
        ).stdout
    md = table(count_jobs(text), seconds, args.configfile)
    (out / "plan.md").write_text(md)
    dot_src = graph[graph.index("digraph"):]
    (out / "rulegraph.dot").write_text(dot_src)
    if shutil.which("dot"):
        subprocess.run(["dot", "-Tsvg", "-o", str(out / "rulegraph.svg")], input=dot_src, text=True, check=True)
    print(md)
    print(f"rule graph: {out / ('rulegraph.svg' if shutil.which('dot') else 'rulegraph.dot')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
