#!/usr/bin/env bash
# deps.sh: install what deskgate's build, tests and demo need (Debian 12), idempotently.
#
#   scripts/deps.sh [--no-venv] [--check]
#
# Installs the missing Debian packages with apt-get (through sudo when not root; `apt-get update`
# only when something is missing), then creates .venv/ with the pinned Python `mcp` package used by
# the MCP tests (made with the system /usr/bin/python3 -m venv). Quiet when everything is present.
#   --no-venv   skip the Python venv
#   --check     only report what is missing; exit 1 if anything is
set -euo pipefail
ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
MCP_VERSION=2.3.0   # PyPI `mcp`, installs on Debian 12's Python 3.11

PACKAGES=(
    # headless desktop (scripts/headless-desktop.sh)
    xvfb dbus dbus-x11 at-spi2-core openbox x11-utils xdotool
    # build: libdbus, libsystemd, AT-SPI constants
    libatspi2.0-dev libdbus-1-dev libsystemd-dev pkg-config
    # fixture apps and the pyatspi comparison
    python3-gi python3-pyatspi gir1.2-atspi-2.0 gir1.2-gtk-3.0 gir1.2-gtk-4.0 python3-pyqt5
    libatk-adaptor libgtk-3-0 libgtk-4-1
    # tools used by scripts and tests
    socat zenity python3-venv procps psmisc util-linux coreutils grep sed
    # systemd-analyze, systemd-socket-activate, journald; the unit's seccomp filter in tests
    systemd python3-seccomp
    # every socket the daemon and deskgate-mcp create, traced (NoNetworkTests)
    strace
    # a real Secret Service for field.fill_secret's tests (SecretFillTests): gnome-keyring-daemon,
    # secret-tool to store items, gdbus to lock the keyring and ask who owns its name
    gnome-keyring libsecret-tools libglib2.0-bin
    # real apps on the headless desktop (docs/apps.md). libreoffice-gtk3 is spelled out: it is
    # only recommended, and without it soffice has no AT-SPI bridge. Fonts come with fontconfig.
    firefox-esr chromium libreoffice-writer libreoffice-calc libreoffice-gtk3
)
NO_VENV=0; CHECK=0
for a in "$@"; do
    case "$a" in
        --no-venv) NO_VENV=1 ;;
        --check) CHECK=1 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "deps.sh: unknown option $a" >&2; exit 2 ;;
    esac
done

missing=()
for p in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$status" = installed ] || missing+=("$p")
done

venv_ok() {
    [ -x "$ROOT/.venv/bin/python" ] &&
        [ "$("$ROOT/.venv/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))' 2>/dev/null)" = "$MCP_VERSION" ]
}

if [ "$CHECK" = 1 ]; then
    rc=0
    if [ ${#missing[@]} -gt 0 ]; then echo "missing packages: ${missing[*]}"; rc=1; fi
    if [ "$NO_VENV" = 0 ] && ! venv_ok; then echo "missing: .venv with mcp==$MCP_VERSION"; rc=1; fi
    exit $rc
fi

if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "deps.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
        SUDO=sudo
    fi
    echo "deps.sh: installing ${missing[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$NO_VENV" = 0 ] && ! venv_ok; then
    echo "deps.sh: creating .venv with mcp==$MCP_VERSION" >&2
    [ -x "$ROOT/.venv/bin/python" ] || /usr/bin/python3 -m venv "$ROOT/.venv"
    "$ROOT/.venv/bin/pip" install -q --disable-pip-version-check "mcp==$MCP_VERSION"
    venv_ok || { echo "deps.sh: mcp==$MCP_VERSION did not install into .venv" >&2; exit 1; }
fi
