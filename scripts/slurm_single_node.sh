#!/bin/bash
# A single-node SLURM on this (Debian 12) host, for the slow tests and by hand. Idempotent: re-running
# reinstalls nothing, rewrites slurm.conf from the host's real CPUs/memory and restarts the daemons.
# Container-friendly settings: no cgroups, no systemd, daemons started by hand, root runs the jobs.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge
fi

# munge: a key (the package usually makes one), owned by munge, daemon started by hand
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge && chown munge:munge /run/munge
pgrep -x munged >/dev/null || su -s /bin/sh munge -c /usr/sbin/munged
munge -n | unmunge >/dev/null

# slurm.conf: this host's node line as slurmd itself detects it (CPUs, cores, RealMemory)
HOST=$(hostname -s)
NODE=$(slurmd -C | head -1)
mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=nfs-synth
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
$NODE State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
# no cgroup.conf: with the plugins above nothing reads it
rm -f /etc/slurm/cgroup.conf

# (re)start both daemons so that they read this slurm.conf
for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
    if [ -s $pidfile ] && kill -0 "$(cat $pidfile)" 2>/dev/null; then
        kill "$(cat $pidfile)"
        while kill -0 "$(cat $pidfile)" 2>/dev/null; do sleep 0.2; done
    fi
done
/usr/sbin/slurmctld
/usr/sbin/slurmd
for _ in $(seq 50); do
    sinfo -h -o %t 2>/dev/null | grep -qx idle && break
    sleep 0.2
done
scontrol update NodeName="$HOST" State=RESUME 2>/dev/null || true
sinfo
