#!/usr/bin/env bash
# run-demo.sh: start deskgated for a quick try (used by `make run`).
#
#   scripts/run-demo.sh [DESKGATED-ARGS...]
#
# With a desktop session (DISPLAY or WAYLAND_DISPLAY set) the daemon runs against it. Without one,
# it runs inside scripts/headless-desktop.sh next to the GTK3 demo app (deskgate-fixture-gtk3).
# Prints the socket path and three commands to try, then runs until interrupted (Ctrl-C).
#
# Environment:
#   DESKGATED        daemon binary (default .build/debug/deskgated)
#   DESKGATE_CLI     client binary shown in the hints (default .build/debug/deskgate)
#   DESKGATE_SOCKET  socket path (default $XDG_RUNTIME_DIR/deskgate/deskgate.sock with a desktop,
#                    a fresh temp path in the headless case)
#   DEMO_ROWS        extra rows in the headless demo app (default 20)
set -u
ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
DESKGATED=${DESKGATED:-$ROOT/.build/debug/deskgated}
CLI=${DESKGATE_CLI:-$ROOT/.build/debug/deskgate}
[ -x "$DESKGATED" ] || { echo "run-demo: $DESKGATED not found; build first (swift build)" >&2; exit 1; }

hints() {  # socket
    local sock=$1 env=""
    [ "$sock" != "${DEFAULT_SOCKET:-}" ] && env="DESKGATE_SOCKET=$sock "
    cat >&2 <<EOF

deskgated is listening on $sock
Try, from another terminal:
  ${env}$CLI apps
  ${env}$CLI tree deskgate-fixture-gtk3 --outline --filter interactive
  ${env}$CLI fill deskgate-fixture-gtk3 Name Alice
Stop with Ctrl-C.

EOF
}

if [ "${1:-}" = "__inside" ]; then
    # Runs inside the headless desktop: the daemon in the foreground of this shell.
    shift
    sock=$DESKGATE_DEMO_SOCKET
    # The headless demo uses its own policy and state (never the user's): the demo app may be
    # observed, read, clicked and filled; everything else is denied.
    demo=$(dirname "$sock")
    mkdir -p "$demo/config" "$demo/etc"
    cat > "$demo/config/policy.toml" <<'POLICY'
default = "deny"

[[rule]]
id = "demo-app"
effect = "allow"
actions = ["observe", "read", "act", "write", "admin"]
app = "deskgate-fixture-*"
reason = "make run: the headless demo app"

[[rule]]
id = "demo-admin"
effect = "allow"
actions = ["admin"]
reason = "make run: let the demo user read the audit log"
POLICY
    echo "run-demo: demo policy $demo/config/policy.toml; audit log in $demo/state/audit" >&2
    "$DESKGATED" --socket "$sock" --config-dir "$demo/config" --state-dir "$demo/state" --system-policy-dir "$demo/etc" "$@" &
    pid=$!
    trap 'kill -TERM $pid 2>/dev/null' TERM INT HUP
    for _ in $(seq 1 100); do [ -S "$sock" ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
    if [ -S "$sock" ]; then
        hints "$sock"
        echo "  (headless desktop $DISPLAY; the demo app's clicks and edits are logged in $DESKGATE_DESKTOP_LOGS/deskgate-fixture-gtk3.log)" >&2
    fi
    wait $pid; rc=$?
    while kill -0 $pid 2>/dev/null; do wait $pid; rc=$?; done
    exit $rc
fi

if [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; then
    DEFAULT_SOCKET="${XDG_RUNTIME_DIR:-/tmp}/deskgate/deskgate.sock"
    sock=${DESKGATE_SOCKET:-$DEFAULT_SOCKET}
    mkdir -p "$(dirname "$sock")"
    echo "run-demo: using your desktop session (${WAYLAND_DISPLAY:+WAYLAND_DISPLAY=$WAYLAND_DISPLAY }${DISPLAY:+DISPLAY=$DISPLAY})" >&2
    "$DESKGATED" --socket "$sock" "$@" &
    pid=$!
    trap 'kill -TERM $pid 2>/dev/null' TERM INT HUP
    for _ in $(seq 1 100); do [ -S "$sock" ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
    [ -S "$sock" ] && hints "$sock"
    wait $pid; rc=$?
    while kill -0 $pid 2>/dev/null; do wait $pid; rc=$?; done
    exit $rc
fi

# No desktop: a private headless one. The socket lives outside the harness's temp dir so that
# clients in other terminals can find it by a stable path.
if [ -n "${DESKGATE_SOCKET:-}" ]; then
    sock=$DESKGATE_SOCKET; mkdir -p "$(dirname "$sock")"; cleanup_dir=""
else
    cleanup_dir=$(mktemp -d "${TMPDIR:-/tmp}/deskgate-demo.XXXXXX"); chmod 700 "$cleanup_dir"
    sock=$cleanup_dir/deskgate.sock
fi
echo "run-demo: no DISPLAY/WAYLAND_DISPLAY: starting a headless desktop with the GTK3 demo app" >&2
DESKGATE_DEMO_SOCKET=$sock "$ROOT/scripts/headless-desktop.sh" --app "gtk3:--rows ${DEMO_ROWS:-20}" \
    -- "$ROOT/scripts/run-demo.sh" __inside "$@" &
hpid=$!
trap 'kill -TERM $hpid 2>/dev/null' TERM INT HUP
wait $hpid; rc=$?
while kill -0 $hpid 2>/dev/null; do wait $hpid; rc=$?; done
[ -n "$cleanup_dir" ] && rm -rf "$cleanup_dir"
exit $rc
