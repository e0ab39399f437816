#!/usr/bin/env bash
# release-build.sh [SWIFT-BUILD-ARGUMENT...]: `swift build -c release` of the package this script
# is in, with the flags that make the binaries byte-identical wherever the checkout is
# (docs/supply-chain.md, "Reproducible builds"). `make build-release`, `make install`,
# `make bench` and `scripts/reproducible-check.sh` all build through it.
#
# * -file-prefix-map (swiftc) and -ffile-prefix-map (clang): the checkout's path becomes
#   /deskgate in debug information and #file strings. The BuildInfo plugin's output directory
#   is named after the package identity (the checkout directory's name, lower-cased), so it is
#   mapped first, to a fixed name (swiftc uses the first map that matches).
# * -no-clang-module-breadcrumbs: no DWARF skeleton units naming the clang module cache's .pcm
#   files, whose paths hash the build directory (and which exist only on the build machine).
# * -disable-incremental-llvm-codegen: the .swift_modhash section holds zeros instead of an MD5
#   per object file of its LLVM module, which came out different in two directories (the hash
#   only lets an incremental rebuild skip code generation).
#
# SOURCE_DATE_EPOCH (the build time BuildInfo records): kept when set; otherwise the HEAD
# commit's time when tracked files are unchanged, and unset (the clock) when they are not.
# SWIFT names the swift driver (default: swift).
set -euo pipefail
ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd -P)
cd "$ROOT"
if [ -z "${SOURCE_DATE_EPOCH:-}" ] && git rev-parse -q --verify HEAD >/dev/null 2>&1 \
    && [ -z "$(git status --porcelain --untracked-files=no)" ]; then
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct HEAD)
    export SOURCE_DATE_EPOCH
fi
identity=$(basename "$ROOT" | tr '[:upper:]' '[:lower:]')
exec "${SWIFT:-swift}" build -c release \
    -Xswiftc -file-prefix-map -Xswiftc "$ROOT/.build/plugins/outputs/$identity/=/deskgate/.build/plugins/outputs/deskgate/" \
    -Xswiftc -file-prefix-map -Xswiftc "$ROOT=/deskgate" \
    -Xcc -ffile-prefix-map="$ROOT=/deskgate" \
    -Xswiftc -Xfrontend -Xswiftc -no-clang-module-breadcrumbs \
    -Xswiftc -Xfrontend -Xswiftc -disable-incremental-llvm-codegen \
    "$@"
