#!/usr/bin/env bash
# interlockctl test lab: a real 4-node Docker Swarm (1 manager + 3 workers) on this machine,
# each node a network namespace with its own containerd + dockerd, plus the Interlock fixture
# (services ucp-interlock / ucp-interlock-extension / ucp-interlock-proxy run as busybox
# stand-ins, config com.docker.ucp.interlock.conf-1).
#
# Usage: lab.sh up|reset|down|status|rebuild-image|restart-engine|env|node NAME DOCKER-ARGS...|node-pause W|node-resume W
#   up      start the lab (idempotent; fast when already up), create the fixture; the
#           manager's engine also listens with TLS (see TLS below), and a lab that is up
#           without that listener gets its manager's engine restarted with it
#   reset   bring the fixture back to its initial state: remove services ucp-interlock* and
#           lab-*, configs com.docker.ucp.interlock.conf*, com.docker.interlock.proxy.* and
#           lab-*, secrets and networks lab-*; restore node labels; create conf-1
#           (core-config.toml) and the three Interlock services, the proxy mounting the
#           nginx config the core renders from conf-1 (so a fresh core has nothing to swap);
#           wait until their tasks run (LAB_CORE_WRITER=off: a core that never writes the
#           proxy and a proxy without that mount, for benchmarks; LAB_INTERLOCK_IMAGES=names:
#           the services on Interlock's own image names, see IMAGES below)
#   down    stop and remove everything the lab created (safe when nothing is up)
#   status  print nodes and services; exit 0 if the lab is up, 1 if not
#   rebuild-image  rebuild the stand-in image, load it on every node, then reset
#   restart-engine  stop the manager's dockerd (by its recorded PID) and start it again, as
#           an engine restart or a manager failover looks to a client; its tasks stop with it
#           (no live-restore) and Swarm starts them again
#   env     print the env file (/run/interlockctl-lab/env)
#   node NAME ARGS...  run `docker ARGS...` against node NAME's daemon (e.g. node ilab-w1 ps)
#   node-pause WORKER  stop a worker's engine where it stands (SIGSTOP to its dockerd: it no
#           longer answers the manager) and wait until the swarm reports the node Down;
#           `node-resume WORKER` lets it go on (SIGCONT) and waits until all nodes are Ready.
#           No process is started or ended, so the engine stays the one `up` started (a test
#           that pauses one resumes it, even when it fails)
#
# Rules kept by this script: no image is ever pulled (services use the image ID with
# --no-resolve-image); the node namespaces have no default route; only processes this lab
# started are stopped (by recorded PID, checked against their command line, or found inside
# the lab's own namespaces / cgroups); no other dockerd/containerd is touched.
# IMAGES: with LAB_INTERLOCK_IMAGES=names, reset tags the stand-in image on every node under
# Interlock's image names -- docker/ucp-interlock{,-extension,-proxy}:$INTERLOCK_OLD (what the
# fixture starts on, as core-config.toml names them), mirantis/...:$INTERLOCK_NEW, and
# mirantis/...:$INTERLOCK_FAILING whose core image exits 1 at once (built on the manager from
# the stand-in image: a core that cannot start) -- creates the services on the old names, and
# has the stand-in core put the extension's image back to the config's `Image` when they
# differ. Still no pull: every engine runs with DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1, with
# which Swarm's executor runs a task from the node's local image for a tag and never asks a
# registry (moby daemon/cluster/executor/container/controller.go); `up` restarts engines that
# run without it, and reset refuses the names when one does.
# Tests: source /run/interlockctl-lab/env (DOCKER_HOST, LAB_IMAGE, LAB_*_ADDRS, ...).
#
# TLS: the manager's engine listens on tcp://<its address>:2376 with --tlsverify, as a UCP
# manager does for client bundles. `up` makes a CA, the engine's certificate (subject
# alternative name: the manager's address) and a client certificate with openssl, under
# $STATE/tls; the env file names the address (LAB_TLS_HOST) and a directory laid out like a
# client bundle (LAB_CERT_PATH: ca.pem, cert.pem, key.pem).
#
# ssh: `up` starts an sshd (Debian's openssh-server, installed like docker.io) inside the
# manager's namespace on its address, port 22, with key authentication for root only and the
# lab's own key pair under $STATE/ssh; that key's `environment=` points the remote docker CLI
# at the manager's engine, so `ssh ... docker system dial-stdio` reaches it as on a real
# manager. The env file names the host (LAB_SSH_HOST) and the directory of the client key and
# known_hosts (LAB_SSH_DIR: id_ed25519, known_hosts). Its PID is recorded; `down` stops it.
set -euo pipefail

LAB_DIR=$(cd "$(dirname "$0")" && pwd)
export PATH="$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

STATE=/run/interlockctl-lab          # sockets, pid files, exec roots, logs, env file
DATA=/var/lib/interlockctl-lab       # data roots, daemon configs, image build context
ENV_FILE=$STATE/env
LOCK_FILE=/run/lock/interlockctl-lab.lock
NETFILES=/var/lib/docker/network/files   # libnetwork writes here whatever --data-root says
# directories the daemons create whatever their roots are (dockerd: /run/docker/plugins,
# libnetwork: $NETFILES, containerd shims: /run/containerd/s); down removes the ones up created
SHARED_DIRS=("$NETFILES" /run/docker/plugins /run/containerd/s)
CGROUP_PARENT=interlockctl-lab           # container cgroups: /sys/fs/cgroup/*/interlockctl-lab/<node>/
FW_COMMENT=interlockctl-lab

BR=ilab0
SUBNET_PREFIX=10.231.0
HOST_ADDR=$SUBNET_PREFIX.1
SWARM_POOL=10.231.128.0/17               # overlay networks (ingress, ucp-interlock)
NODES=(ilab-mgr ilab-w1 ilab-w2 ilab-w3)
MGR=ilab-mgr
declare -A ADDR=([ilab-mgr]=$SUBNET_PREFIX.10 [ilab-w1]=$SUBNET_PREFIX.11
                 [ilab-w2]=$SUBNET_PREFIX.12 [ilab-w3]=$SUBNET_PREFIX.13)
declare -A IDX=([ilab-mgr]=0 [ilab-w1]=1 [ilab-w2]=2 [ilab-w3]=3)
declare -A ROLE=([ilab-mgr]="" [ilab-w1]=dtr [ilab-w2]=dtr [ilab-w3]="")
SWARM_LABEL=com.docker.ucp.orchestrator.swarm=true

IMAGE_TAG=interlockctl-lab/standin:latest
INSTANCE_ID=ilab7q3m8x0t2kzv7c4w1n9b5d   # com.docker.ucp.InstanceID (same as core-config.toml)
CONF_PREFIX=com.docker.ucp.interlock.conf
CONF1=$CONF_PREFIX-1
OVERLAY=ucp-interlock
UCP_CONSTRAINTS=(node.labels.com.docker.ucp.orchestrator.swarm==true node.platform.os==linux)
TLS=$STATE/tls                           # CA, the manager's server certificate, client/ bundle
TLS_PORT=2376
OFFLINE_ENV=DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1   # see IMAGES above
INTERLOCK_OLD=3.0.14                     # the fixture's images (core-config.toml names them)
INTERLOCK_NEW=3.8.0
INTERLOCK_FAILING=3.8.1                  # its core image exits 1 at start
INTERLOCK_NAMES=(ucp-interlock ucp-interlock-extension ucp-interlock-proxy)
# Run by the inner bash that execs a node's daemon: it closes every descriptor above stderr, so
# the daemon keeps none its starter had open (a test's lock on the lab would otherwise be
# held for as long as the daemon runs, and every test would wait for it).
# shellcheck disable=SC2016  # expanded by the inner bash
CLOSE_INHERITED='for fd in /proc/$$/fd/*; do fd=${fd##*/}; if ((fd > 2)); then exec {fd}>&-; fi; done'
SSH_DIR=$STATE/ssh                       # the manager's sshd: config, host key, the lab's client key
SSH_PORT=22
TIMEOUT=${LAB_TIMEOUT:-90}

T0=$SECONDS
log() { printf '[lab %3ds] %s\n' "$((SECONDS - T0))" "$*" >&2; }
die() { printf '[lab] ERROR: %s\n' "$*" >&2; exit 1; }

sock() { echo "$STATE/$1.sock"; }
# dk NODE docker-args... : the docker CLI against one node's daemon
dk() { local n=$1; shift; docker -H "unix://$(sock "$n")" "$@"; }
veth_host() { echo "ilabh-${1#ilab-}"; }   # host end of a node's veth (<= 15 chars)

# wait_until SECONDS DESCRIPTION CMD... : poll CMD every 0.2 s until it succeeds
wait_until() {
    local timeout=$1 desc=$2; shift 2
    local end=$((SECONDS + timeout))
    until "$@"; do
        ((SECONDS < end)) || die "timeout (${timeout}s) waiting for $desc"
        sleep 0.2
    done
}

lock() {
    mkdir -p "$(dirname "$LOCK_FILE")"
    exec 9>"$LOCK_FILE"
    flock -w 600 9 || die "another lab.sh holds $LOCK_FILE"
}

# ---------------------------------------------------------------- processes

# alive PID: the process exists and is not a zombie
alive() {
    local st
    [[ -r /proc/$1/stat ]] || return 1
    st=$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $st && $st != Z && $st != X ]]
}
# ours PID STRING: alive and its command line contains STRING (guards against PID reuse)
ours() {
    local pid=$1 want=$2
    [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$want"
}
read_pid() { if [[ -r $1 ]]; then tr -dc '0-9' <"$1"; fi; }
# stop_pids SECONDS PID... : SIGTERM, wait, then SIGKILL
stop_pids() {
    local timeout=$1; shift
    local pids=("$@") p end
    ((${#pids[@]})) || return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    end=$((SECONDS + timeout))
    while ((SECONDS < end)); do
        local left=0
        for p in "${pids[@]}"; do alive "$p" && left=1; done
        ((left)) || return 0
        sleep 0.2
    done
    for p in "${pids[@]}"; do
        if alive "$p"; then log "pid $p did not stop in ${timeout}s: SIGKILL"; kill -KILL "$p" 2>/dev/null || true; fi
    done
    sleep 0.3
}

# ---------------------------------------------------------------- teardown

# Everything `down` removes; also used by `up` to start from a clean slate.
teardown() {
    local n pid pids=() p d

    netfiles_record
    # 0. the manager's sshd (recorded PID, verified by its config path on the command line)
    pid=$(read_pid "$SSH_DIR/sshd.pid")
    if ours "$pid" "$SSH_DIR/sshd_config"; then log "stopping sshd: $pid"; stop_pids 5 "$pid"; fi
    # 1. dockerd of every node (recorded PID, verified by its socket path on the command line)
    for n in "${NODES[@]}"; do
        for pid in "$(read_pid "$STATE/$n/dockerd.pid")" "$(read_pid "$STATE/$n/dockerd.launch.pid")"; do
            if ours "$pid" "$(sock "$n")"; then pids+=("$pid"); fi
        done
    done
    if ((${#pids[@]})); then
        mapfile -t pids < <(printf '%s\n' "${pids[@]}" | sort -u)
        log "stopping dockerd: ${pids[*]}"
        stop_pids 25 "${pids[@]}"
    fi

    # 2. containers left behind (dockerd killed): processes in the lab's container cgroups
    kill_lab_cgroups

    # 3. containerd of every node (recorded PID, verified by its config path)
    pids=()
    for n in "${NODES[@]}"; do
        pid=$(read_pid "$STATE/$n/containerd.pid")
        if ours "$pid" "$DATA/$n/containerd.toml"; then pids+=("$pid"); fi
    done
    if ((${#pids[@]})); then log "stopping containerd: ${pids[*]}"; stop_pids 10 "${pids[@]}"; fi

    # 4. anything still running inside the lab's own namespaces (shims of a killed containerd,
    #    daemons whose pid files were lost): all started by this lab
    for n in "${NODES[@]}"; do
        [[ -e /run/netns/$n ]] || continue
        mapfile -t pids < <(ip netns pids "$n" 2>/dev/null || true)
        if ((${#pids[@]})); then
            log "processes left in netns $n: ${pids[*]}"
            stop_pids 5 "${pids[@]}"
        fi
    done
    kill_lab_cgroups
    remove_lab_cgroups

    # 5. mounts under the lab's directories (overlay, shm, netns bind mounts of a killed dockerd)
    local mnts
    mapfile -t mnts < <(awk '{print $5}' /proc/self/mountinfo | grep -E "^($DATA|$STATE)(/|$)" | sort -r || true)
    for p in "${mnts[@]}"; do umount -l "$p" 2>/dev/null || true; done

    # 6. network: namespaces (their veth ends go with them), host veth ends, bridge
    for n in "${NODES[@]}"; do
        if [[ -e /run/netns/$n ]]; then ip netns del "$n" 2>/dev/null || true; fi
        if ip link show "$(veth_host "$n")" >/dev/null 2>&1; then ip link del "$(veth_host "$n")" 2>/dev/null || true; fi
    done
    if ip link show "$BR" >/dev/null 2>&1; then ip link del "$BR"; fi

    # 7. the iptables rules this lab added (found by their comment)
    fw_remove

    # 8. files libnetwork wrote under /var/lib/docker/network/files for lab sandboxes
    netfiles_cleanup

    # 9. shared directories the lab created (if empty now), state and data
    if [[ -f $DATA/dirs.created ]]; then
        while read -r d; do rmdir "$d" 2>/dev/null || true; done < <(awk '{print length, $0}' "$DATA/dirs.created" | sort -rn | cut -d' ' -f2-)
    fi
    rm -rf "$STATE" "$DATA"
}

lab_cgroup_dirs() { find /sys/fs/cgroup -mindepth 1 -maxdepth 2 -type d -name "$CGROUP_PARENT" 2>/dev/null || true; }
kill_lab_cgroups() {
    local d pids
    for d in $(lab_cgroup_dirs); do
        mapfile -t pids < <(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)
        if ((${#pids[@]})); then
            log "killing container processes left in $d: ${pids[*]}"
            kill -KILL "${pids[@]}" 2>/dev/null || true
        fi
    done
}
remove_lab_cgroups() {
    local d i
    for i in 1 2 3 4 5; do
        for d in $(lab_cgroup_dirs); do
            find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
        done
        [[ -z $(lab_cgroup_dirs) ]] && return 0
        sleep 0.2
    done
}

fw_remove() {
    local rule
    while read -r rule; do
        [[ -n $rule ]] || continue
        # shellcheck disable=SC2086  # split the saved rule into arguments
        eval "iptables ${rule/#-A /-D }" || true
    done < <(iptables -S FORWARD 2>/dev/null | grep -F -- "--comment $FW_COMMENT" || true)
}
fw_add() {
    local dir
    for dir in -i -o; do
        iptables -C FORWARD "$dir" "$BR" -m comment --comment "$FW_COMMENT" -j ACCEPT 2>/dev/null ||
            iptables -I FORWARD 1 "$dir" "$BR" -m comment --comment "$FW_COMMENT" -j ACCEPT
    done
}

# libnetwork keeps hosts/resolv.conf of load-balancer sandboxes in $NETFILES/lb_<network id>/
# (ingress, overlays) whatever --data-root says. While the daemons run, the entries that belong
# to lab networks are recorded in $DATA/netfiles.lab (end of reset, start of down); down
# removes them. If no daemon answered, entries that appeared since up are taken instead.
netfiles_snapshot() {
    if [[ -d $NETFILES ]]; then find "$NETFILES" -mindepth 1 -maxdepth 1 -printf '%f\n' >"$DATA/netfiles.before"
    else : >"$DATA/netfiles.before"; fi
}
netfiles_record() {
    [[ -d $NETFILES && -d $DATA ]] || return 0
    local n ids e id
    ids=$(for n in "${NODES[@]}"; do
        [[ -S $(sock "$n") ]] && timeout 5 docker -H "unix://$(sock "$n")" network ls -q --no-trunc 2>/dev/null
    done | sort -u) || true
    for e in "$NETFILES"/*; do
        [[ -e $e ]] || continue
        e=${e##*/}
        for id in $ids; do
            if [[ $e == *"$id"* ]]; then echo "$e" >>"$DATA/netfiles.lab"; break; fi
        done
    done
    if [[ -f $DATA/netfiles.lab ]]; then sort -u -o "$DATA/netfiles.lab" "$DATA/netfiles.lab"; fi
}
netfiles_cleanup() {
    local e
    [[ -d $NETFILES && -d $DATA ]] || return 0
    if [[ ! -s $DATA/netfiles.lab && -f $DATA/netfiles.before ]]; then
        find "$NETFILES" -mindepth 1 -maxdepth 1 -printf '%f\n' | grep -vxF -f "$DATA/netfiles.before" >"$DATA/netfiles.lab" || true
    fi
    [[ -f $DATA/netfiles.lab ]] || return 0
    while read -r e; do
        [[ -n $e && $e != */* && $e != . && $e != .. ]] && rm -rf "${NETFILES:?}/$e"
    done <"$DATA/netfiles.lab"
}
# record the shared directories (and missing parents) that do not exist yet
shared_dirs_snapshot() {
    local d
    : >"$DATA/dirs.created"
    for d in "${SHARED_DIRS[@]}"; do
        while [[ ! -e $d ]]; do echo "$d" >>"$DATA/dirs.created"; d=$(dirname "$d"); done
    done
}

# ---------------------------------------------------------------- bring-up

ensure_packages() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v containerd >/dev/null || missing+=(docker.io)
    command -v busybox >/dev/null || missing+=(busybox-static)
    command -v iptables >/dev/null || missing+=(iptables)
    command -v docker >/dev/null || missing+=(docker.io)
    ((${#missing[@]})) || return 0
    log "installing packages: docker.io iptables busybox-static"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q docker.io iptables busybox-static
}

# openssh-server for the manager's sshd, never started as the system's service
ensure_sshd_package() {
    local guard=/usr/sbin/policy-rc.d placed=""
    [[ -x /usr/sbin/sshd ]] && command -v ssh-keygen >/dev/null && return 0
    log "installing packages: openssh-server"
    export DEBIAN_FRONTEND=noninteractive
    if [[ ! -e $guard ]]; then printf '#!/bin/sh\nexit 101\n' >"$guard"; chmod 755 "$guard"; placed=1; fi
    if ! { apt-get update -q && apt-get install -y -q openssh-server; }; then
        [[ -z $placed ]] || rm -f "$guard"
        die "apt-get install openssh-server failed"
    fi
    [[ -z $placed ]] || rm -f "$guard"
}

static_binary() { # PATH: true if statically linked
    if command -v file >/dev/null; then
        file -L "$1" | grep -q 'statically linked'
    else
        if ldd "$1" >/dev/null 2>&1; then return 1; fi
    fi
}

setup_network() {
    local n i
    ip link add "$BR" type bridge
    ip addr add "$HOST_ADDR/24" dev "$BR"
    ip link set "$BR" up
    fw_add
    for n in "${NODES[@]}"; do
        ip netns add "$n"
        ip link add "$(veth_host "$n")" type veth peer name eth0 netns "$n"
        ip link set "$(veth_host "$n")" master "$BR" up
        ip -n "$n" link set lo up
        ip -n "$n" addr add "${ADDR[$n]}/24" dev eth0
        ip -n "$n" link set eth0 up
        # no default route: the node reaches only the lab subnet and loopback
    done
}

write_node_config() { # NODE
    local n=$1 i=${IDX[$1]}
    mkdir -p "$DATA/$n/docker" "$DATA/$n/containerd" "$STATE/$n/exec" "$STATE/$n/containerd"
    cat >"$DATA/$n/containerd.toml" <<EOF
version = 2
root = "$DATA/$n/containerd"
state = "$STATE/$n/containerd"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$STATE/$n/containerd/containerd.sock"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$DATA/$n/containerd/opt"
EOF
    cat >"$DATA/$n/daemon.json" <<EOF
{
  "deprecated-key-path": "$DATA/$n/key.json",
  "bip": "10.231.$((10 + i)).1/24",
  "default-address-pools": [{"base": "10.231.$((64 + 16 * i)).0/20", "size": 24}],
  "swarm-default-advertise-addr": "${ADDR[$n]}",
  "iptables": true,
  "ip-forward": true,
  "storage-driver": "overlay2",
  "exec-opts": ["native.cgroupdriver=cgroupfs"],
  "cgroup-parent": "/$CGROUP_PARENT/$n",
  "log-driver": "json-file",
  "log-opts": {"max-size": "1m", "max-file": "2"},
  "live-restore": false
}
EOF
}

# make_tls: a CA, the manager engine's certificate and a client certificate (kept while the
# lab is up; a new CA would lock out the engine already started with the old one)
make_tls() {
    local ext
    [[ -s $TLS/client/key.pem ]] && return 0
    mkdir -p "$TLS/client"
    chmod 700 "$TLS"
    ext=$TLS/ext.cnf
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
        -subj "/CN=interlockctl lab CA" -keyout "$TLS/ca-key.pem" -out "$TLS/ca.pem" 2>/dev/null
    # leaf NAME EXTENDED-KEY-USAGE SUBJECT-ALT-NAME OUT-PREFIX
    leaf() {
        {
            echo "basicConstraints=critical,CA:FALSE"
            echo "keyUsage=critical,digitalSignature"
            echo "extendedKeyUsage=$2"
            [[ -z $3 ]] || echo "subjectAltName=$3"
        } >"$ext"
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$1" \
            -keyout "$4-key.pem" -out "$4.csr" 2>/dev/null
        openssl x509 -req -in "$4.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca-key.pem" \
            -CAcreateserial -days 3650 -extfile "$ext" -out "$4-cert.pem" 2>/dev/null
        rm -f "$4.csr"
    }
    leaf "$MGR" serverAuth "IP:${ADDR[$MGR]}" "$TLS/server"
    leaf lab-client clientAuth "" "$TLS/client/client"
    mv "$TLS/client/client-cert.pem" "$TLS/client/cert.pem"
    mv "$TLS/client/client-key.pem" "$TLS/client/key.pem"
    cp "$TLS/ca.pem" "$TLS/client/ca.pem"
    rm -f "$ext"
}

tls_host() { echo "tcp://${ADDR[$MGR]}:$TLS_PORT"; }

# true when the manager's engine answers on its TLS address to the client certificate
tls_answers() {
    [[ -s $TLS/client/key.pem ]] || return 1
    docker --tlsverify --tlscacert "$TLS/client/ca.pem" --tlscert "$TLS/client/cert.pem" \
        --tlskey "$TLS/client/key.pem" -H "$(tls_host)" version --format '{{.Server.APIVersion}}' \
        >/dev/null 2>&1
}

# start_dockerd NODE: the node's dockerd inside its netns (the manager's also on TLS)
start_dockerd() {
    local n=$1 listen=()
    if [[ $n == "$MGR" ]]; then
        listen=(-H "$(tls_host)" --tlsverify --tlscacert "$TLS/ca.pem"
            --tlscert "$TLS/server-cert.pem" --tlskey "$TLS/server-key.pem")
    fi
    # nsenter --net (not `ip netns exec`, which remounts /sys and breaks cgroups),
    # unshare --uts for a per-node hostname; both exec, so $! is dockerd's PID
    # shellcheck disable=SC2016  # $1/$@ belong to the inner bash
    setsid env "$OFFLINE_ENV" nsenter --net="/run/netns/$n" unshare --uts \
        bash -c "$CLOSE_INHERITED"'; hostname "$1" && shift && exec "$@"' sh "$n" \
        dockerd --config-file "$DATA/$n/daemon.json" \
        --data-root "$DATA/$n/docker" --exec-root "$STATE/$n/exec" \
        --pidfile "$STATE/$n/dockerd.pid" -H "unix://$(sock "$n")" "${listen[@]}" \
        --containerd "$STATE/$n/containerd/containerd.sock" \
        </dev/null >>"$STATE/$n/dockerd.log" 2>&1 9>&- &
    echo $! >"$STATE/$n/dockerd.launch.pid"
}

# wait_dockerd NODE: until it answers on its socket, from the PID it recorded
wait_dockerd() {
    local n=$1 pid
    wait_until 40 "dockerd of $n (log: $STATE/$n/dockerd.log)" node_answers "$n"
    pid=$(read_pid "$STATE/$n/dockerd.pid")
    ours "$pid" "$(sock "$n")" || die "dockerd of $n: pid file $STATE/$n/dockerd.pid does not match"
}

# A lab started before the TLS listener existed: restart the manager's engine with it.
# Its tasks stop with it (no live-restore); the caller resets the fixture.
restart_manager_with_tls() {
    log "the manager's engine has no TLS listener: restarting it with one"
    make_tls
    restart_engines "$MGR"
}

# restart_engines NODE...: stops those nodes' dockerds (by their recorded PIDs) and starts
# them again; returns once the swarm has all its nodes Ready and the TLS listener answers.
restart_engines() {
    local n pid pids=()
    for n in "$@"; do
        pid=$(read_pid "$STATE/$n/dockerd.pid")
        if ours "$pid" "$(sock "$n")"; then pids+=("$pid"); fi
    done
    if ((${#pids[@]})); then stop_pids 25 "${pids[@]}"; fi
    for n in "$@"; do start_dockerd "$n"; done
    for n in "$@"; do wait_dockerd "$n"; done
    wait_until 60 "4 Ready swarm nodes" nodes_ready
    wait_until 20 "the manager's TLS listener" tls_answers
}

# true when every node's engine runs with $OFFLINE_ENV (see IMAGES above)
engines_offline() {
    local n pid
    for n in "${NODES[@]}"; do
        pid=$(read_pid "$STATE/$n/dockerd.pid")
        ours "$pid" "$(sock "$n")" || return 1
        tr '\0' '\n' <"/proc/$pid/environ" | grep -qxF "$OFFLINE_ENV" || return 1
    done
}

# A lab started before the engines ran with $OFFLINE_ENV: restart them with it. Their tasks
# stop with them (no live-restore); the caller resets the fixture.
restart_engines_offline() {
    log "the engines run without $OFFLINE_ENV: restarting them with it"
    restart_engines "${NODES[@]}"
}

ssh_host() { echo "ssh://root@${ADDR[$MGR]}"; }

# true when the manager's sshd lets the lab's key in and the remote docker CLI answers
sshd_answers() {
    ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -i "$SSH_DIR/id_ed25519" \
        -o UserKnownHostsFile="$SSH_DIR/known_hosts" -o StrictHostKeyChecking=yes \
        -o ConnectTimeout=5 "root@${ADDR[$MGR]}" docker version --format '{{.Server.APIVersion}}' \
        </dev/null >/dev/null 2>&1
}

# start_sshd: the manager's sshd in its netns (see the header); nothing when it runs already
start_sshd() {
    local pid
    pid=$(read_pid "$SSH_DIR/sshd.pid")
    if ours "$pid" "$SSH_DIR/sshd_config"; then return 0; fi
    ensure_sshd_package
    mkdir -p "$SSH_DIR"
    chmod 700 "$SSH_DIR"
    [[ -s $SSH_DIR/host_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C "interlockctl lab $MGR" -f "$SSH_DIR/host_ed25519"
    [[ -s $SSH_DIR/id_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C 'interlockctl lab client' -f "$SSH_DIR/id_ed25519"
    echo "environment=\"DOCKER_HOST=unix://$(sock "$MGR")\" $(cat "$SSH_DIR/id_ed25519.pub")" >"$SSH_DIR/authorized_keys"
    echo "${ADDR[$MGR]} $(cut -d' ' -f1,2 "$SSH_DIR/host_ed25519.pub")" >"$SSH_DIR/known_hosts"
    {
        echo "ListenAddress ${ADDR[$MGR]}:$SSH_PORT"
        echo "HostKey $SSH_DIR/host_ed25519"
        echo "AuthorizedKeysFile $SSH_DIR/authorized_keys"
        echo "PermitRootLogin prohibit-password"
        echo "PubkeyAuthentication yes"
        echo "PasswordAuthentication no"
        echo "KbdInteractiveAuthentication no"
        echo "UsePAM no"
        echo "StrictModes no"
        echo "PermitUserEnvironment DOCKER_HOST"
        echo "PidFile none"
    } >"$SSH_DIR/sshd_config"
    # sshd's privilege separation directory (Debian's service creates it)
    if [[ ! -d /run/sshd ]]; then
        mkdir -p /run/sshd
        echo /run/sshd >>"$DATA/dirs.created"
    fi
    # no inherited descriptor (a test's lab lock) may outlive the caller in sshd
    setsid nsenter --net="/run/netns/$MGR" bash -c "$CLOSE_INHERITED"'; exec "$@"' sh \
        /usr/sbin/sshd -D -e -f "$SSH_DIR/sshd_config" </dev/null >>"$SSH_DIR/sshd.log" 2>&1 &
    echo $! >"$SSH_DIR/sshd.pid"
    wait_until 20 "the manager's sshd (log: $SSH_DIR/sshd.log)" sshd_answers
}

start_nodes() {
    local n
    for n in "${NODES[@]}"; do
        write_node_config "$n"
        # containerd inside the node's netns (containers sharing the runtime's netns, and shims,
        # then live in the node, not on the host)
        setsid nsenter --net="/run/netns/$n" bash -c "$CLOSE_INHERITED"'; exec "$@"' sh \
            containerd --config "$DATA/$n/containerd.toml" \
            </dev/null >>"$STATE/$n/containerd.log" 2>&1 9>&- &
        echo $! >"$STATE/$n/containerd.pid"
    done
    for n in "${NODES[@]}"; do
        wait_until 20 "containerd of $n" test -S "$STATE/$n/containerd/containerd.sock"
    done
    make_tls
    for n in "${NODES[@]}"; do start_dockerd "$n"; done
    for n in "${NODES[@]}"; do wait_dockerd "$n"; done
}

node_answers() { # NODE
    local n=$1 pid
    pid=$(read_pid "$STATE/$n/dockerd.launch.pid")
    alive "$pid" || die "dockerd of $n exited: $(tail -n 5 "$STATE/$n/dockerd.log")"
    dk "$n" version --format '{{.Server.APIVersion}}' >/dev/null 2>&1
}

nodes_ready() { # true if the swarm has all 4 nodes Ready
    local ready
    ready=$(dk "$MGR" node ls --format '{{.Hostname}} {{.Status}}' 2>/dev/null | grep -c ' Ready$') || return 1
    [[ $ready -eq ${#NODES[@]} ]]
}

init_swarm() {
    local n token pids=()
    dk "$MGR" swarm init --advertise-addr "${ADDR[$MGR]}" --listen-addr "${ADDR[$MGR]}:2377" \
        --default-addr-pool "$SWARM_POOL" --default-addr-pool-mask-length 24 >/dev/null
    token=$(dk "$MGR" swarm join-token -q worker)
    for n in "${NODES[@]}"; do
        [[ $n == "$MGR" ]] && continue
        dk "$n" swarm join --token "$token" --advertise-addr "${ADDR[$n]}" \
            --listen-addr "${ADDR[$n]}:2377" "${ADDR[$MGR]}:2377" >/dev/null &
        pids+=($!)
    done
    for n in "${pids[@]}"; do wait "$n" || die "swarm join failed"; done
    wait_until 30 "4 Ready swarm nodes" nodes_ready
}

# node_labels: every node labelled exactly as the fixture wants (also used by reset)
node_labels() {
    local n want have args l
    for n in "${NODES[@]}"; do
        want=$SWARM_LABEL
        [[ -n ${ROLE[$n]} ]] && want+=$'\n'"role=${ROLE[$n]}"
        # shellcheck disable=SC2016  # Go template
        have=$(dk "$MGR" node inspect "$n" --format '{{range $k, $v := .Spec.Labels}}{{$k}}={{$v}}{{"\n"}}{{end}}{{.Spec.Availability}}')
        if [[ $(sort <<<"$want"$'\n'"active" | grep -v '^$') == $(sort <<<"$have" | grep -v '^$') ]]; then
            continue
        fi
        args=(--availability active)
        while read -r l; do
            # drop labels the fixture does not have (the CLI adds before it removes)
            [[ -n $l && $l == *=* ]] || continue
            grep -q "^${l%%=*}=" <<<"$want" || args+=(--label-rm "${l%%=*}")
        done <<<"$have"
        while read -r l; do args+=(--label-add "$l"); done <<<"$want"
        dk "$MGR" node update "${args[@]}" "$n" >/dev/null
    done
}

image_src_hash() {
    cat "$LAB_DIR/standin-core.sh" "$LAB_DIR/standin-proxy.sh" | sha256sum | cut -c1-16
}

build_image() {
    local ctx=$DATA/build cli bb n a pids=() id
    rm -rf "$ctx"
    mkdir -p "$ctx/rootfs/bin" "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/www" "$ctx/rootfs/tmp" "$ctx/rootfs/etc"
    cli=/usr/local/bin/docker
    [[ -x $cli ]] && static_binary "$cli" || cli=$(command -v docker)
    static_binary "$cli" || die "no statically linked docker CLI found (tried /usr/local/bin/docker, $cli)"
    bb=$(command -v busybox)
    static_binary "$bb" || die "$bb is not statically linked (install busybox-static)"
    cp "$bb" "$ctx/rootfs/bin/busybox"
    for a in $("$bb" --list); do
        [[ $a == busybox ]] || ln -s busybox "$ctx/rootfs/bin/$a"
    done
    cp "$cli" "$ctx/rootfs/usr/local/bin/docker"
    cp "$LAB_DIR/standin-core.sh" "$ctx/rootfs/standin-core.sh"
    cp "$LAB_DIR/standin-proxy.sh" "$ctx/rootfs/standin-proxy.sh"
    chmod 755 "$ctx/rootfs/standin-core.sh" "$ctx/rootfs/standin-proxy.sh"
    chmod 1777 "$ctx/rootfs/tmp"
    echo "interlock-proxy-standin" >"$ctx/rootfs/www/index.html"
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$ctx/rootfs/etc/passwd"
    printf 'root:x:0:\n' >"$ctx/rootfs/etc/group"
    cat >"$ctx/Dockerfile" <<EOF
FROM scratch
COPY rootfs/ /
ENV PATH=/bin:/usr/local/bin HOME=/tmp
LABEL com.interlockctl.lab.src=$(image_src_hash)
CMD ["/bin/sh"]
EOF
    log "building the stand-in image on $MGR"
    DOCKER_BUILDKIT=0 dk "$MGR" build -q --iidfile "$ctx/iid" -t "$IMAGE_TAG" "$ctx" >/dev/null 2>"$ctx/build.err" ||
        die "image build failed: $(cat "$ctx/build.err")"
    id=$(cat "$ctx/iid")
    [[ $id == sha256:* ]] || die "bad image id '$id'"
    dk "$MGR" save -o "$ctx/image.tar" "$IMAGE_TAG"
    for n in "${NODES[@]}"; do
        [[ $n == "$MGR" ]] && continue
        dk "$n" load -q -i "$ctx/image.tar" >/dev/null &
        pids+=($!)
    done
    for a in "${pids[@]}"; do wait "$a" || die "image load failed"; done
    for n in "${NODES[@]}"; do
        dk "$n" image inspect "$id" >/dev/null || die "image $id missing on $n"
    done
    rm -f "$ctx/image.tar"
    LAB_IMAGE=$id
}

write_env() {
    local n workers="" dtr="" all="" dtrn="" tmp
    for n in "${NODES[@]}"; do
        all+=" ${ADDR[$n]}"
        [[ $n == "$MGR" ]] || workers+=" ${ADDR[$n]}"
        [[ ${ROLE[$n]} == dtr ]] && { dtr+=" ${ADDR[$n]}"; dtrn+=" $n"; }
    done
    tmp=$ENV_FILE.tmp
    {
        echo "# interlockctl test lab, written by tests/lab/lab.sh up ($(date -u +%FT%TZ))"
        echo "DOCKER_HOST=unix://$(sock "$MGR")"
        echo "LAB_IMAGE=$LAB_IMAGE"
        echo "LAB_IMAGE_SRC=$(image_src_hash)"
        echo "LAB_MANAGER_ADDR=${ADDR[$MGR]}"
        echo "LAB_NODE_ADDRS=\"${workers# }\""
        echo "LAB_DTR_ADDRS=\"${dtr# }\""
        echo "LAB_ALL_ADDRS=\"${all# }\""
        echo "LAB_HOST_ADDR=$HOST_ADDR"
        echo "LAB_NODES=\"${NODES[*]}\""
        echo "LAB_DTR_NODES=\"${dtrn# }\""
        for n in "${NODES[@]}"; do
            echo "LAB_SOCK_$(tr 'a-z-' 'A-Z_' <<<"${n#ilab-}")=unix://$(sock "$n")"
        done
        echo "LAB_CONFIG_NAME=$CONF1"
        echo "LAB_CORE_CONFIG=$LAB_DIR/core-config.toml"
        echo "LAB_INSTANCE_ID=$INSTANCE_ID"
        echo "LAB_NETWORK=$OVERLAY"
        echo "LAB_SH=$LAB_DIR/lab.sh"
        echo "LAB_TLS_HOST=$(tls_host)"
        echo "LAB_CERT_PATH=$TLS/client"
        echo "LAB_SSH_HOST=$(ssh_host)"
        echo "LAB_SSH_DIR=$SSH_DIR"
    } >"$tmp"
    mv "$tmp" "$ENV_FILE"
}

load_env() {
    [[ -r $ENV_FILE ]] || return 1
    LAB_IMAGE=$(sed -n 's/^LAB_IMAGE=//p' "$ENV_FILE")
    LAB_IMAGE_SRC=$(sed -n 's/^LAB_IMAGE_SRC=//p' "$ENV_FILE")
    [[ $LAB_IMAGE == sha256:* ]]
}

# ---------------------------------------------------------------- fixture

lab_services() { dk "$MGR" service ls --format '{{.Name}}' | grep -E '^(ucp-interlock|lab-)' || true; }

# containers (ID NAME) of the given services still running on node NODE
running_task_containers() { # NODE SERVICE...
    local n=$1; shift
    dk "$n" ps --format '{{.ID}} {{.Label "com.docker.swarm.service.name"}}' |
        awk 'NR == FNR { want[$0] = 1; next } ($2 in want) { print $1 }' <(printf '%s\n' "$@") -
}
# true when no container of the given services is running on any node. Exited containers
# are destroyed by Swarm a few seconds later; their ports are already free.
tasks_stopped() { # SERVICE...
    local n ids
    for n in "${NODES[@]}"; do
        ids=$(running_task_containers "$n" "$@") || return 1
        [[ -z $ids ]] || return 1
    done
}
# Swarm stops the tasks of a removed service only after a fixed 2 s "gossip converge" sleep
# (and ~1 s dispatch) when they have network attachments; the lab does not need a graceful
# stop, so it kills them right away.
kill_task_containers() { # SERVICE...
    local n ids pids=()
    for n in "${NODES[@]}"; do
        mapfile -t ids < <(running_task_containers "$n" "$@")
        if ((${#ids[@]})); then dk "$n" kill "${ids[@]}" >/dev/null 2>&1 & pids+=($!); fi
    done
    for n in "${pids[@]}"; do wait "$n" || true; done
}

# true when every NAME=N service has N running tasks (and no more)
services_running() {
    local want have line
    have=$(dk "$MGR" service ls --format '{{.Name}} {{.Replicas}}') || return 1
    for want in "$@"; do
        line=$(grep -E "^${want%%=*} " <<<"$have") || return 1
        [[ ${line#* } == "${want#*=}/${want#*=}" ]] || return 1
    done
}

# true when no lab-* network is left (a network still in use by a stopping task stays)
remove_lab_networks() {
    local networks
    mapfile -t networks < <(dk "$MGR" network ls --format '{{.Name}}' | grep -E '^lab-' || true)
    ((${#networks[@]})) || return 0
    dk "$MGR" network rm "${networks[@]}" >/dev/null 2>&1
}

# true once the core's task has finished starting: its config loaded, its proxy reconciled
# (the page it serves is written last, just before it starts serving)
core_started() {
    local id
    id=$(running_task_containers "$MGR" ucp-interlock | head -n 1)
    [[ -n $id ]] && dk "$MGR" exec "$id" test -f /tmp/core-www/index.html 2>/dev/null
}

# The image a fixture service runs: the stand-in's ID, or with LAB_INTERLOCK_IMAGES=names
# Interlock's old name for it (NAME is ucp-interlock, ucp-interlock-extension or -proxy).
fixture_image() { # NAME
    if [[ ${LAB_INTERLOCK_IMAGES:-} == names ]]; then echo "docker/$1:$INTERLOCK_OLD"; else echo "$LAB_IMAGE"; fi
}

# The failing core image: the stand-in with an entrypoint that exits 1, built on the manager
# from the stand-in's ID (local, no pull) once per stand-in image.
failing_core_image() {
    local ref=mirantis/ucp-interlock:$INTERLOCK_FAILING
    if [[ $(dk "$MGR" image inspect --format '{{index .Config.Labels "com.interlockctl.lab.fails-from"}}' "$ref" 2>/dev/null) != "$LAB_IMAGE" ]]; then
        printf 'FROM %s\nLABEL com.interlockctl.lab.fails-from=%s\nENTRYPOINT ["/bin/false"]\n' "$LAB_IMAGE" "$LAB_IMAGE" |
            DOCKER_BUILDKIT=0 dk "$MGR" build -q -t "$ref" - >/dev/null || die "building $ref failed"
    fi
}

# Tags the stand-in image under Interlock's names on every node (see IMAGES above).
tag_interlock_images() {
    engines_offline || die "LAB_INTERLOCK_IMAGES=names needs engines with $OFFLINE_ENV: run lab.sh up"
    local n name pids=() p
    for n in "${NODES[@]}"; do
        (
            for name in "${INTERLOCK_NAMES[@]}"; do
                dk "$n" tag "$LAB_IMAGE" "docker/$name:$INTERLOCK_OLD"
                dk "$n" tag "$LAB_IMAGE" "mirantis/$name:$INTERLOCK_NEW"
                [[ $name == ucp-interlock ]] || dk "$n" tag "$LAB_IMAGE" "mirantis/$name:$INTERLOCK_FAILING"
            done
        ) &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || die "tagging the Interlock image names failed"; done
    failing_core_image
}

reset_fixture() {
    local svcs configs secrets i
    load_env || die "no lab env file $ENV_FILE: run lab.sh up"
    node_labels
    for i in 1 2 3; do
        mapfile -t svcs < <(lab_services)
        ((${#svcs[@]})) || break
        log "removing services: ${svcs[*]}"
        dk "$MGR" service rm "${svcs[@]}" >/dev/null || true
        kill_task_containers "${svcs[@]}"
        wait_until "$TIMEOUT" "tasks of removed services to stop" tasks_stopped "${svcs[@]}"
    done
    mapfile -t configs < <(dk "$MGR" config ls --format '{{.Name}}' | grep -E '^(com\.docker\.ucp\.interlock\.conf|com\.docker\.interlock\.proxy\.|lab-)' || true)
    if ((${#configs[@]})); then dk "$MGR" config rm "${configs[@]}" >/dev/null; fi
    mapfile -t secrets < <(dk "$MGR" secret ls --format '{{.Name}}' | grep -E '^lab-' || true)
    if ((${#secrets[@]})); then dk "$MGR" secret rm "${secrets[@]}" >/dev/null; fi
    wait_until "$TIMEOUT" "lab-* networks to be removed" remove_lab_networks

    if ! dk "$MGR" network inspect "$OVERLAY" >/dev/null 2>&1; then
        dk "$MGR" network create --driver overlay --attachable \
            --label "com.docker.ucp.InstanceID=$INSTANCE_ID" "$OVERLAY" >/dev/null
    fi
    dk "$MGR" config create --label "com.docker.ucp.InstanceID=$INSTANCE_ID" \
        --label com.docker.ucp.access.label=/ "$CONF1" "$LAB_DIR/core-config.toml" >/dev/null

    # The proxy mounts the nginx config the core renders from conf-1, as after the core's
    # first swap: a fresh core finds it current and has nothing to roll.
    local proxy_config=()
    if [[ ${LAB_CORE_WRITER:-on} != off ]]; then
        DOCKER_HOST="unix://$(sock "$MGR")" sh "$LAB_DIR/standin-core.sh" --render-only \
            -c "$LAB_DIR/core-config.toml" |
            dk "$MGR" config create --label com.docker.interlock.proxy=true \
                com.docker.interlock.proxy.lab-fixture - >/dev/null
        proxy_config=(--config source=com.docker.interlock.proxy.lab-fixture,target=/etc/nginx/nginx.conf)
    fi

    local core_images=off
    if [[ ${LAB_INTERLOCK_IMAGES:-} == names ]]; then
        tag_interlock_images
        core_images=on
    fi
    local c=()
    for i in "${UCP_CONSTRAINTS[@]}"; do c+=(--constraint "$i"); done
    local common=(--detach --quiet --no-resolve-image --stop-grace-period 1s
        --update-delay 0s --update-monitor 2s
        --label "com.docker.ucp.InstanceID=$INSTANCE_ID"
        --container-label "com.docker.ucp.InstanceID=$INSTANCE_ID")
    # proxy and extension first: the core creates the proxy itself if it is missing.
    # Both proxy replicas are replaced at once (parallelism 2) to keep the suite fast.
    dk "$MGR" service create "${common[@]}" --name ucp-interlock-proxy --replicas 2 \
        --update-parallelism 2 \
        --label type=com.docker.interlock.core.proxy "${c[@]}" "${proxy_config[@]}" \
        --publish published=80,target=80 --publish published=8443,target=443 \
        --stop-signal SIGQUIT --update-failure-action rollback --hostname '{{.Node.Hostname}}' \
        "$(fixture_image ucp-interlock-proxy)" /standin-proxy.sh 80 443 >/dev/null
    dk "$MGR" service create "${common[@]}" --name ucp-interlock-extension --replicas 1 \
        --network "$OVERLAY" "${c[@]}" \
        "$(fixture_image ucp-interlock-extension)" sh -c 'trap "exit 0" TERM INT QUIT; echo "interlock-extension-standin"; while :; do sleep 1 & wait $!; done' >/dev/null
    # the core: no --update-failure-action (Swarm's default, pause); rollback is the tool's job
    dk "$MGR" service create "${common[@]}" --name ucp-interlock --replicas 1 \
        --constraint node.role==manager --network "$OVERLAY" \
        --config "source=$CONF1,target=/config.toml" \
        --mount "type=bind,source=$(sock "$MGR"),target=/var/run/docker.sock" \
        --env "LAB_IMAGE=$LAB_IMAGE" --env "LAB_CORE_WRITER=${LAB_CORE_WRITER:-on}" \
        --env "LAB_CORE_IMAGES=$core_images" \
        "$(fixture_image ucp-interlock)" /standin-core.sh run -c /config.toml >/dev/null
    log "fixture created, waiting for its tasks"
    wait_until "$TIMEOUT" "fixture services to run" \
        services_running ucp-interlock=1 ucp-interlock-extension=1 ucp-interlock-proxy=2
    wait_until "$TIMEOUT" "the core to start" core_started
    netfiles_record
}

fixture_present() {
    local have
    have=$(dk "$MGR" service ls --format '{{.Name}}' 2>/dev/null) || return 1
    for s in ucp-interlock ucp-interlock-extension ucp-interlock-proxy; do
        grep -qxF "$s" <<<"$have" || return 1
    done
}

lab_is_up() {
    local n
    load_env || return 1
    for n in "${NODES[@]}"; do
        ours "$(read_pid "$STATE/$n/dockerd.pid")" "$(sock "$n")" || return 1
        ours "$(read_pid "$STATE/$n/containerd.pid")" "$DATA/$n/containerd.toml" || return 1
    done
    nodes_ready || return 1
    dk "$MGR" image inspect "$LAB_IMAGE" >/dev/null 2>&1
}

# ---------------------------------------------------------------- commands

cmd_up() {
    lock
    ensure_packages
    if lab_is_up; then
        fw_add
        if ! tls_answers; then
            restart_manager_with_tls
            write_env
            reset_fixture
        elif ! grep -q '^LAB_TLS_HOST=' "$ENV_FILE"; then
            write_env
        fi
        if ! engines_offline; then
            restart_engines_offline
            reset_fixture
        fi
        start_sshd
        grep -q '^LAB_SSH_HOST=' "$ENV_FILE" || write_env
        if [[ $LAB_IMAGE_SRC != "$(image_src_hash)" ]]; then
            log "stand-in scripts changed: rebuilding the image"
            build_image
            write_env
            reset_fixture
        elif ! fixture_present; then
            log "lab is up, fixture incomplete: resetting"
            reset_fixture
        fi
        log "lab is up (env: $ENV_FILE)"
        return 0
    fi
    log "starting the lab from scratch"
    teardown
    mkdir -p "$STATE" "$DATA"
    netfiles_snapshot
    shared_dirs_snapshot
    setup_network
    start_nodes
    log "daemons answer"
    init_swarm
    node_labels
    log "swarm has ${#NODES[@]} Ready nodes"
    build_image
    start_sshd
    write_env
    reset_fixture
    log "lab is up (env: $ENV_FILE)"
}

cmd_reset() {
    lock
    lab_is_up || die "the lab is not up: run lab.sh up"
    reset_fixture
    log "fixture reset"
}

cmd_down() {
    lock
    teardown
    rm -f "$LOCK_FILE"
    log "lab is down"
}

cmd_status() {
    if ! load_env || ! ours "$(read_pid "$STATE/$MGR/dockerd.pid")" "$(sock "$MGR")"; then
        echo "lab is down"
        return 1
    fi
    echo "== nodes ($(sock "$MGR"))"
    dk "$MGR" node ls --format 'table {{.Hostname}}\t{{.Status}}\t{{.Availability}}\t{{.ManagerStatus}}\t{{.EngineVersion}}' || true
    echo "== services"
    dk "$MGR" service ls || true
    echo "== env ($ENV_FILE)"
    cat "$ENV_FILE"
    nodes_ready || { echo "lab is NOT healthy: not all ${#NODES[@]} nodes Ready"; return 1; }
}

cmd_restart_engine() {
    lock
    lab_is_up || die "the lab is not up: run lab.sh up"
    log "restarting the manager's engine"
    restart_engines "$MGR"
    log "the manager's engine is back"
}

# node_status_is NODE STATUS: the swarm reports NODE's status as STATUS (Ready, Down)
node_status_is() {
    [[ $(dk "$MGR" node inspect --format '{{.Status.State}}' "$1" 2>/dev/null) == "${2,,}" ]]
}

# worker NODE: dies unless NODE is one of the lab's workers (the manager's engine is the lab's)
worker() {
    [[ -n ${ADDR[${1:-}]:-} && $1 != "$MGR" ]] || die "not a worker of the lab: ${1:-} (workers: ${NODES[*]:1})"
}

# worker_dockerd WORKER: the PID of the worker's dockerd, checked against its command line
worker_dockerd() {
    local pid
    worker "$1"
    load_env || die "no lab env file $ENV_FILE: run lab.sh up"
    pid=$(read_pid "$STATE/$1/dockerd.pid")
    ours "$pid" "$(sock "$1")" || die "dockerd of $1: not running from its pid file"
    echo "$pid"
}

cmd_node_pause() {
    local n=${1:-} pid
    pid=$(worker_dockerd "$n")
    lock
    log "pausing the engine of $n (pid $pid)"
    kill -STOP "$pid"
    wait_until "$TIMEOUT" "the swarm to report $n Down" node_status_is "$n" Down
}

cmd_node_resume() {
    local n=${1:-} pid
    pid=$(worker_dockerd "$n")
    lock
    log "resuming the engine of $n (pid $pid)"
    kill -CONT "$pid"
    wait_until "$TIMEOUT" "${#NODES[@]} Ready swarm nodes" nodes_ready
}

cmd_rebuild_image() {
    lock
    lab_is_up || die "the lab is not up: run lab.sh up"
    build_image
    write_env
    reset_fixture
}

main() {
    [[ $(id -u) -eq 0 ]] || die "run as root"
    local cmd=${1:-}
    shift || true
    case "$cmd" in
        up) cmd_up ;;
        reset) cmd_reset ;;
        down) cmd_down ;;
        status) cmd_status ;;
        rebuild-image) cmd_rebuild_image ;;
        restart-engine) cmd_restart_engine ;;
        env) cat "$ENV_FILE" ;;
        node-pause) cmd_node_pause "$@" ;;
        node-resume) cmd_node_resume "$@" ;;
        node)
            [[ -n ${1:-} && -n ${ADDR[${1:-}]:-} ]] || die "usage: lab.sh node {${NODES[*]}} DOCKER-ARGS..."
            dk "$@"
            ;;
        *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
    esac
}

main "$@"
