#!/usr/bin/env bash
# A real one-node SLURM cluster on localhost, for tests: Debian's slurm-wlm + munge, every file
# (config, keys, sockets, state, logs, PID files) under one directory, no systemd, no cgroups.
#
#   tests/slurm/cluster.sh start  [DIR]   install if missing, configure, start, wait for an idle node
#   tests/slurm/cluster.sh stop   [DIR]   cancel every job, stop the daemons by their recorded PIDs
#   tests/slurm/cluster.sh status [DIR]   daemons alive or not, sinfo, squeue
#
# DIR defaults to $GEXPRED_SLURM_DIR or /tmp/gexpred-slurm. Clients find the cluster through
# `. DIR/env.sh`: SLURM_CONF=DIR/slurm.conf, and DIR/bin first on PATH (an `srun` that sets SLURM_CONF,
# for the executor's job step, which drops SLURM_* variables before its inner srun). Nothing is
# written outside DIR except the packages (and /usr/sbin/policy-rc.d during the install, only if it
# was absent), so several test clusters can run side by side.
# Needs root (the daemons run as root; munge's socket lives in DIR). Ports are picked free at start.
set -euo pipefail

cmd="${1:-}"
DIR="${2:-${GEXPRED_SLURM_DIR:-/tmp/gexpred-slurm}}"
WAIT_S="${GEXPRED_SLURM_WAIT_S:-60}"

die() { echo "cluster.sh: $*" >&2; exit 1; }
log() { echo "cluster.sh: $*" >&2; }

install_if_missing() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        && command -v sbatch >/dev/null && command -v mungekey >/dev/null; then
        return 0
    fi
    [ "$(id -u)" -eq 0 ] || die "slurm-wlm and munge are not installed and this is not root; install them with:
  sudo apt-get install -y slurm-wlm munge"
    log "installing slurm-wlm and munge (apt-get; services not started)"
    local made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        # Debian's packages would start their services on install; policy-rc.d exit 101 forbids it.
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    local rc=0
    {
        export DEBIAN_FRONTEND=noninteractive
        if ! apt-get install -y -qq --no-install-recommends slurm-wlm munge; then
            apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge
        fi
    } >"${DIR}/install.log" 2>&1 || rc=$?
    if [ "$made_policy" -eq 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
    [ "$rc" -eq 0 ] || die "apt-get install slurm-wlm munge failed (rc=$rc); see ${DIR}/install.log"
}

free_port() {
    python3 - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

read_pid() { [ -s "$1" ] && tr -dc '0-9' <"$1" || true; }

start() {
    [ "$(id -u)" -eq 0 ] || die "start needs root (slurmd launches jobs; munged and slurmctld run as root)"
    mkdir -p "$DIR"
    DIR="$(cd "$DIR" && pwd)"  # absolute: a relative -f path kills the daemons after they chdir
    if [ -s "$DIR/pids" ]; then
        for pid in $(cat "$DIR/pids"); do
            pid_alive "$pid" && die "a cluster already runs from $DIR (pid $pid); stop it first"
        done
    fi
    chmod 755 "$DIR"
    install_if_missing
    mkdir -p "$DIR"/{munge,state,spool,log,run}
    chmod 700 "$DIR/munge"
    rm -f "$DIR/pids" "$DIR"/run/*.pid

    # munge: own key, socket and PID file in DIR (root's munged with --force; no system paths).
    [ -s "$DIR/munge/munge.key" ] || mungekey -c -k "$DIR/munge/munge.key" >/dev/null
    chmod 400 "$DIR/munge/munge.key"
    munged --force --socket "$DIR/munge/munge.socket" --key-file "$DIR/munge/munge.key" \
        --pid-file "$DIR/run/munged.pid" --log-file "$DIR/log/munged.log" --seed-file "$DIR/munge/munged.seed"
    for _ in $(seq 50); do [ -S "$DIR/munge/munge.socket" ] && [ -s "$DIR/run/munged.pid" ] && break; sleep 0.1; done
    [ -S "$DIR/munge/munge.socket" ] || die "munged did not start; see $DIR/log/munged.log"
    echo "$(read_pid "$DIR/run/munged.pid")" >>"$DIR/pids"

    # slurm.conf from what the node reports (slurmd -C), one partition 'debug'.
    local host cpus mem ctld_port d_port
    host="$(hostname -s)"
    cpus="$(slurmd -C | tr ' ' '\n' | sed -n 's/^CPUs=//p')"
    mem="$(slurmd -C | tr ' ' '\n' | sed -n 's/^RealMemory=//p')"
    ctld_port="$(free_port)"
    d_port="$(free_port)"
    [ "$d_port" != "$ctld_port" ] || d_port=$((ctld_port + 1))
    cat >"$DIR/slurm.conf" <<EOF
# One-node test cluster written by tests/slurm/cluster.sh; every path under $DIR.
ClusterName=gexpred-test
SlurmctldHost=${host}(127.0.0.1)
SlurmctldPort=${ctld_port}
SlurmdPort=${d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${DIR}/munge/munge.socket
StateSaveLocation=${DIR}/state
SlurmdSpoolDir=${DIR}/spool
SlurmctldPidFile=${DIR}/run/slurmctld.pid
SlurmdPidFile=${DIR}/run/slurmd.pid
SlurmctldLogFile=${DIR}/log/slurmctld.log
SlurmdLogFile=${DIR}/log/slurmd.log
# No cgroups in a container: track processes by parentage, no task binding, no accounting.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job with no --mem takes the whole node's memory and the others wait.
DefMemPerCPU=$((mem / cpus))
# Finished jobs stay visible to squeue for 10 minutes (the executor plugin polls squeue).
MinJobAge=600
ReturnToService=2
MailProg=/bin/true
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    # The SLURM executor's job step drops every SLURM_* variable (SLURM_CONF too) before its inner
    # `srun`, which would then look for /etc/slurm/slurm.conf: put an srun first on PATH that sets it.
    mkdir -p "$DIR/bin"
    printf '#!/bin/sh\nSLURM_CONF=%s exec %s "$@"\n' "$DIR/slurm.conf" "$(command -v srun)" >"$DIR/bin/srun"
    chmod 755 "$DIR/bin/srun"
    printf 'export SLURM_CONF=%s\nexport PATH=%s:"$PATH"\n' "$DIR/slurm.conf" "$DIR/bin" >"$DIR/env.sh"
    export SLURM_CONF="$DIR/slurm.conf"

    slurmctld -f "$SLURM_CONF"
    for _ in $(seq 100); do [ -s "$DIR/run/slurmctld.pid" ] && break; sleep 0.1; done
    [ -s "$DIR/run/slurmctld.pid" ] || die "slurmctld did not start; see $DIR/log/slurmctld.log"
    echo "$(read_pid "$DIR/run/slurmctld.pid")" >>"$DIR/pids"
    slurmd -f "$SLURM_CONF" -N "$host"
    for _ in $(seq 100); do [ -s "$DIR/run/slurmd.pid" ] && break; sleep 0.1; done
    [ -s "$DIR/run/slurmd.pid" ] || die "slurmd did not start; see $DIR/log/slurmd.log"
    echo "$(read_pid "$DIR/run/slurmd.pid")" >>"$DIR/pids"

    local state="" i
    for i in $(seq $((WAIT_S * 5))); do
        state="$(sinfo -h -N -o '%T' 2>/dev/null | head -1 || true)"
        [ "$state" = "idle" ] && break
        sleep 0.2
    done
    [ "$state" = "idle" ] || { log "node state '${state}' after ${WAIT_S}s; logs in $DIR/log"; stop; exit 1; }
    log "cluster up in $DIR (node ${host}, ${cpus} CPUs, ${mem} MB, partition debug); use it after: . $DIR/env.sh"
}

stop() {
    [ -d "$DIR" ] || { log "no cluster directory $DIR"; return 0; }
    export SLURM_CONF="$DIR/slurm.conf"
    # Cancel jobs first: killing slurmd leaves the jobs' processes running.
    local ctld
    ctld="$(read_pid "$DIR/run/slurmctld.pid")"
    if pid_alive "$ctld" && [ -f "$SLURM_CONF" ]; then
        local jobs
        jobs="$(squeue -h -o '%i' -t PD,R,CG,S 2>/dev/null || true)"
        if [ -n "$jobs" ]; then
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            for _ in $(seq 100); do
                [ -z "$(squeue -h -o '%i' -t PD,R,CG,S 2>/dev/null || true)" ] && break
                sleep 0.2
            done
        fi
    fi
    # Then the daemons, by recorded PID only: slurmd, slurmctld, munged (reverse start order).
    local pids=""
    [ -s "$DIR/pids" ] && pids="$(tac "$DIR/pids")"
    for pid in $pids; do
        pid_alive "$pid" || continue
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do pid_alive "$pid" || break; sleep 0.1; done
        if pid_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    done
    rm -f "$DIR/pids"
    log "cluster in $DIR stopped"
}

status() {
    local up=0
    if [ -s "$DIR/pids" ]; then
        for pid in $(cat "$DIR/pids"); do
            if pid_alive "$pid"; then echo "pid $pid alive: $(tr '\0' ' ' </proc/"$pid"/cmdline | cut -c1-80)"; up=1
            else echo "pid $pid gone"; fi
        done
    fi
    if [ "$up" -eq 1 ]; then
        export SLURM_CONF="$DIR/slurm.conf"
        sinfo || true
        squeue || true
    else
        echo "no cluster running from $DIR"
        return 3
    fi
}

case "$cmd" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) die "usage: $0 start|stop|status [DIR]" ;;
esac
