"""tools/clear_stale_lock.py: a dead run's lock is cleared, a live run's never."""

import subprocess
import sys

from conftest import ROOT

TOOL = str(ROOT / "tools" / "clear_stale_lock.py")
# stands in for `snakemake ... --unlock`: removes the lock files (the trailing --unlock is ignored)
UNLOCK = [sys.executable, "-c", "import glob, os; [os.remove(p) for p in glob.glob('.snakemake/locks/*.lock')]"]


def test_lock_is_cleared_only_without_a_live_snakemake(tmp_path):
    lock = tmp_path / ".snakemake" / "locks" / "0.input.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text("results/x\n")
    # a live process of a run in this directory (its command line names snakemake)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "snakemake"], cwd=tmp_path)
    try:
        res = subprocess.run([sys.executable, TOOL, "--directory", str(tmp_path), "--", *UNLOCK],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0 and "running Snakemake" in res.stderr and str(live.pid) in res.stderr
        assert lock.exists()
    finally:
        live.kill()
        live.wait()
    res = subprocess.run([sys.executable, TOOL, "--directory", str(tmp_path), "--", *UNLOCK],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "no longer alive" in res.stderr
    assert not lock.exists()
    # nothing to do without a lock
    res = subprocess.run([sys.executable, TOOL, "--directory", str(tmp_path), "--", "false"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stderr == ""
