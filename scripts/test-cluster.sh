#!/usr/bin/env bash
# Test hosts on one machine: N Docker engines, each a dockerd of its own in a network namespace of
# its own, reachable over SSH as a deploy user, a 3-node Swarm made of them, and an image registry
# beside them (Debian's docker-registry, plain HTTP, with a user and password).
#
#   scripts/test-cluster.sh up [N]          start what is missing (N engines, default 3); prints env
#   scripts/test-cluster.sh env             the facts tests read (DOCKER_HOSTs, registry, ssh HOME)
#   scripts/test-cluster.sh stop I [what]   stop engine I's dockerd (default) or its sshd
#   scripts/test-cluster.sh start I [what]  start it again (the engine rejoins its swarm by itself)
#   scripts/test-cluster.sh down            stop and remove all of it
#
# Docker-in-Docker is out here (a --privileged container cannot start: runc cannot apply its
# caps), so each host is a dockerd entered into its namespace with nsenter (`ip netns exec`
# remounts /sys, and dockerd then fails with "Devices cgroup isn't mounted"), its own data and
# exec roots and socket, no default bridge and no iptables rules. A LAN namespace holds the
# bridge every host and this machine are plugged into by veth pairs: its iptables are empty, so
# nothing of this machine's firewall (Docker's FORWARD DROP) is in the way.
#
# Every process is started by this script with its PID kept in $BGCI_CLUSTER_DIR, and stopped
# by that PID: never by name. Runs as root; needs iproute2, util-linux (nsenter), docker.io,
# openssh-server, docker-registry and apache2-utils (scripts/test-env.sh installs them).
set -euo pipefail

DIR=${BGCI_CLUSTER_DIR:-/var/lib/bgci-cluster}
NET=${BGCI_CLUSTER_NET:-10.213.0}          # the hosts' /24: this machine .1, host I .(10+I)
POOL=${BGCI_CLUSTER_POOL:-10.214.0.0/16}    # the swarm's overlay networks
PREFIX=${BGCI_CLUSTER_PREFIX:-bgci}         # names of the namespaces, links and deploy user
REGISTRY=$NET.1:5000
REGISTRY_USER=bgci
DEPLOY=$PREFIX-deploy
LAN=$PREFIX-lan
IMAGES=(${BGCI_CLUSTER_IMAGES:-bgci-test/python:bookworm bgci-test/haproxy:local})
DOCKER=${DOCKER:-docker}
SSH_CONFIG_D=/etc/ssh/ssh_config.d

say() { printf 'test-cluster: %s\n' "$*" >&2; }
die() { printf 'test-cluster: error: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root (it makes network namespaces and starts dockerd)"

node_ns() { echo "$PREFIX-node$1"; }
node_ip() { echo "$NET.$((10 + $1))"; }
node_dir() { echo "$DIR/node$1"; }
sock() { echo "unix://$(node_dir "$1")/docker.sock"; }
in_node() { local i=$1; shift; nsenter --net="/run/netns/$(node_ns "$i")" "$@"; }
node_docker() { local i=$1; shift; "$DOCKER" -H "$(sock "$i")" "$@"; }
alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }
pid_of() { cat "$1" 2>/dev/null || true; }
count() { cat "$DIR/nodes" 2>/dev/null || echo 0; }

# stop_pids SECONDS FILE...: SIGTERM the processes the FILEs name, all at once; SIGKILL what is
# still alive after SECONDS; remove the FILEs.
stop_pids() {
    local grace=$1 pid i left
    shift
    local pids=()
    for file in "$@"; do
        pid=$(pid_of "$file")
        alive "$pid" && kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
    done
    for ((i = 0; i < grace * 10; i++)); do
        left=0
        for pid in "${pids[@]}"; do alive "$pid" && left=1; done
        ((left)) || break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do
        if alive "$pid"; then
            say "process $pid did not stop within ${grace}s: killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for pid in "${pids[@]}"; do
        for ((i = 0; i < 50; i++)); do alive "$pid" || break; sleep 0.1; done
    done
    rm -f "$@"
}

# wait_for SECONDS WHAT CMD...: until CMD succeeds.
wait_for() {
    local seconds=$1 what=$2 i
    shift 2
    for ((i = 0; i < seconds * 4; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
    die "$what did not come up within ${seconds}s"
}

# ---- the network -------------------------------------------------------------------------------
network_up() {
    local n=$1 i ns
    if [[ ! -e /run/netns/$LAN ]]; then
        ip netns add "$LAN"
        ip -n "$LAN" link set lo up
        ip -n "$LAN" link add br0 type bridge
        ip -n "$LAN" link set br0 up
    fi
    if ! ip link show "$PREFIX-lan0" >/dev/null 2>&1; then
        ip link add "$PREFIX-lan0" type veth peer name host netns "$LAN"
        ip -n "$LAN" link set host master br0 up
        ip addr add "$NET.1/24" dev "$PREFIX-lan0"
        ip link set "$PREFIX-lan0" up
    fi
    for ((i = 1; i <= n; i++)); do
        ns=$(node_ns "$i")
        [[ -e /run/netns/$ns ]] && continue
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        ip -n "$LAN" link add "node$i" type veth peer name eth0 netns "$ns"
        ip -n "$LAN" link set "node$i" master br0 up
        ip -n "$ns" addr add "$(node_ip "$i")/24" dev eth0
        ip -n "$ns" link set eth0 up
    done
}

# ---- the deploy user and the keys --------------------------------------------------------------
keys_up() {
    local n=$1 i
    mkdir -p "$DIR/ssh" "$DIR/client/.ssh" "$DIR/deploy-home"
    chmod 755 "$DIR" "$DIR/ssh"
    chmod 700 "$DIR/client" "$DIR/client/.ssh"
    if ! getent passwd "$DEPLOY" >/dev/null; then
        useradd --system --user-group --shell /bin/sh --home-dir "$DIR/deploy-home" \
            --no-create-home "$DEPLOY"
        usermod -p '*' "$DEPLOY"  # no password, yet not locked: sshd lets a key in
        touch "$DIR/made-user"
    fi
    chown "$DEPLOY:" "$DIR/deploy-home"
    [[ -f $DIR/ssh/host_key ]] || ssh-keygen -q -t ed25519 -N '' -f "$DIR/ssh/host_key"
    [[ -f $DIR/client/.ssh/id_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -f "$DIR/client/.ssh/id_ed25519"
    cp "$DIR/client/.ssh/id_ed25519.pub" "$DIR/ssh/authorized_keys"
    chmod 644 "$DIR/ssh/authorized_keys"
    : >"$DIR/client/.ssh/known_hosts"
    : >"$DIR/client/.ssh/config"
    for ((i = 1; i <= n; i++)); do
        echo "$(node_ip "$i") $(cut -d' ' -f1,2 "$DIR/ssh/host_key.pub")" >>"$DIR/client/.ssh/known_hosts"
        printf 'Host %s\n    User %s\n    IdentityFile %s\n    UserKnownHostsFile %s\n' \
            "$(node_ip "$i")" "$DEPLOY" "$DIR/client/.ssh/id_ed25519" \
            "$DIR/client/.ssh/known_hosts" >>"$DIR/client/.ssh/config"
    done
    # the ssh client finds its files by the user's home in passwd, not $HOME (the SDK's by
    # $HOME): the docker CLI's ssh:// reads the test hosts' keys from the system-wide config,
    # for their addresses only
    if [[ -d $SSH_CONFIG_D ]]; then
        cp "$DIR/client/.ssh/config" "$SSH_CONFIG_D/$PREFIX-cluster.conf"
    fi
}

sshd_up() {
    local i=$1 dir path
    dir=$(node_dir "$i")
    alive "$(pid_of "$dir/sshd.pid")" && return 0
    # the remote end of DOCKER_HOST=ssh:// runs `docker system dial-stdio`: the CLI on PATH, and
    # DOCKER_HOST naming this host's engine
    path=$(dirname "$(command -v "$DOCKER")"):/usr/local/bin:/usr/bin:/bin
    cat >"$dir/sshd_config" <<EOF
ListenAddress $(node_ip "$i")
HostKey $DIR/ssh/host_key
AuthorizedKeysFile $DIR/ssh/authorized_keys
AllowUsers $DEPLOY
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile $dir/sshd.pid
MaxSessions 100
MaxStartups 100
SetEnv DOCKER_HOST=$(sock "$i") PATH=$path
EOF
    [[ -d /run/sshd ]] || install -d -m 0755 /run/sshd
    rm -f "$dir/sshd.pid"
    in_node "$i" /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log" 9>&-
    wait_for 10 "sshd of node $i" test -s "$dir/sshd.pid"
}

# ---- the engines -------------------------------------------------------------------------------
dockerd_up() {
    local i=$1 dir
    dir=$(node_dir "$i")
    alive "$(pid_of "$dir/dockerd.pid")" && return 0
    mkdir -p "$dir/data" "$dir/exec"
    chmod 755 "$dir"
    rm -f "$dir/dockerd.pid"
    setsid nsenter --net="/run/netns/$(node_ns "$i")" dockerd \
        --data-root "$dir/data" --exec-root "$dir/exec" -H "$(sock "$i")" --group "$DEPLOY" \
        --pidfile "$dir/dockerd.pid" --bridge none --iptables=false --ip6tables=false \
        --insecure-registry "$REGISTRY" --storage-driver overlay2 \
        >>"$dir/dockerd.log" 2>&1 </dev/null 9>&- &
    wait_for 60 "dockerd of node $i (log: $dir/dockerd.log)" node_docker "$i" info
}

# node_has_images I: engine I has every test image (whatever their IDs)
node_has_images() { node_docker "$1" image inspect "${IMAGES[@]}" >/dev/null 2>&1; }

images_up() {
    local n=$1 i ids
    if ids=$("$DOCKER" image inspect -f '{{.Id}}' "${IMAGES[@]}" 2>/dev/null | sort | tr '\n' ' '); then
        if [[ $(cat "$DIR/images.ids" 2>/dev/null || true) != "$ids" ]]; then
            say "saving ${IMAGES[*]}"
            "$DOCKER" save -o "$DIR/images.tar" "${IMAGES[@]}"
            echo "$ids" >"$DIR/images.ids"
        fi
    else  # this machine's engine is away (restarting?): what the hosts have, or the saved copy
        ids=$(cat "$DIR/images.ids" 2>/dev/null || true)
        if [[ -z $ids ]]; then
            for ((i = 1; i <= n; i++)); do
                node_has_images "$i" || die "missing test image(s) ${IMAGES[*]} on this machine's engine: run scripts/test-env.sh first"
            done
            return 0
        fi
    fi
    local pids=()
    for ((i = 1; i <= n; i++)); do
        [[ $(node_docker "$i" image inspect -f '{{.Id}}' "${IMAGES[@]}" 2>/dev/null | sort | tr '\n' ' ') == "$ids" ]] \
            && continue
        node_docker "$i" load -q -i "$DIR/images.tar" >/dev/null &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || die "docker load into a node failed"; done
}

swarm_up() {
    local n=$1 i state token
    state=$(node_docker 1 info -f '{{.Swarm.LocalNodeState}}')
    if [[ $state != active ]]; then
        node_docker 1 swarm init --advertise-addr "$(node_ip 1)" --listen-addr "$(node_ip 1):2377" \
            --default-addr-pool "$POOL" >/dev/null
    fi
    token=$(node_docker 1 swarm join-token -q worker)
    for ((i = 2; i <= n && i <= 3; i++)); do
        state=$(node_docker "$i" info -f '{{.Swarm.LocalNodeState}}')
        [[ $state == active || $state == pending ]] && continue
        node_docker "$i" swarm join --advertise-addr "$(node_ip "$i")" \
            --listen-addr "$(node_ip "$i"):2377" --token "$token" "$(node_ip 1):2377" >/dev/null
    done
    # how runners reach each node's engine (bgci's swarm router host reads this label)
    for ((i = 1; i <= n && i <= 3; i++)); do
        node_docker 1 node update --label-add "org.bgci.engine=ssh://$DEPLOY@$(node_ip "$i")" \
            "$(node_docker "$i" info -f '{{.Swarm.NodeID}}')" >/dev/null
    done
}

# ---- the registry ------------------------------------------------------------------------------
registry_up() {
    local reg=$DIR/registry
    alive "$(pid_of "$reg.pid")" && return 0
    mkdir -p "$reg/data"
    if [[ ! -f $reg/htpasswd ]]; then
        # the registry reads bcrypt only (htpasswd -B; Python's crypt module is gone in 3.13)
        (
            umask 077
            python3 -c 'import secrets; print(secrets.token_hex(16), end="")' >"$reg/password"
            htpasswd -niB "$REGISTRY_USER" <"$reg/password" | sed "/^$/d" >"$reg/htpasswd"
        )
    fi
    cat >"$reg/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $reg/data
  delete:
    enabled: true
http:
  addr: $REGISTRY
auth:
  htpasswd:
    realm: bgci-test
    path: $reg/htpasswd
EOF
    setsid /usr/bin/docker-registry serve "$reg/config.yml" >>"$reg.log" 2>&1 </dev/null 9>&- &
    echo $! >"$reg.pid"
    wait_for 15 "the registry at $REGISTRY (log: $reg.log)" \
        python3 -c "import socket; socket.create_connection(('$NET.1', 5000), 1)"
}

# ---- what tests read ---------------------------------------------------------------------------
write_env() {
    local n=$1 i
    {
        echo "BGCI_CLUSTER_NODES=$n"
        for ((i = 1; i <= n; i++)); do
            echo "BGCI_CLUSTER_HOST$i=ssh://$DEPLOY@$(node_ip "$i")"
            echo "BGCI_CLUSTER_SOCKET$i=$(sock "$i")"
            echo "BGCI_CLUSTER_ADDRESS$i=$(node_ip "$i")"
        done
        echo "BGCI_CLUSTER_HOME=$DIR/client"
        echo "BGCI_CLUSTER_REGISTRY=$REGISTRY"
        echo "BGCI_CLUSTER_REGISTRY_USER=$REGISTRY_USER"
        echo "BGCI_CLUSTER_REGISTRY_PASSWORD=$(cat "$DIR/registry/password")"
    } >"$DIR/env.tmp"
    chmod 600 "$DIR/env.tmp"
    mv "$DIR/env.tmp" "$DIR/env"
}

up() {
    local n=${1:-3} i pids=()
    [[ $n =~ ^[1-9]$ ]] || die "up N: N is 1 to 9 engines"
    [[ $(count) -le $n ]] || die "$(count) engines run; \`$0 down\` first to make fewer"
    for tool in ip nsenter dockerd /usr/sbin/sshd /usr/bin/docker-registry ssh-keygen htpasswd; do
        command -v "$tool" >/dev/null || die "$tool is missing: run scripts/test-env.sh first"
    done
    mkdir -p "$DIR"
    echo "$n" >"$DIR/nodes"
    network_up "$n"
    keys_up "$n"
    registry_up
    for ((i = 1; i <= n; i++)); do mkdir -p "$(node_dir "$i")"; dockerd_up "$i" & pids+=($!); done
    for pid in "${pids[@]}"; do wait "$pid"; done
    for ((i = 1; i <= n; i++)); do sshd_up "$i"; done
    images_up "$n"
    swarm_up "$n"
    write_env "$n"
    for ((i = 1; i <= n; i++)); do
        say "engine $i: DOCKER_HOST=ssh://$DEPLOY@$(node_ip "$i") (or $(sock "$i"))"
    done
    say "registry: $REGISTRY (user $REGISTRY_USER, password in $DIR/registry/password)"
    say "swarm: manager engine 1, workers 2..$((n < 3 ? n : 3)); ssh keys for the client: HOME=$DIR/client"
    cat "$DIR/env"
}

down() {
    local n i mounts
    n=$(count)
    local files=("$DIR/registry.pid")
    for ((i = 1; i <= n; i++)); do
        files+=("$(node_dir "$i")/sshd.pid" "$(node_dir "$i")/dockerd.pid")
    done
    stop_pids 30 "${files[@]}"
    # a killed engine's containerd and container shims: they run from its exec root
    local strays=() proc
    for proc in /proc/[0-9]*; do
        grep -qF "$DIR/" "$proc/cmdline" 2>/dev/null && strays+=("${proc#/proc/}")
    done
    if ((${#strays[@]})); then
        say "killing what the engines left running: ${strays[*]}"
        kill -KILL "${strays[@]}" 2>/dev/null || true
    fi
    for ((i = 1; i <= 9; i++)); do  # every node namespace of this prefix, whatever `up N` made
        # gone between the look and the delete (its last process just exited) is gone all the same
        if [[ -e /run/netns/$(node_ns "$i") ]]; then
            ip netns del "$(node_ns "$i")" 2>/dev/null || [[ ! -e /run/netns/$(node_ns "$i") ]] ||
                die "cannot remove network namespace $(node_ns "$i")"
        fi
    done
    ip link del "$PREFIX-lan0" 2>/dev/null || true
    if [[ -e /run/netns/$LAN ]]; then ip netns del "$LAN"; fi
    # what a killed engine left mounted under its roots
    mounts=$(awk -v d="$DIR/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r)
    for m in $mounts; do umount -l "$m" 2>/dev/null || true; done
    rm -f "$SSH_CONFIG_D/$PREFIX-cluster.conf"
    if [[ -f $DIR/made-user ]]; then userdel "$DEPLOY" 2>/dev/null || true; fi
    [[ -d $DIR ]] && rm -rf "$DIR"
    say "down: nothing of the test cluster is left"
}

node_arg() {
    [[ ${1:-} =~ ^[1-9]$ && $1 -le $(count) ]] || die "no engine ${1:-} (engines: 1..$(count))"
}

# one change of the test hosts at a time: a second `up` waits for the first and then finds all up
# (the daemons it starts do not inherit the lock: `9>&-`)
if [[ ${1:-} != env ]]; then
    exec 9>"/run/lock/$PREFIX-cluster.lock"
    flock -w 600 9 || die "another test-cluster.sh held /run/lock/$PREFIX-cluster.lock for 10 min"
fi

case ${1:-} in
    up) up "${2:-3}" ;;
    down) down ;;
    env) cat "$DIR/env" ;;
    stop)
        node_arg "${2:-}"
        case ${3:-dockerd} in
            dockerd) stop_pids 30 "$(node_dir "$2")/dockerd.pid" ;;
            sshd) stop_pids 5 "$(node_dir "$2")/sshd.pid" ;;
            *) die "stop I dockerd|sshd" ;;
        esac ;;
    start)
        node_arg "${2:-}"
        case ${3:-dockerd} in
            dockerd) dockerd_up "$2" ;;
            sshd) sshd_up "$2" ;;
            *) die "start I dockerd|sshd" ;;
        esac ;;
    *) die "usage: $0 up [N] | env | stop I [dockerd|sshd] | start I [dockerd|sshd] | down" ;;
esac
