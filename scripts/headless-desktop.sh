#!/usr/bin/env bash
# headless-desktop.sh: run a command inside a private, throw-away desktop session.
#
#   scripts/headless-desktop.sh [options] [--app KIND[:ARGS]]... -- COMMAND [ARG...]
#
# Starts Xvfb on a free display, a private D-Bus session bus (dbus-run-session), openbox,
# the requested fixture apps, then the accessibility bus; waits until every app is registered
# with the AT-SPI registry; runs COMMAND; kills everything it started and deletes its temp
# directory; exits with COMMAND's status.
#
# The caller's own session bus is never used: DBUS_SESSION_BUS_ADDRESS, AT_SPI_BUS_ADDRESS and
# friends are replaced. Desktop services and apps get an isolated HOME / XDG_* under the temp
# directory (at-spi-bus-launcher persists IsEnabled through gsettings/dconf).
#
# App kinds (see --list-apps):
#   gtk3[:ARGS]   Tests/Fixtures/gtk3_app.py ARGS   (AT-SPI name deskgate-fixture-gtk3, or --name X)
#   gtk4[:ARGS]   Tests/Fixtures/gtk4_app.py ARGS   (deskgate-fixture-gtk4)
#   qt5[:ARGS]    Tests/Fixtures/qt5_app.py ARGS    (deskgate-fixture-qt5)
#   cmd:NAME:COMMAND [ARG...]   any program; NAME is the AT-SPI application name to wait for
# ARGS are split on whitespace, e.g. --app 'gtk3:--rows 500 --name big'.
#
# Options:
#   --app SPEC        start a fixture app (repeatable). Qt5 apps are always started first.
#   --timeout SEC     how long to wait for each step (default 60, env DESKGATE_DESKTOP_TIMEOUT)
#   --log-dir DIR     keep app logs in DIR instead of the temp directory (which is deleted)
#   --no-wm           do not start openbox
#   --quiet           only print errors
#   --list-apps       print the app kinds and exit
#
# Environment seen by COMMAND:
#   DISPLAY, DBUS_SESSION_BUS_ADDRESS (private), AT_SPI_BUS_ADDRESS, XDG_RUNTIME_DIR (private, 0700),
#   DESKGATE_REQUIRE_DESKTOP=1, DESKGATE_DESKTOP_DIR (temp dir), DESKGATE_DESKTOP_LOGS (log dir:
#   NAME.log holds the app's stdout+stderr, NAME.pid its pid), DESKGATE_FIXTURE_APPS (space-separated
#   AT-SPI names), DESKGATE_FIXTURES_DIR, DESKGATE_DESKTOP_HOME (the isolated HOME used by the apps).
#   HOME/XDG_CONFIG_HOME/XDG_CACHE_HOME/XDG_DATA_HOME are the caller's own (so `swift test` works).
#   Note: a Qt5 app started by COMMAND will not register (the a11y bus is already up); start Qt5
#   apps with --app.
set -u
set -o pipefail

SELF=$(readlink -f "$0")
ROOT=$(cd "$(dirname "$SELF")/.." && pwd)
FIXTURES="$ROOT/Tests/Fixtures"
PY=/usr/bin/python3

say() { [ "${QUIET:-0}" = 1 ] || echo "headless-desktop: $*" >&2; }
die() { echo "headless-desktop: error: $*" >&2; exit 125; }

list_apps() {
    cat <<EOF
gtk3[:ARGS]   $FIXTURES/gtk3_app.py  [--rows N] [--name NAME]   default name deskgate-fixture-gtk3
gtk4[:ARGS]   $FIXTURES/gtk4_app.py  [--rows N] [--name NAME]   default name deskgate-fixture-gtk4
qt5[:ARGS]    $FIXTURES/qt5_app.py   [--rows N] [--name NAME]   default name deskgate-fixture-qt5
cmd:NAME:COMMAND [ARG...]           any program, registered as AT-SPI app NAME
EOF
}

# ---------------------------------------------------------------------------------------------
# Inner stage: runs under dbus-run-session (private session bus) with DISPLAY set.
# ---------------------------------------------------------------------------------------------
if [ "${1:-}" = "__inner" ]; then
    shift
    exec 2>&6   # our messages go to the caller's stderr; our stdout stays in session.log
    T="$DESKGATE_DESKTOP_DIR"
    LOGS="$DESKGATE_DESKTOP_LOGS"
    TIMEOUT="$DESKGATE_DESKTOP_TIMEOUT"
    QUIET="${DESKGATE_DESKTOP_QUIET:-0}"
    deadline() { echo $(( $(date +%s) + TIMEOUT )); }

    if [ "${DESKGATE_DESKTOP_NO_WM:-0}" != 1 ]; then
        openbox --sm-disable >"$LOGS/openbox.log" 2>&1 &
        d=$(deadline)
        until xprop -root _NET_SUPPORTING_WM_CHECK 2>/dev/null | grep -q 'window id'; do
            [ "$(date +%s)" -lt "$d" ] || { echo "headless-desktop: error: openbox did not start (see $LOGS/openbox.log)" >&2; exit 125; }
            sleep 0.05
        done
    fi

    # App specs arrive as NUL-free lines in $T/apps: KIND<TAB>NAME<TAB>ARGS...
    start_app() {  # kind name args...; sets LAST_LOG
        local kind=$1 name=$2; shift 2
        local log="$LOGS/$name.log"
        [ -e "$log" ] && log="$LOGS/$name.$$.$RANDOM.log"
        case "$kind" in
            gtk3) "$PY" "$FIXTURES/gtk3_app.py" "$@" >"$log" 2>&1 & ;;
            gtk4) "$PY" "$FIXTURES/gtk4_app.py" "$@" >"$log" 2>&1 & ;;
            qt5)  QT_LINUX_ACCESSIBILITY_ALWAYS_ON=1 QT_QPA_PLATFORM=xcb \
                      "$PY" "$FIXTURES/qt5_app.py" "$@" >"$log" 2>&1 & ;;
            cmd)  "$@" >"$log" 2>&1 & ;;
        esac
        echo $! >"${log%.log}.pid"
        LAST_LOG=$log
    }
    # Wait for a fixture's "ready" line (window shown, tree built). cmd apps have no such line.
    wait_ready() {  # kind log
        local kind=$1 log=$2 pid d
        [ "$kind" = cmd ] && return 0
        pid=$(cat "${log%.log}.pid")
        d=$(deadline)
        until grep -q '^ready' "$log" 2>/dev/null; do
            if ! kill -0 "$pid" 2>/dev/null; then
                echo "headless-desktop: error: app $(basename "${log%.log}") exited before it was ready; log $log:" >&2
                tail -n 20 "$log" >&2; exit 125
            fi
            [ "$(date +%s)" -lt "$d" ] || { echo "headless-desktop: error: app $(basename "${log%.log}") not ready after ${TIMEOUT}s; log $log" >&2; tail -n 20 "$log" >&2; exit 125; }
            sleep 0.05
        done
    }
    # Qt5 first (it registers only if org.a11y.Bus appears after it started: brief §3 pitfall 4),
    # and wait until Qt is up before any GTK app, whose atk-bridge activates org.a11y.Bus.
    for phase in qt5 other; do
        logs=(); kinds=()
        while IFS=$'\t' read -r kind name args; do
            if [ "$phase" = qt5 ] && [ "$kind" != qt5 ]; then continue; fi
            if [ "$phase" = other ] && [ "$kind" = qt5 ]; then continue; fi
            set -f; read -ra words <<<"$args"; set +f
            start_app "$kind" "$name" "${words[@]+"${words[@]}"}" </dev/null
            logs+=("$LAST_LOG"); kinds+=("$kind")
        done <"$T/apps"
        for i in "${!logs[@]}"; do wait_ready "${kinds[$i]}" "${logs[$i]}"; done
    done

    # Bring up the accessibility bus (D-Bus-activated at-spi-bus-launcher) and export its address.
    a11y=$(gdbus call --session --dest org.a11y.Bus --object-path /org/a11y/bus \
           --method org.a11y.Bus.GetAddress 2>"$LOGS/a11y-bus.log") \
        || { echo "headless-desktop: error: org.a11y.Bus.GetAddress failed:" >&2; cat "$LOGS/a11y-bus.log" >&2; exit 125; }
    a11y=$(printf '%s' "$a11y" | sed -E "s/^\('(.*)',\)$/\1/")
    [ -n "$a11y" ] || die "empty a11y bus address"
    export AT_SPI_BUS_ADDRESS="$a11y"

    registry_names() {  # prints one registered application name per line
        local kids b
        kids=$(gdbus call --address "$AT_SPI_BUS_ADDRESS" --dest org.a11y.atspi.Registry \
               --object-path /org/a11y/atspi/accessible/root \
               --method org.a11y.atspi.Accessible.GetChildren 2>/dev/null) || return 0
        for b in $(printf '%s' "$kids" | grep -oE "':[0-9]+\.[0-9]+'" | tr -d "'"); do
            gdbus call --address "$AT_SPI_BUS_ADDRESS" --dest "$b" \
                --object-path /org/a11y/atspi/accessible/root \
                --method org.freedesktop.DBus.Properties.Get org.a11y.atspi.Accessible Name \
                --timeout 2 2>/dev/null | sed -E "s/^\(<'(.*)'>,\)$/\1/"
        done
    }
    # Wait until each requested name is registered (as many times as it was requested).
    wanted=$(sed -E 's/^[^\t]*\t([^\t]*).*/\1/' "$T/apps" | sort)
    d=$(deadline)
    while :; do
        have=$(registry_names | sort)
        missing=$(comm -23 <(printf '%s\n' "$wanted" | sed '/^$/d') <(printf '%s\n' "$have" | sed '/^$/d'))
        [ -z "$missing" ] && break
        if [ "$(date +%s)" -ge "$d" ]; then
            echo "headless-desktop: error: not registered with the AT-SPI registry after ${TIMEOUT}s: $(echo $missing)" >&2
            echo "headless-desktop: registered: $(echo $have)" >&2
            for n in $missing; do echo "--- $LOGS/$n.log" >&2; tail -n 20 "$LOGS/$n.log" >&2 2>/dev/null; done
            exit 125
        fi
        sleep 0.1
    done
    [ -s "$T/apps" ] && say "registered: $(echo $have)"
    say "display $DISPLAY, a11y bus $AT_SPI_BUS_ADDRESS, app logs in $LOGS"

    export DESKGATE_FIXTURE_APPS="$(echo $wanted)"
    export DESKGATE_REQUIRE_DESKTOP=1
    # COMMAND runs with the caller's HOME and XDG dirs (toolchains need them); services keep theirs.
    export DESKGATE_DESKTOP_HOME="$HOME"
    export HOME="$DESKGATE_CALLER_HOME"
    for v in XDG_CONFIG_HOME XDG_CACHE_HOME XDG_DATA_HOME; do
        c="DESKGATE_CALLER_$v"
        if [ -n "${!c:-}" ]; then export "$v=${!c}"; else unset "$v"; fi
    done
    unset DESKGATE_CALLER_HOME DESKGATE_CALLER_XDG_CONFIG_HOME DESKGATE_CALLER_XDG_CACHE_HOME \
          DESKGATE_CALLER_XDG_DATA_HOME DESKGATE_DESKTOP_QUIET DESKGATE_DESKTOP_NO_WM
    # explicit <&0: without it an asynchronous command's stdin would be /dev/null
    "$@" <&0 >&5 2>&6 5>&- 6>&- &
    cmd=$!
    trap 'kill -TERM $cmd 2>/dev/null' TERM INT HUP
    wait $cmd; rc=$?
    while kill -0 $cmd 2>/dev/null; do wait $cmd; rc=$?; done
    exit $rc
fi

# ---------------------------------------------------------------------------------------------
# Outer stage: argument parsing, temp dir, Xvfb, dbus-run-session, cleanup.
# ---------------------------------------------------------------------------------------------
TIMEOUT="${DESKGATE_DESKTOP_TIMEOUT:-60}"
LOG_DIR=""
NO_WM=0
QUIET=0
APPS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --app) [ $# -ge 2 ] || die "--app needs a value"; APPS+=("$2"); shift 2 ;;
        --app=*) APPS+=("${1#--app=}"); shift ;;
        --timeout) [ $# -ge 2 ] || die "--timeout needs a value"; TIMEOUT=$2; shift 2 ;;
        --log-dir) [ $# -ge 2 ] || die "--log-dir needs a value"; LOG_DIR=$2; shift 2 ;;
        --no-wm) NO_WM=1; shift ;;
        --quiet|-q) QUIET=1; shift ;;
        --list-apps) list_apps; exit 0 ;;
        -h|--help) sed -n '2,/^set -u/p' "$SELF" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        --) shift; break ;;
        *) die "unknown option '$1' (COMMAND goes after --; see --help)" ;;
    esac
done
[ $# -gt 0 ] || die "no COMMAND given (usage: $0 [--app KIND[:ARGS]]... -- COMMAND...)"
case "$TIMEOUT" in ''|*[!0-9]*) die "--timeout must be a whole number of seconds" ;; esac
for t in Xvfb dbus-run-session gdbus xprop; do command -v "$t" >/dev/null || die "$t not found (run scripts/deps.sh)"; done
[ "$NO_WM" = 1 ] || command -v openbox >/dev/null || die "openbox not found (run scripts/deps.sh)"

T=$(mktemp -d "${TMPDIR:-/tmp}/deskgate-desktop.XXXXXXXX") || die "mktemp failed"
chmod 700 "$T"
# Every process we start inherits this marker; cleanup finds them by it (and by nothing else).
MARK="DESKGATE_DESKTOP_DIR=$T"
CLEANED=0
cleanup() {
    [ "$CLEANED" = 1 ] && return; CLEANED=1
    local pids p sig
    for sig in TERM TERM KILL; do
        pids=$(grep -lsxzF "$MARK" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3 | grep -vx "$$" | tr '\n' ' ')
        [ -z "$pids" ] && break
        # shellcheck disable=SC2086
        kill -$sig $pids 2>/dev/null
        for _ in $(seq 1 40); do
            local alive=""
            for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
            [ -z "$alive" ] && break
            sleep 0.05
        done
    done
    rm -rf "$T"
}
on_signal() { trap - TERM INT HUP; cleanup; exit $(( 128 + $1 )); }
trap cleanup EXIT
trap 'on_signal 15' TERM
trap 'on_signal 2' INT
trap 'on_signal 1' HUP

# Parse app specs into $T/apps (KIND<TAB>NAME<TAB>ARGS).
: >"$T/apps"
for spec in "${APPS[@]+"${APPS[@]}"}"; do
    kind=${spec%%:*}; args=""; [ "$kind" != "$spec" ] && args=${spec#*:}
    case "$kind" in
        gtk3|gtk4|qt5)
            name="deskgate-fixture-$kind"
            set -f; read -ra words <<<"$args"; set +f
            prev=""
            for a in "${words[@]+"${words[@]}"}"; do
                [ "$prev" = --name ] && name=$a
                case "$a" in --name=*) name=${a#--name=} ;; esac
                prev=$a
            done
            ;;
        cmd)
            case "$args" in *:?*) ;; *) die "cmd app needs cmd:NAME:COMMAND, got '$spec'" ;; esac
            name=${args%%:*}; args=${args#*:}
            ;;
        *) die "unknown app kind '$kind' (see --list-apps)" ;;
    esac
    case "$name" in *[[:space:]/]*|'') die "bad app name '$name'" ;; esac
    printf '%s\t%s\t%s\n' "$kind" "$name" "$args" >>"$T/apps"
done

mkdir -p "$T/home" "$T/config" "$T/cache" "$T/data" "$T/run"
chmod 700 "$T/run"
if [ -n "$LOG_DIR" ]; then mkdir -p "$LOG_DIR" || die "cannot create $LOG_DIR"; LOGS=$(cd "$LOG_DIR" && pwd)
else LOGS="$T/logs"; mkdir -p "$LOGS"; fi

# Isolate from the caller's desktop: nothing of its session may leak in.
export DESKGATE_CALLER_HOME="$HOME"
for v in XDG_CONFIG_HOME XDG_CACHE_HOME XDG_DATA_HOME; do
    if [ -n "${!v:-}" ]; then export "DESKGATE_CALLER_$v=${!v}"; fi
done
unset DBUS_SESSION_BUS_ADDRESS DBUS_STARTER_ADDRESS DBUS_STARTER_BUS_TYPE AT_SPI_BUS_ADDRESS \
      WAYLAND_DISPLAY WAYLAND_SOCKET DISPLAY XAUTHORITY SESSION_MANAGER DESKTOP_SESSION \
      XDG_SESSION_ID XDG_SESSION_TYPE XDG_SESSION_DESKTOP XDG_CURRENT_DESKTOP GNOME_DESKTOP_SESSION_ID \
      NO_AT_BRIDGE GTK_A11Y GTK_MODULES QT_ACCESSIBILITY DESKGATE_SOCKET
export HOME="$T/home" XDG_CONFIG_HOME="$T/config" XDG_CACHE_HOME="$T/cache" XDG_DATA_HOME="$T/data" \
       XDG_RUNTIME_DIR="$T/run" GDK_BACKEND=x11 QT_QPA_PLATFORM=xcb GSETTINGS_BACKEND=memory \
       DESKGATE_DESKTOP_DIR="$T" DESKGATE_DESKTOP_LOGS="$LOGS" DESKGATE_DESKTOP_TIMEOUT="$TIMEOUT" \
       DESKGATE_DESKTOP_QUIET="$QUIET" DESKGATE_DESKTOP_NO_WM="$NO_WM" DESKGATE_FIXTURES_DIR="$FIXTURES" \
       NO_AT_BRIDGE=0

# Xvfb picks a free display itself (-displayfd), so concurrent harnesses never collide.
Xvfb -displayfd 3 -screen 0 1280x1024x24 -nolisten tcp -noreset 3>"$T/display" >"$LOGS/xvfb.log" 2>&1 &
d=$(( $(date +%s) + TIMEOUT ))
until [ -s "$T/display" ] && grep -q '^[0-9]' "$T/display"; do
    kill -0 $! 2>/dev/null || { cat "$LOGS/xvfb.log" >&2; die "Xvfb exited"; }
    [ "$(date +%s)" -lt "$d" ] || die "Xvfb did not start"
    sleep 0.05
done
export DISPLAY=":$(head -n1 "$T/display" | tr -dc 0-9)"

# The session's daemons inherit stdout/stderr; keep them in a log so COMMAND's streams stay clean.
# fd 5/6 carry the caller's stdout/stderr to COMMAND and to our messages.
dbus-run-session -- "$SELF" __inner "$@" <&0 5>&1 6>&2 >"$LOGS/session.log" 2>&1 &
wait $!; rc=$?
exit $rc
