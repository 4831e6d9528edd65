#!/usr/bin/env bash
# A one-node Slurm on localhost for the job-array integration test (`cargo xtask reproduce …
# --submit slurm`), from Debian's slurm-wlm and munge:
#
#   xtask/ci/slurm-local.sh start   # install (apt) if missing, configure, start munged, slurmctld, slurmd
#   xtask/ci/slurm-local.sh stop    # stop the three daemons
#   xtask/ci/slurm-local.sh status  # sinfo
#
# Needs root (it writes /etc/slurm/slurm.conf and starts daemons). It refuses to touch a
# slurm.conf it did not write, so a machine that is part of a real cluster is left alone.
set -euo pipefail

MARK="# written by mr xtask/ci/slurm-local.sh"
CONF=/etc/slurm/slurm.conf
STATE=/var/lib/mr-slurm-local

die() { echo "slurm-local: $*" >&2; exit 1; }

install() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v munged >/dev/null && command -v sbatch >/dev/null; then
        return
    fi
    [ "$(id -u)" = 0 ] || die "slurm-wlm is not installed and this is not root (apt-get needs root)"
    echo "slurm-local: installing slurm-wlm and munge (Debian)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null \
        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null; } \
        || die "apt-get install slurm-wlm munge failed"
}

configure() {
    if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
        die "$CONF exists and was not written by this script; not touching it"
    fi
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc)
    # RealMemory in MB, a little under what the machine has so slurmd does not drain the node
    mem=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
    mkdir -p /etc/slurm "$STATE"/ctld "$STATE"/d "$STATE"/log
    cat > "$CONF.tmp" <<CONFEOF
$MARK
ClusterName=mr-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=10
Waittime=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONFEOF
    mv "$CONF.tmp" "$CONF"
}

start_munge() {
    if pgrep -x munged >/dev/null; then return; fi
    if [ ! -s /etc/munge/munge.key ]; then
        mungekey --create --force >/dev/null 2>&1 || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
    fi
    chown munge:munge /etc/munge/munge.key 2>/dev/null || true
    chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
    if id munge >/dev/null 2>&1; then
        su -s /bin/sh munge -c munged || die "munged did not start"
    else
        munged --force || die "munged did not start"
    fi
}

start() {
    install
    configure
    start_munge
    pgrep -x slurmctld >/dev/null || slurmctld || die "slurmctld did not start (log: $STATE/log/slurmctld.log)"
    pgrep -x slurmd >/dev/null || slurmd || die "slurmd did not start (log: $STATE/log/slurmd.log)"
    # wait for the node to be idle
    for _ in $(seq 60); do
        if sinfo -h -o '%t' 2>/dev/null | grep -qx 'idle'; then
            echo "slurm-local: up ($(sinfo -h -o '%P %D node(s) %c cpus %t'))"
            return
        fi
        sleep 1
    done
    sinfo >&2 || true
    tail -n 20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 || true
    die "the node did not come up within 60 s"
}

stop() {
    for d in slurmd slurmctld munged; do
        pkill -x "$d" 2>/dev/null || true
        # a daemon saves its state before it exits: wait, so a start right after finds none
        for _ in $(seq 50); do
            pgrep -x "$d" >/dev/null || break
            sleep 0.2
        done
    done
    echo "slurm-local: stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) sinfo ;;
    *) die "usage: $0 start|stop|status" ;;
esac
