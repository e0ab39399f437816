#!/usr/bin/env bash
# reproducible-check.sh: build the release binaries twice, from two clean clones of HEAD in two
# different directories, with SOURCE_DATE_EPOCH set to the commit's time, and compare their
# SHA-256. Exit 0 when every binary is identical; otherwise say which bytes differ.
# `make reproducible-check` runs it (docs/supply-chain.md).
set -euo pipefail
ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
EXECUTABLES=(deskgated deskgate deskgate-prompt deskgate-mcp)
WORK=$(mktemp -d /tmp/deskgate-repro.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
commit=$(git -C "$ROOT" rev-parse HEAD)
export SOURCE_DATE_EPOCH=$(git -C "$ROOT" log -1 --format=%ct "$commit")
echo "reproducible-check: commit $commit, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH"
for n in 1 2; do
    # Different lengths on purpose: a path that leaks into a binary changes it.
    dir="$WORK/build-$n"
    if [ "$n" = 2 ]; then dir="$WORK/build-2-in-another-directory"; fi
    git clone -q --no-hardlinks "$ROOT" "$dir"
    git -C "$dir" checkout -q "$commit"
    # The dependencies' sources come from the first tree's resolution, so both build the same.
    [ -f "$ROOT/Package.resolved" ] && cp "$ROOT/Package.resolved" "$dir/"
    echo "reproducible-check: build $n in $dir"
    (cd "$dir" && swift build -c release \
        -Xswiftc -file-prefix-map -Xswiftc "$dir=/deskgate" \
        -Xcc -ffile-prefix-map="$dir=/deskgate" \
        >"$WORK/build-$n.log" 2>&1) || { tail -n 30 "$WORK/build-$n.log"; exit 2; }
    for exe in "${EXECUTABLES[@]}"; do
        sha256sum "$dir/.build/release/$exe" | cut -d' ' -f1 >"$WORK/$exe.$n"
        cp "$dir/.build/release/$exe" "$WORK/$exe.bin.$n"
    done
done
status=0
for exe in "${EXECUTABLES[@]}"; do
    a=$(cat "$WORK/$exe.1"); b=$(cat "$WORK/$exe.2")
    if [ "$a" = "$b" ]; then
        echo "identical  $exe  $a"
        continue
    fi
    status=1
    echo "DIFFERENT  $exe  $a  $b"
    echo "  sizes: $(stat -c %s "$WORK/$exe.bin.1") and $(stat -c %s "$WORK/$exe.bin.2") bytes"
    # Without symbols and debug information: is the code itself the same?
    strip -o "$WORK/$exe.stripped.1" "$WORK/$exe.bin.1"
    strip -o "$WORK/$exe.stripped.2" "$WORK/$exe.bin.2"
    s1=$(sha256sum "$WORK/$exe.stripped.1" | cut -d' ' -f1); s2=$(sha256sum "$WORK/$exe.stripped.2" | cut -d' ' -f1)
    if [ "$s1" = "$s2" ]; then echo "  stripped: identical ($s1): only symbols and debug information differ"
    else echo "  stripped: different too ($s1, $s2)"; fi
    # Which strings differ, to say why (paths, times, ids).
    { diff <(strings -n 8 "$WORK/$exe.bin.1" | sort -u) <(strings -n 8 "$WORK/$exe.bin.2" | sort -u) || true; } \
        | grep '^[<>]' | head -n 12 | sed 's/^/  /'
done
exit $status
