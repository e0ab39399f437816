#!/bin/bash
# Runs the journal-dependent audit tests against a real systemd-journald, started in a private
# mount namespace (tmpfs on /run/systemd, /run/log and /var/log/journal) so nothing touches the
# host's journal. Needs root (or CAP_SYS_ADMIN) and the systemd package.
#
#   scripts/journald-test.sh                 # swift test --filter AuditTests.JournalTests
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
if [ $# -eq 0 ]; then
    set -- swift test --filter AuditTests.JournalTests
fi
export DESKGATE_JOURNAL_TEST=1
"$@"
