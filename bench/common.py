"""Shared helpers of the benchmarks: machine description and per-process peak memory."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "_work"


def machine() -> str:
    """One line naming the machine: CPU model, cores, memory, OS, date."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    today = datetime.date.today().isoformat()
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, {platform.system()} {platform.release()}, Python {platform.python_version()}, {today}"


def run_measured(code: str, *args: str, env: dict | None = None) -> dict:
    """Run ``code`` in a fresh Python process; it must print one JSON line last.

    The child's own peak RSS (``VmHWM`` of /proc/self/status, MiB) is appended as
    ``peak_rss_mib``, so each measurement covers exactly one process, like one Snakemake job.
    (``ru_maxrss`` would not do: Linux carries it across fork + exec from the parent.)
    """
    wrapper = (
        "import json, sys\n"
        f"sys.argv = ['bench'] + {list(args)!r}\n"
        "_out = {}\n"
        f"exec(compile({code!r}, 'bench', 'exec'))\n"
        "from ptychostudy.runtime import peak_rss_mb\n"
        "_out['peak_rss_mib'] = peak_rss_mb() * 1e6 / 2**20\n"
        "print(json.dumps(_out))\n"
    )
    full_env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})}
    res = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, env=full_env)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])
