#!/usr/bin/env bash
# run-tests.sh: every test suite, run inside scripts/headless-desktop.sh by `make test`:
# the Swift suites (unit, socket, daemon, AT-SPI against real apps), then the real-app suites
# (Firefox, Chromium, LibreOffice) on a headless desktop of their own, then deskgate-mcp's
# end-to-end tests with a real MCP client. Exits non-zero if any suite fails.
set -uo pipefail
ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
cd "$ROOT"
status=0
# Serial: on a 2-core machine, parallel suites that spawn apps and daemons starve each
# other into timeouts; serial runs take under three minutes here.
swift test --skip-build --no-parallel --skip RealApps "$@" || status=1
# The real-app suites on a headless desktop of their own, its apps started once for the stage:
# the browsers and soffice (≈ 2 GB) live only while their suites run and never slow down the
# suites above (docs/apps.md, "In CI"). DESKGATE_REQUIRE_REAL_APPS: a suite whose app did not
# start fails instead of skipping.
echo "== real apps: Firefox, Chromium, LibreOffice Writer and Calc (headless desktop of their own)"
DESKGATE_REQUIRE_REAL_APPS=1 bash scripts/headless-desktop.sh --app firefox --app chromium --app writer --app calc \
    -- swift test --skip-build --no-parallel --filter RealApps "$@" || status=1
echo "== audit log against a real systemd-journald (private mount namespace)"
bash scripts/journald-test.sh || status=1
if [ -x Tests/MCPTests/run.sh ]; then
    echo "== deskgate-mcp end-to-end tests (Python mcp client)"
    Tests/MCPTests/run.sh || status=1
fi
exit $status
