"""tools/clear_stale_lock.py: a dead run's lock is cleared, a live run's never."""

import subprocess
import sys

from conftest import ROOT

TOOL = str(ROOT / "tools" / "clear_stale_lock.py")
# stands in for `snakemake ... --unlock`: removes the lock files of its -d directory (or of the
# current one); the trailing --unlock is ignored
UNLOCK = [sys.executable, "-c", "import glob, os, sys; a = sys.argv; d = a[a.index('-d') + 1] if '-d' in a else '.'; "
          "[os.remove(p) for p in glob.glob(os.path.join(d, '.snakemake/locks/*.lock'))]"]


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


def test_a_dead_run_in_another_directory_is_unlocked_by_the_documented_step(tmp_path):
    """`snakemake -d DIR ...` killed: the documented step, run where the command runs (the
    repository, no --directory), clears DIR's lock with the real `snakemake --unlock`."""
    from conftest import TINY

    locks = tmp_path / "run" / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    for name in ("0.input.lock", "0.output.lock"):
        (locks / name).write_text(str(tmp_path / "run" / "results" / "x") + "\n")
    command = [sys.executable, "-m", "snakemake", "-d", str(tmp_path / "run"), "--configfile", str(TINY), "-n"]
    res = subprocess.run([sys.executable, TOOL, "--", *command], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0 and "no longer alive" in res.stderr, res.stderr[-2000:]
    assert not list(locks.glob("*.lock"))
    # and the run itself is no longer refused
    res = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "cannot be locked" not in res.stdout + res.stderr


def test_plan_disk_estimate_matches_a_real_run(tiny_run):
    """tools/plan.py's bytes per phase, from the config alone, against the files of a real run."""
    import yaml

    sys.path.insert(0, str(ROOT / "tools"))
    from plan import disk_estimate

    from conftest import TINY
    from ptychostudy.config import build_plan

    plan = build_plan(yaml.safe_load(TINY.read_text()))
    est = disk_estimate(plan)
    results = tiny_run / "results"
    for phase in ("phase_c", "phase_d", "inference", "phase_f"):  # the array files (figures are not counted)
        real = sum(p.stat().st_size for p in (results / phase).rglob("*.npz"))
        assert abs(est[phase] - real) < 0.05 * real, (phase, est[phase], real)
    real = sum(p.stat().st_size for p in (results / "inference").rglob("chunk_*.npz"))
    assert abs(est["predictions"] - real) < 0.05 * real
