"""Cluster execution: the real workflow through sbatch on a local single-node SLURM cluster.

`tools/local_slurm.sh start` brings up slurmctld + slurmd on localhost with one fake GPU
(GRES backed by /dev/null, so GPU jobs see CUDA_VISIBLE_DEVICES=0). The tiny config then
runs with `profiles/slurm` (capped to the node's CPUs and memory, see `_node_profile`), and
the test checks what a cluster user relies on: every job went through sbatch, the GPU
rules asked for a GPU, snakemake exited, and the metrics equal those of a local run. The
per-chunk inference jobs run as Snakemake job groups (`--groups infer_chunk=chunks
--group-components chunks=4`, the batching README.md documents for big clusters): four chunk
jobs per sbatch submission, one GPU per submission.

Needs root and Debian/Ubuntu packages (installed by the script when apt-get is there);
takes minutes. Opt out with PTYCHOSTUDY_SLURM_TEST=0.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, TINY

SCRIPT = ROOT / "tools" / "local_slurm.sh"
PROFILE = ROOT / "profiles" / "slurm" / "config.yaml"
GPU_RULES = {"train_pinn", "train_baseline", "infer_chunk", "reconstruct_ptychi"}
# the chunk jobs are batched into job groups of this many jobs per submission
GROUP, GROUPED_RULE, GROUP_SIZE = "chunks", "infer_chunk", 4
SLURM_BINARIES = ("slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "munged")
# Rows of comparison_metrics.csv that measure the run, not the reconstruction.
RUN_DEPENDENT_METRICS = {"wall_time_s"}


def _can_run() -> tuple[bool, str]:
    if os.environ.get("PTYCHOSTUDY_SLURM_TEST", "1") == "0":
        return False, "PTYCHOSTUDY_SLURM_TEST=0"
    if not sys.platform.startswith("linux"):
        return False, "needs Linux"
    if os.geteuid() != 0:
        return False, "needs root to start munged/slurmctld/slurmd"
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    have_all = all(shutil.which(b, path=path) for b in SLURM_BINARIES)
    if not have_all and not shutil.which("apt-get"):
        return False, "SLURM not installed and no apt-get to install it"
    return True, ""


_ok, _why = _can_run()
pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.skipif(not _ok, reason=_why)]


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running local cluster; stopped at the end unless it was already up before."""
    was_up = subprocess.run([str(SCRIPT), "status"], capture_output=True).returncode == 0
    res = subprocess.run([str(SCRIPT), "start"], capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, f"tools/local_slurm.sh start failed:\n{res.stdout}\n{res.stderr}"
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%c %m"], capture_output=True, text=True,
                         check=True).stdout.split()
    yield {"cpus": int(out[0]), "mem_mb": int(out[1])}
    if not was_up:
        subprocess.run([str(SCRIPT), "stop"], capture_output=True, timeout=120)


def _node_profile(dest: Path, cpus: int, mem_mb: int) -> Path:
    """profiles/slurm with every request capped to what the one local node has.

    A real GPU node has more cores and memory than CI's; sbatch rejects a job that asks
    for more than any node offers. Only the numbers are capped (memory stays an
    attempt-scaled expression); every other entry is the profile as shipped.
    """
    prof = yaml.safe_load(PROFILE.read_text())

    def cap(res: dict) -> dict:
        out = dict(res)
        for key in ("cpus_per_gpu", "cpus_per_task"):
            if key in out:
                out[key] = min(int(out[key]), cpus)
        if "mem_mb" in out:
            out["mem_mb"] = f"min({out['mem_mb']}, {mem_mb})"
        return out

    prof["default-resources"] = cap(prof.get("default-resources") or {})
    prof["set-resources"] = {rule: cap(res) for rule, res in (prof.get("set-resources") or {}).items()}
    prof["max-threads"] = cpus
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(prof, sort_keys=False))
    return dest


def _job_stats(log: str) -> dict[str, int]:
    """Rule -> number of jobs from snakemake's 'Job stats' table."""
    lines = log[log.index("Job stats:"):].splitlines()[3:]
    stats = {}
    for line in lines:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        stats[parts[0]] = int(parts[1])
    stats.pop("total", None)
    return stats


def _sbatch_calls(log: str, rules) -> dict[str, list[str]]:
    """Rule (or "group") -> the sbatch command lines (without the wrapped command) snakemake issued.

    The SLURM plugin comments a job's submission `rule_<rule>[_wildcards_<values>]`, and a job
    group's `rule_<group>_<rules>`.
    """
    calls = defaultdict(list)
    for line in log.splitlines():
        if not line.startswith("sbatch call: sbatch "):
            continue
        call = line.split(" --wrap=", 1)[0]
        comment = re.search(r"--comment (\S+)", call).group(1)
        if comment == f"rule_{GROUP}_{GROUPED_RULE}":
            calls["group"].append(call)
            continue
        rule = next(r for r in rules if comment == f"rule_{r}" or comment.startswith(f"rule_{r}_wildcards_"))
        calls[rule].append(call)
    return calls


SLURM_DOSE = 100000


def _comparable(csv: Path) -> pd.DataFrame:
    table = pd.read_csv(csv)
    table = table[~table.metric.isin(RUN_DEPENDENT_METRICS)]
    return table.sort_values(["dose", "view", "split", "seed", "model", "metric"]).reset_index(drop=True)


def test_tiny_workflow_runs_through_sbatch_and_matches_local_run(slurm_cluster, tiny_run, tmp_path):
    work = tmp_path / "slurm_run"
    # one dose and one replicate of the tiny study keep the test short; doses and replicates are
    # independent cells, so its metrics must equal the local run's rows of that dose and seed
    config = tmp_path / "tiny_one_dose.yaml"
    tiny = yaml.safe_load(TINY.read_text())
    config.write_text(yaml.safe_dump({**tiny, "doses": [SLURM_DOSE], "replicates": tiny["replicates"][:1]}))
    profile = _node_profile(tmp_path / "profile", slurm_cluster["cpus"], slurm_cluster["mem_mb"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.pop("CUDA_VISIBLE_DEVICES", None)  # the GPU jobs must get it from SLURM
    cmd = [
        sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work),
        "--configfile", str(config), "--workflow-profile", str(profile),
        # fast polling for a test; the plugin's default first check waits 40 s
        "--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2",
        # keep the SLURM log of every job (default: only of failed ones) as evidence
        "--slurm-keep-successful-logs",
        # prints each sbatch call; the jobs log their environment
        "--verbose",
        # batch the chunk jobs: GROUP_SIZE of them per sbatch submission
        "--groups", f"{GROUPED_RULE}={GROUP}", "--group-components", f"{GROUP}={GROUP_SIZE}",
    ]
    t0 = time.monotonic()
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=5400)
    elapsed = time.monotonic() - t0
    log = res.stdout + res.stderr
    (tmp_path / "snakemake_slurm.log").write_text(log)
    assert res.returncode == 0, f"snakemake under SLURM failed after {elapsed:.0f} s:\n{log[-8000:]}"
    _check_slurm_run(log, work, tiny_run, elapsed, tmp_path)


def _check_slurm_run(log: str, work: Path, tiny_run: Path, elapsed: float, record_dir: Path) -> None:
    """What the SLURM run must show: submissions, GPUs, allocations, groups, and the local run's metrics."""
    # every job except the target rule and the grouped chunk jobs went through sbatch, once per job
    stats = _job_stats(log)
    rules = sorted((r for r in stats if r != "all"), key=len, reverse=True)
    calls = _sbatch_calls(log, rules)
    single = [r for r in rules if r != GROUPED_RULE]
    for rule in single:
        comments = {re.search(r"--comment (\S+)", c).group(1) for c in calls[rule]}
        assert len(comments) == stats[rule], f"{rule}: {len(comments)} sbatch submissions for {stats[rule]} jobs"

    # the chunk jobs went in groups: ceil(jobs / GROUP_SIZE) submissions, none of them alone
    n_chunk_jobs = stats[GROUPED_RULE]
    assert n_chunk_jobs > GROUP_SIZE
    assert not calls[GROUPED_RULE], f"{GROUPED_RULE} submitted outside its group: {calls[GROUPED_RULE]}"
    assert len(calls["group"]) == -(-n_chunk_jobs // GROUP_SIZE), calls["group"]

    # the GPU rules and only they asked for a GPU, one per submission (a group too)
    assert GPU_RULES <= set(rules)
    for rule, rule_calls in calls.items():
        for call in rule_calls:
            assert ("--gpus=1" in call) == (rule in GPU_RULES | {"group"}), f"{rule}: {call}"
            assert call.count("--gpus=") <= 1, call

    # each job ran inside its own allocation; GPU jobs saw the node's (fake) GPU
    slurm_logs = work / ".snakemake" / "slurm_logs"
    for rule in single:
        logs = list((slurm_logs / f"rule_{rule}").rglob("*.log"))
        assert len(logs) >= stats[rule], f"{rule}: {len(logs)} SLURM logs for {stats[rule]} jobs"
        for path in logs:
            text = path.read_text(errors="replace")
            assert re.search(r"'SLURM_JOB_ID': '\d+'", text), path
            if rule in GPU_RULES:
                assert "'CUDA_VISIBLE_DEVICES': '0'" in text, path
    # ... and every chunk job ran in exactly one group allocation, at most GROUP_SIZE per allocation
    group_logs = list((slurm_logs / f"group_{GROUP}_{GROUPED_RULE}").rglob("*.log"))
    assert len(group_logs) == len(calls["group"]), group_logs
    seen = []
    for path in group_logs:
        text = path.read_text(errors="replace")
        assert len(set(re.findall(r"'SLURM_JOB_ID': '(\d+)'", text))) == 1, path
        assert "'CUDA_VISIBLE_DEVICES': '0'" in text, path
        # the jobstep prints each member as "localrule infer_chunk:" then input, output, ..., wildcards
        members = {re.search(r"wildcards: (.+)", block).group(1)
                   for block in text.split(f"localrule {GROUPED_RULE}:")[1:]}
        assert 1 <= len(members) <= GROUP_SIZE, (path, members)
        seen += sorted(members)
    assert len(seen) == len(set(seen)) == n_chunk_jobs, seen

    # the run's record (shown with `pytest -s`, kept with the test's tmp_path): wall time, jobs
    # per rule, and one sbatch line of each GPU rule as submitted
    record = [f"SLURM run of dose {SLURM_DOSE}: {sum(stats.values())} jobs in {elapsed:.0f} s wall: {stats}"]
    record += [f"{rule}: {calls[rule][0]}" for rule in sorted(GPU_RULES - {GROUPED_RULE})]
    record.append(f"{GROUPED_RULE} ({GROUP_SIZE} per group, {len(calls['group'])} submissions for {n_chunk_jobs} jobs): "
                  f"{calls['group'][0]}")
    (record_dir / "slurm_record.txt").write_text("\n".join(record) + "\n")
    print("\n".join(record))

    # same study result as the local executor (run-dependent rows aside)
    got = _comparable(work / "results" / "summary" / "metrics.csv")
    want = _comparable(tiny_run / "results" / "summary" / "metrics.csv")
    want = want[(want.dose == SLURM_DOSE) & want.seed.isin(got.seed.unique())].reset_index(drop=True)
    pd.testing.assert_frame_equal(got[["dose", "view", "split", "seed", "model", "metric"]],
                                  want[["dose", "view", "split", "seed", "model", "metric"]])
    # The node may give a job fewer CPUs than the local run used (one on a one-CPU slurmd), and
    # TensorFlow's and torch's float32 reductions are summed in a thread-count dependent order:
    # a CI run differed by 2.5e-6 on a metric of 4.7e-3. The tolerance is float32 noise carried
    # through training, far below any difference between arms or doses.
    for col in ("amplitude", "phase"):
        np.testing.assert_allclose(got[col].to_numpy(float), want[col].to_numpy(float),
                                   rtol=1e-3, atol=1e-5, equal_nan=True, err_msg=col)
