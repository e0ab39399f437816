#!/bin/bash
# Runs the journal-dependent audit tests against a real systemd-journald, started in a private
# mount namespace (tmpfs on /run/systemd, /run/log and /var/log/journal) so nothing touches the
# host's journal. Needs root (or CAP_SYS_ADMIN) and the systemd package.
#
#   scripts/journald-test.sh                 # swift test --filter AuditTests.JournalTests, then
#                                            # `deskgate audit verify --journal` on a real log
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

swift test --filter AuditTests.JournalTests

# The CLI against a log written by a process that is killed twice (no clean shutdown).
BIN=$(swift build --show-bin-path)
STATE=$(mktemp -d /tmp/deskgate-journald-cli-XXXXXX)
trap 'rm -rf "$STATE"; kill "$JOURNALD_PID" 2>/dev/null || true' EXIT
swift build --product deskgate --product audit-crash-writer >/dev/null
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
