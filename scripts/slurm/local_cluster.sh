#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, localhost only, for the job-array
# test (tests/slurm_array.rs): MUNGE for authentication, slurmctld and slurmd from
# Debian's packages (scripts/setup.sh installs them), configured under STATE_DIR.
#
#   scripts/slurm/local_cluster.sh start STATE_DIR   # returns once the node is idle
#   scripts/slurm/local_cluster.sh stop STATE_DIR
#
# Needs root (the daemons run as root here, and so do the jobs). The configuration is
# written to STATE_DIR/slurm.conf and used through SLURM_CONF, which the caller exports
# for sbatch/squeue/scontrol.
set -euo pipefail

cmd="${1:?usage: local_cluster.sh start|stop STATE_DIR}"
state="${2:?usage: local_cluster.sh start|stop STATE_DIR}"
mkdir -p "$state"
state="$(cd "$state" && pwd)"
export SLURM_CONF="$state/slurm.conf"

start() {
    [ "$(id -u)" -eq 0 ] || { echo "local_cluster: needs root" >&2; exit 1; }
    for p in munged slurmctld slurmd sbatch; do
        command -v "$p" >/dev/null || { echo "local_cluster: $p not found: run scripts/setup.sh" >&2; exit 1; }
    done
    mkdir -p "$state/munge" "$state/spool" "$state/ctld" "$state/log"
    # MUNGE: a fresh key and socket of our own, so nothing of the machine's is touched.
    dd if=/dev/urandom of="$state/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$state/munge/munge.key"
    munged --force --key-file="$state/munge/munge.key" --socket="$state/munge/socket" \
        --pid-file="$state/munge/munged.pid" --log-file="$state/log/munged.log" \
        --seed-file="$state/munge/seed"
    local cpus
    cpus=$(nproc)
    cat >"$SLURM_CONF" <<CONF
ClusterName=mimic-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$state/munge/socket
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmdSpoolDir=$state/spool
StateSaveLocation=$state/ctld
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
SlurmctldPort=$((6817 + RANDOM % 1000))
SlurmdPort=$((7817 + RANDOM % 1000))
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=600
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
    slurmctld -c
    slurmd
    for _ in $(seq 1 100); do
        if sinfo -h -o '%t' 2>/dev/null | grep -q -E '^(idle|mix|alloc)'; then
            echo "local_cluster: up ($SLURM_CONF)"
            return 0
        fi
        sleep 0.2
    done
    echo "local_cluster: the node did not come up; logs in $state/log" >&2
    tail -5 "$state"/log/*.log >&2 || true
    exit 1
}

stop() {
    for pid in "$state/slurmd.pid" "$state/slurmctld.pid" "$state/munge/munged.pid"; do
        [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
    done
    sleep 0.5
}

case "$cmd" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: local_cluster.sh start|stop STATE_DIR" >&2; exit 2 ;;
esac
