#!/bin/bash
# Runs the journal-dependent audit tests against a real systemd-journald, started in a private
# mount namespace (tmpfs on /run/systemd, /run/log and /var/log/journal) so nothing touches the
# host's journal. Needs root (or CAP_SYS_ADMIN) and the systemd package.
#
#   scripts/journald-test.sh                 # swift test --filter the AuditTests journal suites, then
#                                            # `deskgate audit verify --journal` on real logs:
#                                            # segments cut before a checkpoint, a tail cut after
#                                            # the last checkpoint (kill -9 of deskgated), a restart
#                                            # on the cut tail, and a fresh install, a deleted audit
#                                            # directory, a deleted key and `deskgate audit reset`
#                                            # told apart
#   scripts/journald-test.sh CMD [ARGS...]   # any command, with the private journald running
set -euo pipefail

if [ "${1:-}" != "--inside-namespace" ]; then
    exec unshare --mount --propagation private "$0" --inside-namespace "$@"
fi
shift

JOURNALD=/lib/systemd/systemd-journald
[ -x "$JOURNALD" ] || { echo "journald-test: $JOURNALD not found (install systemd)" >&2; exit 1; }

mount -t tmpfs -o mode=0755 tmpfs /run/systemd
mount -t tmpfs -o mode=0755 tmpfs /run/log
if [ -d /var/log/journal ]; then mount -t tmpfs -o mode=2755 tmpfs /var/log/journal; fi
mkdir -p /run/systemd/journal

"$JOURNALD" >/run/log/journald.out 2>&1 &
JOURNALD_PID=$!
trap 'kill "$JOURNALD_PID" 2>/dev/null || true; wait "$JOURNALD_PID" 2>/dev/null || true' EXIT

for _ in $(seq 100); do
    [ -S /run/systemd/journal/socket ] && break
    sleep 0.05
done
[ -S /run/systemd/journal/socket ] || { echo "journald-test: journald did not start" >&2; cat /run/log/journald.out >&2; exit 1; }
echo "journald-test: private systemd-journald running (pid $JOURNALD_PID)" >&2

cd "$(dirname "$0")/.."
export DESKGATE_JOURNAL_TEST=1
if [ $# -gt 0 ]; then
    "$@"
    exit
fi

swift test --filter "AuditTests.Journal(Tests|WitnessTests|BundleTests)"

# The CLI against a log written by a process that is killed twice (no clean shutdown).
BIN=$(swift build --show-bin-path)
STATE=$(mktemp -d /tmp/deskgate-journald-cli-XXXXXX)
DAEMON_PID=
cleanup() {
    [ -n "$DAEMON_PID" ] && kill -9 "$DAEMON_PID" 2>/dev/null
    rm -rf "$STATE"
    kill "$JOURNALD_PID" 2>/dev/null || true
}
trap cleanup EXIT
swift build --product deskgate --product deskgated --product audit-crash-writer >/dev/null
for run in 1 2; do
    (AUDIT_CRASH_WRITER_JOURNAL=1 exec timeout -s KILL 2 "$BIN/audit-crash-writer" "$STATE/audit" 2 >/dev/null 2>&1) 2>/dev/null || true
done
sleep 0.5
fail() { echo "journald-test: FAIL: $*" >&2; exit 1; }
"$BIN/deskgate" audit --help >/dev/null 2>&1 \
    || fail "deskgate has no audit command (AuditGroup must be registered in Sources/deskgate/ExtraCommands.swift)"
"$BIN/deskgate" audit verify --journal --state-dir "$STATE" || fail "intact log did not verify against the journal"
# Cut the newest two segments: the local chain still verifies, the journal check must not.
rm $(ls "$STATE"/audit/audit-*.jsonl | tail -2)
"$BIN/deskgate" audit verify --state-dir "$STATE" || fail "truncated log should still verify locally"
if out=$("$BIN/deskgate" audit verify --journal --state-dir "$STATE"); then
    fail "truncation not caught: $out"
fi
echo "$out" | grep -q "truncated" || fail "no truncation problem reported: $out"
echo "journald-test: CLI verify --journal caught the truncation"

# --- The real daemon (deskgated) against the private journald. Each case has its own directory
# (state, config, socket) under $STATE; gated requests are grants.list under a policy allowing
# the admin class (no desktop needed).
RECORD_ID=8d5b2e7c4f0a4c1e9b6d3a2f1e0c7b51
CHECKPOINT_ID=8d5b2e7c4f0a4c1e9b6d3a2f1e0c7b52

start_daemon() {  # CASE_DIR
    local dir=$1
    mkdir -p "$dir/config" "$dir/etc"
    printf 'default = "deny"\n[[rule]]\nid = "admin"\neffect = "allow"\nactions = ["admin"]\n' >"$dir/config/policy.toml"
    rm -f "$dir/sock"
    "$BIN/deskgated" --socket "$dir/sock" --state-dir "$dir/state" --config-dir "$dir/config" \
        --system-policy-dir "$dir/etc" --no-enable-accessibility --log-level info >>"$dir/daemon.log" 2>&1 &
    DAEMON_PID=$!
    for _ in $(seq 400); do
        "$BIN/deskgate" ping --socket "$dir/sock" >/dev/null 2>&1 && return 0
        kill -0 "$DAEMON_PID" 2>/dev/null || break
        sleep 0.05
    done
    fail "deskgated did not start in $dir: $(cat "$dir/daemon.log")"
}

stop_daemon() {  # SIGNAL
    kill "-${1:-TERM}" "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=
}

calls() {  # N CASE_DIR: N gated requests on one connection, each must succeed
    python3 - "$1" "$2/sock" <<'PY'
import json, socket, sys
n, path = int(sys.argv[1]), sys.argv[2]
s = socket.socket(socket.AF_UNIX)
s.connect(path)
f = s.makefile("rwb")
for i in range(n):
    f.write((json.dumps({"jsonrpc": "2.0", "id": i, "method": "grants.list"}) + "\n").encode())
    f.flush()
    reply = json.loads(f.readline())
    if "error" in reply:
        sys.exit("grants.list failed: %r" % reply)
PY
}

json_field() {  # PYTHON_EXPRESSION on `r` (stdin parsed as JSON)
    python3 -c "import json, sys; r = json.load(sys.stdin); print($1)"
}

log_id() {  # CASE_DIR: the log id, as verify --journal reports it (works whether or not it verifies)
    ("$BIN/deskgate" audit verify --journal --state-dir "$1/state" --json 2>/dev/null || true) | json_field 'r["journal"]["log_id"]'
}

wait_journal_seq() {  # LOG_ID SEQ: until journald holds record SEQ of the log
    for _ in $(seq 200); do
        [ -n "$(journalctl -q -o cat MESSAGE_ID=$RECORD_ID "DESKGATE_LOG_ID=$1" "DESKGATE_SEQ=$2")" ] && return 0
        sleep 0.05
    done
    fail "journald never got record $2 of log $1"
}

first_record() {  # CASE_DIR: the first line of the oldest segment
    head -n 1 "$(ls "$1"/state/audit/audit-*.jsonl | head -1)"
}

# A tail cut after kill -9, after the last checkpoint (fewer than 100 records): the chain still
# verifies locally; only the per-record comparison with the journal finds it.
CUT_CASE=$STATE/tail-cut
start_daemon "$CUT_CASE"
calls 130 "$CUT_CASE"
LAST=$("$BIN/deskgate" info --socket "$CUT_CASE/sock" --json | json_field 'r["audit"]["last_seq"]')
CUT_LOG=$(log_id "$CUT_CASE")
wait_journal_seq "$CUT_LOG" "$LAST"
stop_daemon KILL
LAST_CHECKPOINT=$(journalctl -q -o cat --output-fields=DESKGATE_SEQ MESSAGE_ID=$CHECKPOINT_ID "DESKGATE_LOG_ID=$CUT_LOG" | sort -n | tail -1)
CUT=$(( (LAST - LAST_CHECKPOINT) / 2 ))
[ "$CUT" -ge 5 ] && [ "$CUT" -lt 100 ] || fail "setup: $LAST records, last checkpoint $LAST_CHECKPOINT: no room for a cut after it"
SEGMENT=$(ls "$CUT_CASE"/state/audit/audit-*.jsonl | tail -1)
head -n "-$CUT" "$SEGMENT" >"$SEGMENT.cut" && cat "$SEGMENT.cut" >"$SEGMENT" && rm "$SEGMENT.cut"
echo "journald-test: cut records $((LAST - CUT + 1))-$LAST of $LAST (last checkpoint at $LAST_CHECKPOINT) after kill -9" >&2
"$BIN/deskgate" audit verify --state-dir "$CUT_CASE/state" >/dev/null || fail "a tail cut should still verify locally"
if out=$("$BIN/deskgate" audit verify --journal --state-dir "$CUT_CASE/state"); then
    fail "tail cut after the last checkpoint not caught: $out"
fi
echo "$out" | grep -q "$((LAST - CUT + 1))" || fail "the cut records are not named: $out"
echo "journald-test: verify --journal caught a cut of $CUT records after the last checkpoint"

# The daemon restarted on the cut tail records an integrity break instead of writing on silently.
start_daemon "$CUT_CASE"
INFO=$("$BIN/deskgate" info --socket "$CUT_CASE/sock" --json)
[ "$(echo "$INFO" | json_field 'r["audit"].get("first_bad_seq")')" = "$((LAST - CUT + 1))" ] \
    || fail "daemon.info does not report the break at $((LAST - CUT + 1)): $INFO"
BREAK=$("$BIN/deskgate" audit query --socket "$CUT_CASE/sock" --json --since-seq "$((LAST - CUT + 1))" --limit 1000 \
    | json_field '[x for x in r["records"] if x["kind"] == "integrity_break"]')
echo "$BREAK" | grep -q "'journal_last_seq': $LAST" || fail "no integrity_break naming the journal's last seq $LAST: $BREAK"
if out=$("$BIN/deskgate" audit verify --socket "$CUT_CASE/sock"); then fail "audit.verify is ok after a tail cut: $out"; fi
stop_daemon TERM
echo "journald-test: a daemon restarted on the cut tail recorded an integrity break"

# Fresh install, deleted directory, deleted key and reset, told apart by verify --journal.
FRESH=$STATE/fresh
start_daemon "$FRESH"; calls 3 "$FRESH"; stop_daemon TERM
out=$("$BIN/deskgate" audit verify --journal --state-dir "$FRESH/state" --json) || fail "fresh install does not verify: $out"
[ "$(echo "$out" | json_field 'r["journal"].get("history")')" = fresh ] || fail "fresh install not reported as fresh: $out"

# deskgate audit export of the real daemon's log, with the journal's checkpoints; verify --bundle
# offline; a record changed in the bundle is named.
"$BIN/deskgate" audit export --since 2000-01-01T00:00:00Z --state-dir "$FRESH/state" --config-dir "$FRESH/config" \
    --system-policy-dir "$FRESH/etc" --out "$STATE/fresh.bundle" || fail "export failed"
"$BIN/deskgate" audit verify --bundle "$STATE/fresh.bundle" || fail "an exported bundle does not verify"
[ "$("$BIN/deskgate" audit verify --bundle "$STATE/fresh.bundle" --json | json_field 'r["checkpoints_matched"] > 0')" = True ] \
    || fail "the bundle carries no checkpoint of the daemon's journal"
python3 - "$STATE/fresh.bundle" "$STATE/fresh-bad.bundle" <<'PY'
import json, sys
bundle = json.load(open(sys.argv[1]))
bundle["records"][1]["kind"] = "tampered"
json.dump(bundle, open(sys.argv[2], "w"))
PY
if out=$("$BIN/deskgate" audit verify --bundle "$STATE/fresh-bad.bundle"); then fail "a tampered bundle verified: $out"; fi
SECOND=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["records"][1]["seq"])' "$STATE/fresh.bundle")
echo "$out" | grep -q "first bad record: seq $SECOND" || fail "the changed record $SECOND is not named: $out"
echo "journald-test: audit export and verify --bundle (a changed record named)"

for what in directory key; do
    GONE=$STATE/deleted-$what
    start_daemon "$GONE"; calls 3 "$GONE"; stop_daemon TERM
    OLD_LOG=$(log_id "$GONE")
    if [ $what = directory ]; then rm -rf "$GONE/state/audit"; else rm "$GONE/state/audit/hmac.key"; fi
    start_daemon "$GONE"; calls 3 "$GONE"; stop_daemon TERM
    if out=$("$BIN/deskgate" audit verify --journal --state-dir "$GONE/state"); then
        fail "deleted audit $what not caught: $out"
    fi
    echo "$out" | grep -q "$OLD_LOG" || fail "the deleted log $OLD_LOG is not named: $out"
    [ "$("$BIN/deskgate" audit verify --journal --state-dir "$GONE/state" --json | json_field 'r["journal"].get("history")')" = deleted ] \
        || fail "deleted audit $what not reported as a deletion: $out"
    # The new log's records name the log it replaced (its first record, after a deleted directory).
    grep -q "\"previous_log_id\":\"$OLD_LOG\"" "$GONE"/state/audit/audit-*.jsonl || fail "no record names the previous log $OLD_LOG"
    echo "journald-test: verify --journal caught the deleted audit $what (log $OLD_LOG)"
done

RESET=$STATE/reset
start_daemon "$RESET"; calls 3 "$RESET"
OLD_LOG=$(log_id "$RESET")
if "$BIN/deskgate" audit reset --state-dir "$RESET/state" --yes; then fail "reset went ahead while the daemon was running"; fi
[ -f "$RESET/state/audit/hmac.key" ] || fail "a refused reset touched the log"
stop_daemon TERM
if "$BIN/deskgate" audit reset --state-dir "$RESET/state"; then fail "reset went ahead without --yes"; fi
[ -f "$RESET/state/audit/hmac.key" ] || fail "reset without --yes touched the log"
"$BIN/deskgate" audit reset --state-dir "$RESET/state" --yes || fail "reset failed"
[ ! -e "$RESET/state/audit" ] || fail "reset left the log in place"
ls -d "$RESET"/state/audit.reset-* >/dev/null || fail "reset did not keep the old log aside"
start_daemon "$RESET"; calls 3 "$RESET"; stop_daemon TERM
out=$("$BIN/deskgate" audit verify --journal --state-dir "$RESET/state" --json) || fail "a log after a reset does not verify: $out"
[ "$(echo "$out" | json_field 'r["journal"].get("history")')" = reset ] || fail "reset not reported as a reset: $out"
# Every checkpoint, the one written at SIGTERM right before the exit included, names its writer.
[ "$(echo "$out" | json_field '",".join(r["journal"]["writers"])')" = "$(readlink -f "$BIN/deskgated")" ] \
    || fail "the log's writers are not exactly deskgated: $out"
# journald's _EXE for the reset entry: the CLI wrote it (any process of the user could write one).
[ "$(echo "$out" | json_field 'r["journal"]["previous_log"].get("reset_by")')" = "$(readlink -f "$BIN/deskgate")" ] \
    || fail "the reset entry's writer is not the deskgate CLI: $out"
first_record "$RESET" | grep -q "\"previous_log_id\":\"$OLD_LOG\"" || fail "the first record after the reset does not name $OLD_LOG: $(first_record "$RESET")"
echo "journald-test: fresh install, deleted directory, deleted key and reset told apart"