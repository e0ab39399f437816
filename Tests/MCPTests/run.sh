#!/usr/bin/env bash
# run.sh: deskgate-mcp's end-to-end tests with a real MCP client (Python `mcp` from .venv).
#
#   Tests/MCPTests/run.sh [--no-desktop] [NAME-SUBSTRING...]
#
# Needs `swift build` (deskgated and deskgate-mcp in .build/debug, or DESKGATE_BUILD_DIR) and
# `scripts/deps.sh` (.venv with the pinned mcp). Outside a headless desktop it re-runs itself
# inside `scripts/headless-desktop.sh --app gtk3` (so it also works as
# `scripts/headless-desktop.sh --app gtk3 -- Tests/MCPTests/run.sh`); --no-desktop runs only
# where it is (the *_gtk3_* tests then fail, they need the fixture). Exits non-zero on failure.
set -euo pipefail
ROOT=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
BUILD=${DESKGATE_BUILD_DIR:-$ROOT/.build/debug}
PY=$ROOT/.venv/bin/python

NO_DESKTOP=0
if [ "${1:-}" = "--no-desktop" ]; then NO_DESKTOP=1; shift; fi

for exe in deskgated deskgate-mcp; do
    [ -x "$BUILD/$exe" ] || { echo "run.sh: $BUILD/$exe missing; run swift build first" >&2; exit 2; }
done
[ -x "$PY" ] && "$PY" -c 'import mcp' 2>/dev/null || { echo "run.sh: .venv with mcp missing; run scripts/deps.sh" >&2; exit 2; }

if [ "$NO_DESKTOP" = 0 ] && [ -z "${DESKGATE_DESKTOP_DIR:-}" ]; then
    exec "$ROOT/scripts/headless-desktop.sh" --quiet --app gtk3 -- "$0" "$@"
fi
exec "$PY" "$ROOT/Tests/MCPTests/test_mcp.py" "$@"
