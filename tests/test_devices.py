"""One device per GPU job: concurrent jobs never share a GPU, and a killed job's GPU is free again.

A machine with several GPUs is faked with an ``nvidia-smi`` stand-in on PATH (inside these tests
only); each "job" is a separate Python process that claims a device as the GPU rules' scripts
do (:func:`ptychostudy.devices.claim_gpu`), then holds it for a while.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from conftest import ROOT

JOB = """
import json, os, sys, time
from ptychostudy.devices import claim_gpu
t0 = time.time()
device = claim_gpu(poll_s=0.05, timeout_s=float(sys.argv[2]))
start = time.time()
print(json.dumps({"device": device, "visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "start": start}), flush=True)
time.sleep(float(sys.argv[1]))
print(json.dumps({"end": time.time()}), flush=True)
"""


def machine(tmp_path, n_gpus: int, **env) -> dict:
    """Environment of a fake workstation with ``n_gpus`` GPUs and its own slot folder."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "nvidia-smi"
    listing = "".join(f"GPU {i}: NVIDIA Test GPU (UUID: GPU-{i})\\n" for i in range(n_gpus))
    fake.write_text(f"#!/bin/sh\nprintf '{listing}'\n")
    fake.chmod(0o755)
    base = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID")}
    return {**base, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT / "src"),
            "PTYCHOSTUDY_GPU_LOCKS": str(tmp_path / "slots"), **env}


def start_job(env, hold_s: float, timeout_s: float = 60.0):
    return subprocess.Popen([sys.executable, "-c", JOB, str(hold_s), str(timeout_s)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(proc) -> dict:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {**rows[0], **rows[1]}


def test_concurrent_jobs_never_share_a_device(tmp_path):
    env = machine(tmp_path, n_gpus=3)
    jobs = [finished(p) for p in [start_job(env, hold_s=1.5) for _ in range(5)]]
    devices = sorted({j["device"] for j in jobs})
    assert devices == ["GPU 0", "GPU 1", "GPU 2"]
    for j in jobs:  # the job sees only its own device
        assert j["device"] == f"GPU {j['visible']}"
    for i, a in enumerate(jobs):
        for b in jobs[i + 1:]:
            if a["device"] == b["device"]:  # the later job started only after the earlier one ended
                first, second = sorted((a, b), key=lambda r: r["start"])
                assert second["start"] >= first["end"], (a, b)
    # five jobs on three GPUs: at most three held a device at any moment, and two had to wait
    events = sorted([(j["start"], 1) for j in jobs] + [(j["end"], -1) for j in jobs])
    running = [sum(d for _, d in events[: k + 1]) for k in range(len(events))]
    assert max(running) == 3


def test_killed_jobs_device_is_reclaimed(tmp_path):
    env = machine(tmp_path, n_gpus=1)
    holder = start_job(env, hold_s=600)
    first = json.loads(holder.stdout.readline())
    assert first["device"] == "GPU 0"
    blocked = start_job(env, hold_s=0, timeout_s=1.0)  # the only GPU is taken: this job cannot get it
    _, err = blocked.communicate(timeout=60)
    assert blocked.returncode != 0 and "no free GPU" in err
    holder.send_signal(signal.SIGKILL)  # no clean-up runs: the kernel releases the lock
    holder.wait(timeout=30)
    t0 = time.time()
    after = finished(start_job(env, hold_s=0, timeout_s=10.0))
    assert after["device"] == "GPU 0" and after["start"] - t0 < 10


def claim(env) -> dict:
    res = subprocess.run([sys.executable, "-c", JOB, "0", "5"], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.splitlines()[0])


def test_devices_follow_the_users_restriction_slurm_and_cpu(tmp_path):
    # CUDA_VISIBLE_DEVICES set by the user: only those devices are handed out, one per job
    got = claim(machine(tmp_path, n_gpus=4, CUDA_VISIBLE_DEVICES="2,3"))
    assert got["device"] in ("GPU 2", "GPU 3") and got["visible"] == got["device"][4:]
    # under SLURM the allocation is used unchanged
    got = claim(machine(tmp_path, n_gpus=4, SLURM_JOB_ID="17", CUDA_VISIBLE_DEVICES="1"))
    assert got == {**got, "device": "GPU 1 (SLURM allocation)", "visible": "1"}
    # no GPU at all, or hidden on purpose: the CPU, and the environment is left as it was
    assert claim(machine(tmp_path, n_gpus=0))["device"] == "CPU"
    got = claim(machine(tmp_path, n_gpus=2, CUDA_VISIBLE_DEVICES=""))
    assert got["device"] == "CPU" and got["visible"] == ""
