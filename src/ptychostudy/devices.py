"""One GPU per job on a workstation: a lock-based slot allocator for the GPU rules' scripts.

Snakemake's local executor limits how many GPU jobs run at once (``--resources gpu=N``) but
does not say which device each should use: without help every TensorFlow or torch process
would start on GPU 0. :func:`claim_gpu` gives the calling process one device for its whole
life. It takes an exclusive ``flock`` on the device's slot file and sets
``CUDA_VISIBLE_DEVICES`` to that device before TensorFlow or torch start, so the job sees one
GPU (its "GPU 0"). The kernel drops the lock when the process ends, however it ends (normal exit,
exception, SIGKILL, a crash), so a dead job's slot is free again at once; nothing has to clean up.
With more jobs than devices a job waits for a free slot.

Which devices: those in ``CUDA_VISIBLE_DEVICES`` when it is set (the user's restriction),
otherwise those ``nvidia-smi -L`` lists; none (or ``CUDA_VISIBLE_DEVICES=""``) means the CPU.
Under SLURM (``SLURM_JOB_ID`` set) the allocation is used unchanged: SLURM has already given the
job its devices, and renumbers them inside each job, so locks by number would be meaningless
across jobs. Slot files live in ``$PTYCHOSTUDY_GPU_LOCKS`` or, by default, a per-user folder in
the machine's temporary directory: every run on the machine shares them, so two studies
started side by side do not share a device either.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from pathlib import Path

log = logging.getLogger("ptychostudy")

#: the open slot file of this process (kept open: closing it would release the device)
_HELD: dict = {}


def lock_dir() -> Path:
    """Folder of the per-device slot files (``$PTYCHOSTUDY_GPU_LOCKS`` or a per-user temp folder)."""
    d = os.environ.get("PTYCHOSTUDY_GPU_LOCKS") or os.path.join(
        tempfile.gettempdir(), f"ptychostudy-gpu-slots-{os.getuid()}")
    Path(d).mkdir(parents=True, exist_ok=True)
    return Path(d)


def candidate_devices() -> list[str]:
    """Device identifiers this process may use: ``CUDA_VISIBLE_DEVICES`` entries, else nvidia-smi's indices."""
    from .runtime import machine_gpus

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    return [str(i) for i in range(machine_gpus())]


def _try_lock(path: Path):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def claim_gpu(poll_s: float = 0.5, timeout_s: float | None = None) -> str:
    """Reserve one device for this process and expose only it; returns what the job runs on.

    Call before TensorFlow or torch is imported. Returns e.g. ``"GPU 2"``, ``"GPU 0 (SLURM
    allocation)"`` or ``"CPU"`` and logs it. Idempotent within a process. Raises TimeoutError
    when ``timeout_s`` passes without a free device (default: wait for as long as it takes).
    """
    if "device" in _HELD:
        return _HELD["device"]
    if os.environ.get("SLURM_JOB_ID"):
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        return _remember(f"GPU {visible} (SLURM allocation)" if visible else "CPU (the SLURM allocation has no GPU)")
    devices = candidate_devices()
    if not devices:
        return _remember("CPU")
    folder = lock_dir()
    start, waiting = time.monotonic(), False
    # start at a process-dependent slot so that simultaneous starts rarely try the same file first
    first = os.getpid() % len(devices)
    order = devices[first:] + devices[:first]
    while True:
        for dev in order:
            fd = _try_lock(folder / f"gpu-{dev}.lock")
            if fd is not None:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                _HELD["fd"] = fd
                os.environ["CUDA_VISIBLE_DEVICES"] = dev
                return _remember(f"GPU {dev}")
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(f"no free GPU among {devices} after {timeout_s:.0f} s (slots in {folder})")
        if not waiting:
            log.info("all %d GPUs %s are taken by other jobs; waiting for one (slots in %s)", len(devices),
                     devices, folder)
            waiting = True
        time.sleep(poll_s)


def _remember(device: str) -> str:
    _HELD["device"] = device
    log.info("device: %s", device)
    return device
