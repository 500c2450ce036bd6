#!/usr/bin/env bash
# Start, stop or inspect a real single-node SLURM cluster on localhost.
#
# Used by tests/test_slurm.py and CI to run the workflow through the snakemake SLURM
# executor plugin exactly as on a cluster: sbatch, squeue, one fake GPU (GRES "gpu")
# backed by a symlink to /dev/null, so GPU jobs get CUDA_VISIBLE_DEVICES=0 and run one
# at a time. Needs root on Debian/Ubuntu (no systemd required).
#
#   tools/local_slurm.sh start    install packages if missing, start munge + slurm, wait idle
#   tools/local_slurm.sh stop     kill the daemons this script started (by PID)
#   tools/local_slurm.sh status   print daemons and node state; exit 0 only when usable
#
# Environment:
#   PTYCHOSTUDY_SLURM_DIR     state directory, wiped at every start [/var/tmp/ptychostudy-slurm]
#   PTYCHOSTUDY_SLURM_CPUS    CPUs the node advertises [nproc]
#   PTYCHOSTUDY_SLURM_MEM_MB  memory the node advertises [90 % of MemTotal]
#   PTYCHOSTUDY_SLURM_GPUS    fake GPUs on the node [1]
#
# Why these settings: containers rarely delegate cgroups, so no cgroup plugins; no accounting
# daemon (slurmdbd) is needed for one node; MinJobAge=300 keeps finished jobs visible to
# `squeue`, which Snakemake's SLURM executor polls for their state.
set -euo pipefail

STATE_DIR=${PTYCHOSTUDY_SLURM_DIR:-/var/tmp/ptychostudy-slurm}
NODE_CPUS=${PTYCHOSTUDY_SLURM_CPUS:-$(nproc)}
NODE_MEM_MB=${PTYCHOSTUDY_SLURM_MEM_MB:-$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)}
NODE_GPUS=${PTYCHOSTUDY_SLURM_GPUS:-1}
ETC_SLURM=/etc/slurm                # where sbatch/squeue/slurmd look for slurm.conf, gres.conf
MARKER="written by ptychostudy tools/local_slurm.sh"
PIDS="$STATE_DIR/pids"              # PIDs of the daemons this script started
WAIT_IDLE_S=60

log() { printf 'local_slurm: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- helpers

need_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (starts munged, slurmctld, slurmd)"
}

install_packages() {
    local missing=()
    local bin
    for bin in slurmctld slurmd sbatch squeue sinfo munged mungekey munge unmunge; do
        command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
    done
    ((${#missing[@]} == 0)) && return 0
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
    log "installing slurmctld slurmd slurm-client munge (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge \
        >"/tmp/local_slurm_apt.log" 2>&1 || die "apt-get install failed, see /tmp/local_slurm_apt.log"
}

# pid_alive FILE NAME: the PID recorded in FILE is running and its command is NAME
pid_alive() {
    local file=$1 name=$2 pid
    [[ -s $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/comm && $(</proc/"$pid"/comm) == "$name" ]] || return 1
    # a killed daemon whose parent has not reaped it yet is a zombie: not alive
    [[ $(awk '{print $3}' /proc/"$pid"/stat 2>/dev/null) != Z ]]
}

# kill_recorded NAME: stop the daemon NAME whose PID this script recorded
kill_recorded() {
    local name=$1 file="$PIDS/$1.pid" pid i
    if ! pid_alive "$file" "$name"; then
        rm -f "$file"
        return 0
    fi
    pid=$(<"$file")
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        pid_alive "$file" "$name" || break
        sleep 0.1
    done
    if pid_alive "$file" "$name"; then
        log "$name (pid $pid) ignored SIGTERM, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    rm -f "$file"
}

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

node_state() { sinfo -h -n localhost -o '%T' 2>/dev/null | head -n 1; }

port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# ---------------------------------------------------------------- munge

start_munge() {
    if munge_works; then
        log "munge already running (not started here, will not be stopped here)"
        return 0
    fi
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "creating /etc/munge/munge.key"
        install -d -o munge -g munge -m 700 /etc/munge
        mungekey --create --keyfile=/etc/munge/munge.key
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    install -d -o munge -g munge -m 755 /run/munge
    install -d -o munge -g munge -m 700 /var/log/munge /var/lib/munge
    rm -f /run/munge/munged.pid
    # --force: a stale socket left by a killed munged must not block the start
    runuser -u munge -- /usr/sbin/munged --force \
        || die "munged failed to start, see /var/log/munge/munged.log"
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s /run/munge/munged.pid ]] && munge_works && break
        sleep 0.1
    done
    munge_works || die "munged started but 'munge -n | unmunge' fails, see /var/log/munge/munged.log"
    cp /run/munge/munged.pid "$PIDS/munged.pid"
    log "munged running (pid $(<"$PIDS/munged.pid"))"
}

# ---------------------------------------------------------------- slurm config

# link_conf NAME: /etc/slurm/NAME -> our generated file; never clobber a foreign config
link_conf() {
    local name=$1 target="$STATE_DIR/etc/$1" dest="$ETC_SLURM/$1"
    if [[ -e $dest || -L $dest ]]; then
        if [[ -L $dest && $(readlink "$dest") == "$target" ]]; then
            return 0
        fi
        if [[ -L $dest ]] || grep -q "$MARKER" "$dest" 2>/dev/null; then
            rm -f "$dest"
        else
            die "$dest exists and was not written by this script; refusing to replace a real SLURM configuration"
        fi
    fi
    mkdir -p "$ETC_SLURM"
    ln -s "$target" "$dest"
}

unlink_conf() {
    local name
    for name in slurm.conf gres.conf; do
        if [[ -L $ETC_SLURM/$name && $(readlink "$ETC_SLURM/$name") == "$STATE_DIR/etc/$name" ]]; then
            rm -f "$ETC_SLURM/$name"
        fi
    done
}

write_config() {
    local s=$STATE_DIR
    mkdir -p "$s"/{etc,state,spool/slurmd,log,run,dev}
    chmod 755 "$s" "$s/spool" "$s/spool/slurmd"
    # The job scripts are executed from the spool directory: it must allow exec.
    printf '#!/bin/sh\nexit 0\n' >"$s/spool/exec_check"
    chmod +x "$s/spool/exec_check"
    "$s/spool/exec_check" || die "$s is on a noexec filesystem; set PTYCHOSTUDY_SLURM_DIR elsewhere"
    rm -f "$s/spool/exec_check"

    # Fake GPUs: gres.conf needs File= (else the node is INVALID) and it must be a device
    # path, here a symlink to /dev/null, so that slurmd sets CUDA_VISIBLE_DEVICES.
    local gres_files="" i
    for ((i = 0; i < NODE_GPUS; i++)); do
        ln -sf /dev/null "$s/dev/nvidia$i"
    done
    if ((NODE_GPUS > 1)); then
        gres_files="$s/dev/nvidia[0-$((NODE_GPUS - 1))]"
    else
        gres_files="$s/dev/nvidia0"
    fi

    cat >"$s/etc/slurm.conf" <<EOF
# $MARKER; regenerated at every start.
ClusterName=ptychostudy
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
# no systemd/cgroups in containers and CI: track and launch tasks without cgroups
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# no slurmdbd: snakemake must use 'squeue' as status command
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# keep finished jobs visible to squeue for 5 min (plugin needs >= 3 x init seconds)
MinJobAge=300
# take CPUs/memory from this file, not from the hardware probe
SlurmdParameters=config_overrides
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
MailProg=/bin/true
SlurmctldPort=6817
SlurmdPort=6818
SlurmctldPidFile=$s/run/slurmctld.pid
SlurmdPidFile=$s/run/slurmd.pid
SlurmdSpoolDir=$s/spool/slurmd
StateSaveLocation=$s/state
SlurmctldLogFile=$s/log/slurmctld.log
SlurmdLogFile=$s/log/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$NODE_CPUS RealMemory=$NODE_MEM_MB Gres=gpu:$NODE_GPUS State=UNKNOWN
PartitionName=local Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    cat >"$s/etc/gres.conf" <<EOF
# $MARKER; regenerated at every start.
AutoDetect=off
NodeName=localhost Name=gpu Count=$NODE_GPUS File=$gres_files
EOF
    link_conf slurm.conf
    link_conf gres.conf
}

# ---------------------------------------------------------------- commands

is_running() {
    pid_alive "$PIDS/slurmctld.pid" slurmctld && pid_alive "$PIDS/slurmd.pid" slurmd \
        && munge_works && [[ $(node_state) =~ ^(idle|mixed|allocated|completing)$ ]]
}

cmd_stop() {
    local name any=0
    for name in slurmd slurmctld munged; do
        pid_alive "$PIDS/$name.pid" "$name" && any=1
        kill_recorded "$name"
    done
    unlink_conf
    if ((any)); then log "stopped"; else log "nothing to stop (no daemon started here is running)"; fi
}

cmd_start() {
    need_root
    install_packages
    if is_running; then
        log "already running (node $(node_state)); state in $STATE_DIR"
        return 0
    fi
    # leftovers of an earlier, broken start: stop them before wiping their state
    if compgen -G "$PIDS/*.pid" >/dev/null; then
        cmd_stop
    fi
    local port
    for port in 6817 6818; do
        port_busy "$port" && die "port $port is in use by a SLURM daemon not started here; stop it first"
    done
    # a fresh state directory: a node that once failed registration stays drained otherwise
    rm -rf "$STATE_DIR"
    mkdir -p "$PIDS"
    start_munge
    write_config

    log "starting slurmctld (node: $NODE_CPUS CPUs, $NODE_MEM_MB MB, $NODE_GPUS fake GPU)"
    slurmctld -i || die "slurmctld failed to start, see $STATE_DIR/log/slurmctld.log"
    wait_pidfile "$STATE_DIR/run/slurmctld.pid" slurmctld
    cp "$STATE_DIR/run/slurmctld.pid" "$PIDS/slurmctld.pid"

    log "starting slurmd -N localhost"
    slurmd -N localhost || die "slurmd failed to start, see $STATE_DIR/log/slurmd.log"
    wait_pidfile "$STATE_DIR/run/slurmd.pid" slurmd
    cp "$STATE_DIR/run/slurmd.pid" "$PIDS/slurmd.pid"

    local i state=""
    for ((i = 0; i < WAIT_IDLE_S * 2; i++)); do
        state=$(node_state)
        [[ $state == idle ]] && break
        sleep 0.5
    done
    if [[ $state != idle ]]; then
        log "node state is '${state:-unknown}' after ${WAIT_IDLE_S}s; last log lines:"
        tail -n 15 "$STATE_DIR/log/slurmctld.log" "$STATE_DIR/log/slurmd.log" >&2 || true
        cmd_stop
        die "the node did not become idle"
    fi
    log "cluster up: partition 'local', node localhost idle; state in $STATE_DIR"
}

# wait_pidfile FILE NAME: the daemon wrote its PID file and is alive
wait_pidfile() {
    local file=$1 name=$2 i
    for ((i = 0; i < 100; i++)); do
        pid_alive "$file" "$name" && return 0
        sleep 0.1
    done
    tail -n 15 "$STATE_DIR/log/$name.log" >&2 || true
    die "$name did not start (no live PID in $file)"
}

cmd_status() {
    local name rc=0
    for name in munged slurmctld slurmd; do
        if pid_alive "$PIDS/$name.pid" "$name"; then
            printf '%-10s running (pid %s, started here)\n' "$name" "$(<"$PIDS/$name.pid")"
        elif [[ $name == munged ]] && munge_works; then
            printf '%-10s running (not started here)\n' "$name"
        else
            printf '%-10s not running\n' "$name"
            rc=1
        fi
    done
    local state
    state=$(node_state || true)
    printf '%-10s %s\n' node "${state:-unknown}"
    [[ $state =~ ^(idle|mixed|allocated|completing)$ ]] || rc=1
    if ((rc == 0)); then
        sinfo -o '%P %N %c %m %G %T' 2>/dev/null || true
    fi
    return "$rc"
}

export PATH="$PATH:/usr/sbin:/sbin"
case "${1:-}" in
    start) cmd_start ;;
    stop) need_root; cmd_stop ;;
    status) cmd_status ;;
    *)
        echo "usage: $0 start|stop|status" >&2
        exit 2
        ;;
esac
