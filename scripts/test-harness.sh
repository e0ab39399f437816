#!/usr/bin/env bash
# test-harness.sh: checks scripts/headless-desktop.sh and the fixture apps.
#   scripts/test-harness.sh            run every check
#   scripts/test-harness.sh NAME...    run only the named checks (see the list at the bottom)
# Prints one line per check and "N passed, N failed" last; exits non-zero if any check failed.
set -u
ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
HD="$ROOT/scripts/headless-desktop.sh"
FX="$ROOT/Tests/Fixtures"
PY=/usr/bin/python3
W=$(mktemp -d "${TMPDIR:-/tmp}/deskgate-harness-test.XXXXXX")
CALLER_BUS_PID=""
trap '[ -n "$CALLER_BUS_PID" ] && kill "$CALLER_BUS_PID" 2>/dev/null; rm -rf "$W"' EXIT
PASS=0; FAIL=0

ok()   { PASS=$((PASS + 1)); echo "ok   $1"; }
bad()  { FAIL=$((FAIL + 1)); echo "FAIL $1: $2"; [ -f "$W/err" ] && sed 's/^/     | /' "$W/err" | tail -n 15; }

# Pids of live processes carrying the harness's marker for temp dir $1.
marked_pids() { grep -lsxzF "DESKGATE_DESKTOP_DIR=$1" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3 | tr '\n' ' '; }

# Inside the desktop: record the temp dir and the pids of every process of the session.
RECORD='echo "$DESKGATE_DESKTOP_DIR" >"$OUT/dir"; grep -lsxzF "DESKGATE_DESKTOP_DIR=$DESKGATE_DESKTOP_DIR" /proc/[0-9]*/environ | cut -d/ -f3 | tr "\n" " " >"$OUT/pids"'

# Checks that the session recorded in $W/dir + $W/pids is gone: no process alive, temp dir removed.
assert_clean() {  # name
    local dir pids alive=""
    dir=$(cat "$W/dir" 2>/dev/null); pids=$(cat "$W/pids" 2>/dev/null)
    [ -n "$dir" ] && [ -n "$pids" ] || { bad "$1" "session did not record itself"; return; }
    for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p($(tr '\0' ' ' </proc/$p/cmdline 2>/dev/null | cut -c1-40))"; done
    local left; left=$(marked_pids "$dir")
    if [ -n "$alive" ] || [ -n "$left" ]; then bad "$1" "processes left:$alive $left"; return; fi
    [ -e "$dir" ] && { bad "$1" "temp dir $dir not removed"; return; }
    # the session really had Xvfb, dbus-daemon and the app among its processes
    local n; n=$(echo $pids | wc -w)
    [ "$n" -ge 5 ] || { bad "$1" "only $n session processes recorded: $pids"; return; }
    ok "$1"
}

t_exit_status() {
    local rc
    OUT=$W "$HD" -q -- sh -c 'exit 7' 2>"$W/err"; rc=$?
    [ $rc -eq 7 ] || { bad exit_status "expected 7, got $rc"; return; }
    "$HD" -q -- true 2>"$W/err"; rc=$?
    [ $rc -eq 0 ] || { bad exit_status "expected 0, got $rc"; return; }
    local out; out=$("$HD" -q -- sh -c 'echo hello-stdout; echo hello-stderr >&2' 2>"$W/err")
    [ "$out" = hello-stdout ] || { bad exit_status "stdout not passed through cleanly: '$out'"; return; }
    grep -q hello-stderr "$W/err" || { bad exit_status "stderr not passed through"; return; }
    out=$(echo piped-in | "$HD" -q -- cat 2>"$W/err")
    [ "$out" = piped-in ] || { bad exit_status "stdin not passed through: '$out'"; return; }
    ok exit_status
}

t_cleanup_normal() {
    rm -f "$W/dir" "$W/pids"
    OUT=$W "$HD" -q --app gtk3 -- bash -c "$RECORD" 2>"$W/err"
    assert_clean cleanup_normal
}

t_cleanup_failure() {
    rm -f "$W/dir" "$W/pids"
    local rc
    OUT=$W "$HD" -q --app gtk3 -- bash -c "$RECORD; exit 3" 2>"$W/err"; rc=$?
    [ $rc -eq 3 ] || { bad cleanup_failure "expected 3, got $rc"; return; }
    assert_clean cleanup_failure
}

t_cleanup_sigterm() {
    rm -f "$W/dir" "$W/pids"
    OUT=$W "$HD" -q --app gtk3 -- bash -c "$RECORD; sleep 300" 2>"$W/err" &
    local hp=$! rc
    for _ in $(seq 1 300); do [ -s "$W/pids" ] && break; sleep 0.1; done
    kill -TERM $hp
    wait $hp; rc=$?
    [ $rc -eq 143 ] || { bad cleanup_sigterm "expected status 143, got $rc"; return; }
    assert_clean cleanup_sigterm
}

t_cleanup_sigint() {
    rm -f "$W/dir" "$W/pids"
    # Background jobs of a script start with SIGINT ignored (and bash cannot trap a signal ignored
    # on entry), so restore the default disposition the way an interactive shell would.
    OUT=$W $PY -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])' \
        "$HD" -q -- bash -c "$RECORD; sleep 300" 2>"$W/err" &
    local hp=$! rc
    for _ in $(seq 1 300); do [ -s "$W/pids" ] && break; sleep 0.1; done
    kill -INT $hp
    wait $hp; rc=$?
    [ $rc -eq 130 ] || { bad cleanup_sigint "expected status 130, got $rc"; return; }
    assert_clean cleanup_sigint
}

t_isolation() {
    # A stand-in for the caller's own session bus and desktop.
    local addr caller_home="$W/callerhome"
    mkdir -p "$caller_home"
    dbus-daemon --session --nofork --print-address=3 3>"$W/calleraddr" >/dev/null 2>&1 &
    CALLER_BUS_PID=$!
    for _ in $(seq 1 50); do [ -s "$W/calleraddr" ] && break; sleep 0.05; done
    addr=$(head -n1 "$W/calleraddr")
    [ -n "$addr" ] || { bad isolation "could not start a caller bus"; return; }
    # Inside: the addresses must differ, nothing may be connected to the caller's bus, and turning
    # IsEnabled on (persisted through gsettings) must not write into the caller's HOME.
    HOME=$caller_home XDG_CONFIG_HOME=$caller_home/.config DBUS_SESSION_BUS_ADDRESS=$addr \
    AT_SPI_BUS_ADDRESS=unix:path=/nonexistent/caller-a11y CALLER=$addr \
    "$HD" -q --app gtk3 -- bash -c '
        [ "$DBUS_SESSION_BUS_ADDRESS" != "$CALLER" ] || { echo "session bus is the caller'"'"'s"; exit 1; }
        [ "$AT_SPI_BUS_ADDRESS" != unix:path=/nonexistent/caller-a11y ] || { echo "a11y bus is the caller'"'"'s"; exit 1; }
        names=$(gdbus call --address "$CALLER" --dest org.freedesktop.DBus --object-path /org/freedesktop/DBus \
                --method org.freedesktop.DBus.ListNames)
        # only the bus itself and this very query connection
        n=$(echo "$names" | grep -oE "'"'"'[^'"'"']+'"'"'" | wc -l)
        [ "$n" -le 2 ] || { echo "caller bus has clients: $names"; exit 1; }
        gdbus call --session --dest org.a11y.Bus --object-path /org/a11y/bus \
            --method org.freedesktop.DBus.Properties.Set org.a11y.Status IsEnabled "<true>" >/dev/null || exit 1
        v=$(gdbus call --session --dest org.a11y.Bus --object-path /org/a11y/bus \
            --method org.freedesktop.DBus.Properties.Get org.a11y.Status IsEnabled)
        [ "$v" = "(<true>,)" ] || { echo "IsEnabled not set: $v"; exit 1; }
        [ "$XDG_RUNTIME_DIR" != "${CALLER_RUNTIME:-x}" ] || exit 1
        [ "$(stat -c %a "$XDG_RUNTIME_DIR")" = 700 ] || { echo "XDG_RUNTIME_DIR mode $(stat -c %a "$XDG_RUNTIME_DIR")"; exit 1; }
        [ "$DESKGATE_REQUIRE_DESKTOP" = 1 ] || { echo "DESKGATE_REQUIRE_DESKTOP not set"; exit 1; }
    ' >"$W/err" 2>&1
    local rc=$?
    kill "$CALLER_BUS_PID" 2>/dev/null; wait "$CALLER_BUS_PID" 2>/dev/null; CALLER_BUS_PID=""
    [ $rc -eq 0 ] || { bad isolation "inner check failed (rc $rc)"; return; }
    local written; written=$(find "$caller_home" -mindepth 1 | head -n 5)
    [ -z "$written" ] || { bad isolation "caller HOME was written: $written"; return; }
    ok isolation
}

t_qt5_registration() {
    # gtk3 listed first on purpose: the harness must still start Qt5 before the a11y bus exists.
    OUT=$W "$HD" -q --app gtk3 --app 'qt5:--rows 3' --app gtk4 -- bash -c '
        for app in deskgate-fixture-qt5 deskgate-fixture-gtk3 deskgate-fixture-gtk4; do
            /usr/bin/python3 "$DESKGATE_FIXTURES_DIR/pyatspi_dump.py" $app --json >"$OUT/$app.json" || exit 1
        done' >"$W/err" 2>&1 || { bad qt5_registration "harness failed"; return; }
    $PY - "$W" <<'EOF' >"$W/err" 2>&1 || { bad qt5_registration "tree content"; return; }
import json, sys
w = sys.argv[1]
for app in ("deskgate-fixture-qt5", "deskgate-fixture-gtk3", "deskgate-fixture-gtk4"):
    d = json.load(open(f"{w}/{app}.json"))
    have = {(n["role"], n["name"]) for n in d["nodes"]}
    for want in [("push button", "Submit"), ("check box", "Subscribe"), ("password text", None)]:
        if not any(r == want[0] and (want[1] is None or nm == want[1]) for r, nm in have):
            sys.exit(f"{app}: missing {want}; count={d['count']}")
print("ok")
EOF
    ok qt5_registration
}

t_missing_app() {
    local rc
    rm -f "$W/dir" "$W/pids"
    # cmd: arguments are split on whitespace (no quoting), so the recorder goes into a script.
    printf '%s\nexec sleep 100\n' "$RECORD" >"$W/rec.sh"
    OUT=$W "$HD" --timeout 3 --app "cmd:no-such-app-xyz:bash $W/rec.sh" -- true >"$W/out" 2>"$W/err"; rc=$?
    [ $rc -eq 125 ] || { bad missing_app "expected status 125, got $rc"; return; }
    grep -q 'not registered.*no-such-app-xyz' "$W/err" || { bad missing_app "error does not name the app"; return; }
    assert_clean missing_app
}

t_bad_usage() {
    local rc
    "$HD" --app nosuchkind -- true 2>"$W/err"; rc=$?
    [ $rc -eq 125 ] && grep -q "unknown app kind" "$W/err" || { bad bad_usage "unknown kind: rc $rc"; return; }
    "$HD" 2>"$W/err"; rc=$?
    [ $rc -eq 125 ] && grep -q "no COMMAND" "$W/err" || { bad bad_usage "no command: rc $rc"; return; }
    "$HD" --list-apps | grep -q '^qt5' || { bad bad_usage "--list-apps"; return; }
    ok bad_usage
}

t_gtk3_actions() {
    # Click Submit through AT-SPI: stdout line and status label; set the password: only its length shows.
    cat >"$W/actions.py" <<'EOF'
import os, sys, time, pyatspi
log = os.path.join(os.environ["DESKGATE_DESKTOP_LOGS"], "fx-actions.log")
app = next(a for a in pyatspi.Registry.getDesktop(0) if a and a.name == "fx-actions")
def find(pred):
    return pyatspi.findDescendant(app, pred, breadth_first=True)
submit = find(lambda n: n.getRoleName() == "push button" and n.name == "Submit")
act = submit.queryAction()
assert act.getName(0) == "click", act.getName(0)
act.doAction(0)
status = None
for _ in range(50):
    status = find(lambda n: n.getRoleName() == "label" and n.name.startswith("Status:"))
    if "clicked Submit" in open(log).read() and status.name == "Status: submitted 1":
        break
    time.sleep(0.05)
else:
    sys.exit(f"no click observed; status={status.name if status else None!r}; log={open(log).read()!r}")
pw = find(lambda n: n.getRoleName() == "password text")
pw.queryEditableText().setTextContents("canary-s3cret")
for _ in range(50):
    if "text-changed password 13" in open(log).read():
        break
    time.sleep(0.05)
else:
    sys.exit("no password text-changed line")
if "canary" in open(log).read():
    sys.exit("password content leaked into the log")
# the entry is labelled by its label
name = find(lambda n: n.getRoleName() == "text" and any(
    r.getRelationType() == pyatspi.RELATION_LABELLED_BY and r.getTarget(0).name == "Name"
    for r in n.getRelationSet()))
assert name is not None, "Name entry has no labelled-by relation"
# Remove row destroys "Temporary"
remove = find(lambda n: n.getRoleName() == "push button" and n.name == "Remove row")
remove.queryAction().doAction(0)
for _ in range(50):
    if "removed Temporary" in open(log).read():
        break
    time.sleep(0.05)
else:
    sys.exit("Remove row did not remove Temporary")
print("all-actions-ok")
EOF
    "$HD" -q --app 'gtk3:--rows 5 --name fx-actions' -- $PY "$W/actions.py" >"$W/err" 2>&1 || { bad gtk3_actions "inner check failed"; return; }
    grep -qx all-actions-ok "$W/err" || { bad gtk3_actions "check script did not run to the end"; return; }
    ok gtk3_actions
}

t_toolkit_actions() {
    # Submit click and password edit through AT-SPI on GTK4 and Qt5: stdout lines and status label.
    cat >"$W/tk.py" <<'EOF'
import os, sys, time, pyatspi
logs = os.environ["DESKGATE_DESKTOP_LOGS"]
for appname in ("deskgate-fixture-gtk4", "deskgate-fixture-qt5"):
    log = os.path.join(logs, appname + ".log")
    app = next(a for a in pyatspi.Registry.getDesktop(0) if a and a.name == appname)
    find = lambda pred: pyatspi.findDescendant(app, pred, breadth_first=True)
    submit = find(lambda n: n.getRoleName() == "push button" and n.name == "Submit")
    submit.queryAction().doAction(0)   # asynchronous in both toolkits
    for _ in range(100):
        status = find(lambda n: n.getRoleName() == "label" and n.name.startswith("Status:"))
        if "clicked Submit" in open(log).read() and status.name == "Status: submitted 1":
            break
        time.sleep(0.05)
    else:
        sys.exit(f"{appname}: click not observed: {status.name!r}")
    pw = find(lambda n: n.getRoleName() == "password text")
    pw.queryEditableText().setTextContents("canary-s3cret")
    for _ in range(100):
        if "text-changed password 13" in open(log).read():
            break
        time.sleep(0.05)
    else:
        sys.exit(f"{appname}: password edit not observed")
    if "canary" in open(log).read():
        sys.exit(f"{appname}: password content in the log")
print("all-toolkit-actions-ok")
EOF
    "$HD" -q --app gtk4 --app qt5 -- $PY "$W/tk.py" >"$W/err" 2>&1 || { bad toolkit_actions "inner check failed"; return; }
    grep -qx all-toolkit-actions-ok "$W/err" || { bad toolkit_actions "check script did not run to the end"; return; }
    ok toolkit_actions
}

t_concurrent() {
    # Two desktops at once get different displays and different buses.
    OUT=$W "$HD" -q -- bash -c 'echo "$DISPLAY $DBUS_SESSION_BUS_ADDRESS" >"$OUT/c1"; sleep 3' 2>"$W/err" &
    local p1=$!
    OUT=$W "$HD" -q -- bash -c 'sleep 1; echo "$DISPLAY $DBUS_SESSION_BUS_ADDRESS" >"$OUT/c2"' 2>>"$W/err"
    local rc2=$?; wait $p1; local rc1=$?
    [ $rc1 -eq 0 ] && [ $rc2 -eq 0 ] || { bad concurrent "rc $rc1/$rc2"; return; }
    local d1 d2; d1=$(cut -d' ' -f1 "$W/c1"); d2=$(cut -d' ' -f1 "$W/c2")
    [ -n "$d1" ] && [ "$d1" != "$d2" ] || { bad concurrent "same display $d1 $d2"; return; }
    [ "$(cut -d' ' -f2 "$W/c1")" != "$(cut -d' ' -f2 "$W/c2")" ] || { bad concurrent "same bus"; return; }
    ok concurrent
}

ALL="exit_status bad_usage cleanup_normal cleanup_failure cleanup_sigterm cleanup_sigint isolation qt5_registration missing_app gtk3_actions toolkit_actions concurrent"
for t in ${*:-$ALL}; do
    rm -f "$W/err"
    if declare -F "t_$t" >/dev/null; then "t_$t"; else bad "$t" "no such check"; fi
done
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
