#!/usr/bin/env bash
# man-page.sh: regenerate docs/deskgate.1 (run by `make man` after changing a deskgate command).
#
# swift-argument-parser's generate-manual plugin writes NAME, SYNOPSIS and DESCRIPTION (every
# subcommand, option and help text) from the CLI's own command definitions; this script replaces
# its generic EXIT STATUS with ENVIRONMENT, FILES, EXIT STATUS, EXAMPLES and SEE ALSO, which the
# definitions cannot tell. The page is dated with the last commit that changed the CLI, so
# regenerating unchanged definitions changes nothing. CLITests checks that the committed page
# is current (every command, option and help text) and that `man -l` renders it cleanly.
#
# Help texts must be ASCII: generate-manual drops every other character.
set -euo pipefail
ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
cd "$ROOT"
CONFIG=${CONFIG:-debug}
OUT=docs/deskgate.1
GENERATED=.build/plugins/GenerateManual/outputs/deskgate/deskgate.1

DATE=$(git log -1 --format=%cs -- Sources/deskgate 2>/dev/null || true)
[ -n "$DATE" ] || DATE=$(date -u +%F)

rm -f "$GENERATED"
swift package generate-manual --configuration "$CONFIG" --date "$DATE" >/dev/null
[ -s "$GENERATED" ] || { echo "man-page.sh: the plugin wrote no $GENERATED" >&2; exit 1; }

# The generator ends with `.Sh "EXIT STATUS"` and `.Ex -std`; everything after it is ours.
[ "$(tail -n 2 "$GENERATED")" = $'.Sh "EXIT STATUS"\n.Ex -std' ] || {
    echo "man-page.sh: $GENERATED no longer ends with the generic EXIT STATUS; update this script" >&2
    exit 1
}

# The version alone (--version goes on with the commit, compiler and dependencies).
VERSION=$(".build/$CONFIG/deskgate" --version | head -n 1 | cut -d" " -f1)
{
    # `.Os` names the source of the page in its footer (the generator leaves it empty).
    head -n -2 "$GENERATED" | sed "s/^\.Os\$/.Os deskgate $VERSION/"
    cat <<'EOF'
.Sh ENVIRONMENT
.Bl -tag -width Ds
.It Ev DESKGATE_SOCKET
The daemon's socket when
.Fl -socket
is not given.
.It Ev XDG_RUNTIME_DIR
Without either, the socket is
.Pa $XDG_RUNTIME_DIR/deskgate/deskgate.sock
(else
.Pa /run/user/UID/deskgate/deskgate.sock ,
else
.Pa /tmp/deskgate-UID/deskgate.sock ) .
.It Ev XDG_STATE_HOME
.Ql deskgate audit verify --journal ,
.Ql deskgate audit export
and
.Ql deskgate audit reset
read the audit log under
.Pa $XDG_STATE_HOME/deskgate
(else
.Pa ~/.local/state/deskgate )
unless
.Fl -state-dir
is given.
.El
.Sh FILES
.Bl -tag -width Ds
.It Pa $XDG_RUNTIME_DIR/deskgate/deskgate.sock
The daemon's socket (mode 0600 in a 0700 directory).
.It Pa /etc/deskgate/policy.d/*.toml
The admin policy.
.It Pa $XDG_CONFIG_HOME/deskgate/policy.toml
The user policy
.Pf ( Pa ~/.config/deskgate/policy.toml ) .
.It Pa $XDG_STATE_HOME/deskgate/audit/
The audit log, written only by the daemon.
.El
.Sh "EXIT STATUS"
.Bl -tag -width Ds
.It 0
Success.
.It 1
Failure: the daemon could not be reached or answered with an error, a policy file or the audit
log or an exported bundle did not verify, there was no grant with the id to revoke, or
.Ql deskgate audit reset
ran without
.Fl -yes ,
or
.Ql deskgate doctor
found a failed check.
.It 2
The permission broker denied the request.
.It 3
.Ql deskgate wait
timed out: nothing matched (with
.Fl -gone ,
something still did).
.It 64
Usage error: an unknown option, or a missing or malformed argument.
.El
.Sh EXAMPLES
List the apps this program may observe, then fill a field of one:
.Bd -literal -offset indent
deskgate apps
deskgate tree gedit --outline --filter interactive
deskgate fill gedit Name Alice
.Ed
.Pp
The client options may come before or after the subcommand, as with
.Ql git -C
or
.Ql systemctl --user :
.Bd -literal -offset indent
deskgate --socket /tmp/dg.sock apps
deskgate apps --socket /tmp/dg.sock
alias dg='deskgate --socket /tmp/dg.sock --json'; dg whoami
.Ed
.Pp
Check the audit log against the systemd journal:
.Dl deskgate audit verify --journal
.Pp
After an incident, export the records of a time range with the journal's checkpoints, and check
the bundle on another machine:
.Bd -literal -offset indent
deskgate audit export --since 2026-12-06T08:00:00Z --out incident.bundle
deskgate audit verify --bundle incident.bundle
.Ed
.Sh "SEE ALSO"
.Xr systemctl 1 ,
.Xr journalctl 1 ,
.Xr systemd.socket 5 .
The full documentation (protocol, policy format, security model, operations, incident response) is installed in
.Pa share/doc/deskgate/
under the installation prefix.
EOF
} > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "wrote $OUT"
