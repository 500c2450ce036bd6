"""Clear Snakemake's lock of a working directory when the run that held it is dead.

    python tools/clear_stale_lock.py [--directory DIR] -- SNAKEMAKE_COMMAND...

A run killed with SIGKILL (or a power loss) leaves ``DIR/.snakemake/locks/*`` behind, and the
next run stops with "Directory cannot be locked". This tool removes such a lock **only when no
live Snakemake process works in DIR** (its scheduler or any of its jobs: a process whose
command line names snakemake and whose working directory, or ``-d``/``--directory``, is DIR),
by running ``SNAKEMAKE_COMMAND --unlock`` from the current directory, exactly as the command
itself runs. DIR is the command's own ``-d``/``--directory`` when it has one, else
``--directory``, else the current directory; with ``--directory`` and a command without
``-d``, the unlock gets ``-d DIR``. Under a running Snakemake it leaves the lock alone and says
so, so the user's second run fails as Snakemake intends. Exit status 0 in every case but a
failed unlock. Linux (/proc).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path


def _cmdline(pid: str) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def command_directory(args: list[str]) -> str | None:
    """The working directory a Snakemake command line names (``-d DIR``, ``--directory DIR``,
    ``--directory=DIR``), or None."""
    for i, a in enumerate(args):
        if a in ("-d", "--directory") and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--directory="):
            return a.split("=", 1)[1]
    return None


def _workdir(pid: str, args: list[str]) -> Path | None:
    named = command_directory(args)
    if named is not None:
        try:
            return (Path(os.readlink(f"/proc/{pid}/cwd")) / named).resolve()
        except OSError:
            return Path(named).resolve()
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd")).resolve()
    except OSError:
        return None


def live_snakemake(directory: Path) -> list[int]:
    """PIDs of processes (other than this one and its parents) running Snakemake in ``directory``."""
    directory = directory.resolve()
    skip = {os.getpid(), os.getppid()}
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) in skip:
            continue
        args = _cmdline(pid)
        if not any("snakemake" in a for a in args) or any("clear_stale_lock" in a for a in args):
            continue
        wd = _workdir(pid, args)
        if wd is not None and (wd == directory or directory in wd.parents):
            found.append(int(pid))
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--directory", default=None,
                    help="the run's working directory (default: the command's -d, else the current directory)")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- the snakemake command of the run")
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    named = command_directory(command)
    directory = Path(named or args.directory or ".")
    if args.directory and named and Path(args.directory).resolve() != Path(named).resolve():
        print(f"--directory {args.directory} differs from the command's own -d {named}; using {named}",
              file=sys.stderr)
    locks = sorted((directory / ".snakemake" / "locks").glob("*.lock"))
    if not locks:
        return 0
    live = live_snakemake(directory)
    if live:
        print(f"{directory.resolve()} is locked by a running Snakemake (PIDs {live}); not unlocking", file=sys.stderr)
        return 0
    if not command:
        print("a stale lock, but no snakemake command to unlock with", file=sys.stderr)
        return 1
    print(f"{directory.resolve()}: lock left by a run that is no longer alive; unlocking", file=sys.stderr)
    unlock = [*command, "--unlock"] + ([] if named else ["-d", str(directory)])
    return subprocess.run(unlock).returncode


if __name__ == "__main__":
    sys.exit(main())
