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
# Real apps (docs/apps.md), each with the switches and environment it needs to expose its tree and
# a throw-away profile under the temp directory, started after the fixtures. The harness waits
# until the page or document is in the tree, not only until the app registered:
#   firefox[:URL|FILE]    Firefox ESR (AT-SPI name Firefox); default: the start page below
#   chromium[:URL|FILE]   Chromium (AT-SPI name Chromium); default: the start page below
#   writer[:FILE]         LibreOffice Writer (AT-SPI name soffice); default: a new text document
#   calc[:FILE]           LibreOffice Calc, in the same soffice instance as writer
# With firefox or chromium a web server (python3 http.server) serves DESKGATE_WEB_DIR on
# 127.0.0.1, so pages have a real http://127.0.0.1:PORT origin; the start page is index.html.
#
# Inside a desktop (from COMMAND or its children), open another page or document in the running
# app: a new tab, or a new LibreOffice window; waits until it is in the tree unless --no-wait:
#   scripts/headless-desktop.sh --open firefox|chromium|writer|calc URL|FILE [--no-wait]
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
#   With real apps also: DESKGATE_REAL_APPS (the kinds started, space-separated), DESKGATE_WEB_DIR
#   and DESKGATE_WEB_URL (the served directory and http://127.0.0.1:PORT), DESKGATE_FIREFOX_PROFILE,
#   DESKGATE_CHROMIUM_PROFILE, DESKGATE_LIBREOFFICE_PROFILE (profile directories; --open uses them).
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
firefox[:URL|FILE]                  firefox-esr, AT-SPI name Firefox
chromium[:URL|FILE]                 chromium, AT-SPI name Chromium
writer[:FILE]                       LibreOffice Writer, AT-SPI name soffice
calc[:FILE]                         LibreOffice Calc, AT-SPI name soffice (one instance with writer)
EOF
}

# ---------------------------------------------------------------------------------------------
# Real apps: the switches and environment each needs (docs/apps.md has the evidence).
# ---------------------------------------------------------------------------------------------
# Sets APP_CMD (the command line) for KIND to show TARGET (a URL, or a file for LibreOffice; empty:
# a new document), MODE start (the first instance) or open (hand it to the running instance).
# Profiles live under $1 (the desktop's temp directory).
real_app_command() {  # dir kind mode target
    local dir=$1 kind=$2 mode=$3 target=$4
    case "$kind" in
        firefox)
            # GNOME_ACCESSIBILITY=1: Gecko turns its accessibility on at start-up only when this is
            # set or org.a11y.Status.IsEnabled is true (it also follows IsEnabled later).
            APP_CMD=(env GNOME_ACCESSIBILITY=1 MOZ_CRASHREPORTER_DISABLE=1 firefox-esr --profile "$dir/firefox")
            [ "$mode" = open ] && APP_CMD+=(--new-tab)
            APP_CMD+=("$target")
            ;;
        chromium)
            # Chromium reads GNOME_ACCESSIBILITY (or IsEnabled) once, at start-up; without it the
            # browser never registers. --force-renderer-accessibility: web content in the tree
            # from the start. --no-sandbox: we run as root. The backgrounding switches: a window
            # covered by another (Firefox's) still updates its tree at once after an action.
            APP_CMD=(env GNOME_ACCESSIBILITY=1 chromium --no-sandbox --force-renderer-accessibility
                     --user-data-dir="$dir/chromium" --no-first-run --no-default-browser-check --disable-gpu
                     --password-store=basic --disable-backgrounding-occluded-windows
                     --disable-renderer-backgrounding --disable-background-timer-throttling "$target")
            ;;
        writer|calc)
            # SAL_USE_VCLPLUGIN=gtk3: without a desktop environment soffice picks its X11 ("gen")
            # plugin, which has no AT-SPI bridge; gtk3 (package libreoffice-gtk3) goes through ATK.
            APP_CMD=(env SAL_USE_VCLPLUGIN=gtk3 soffice "-env:UserInstallation=file://$dir/libreoffice"
                     --norestore --nologo --nolockcheck)
            # --nodefault: no Start Center besides the document (with no file it would show nothing).
            if [ -n "$target" ]; then APP_CMD+=(--nodefault "$target"); else APP_CMD+=("--$kind"); fi
            ;;
    esac
}

# Sets READY_ARGS: the app_ready.py arguments that wait for KIND's TARGET.
real_app_ready_args() {  # kind target
    case "$1" in
        firefox) READY_ARGS=(Firefox --url "$2") ;;
        chromium) READY_ARGS=(Chromium --url "$2") ;;
        writer)
            if [ -n "$2" ]; then READY_ARGS=(soffice --window "$(basename "$2") - " --document "document text")
            else READY_ARGS=(soffice --window "Untitled " --document "document text"); fi ;;
        calc)
            if [ -n "$2" ]; then READY_ARGS=(soffice --window "$(basename "$2") - " --document "document spreadsheet")
            else READY_ARGS=(soffice --window "Untitled " --document "document spreadsheet"); fi ;;
    esac
}

# A browser target: a URL as given, a file as file:///ABSOLUTE (empty: the start page).
browser_url() {  # target web-url
    case "$1" in
        '') echo "$2/index.html" ;;
        [a-zA-Z]*://*|about:*|data:*) echo "$1" ;;
        *) [ -e "$1" ] || { echo "headless-desktop: error: no such file: $1" >&2; return 1; }
           echo "file://$(readlink -f "$1")" ;;
    esac
}

# The real apps' own environment: the desktop's HOME and XDG directories (also for --open, which
# runs from COMMAND, whose HOME is the caller's).
real_app_env() {  # dir
    export HOME="$1/home" XDG_CONFIG_HOME="$1/config" XDG_CACHE_HOME="$1/cache" XDG_DATA_HOME="$1/data"
}

# --open KIND TARGET [--no-wait], run from inside a desktop.
if [ "${1:-}" = "--open" ]; then
    shift
    [ $# -ge 2 ] || die "usage: $0 --open firefox|chromium|writer|calc URL|FILE [--no-wait]"
    kind=$1; target=$2; wait_ready=1
    [ "${3:-}" = --no-wait ] && wait_ready=0
    T=${DESKGATE_DESKTOP_DIR:-}
    [ -n "$T" ] && [ -d "$T" ] || die "--open runs inside a desktop (DESKGATE_DESKTOP_DIR is not set)"
    started_kind=$kind; case "$kind" in writer|calc) started_kind="(writer|calc)" ;; esac  # one soffice serves both
    [[ " ${DESKGATE_REAL_APPS:-} " =~ \ $started_kind\  ]] \
        || die "$kind was not started in this desktop (DESKGATE_REAL_APPS: ${DESKGATE_REAL_APPS:-none})"
    case "$kind" in
        firefox|chromium) target=$(browser_url "$target" "${DESKGATE_WEB_URL:-}") || exit 125 ;;
        writer|calc) [ -f "$target" ] || die "no such file: $target"; target=$(readlink -f "$target") ;;
        *) die "--open: unknown kind '$kind'" ;;
    esac
    real_app_command "$T" "$kind" open "$target"
    (real_app_env "$T"; "${APP_CMD[@]}" </dev/null >>"${DESKGATE_DESKTOP_LOGS:-$T}/open-$kind.log" 2>&1) \
        || die "$kind did not take $target (see ${DESKGATE_DESKTOP_LOGS:-$T}/open-$kind.log)"
    [ "$wait_ready" = 1 ] || exit 0
    real_app_ready_args "$kind" "$target"
    exec "$PY" "$FIXTURES/app_ready.py" "${READY_ARGS[@]}" --timeout "${DESKGATE_DESKTOP_TIMEOUT:-60}" >/dev/null
fi

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

    # Real apps ($T/real-apps: KIND<TAB>TARGET), after the fixtures and the bus. Firefox, Chromium
    # and the first LibreOffice document start together; each is waited for until its page or
    # document is in the tree; a second LibreOffice kind then opens in the same instance.
    if [ -s "$T/real-apps" ]; then
        if grep -qE '^(firefox|chromium)' "$T/real-apps"; then
            mkdir -p "$T/www"
            cat >"$T/www/index.html" <<'PAGE'
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>deskgate start page</title></head>
<body><h1>deskgate start page</h1><p>Served by scripts/headless-desktop.sh.</p></body></html>
PAGE
            "$PY" -u -m http.server --bind 127.0.0.1 --directory "$T/www" 0 >"$LOGS/http.log" 2>&1 5>&- 6>&- &
            d=$(deadline)
            until port=$(grep -oE '^Serving HTTP on 127\.0\.0\.1 port [0-9]+' "$LOGS/http.log" 2>/dev/null | grep -oE '[0-9]+$'); do
                [ "$(date +%s)" -lt "$d" ] || { echo "headless-desktop: error: the web server did not start:" >&2; cat "$LOGS/http.log" >&2; exit 125; }
                sleep 0.05
            done
            export DESKGATE_WEB_DIR="$T/www" DESKGATE_WEB_URL="http://127.0.0.1:$port"
        fi
        started=(); waits=(); later=(); office=""; timings=""
        t0=$(date +%s.%N)
        while IFS=$'\t' read -r kind target; do
            case "$kind" in
                firefox|chromium) target=$(browser_url "$target" "${DESKGATE_WEB_URL:-}") || exit 125 ;;
                writer|calc) [ -z "$target" ] || target=$(readlink -f "$target")
                    if [ -n "$office" ]; then later+=("$kind"$'\t'"$target"); continue; fi
                    office=$kind ;;
            esac
            real_app_command "$T" "$kind" start "$target"
            # Not fds 5/6 (the caller's stdout/stderr): a browser process that outlived us would hold them.
            (real_app_env "$T"; exec "${APP_CMD[@]}") </dev/null >"$LOGS/$kind.log" 2>&1 5>&- 6>&- &
            echo $! >"$T/pids/$kind.pid"
            started+=("$kind"); waits+=("$kind"$'\t'"$target")
        done <"$T/real-apps"
        ready_or_die() {  # kind target
            real_app_ready_args "$1" "$2"
            if "$PY" "$FIXTURES/app_ready.py" "${READY_ARGS[@]}" --timeout "$TIMEOUT" >>"$LOGS/ready.log" 2>"$LOGS/ready-$1.err"; then
                timings="$timings $1 $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }'),"
                return 0
            fi
            echo "headless-desktop: error: $1 did not show ${2:-a new document} within ${TIMEOUT}s:" >&2
            cat "$LOGS/ready-$1.err" >&2; echo "--- $LOGS/$1.log" >&2; tail -n 20 "$LOGS/$1.log" >&2; exit 125
        }
        for w in "${waits[@]}"; do ready_or_die "${w%%$'\t'*}" "${w#*$'\t'}"; done
        for w in "${later[@]+"${later[@]}"}"; do
            kind=${w%%$'\t'*}; target=${w#*$'\t'}
            real_app_command "$T" "$kind" open "$target"
            (real_app_env "$T"; exec "${APP_CMD[@]}") </dev/null >"$LOGS/$kind.log" 2>&1 5>&- 6>&- \
                || { echo "headless-desktop: error: soffice did not open ${target:-a new $kind document}" >&2; tail -n 20 "$LOGS/$kind.log" >&2; exit 125; }
            started+=("$kind"); ready_or_die "$kind" "$target"
        done
        export DESKGATE_REAL_APPS="${started[*]}"
        for kind in "${started[@]}"; do
            case "$kind" in
                firefox) export DESKGATE_FIREFOX_PROFILE="$T/firefox" ;;
                chromium) export DESKGATE_CHROMIUM_PROFILE="$T/chromium" ;;
                writer|calc) export DESKGATE_LIBREOFFICE_PROFILE="$T/libreoffice" ;;
            esac
        done
        say "real apps ready (after start):${timings%,}${DESKGATE_WEB_URL:+; web server $DESKGATE_WEB_URL}"
    fi
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
# The real apps' recorded pids that are still those apps (their command line names this desktop).
real_app_roots() {
    local f pid
    for f in "$T"/pids/*.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF "$T/" && echo "$pid"
    done
}
# PIDS and all their live descendants, one per line.
descendants() {
    [ $# -gt 0 ] || return 0
    local all want=" $* " changed=1 pid ppid
    all=$(awk '{ sub(/.*\) /, ""); print FILENAME, $2 }' /proc/[0-9]*/stat 2>/dev/null | sed -E 's|/proc/([0-9]+)/stat|\1|')
    while [ "$changed" = 1 ]; do
        changed=0
        while read -r pid ppid; do
            case "$want" in *" $ppid "*) case "$want" in *" $pid "*) ;; *) want="$want$pid "; changed=1 ;; esac ;; esac
        done <<<"$all"
    done
    for pid in $want; do [ -d "/proc/$pid" ] && echo "$pid"; done
}
cleanup() {
    [ "$CLEANED" = 1 ] && return; CLEANED=1
    local pids p sig
    for sig in TERM TERM KILL; do
        # By the marker, and the real apps by their recorded pids and descendants: Chromium
        # overwrites its environment with its process title, so the marker is not found there.
        pids=$( { grep -lsxzF "$MARK" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3
                  descendants $(real_app_roots); } | sort -u | grep -vx "$$" | tr '\n' ' ')
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
: >"$T/apps"; : >"$T/real-apps"
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
        firefox|chromium|writer|calc)
            grep -q "^$kind"$'\t' "$T/real-apps" 2>/dev/null && die "--app $kind given twice (open more with --open)"
            case "$kind:$args" in
                firefox:*://*|chromium:*://*|firefox:about:*|chromium:about:*|*:) ;;
                *) [ -f "$args" ] || die "$kind: no such file '$args'"; args=$(readlink -f "$args") ;;
            esac
            printf '%s\t%s\n' "$kind" "$args" >>"$T/real-apps"
            continue
            ;;
        *) die "unknown app kind '$kind' (see --list-apps)" ;;
    esac
    case "$name" in *[[:space:]/]*|'') die "bad app name '$name'" ;; esac
    printf '%s\t%s\t%s\n' "$kind" "$name" "$args" >>"$T/apps"
done

mkdir -p "$T/home" "$T/config" "$T/cache" "$T/data" "$T/run" "$T/pids"
chmod 700 "$T/run"
# Real apps' profiles: no first-run pages, dialogs, update checks or crash recovery; no document
# lock files (one left by a killed soffice would stop the document behind a "locked" question).
if grep -q '^firefox' "$T/real-apps" 2>/dev/null; then
    mkdir -p "$T/firefox"
    cat >"$T/firefox/user.js" <<'PREFS'
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("browser.startup.page", 0);
user_pref("browser.aboutwelcome.enabled", false);
user_pref("browser.newtab.preload", false);
user_pref("browser.tabs.warnOnClose", false);
user_pref("browser.sessionstore.resume_from_crash", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);
user_pref("app.update.auto", false);
user_pref("extensions.update.enabled", false);
user_pref("browser.tabs.unloadOnLowMemory", false);
PREFS
fi
if grep -qE '^(writer|calc)' "$T/real-apps" 2>/dev/null; then
    mkdir -p "$T/libreoffice/user"
    cat >"$T/libreoffice/user/registrymodifications.xcu" <<'XCU'
<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Common/Misc"><prop oor:name="FirstRun" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Misc"><prop oor:name="ShowTipOfTheDay" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Setup/Office"><prop oor:name="ooSetupInstCompleted" oor:op="fuse"><value>true</value></prop></item>
<item oor:path="/org.openoffice.Office.Recovery/AutoSave"><prop oor:name="Enabled" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Misc"><prop oor:name="UseDocumentOOoLockFile" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Misc"><prop oor:name="UseDocumentSystemFileLocking" oor:op="fuse"><value>false</value></prop></item>
</oor:items>
XCU
fi
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
      NO_AT_BRIDGE GTK_A11Y GTK_MODULES QT_ACCESSIBILITY DESKGATE_SOCKET GNOME_ACCESSIBILITY \
      DESKGATE_REAL_APPS DESKGATE_WEB_DIR DESKGATE_WEB_URL DESKGATE_FIREFOX_PROFILE DESKGATE_CHROMIUM_PROFILE \
      DESKGATE_LIBREOFFICE_PROFILE
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
