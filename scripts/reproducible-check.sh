#!/usr/bin/env bash
# reproducible-check.sh: build the release binaries twice, from two clean clones of HEAD in two
# different directories, with SOURCE_DATE_EPOCH set to the commit's time and the flags of
# scripts/release-build.sh (the clone's own copy: the commit's flags), and compare their SHA-256.
# Exit 0 when every binary is identical; otherwise say which bytes differ: in which ELF sections,
# whether the stripped binaries differ too, and the strings that differ.
# `make reproducible-check` and `.ci/run` run it (docs/supply-chain.md).
set -euo pipefail
ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
EXECUTABLES=(deskgated deskgate deskgate-prompt deskgate-mcp)
WORK=$(mktemp -d /tmp/deskgate-repro.XXXXXX)
# SwiftPM also leaves lock files in /tmp named after each build's path, / spelled _.
trap 'rm -rf "$WORK" /tmp/"${WORK//\//_}"_*.lock' EXIT
commit=$(git -C "$ROOT" rev-parse HEAD)
export SOURCE_DATE_EPOCH=$(git -C "$ROOT" log -1 --format=%ct "$commit")
echo "reproducible-check: commit $commit, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH"
for n in 1 2; do
    # Different lengths on purpose: a path that leaks into a binary changes it.
    dir="$WORK/build-$n"
    if [ "$n" = 2 ]; then dir="$WORK/build-2-in-another-directory"; fi
    git clone -q --no-hardlinks "$ROOT" "$dir"
    git -C "$dir" checkout -q "$commit"
    # Both build the same dependency versions: the resolution of the tree being checked when it
    # has one, else the one the first build made.
    if [ -f "$ROOT/Package.resolved" ]; then cp "$ROOT/Package.resolved" "$dir/"
    elif [ "$n" = 2 ] && [ -f "$WORK/build-1/Package.resolved" ]; then cp "$WORK/build-1/Package.resolved" "$dir/"; fi
    echo "reproducible-check: build $n in $dir"
    start=$(date +%s)
    bash "$dir/scripts/release-build.sh" >"$WORK/build-$n.log" 2>&1 || { tail -n 30 "$WORK/build-$n.log"; exit 2; }
    echo "reproducible-check: build $n took $(( $(date +%s) - start )) s"
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
    # Which ELF sections hold the differing bytes (same size only), and how many in each.
    if [ "$(stat -c %s "$WORK/$exe.bin.1")" = "$(stat -c %s "$WORK/$exe.bin.2")" ]; then
        readelf -S -W "$WORK/$exe.bin.1" | sed -n 's/^ *\[ *[0-9]*\] //p' \
            | while read -r name _type _addr off size _; do
                [ "$name" = NULL ] || echo "$name $((16#$off)) $((16#$size))"
            done >"$WORK/$exe.sections"
        { cmp -l "$WORK/$exe.bin.1" "$WORK/$exe.bin.2" || true; } | awk -v table="$WORK/$exe.sections" '
            BEGIN { while ((getline line < table) > 0) { split(line, f, " "); k++; name[k] = f[1]; off[k] = f[2]; size[k] = f[3] } }
            { o = $1 - 1; s = "(outside any section)"
              for (i = 1; i <= k; i++) if (o >= off[i] && o < off[i] + size[i]) { s = name[i]; break }
              count[s]++; if (!(s in first)) first[s] = o }
            END { for (s in count) printf "  %d bytes differ in %s, the first at file offset 0x%x\n", count[s], s, first[s] }'
    fi
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
