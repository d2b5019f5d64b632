#!/usr/bin/env bash
# Builds the pinned SPIRE peer (spire-server, spire-agent) from the Go module
# proxy into a cache outside the repository. Idempotent: a complete cache is
# reused; a build lands in a temporary directory and is renamed into place
# atomically, so an interrupted build never leaves a half-filled cache.
#
# Usage: bench/spire/build.sh            prints the bin directory on stdout
# Env:   SPIRE_VERSION (default v1.15.3), SWORN_CACHE (default ~/.cache/sworn)
set -euo pipefail

version="${SPIRE_VERSION:-v1.15.3}"
cache="${SWORN_CACHE:-$HOME/.cache/sworn}/spire/$version"
bin="$cache/bin"

if [[ -x "$bin/spire-server" && -x "$bin/spire-agent" ]]; then
    echo "$bin"
    exit 0
fi

command -v go >/dev/null || { echo "build.sh: go toolchain not found; install Go >= 1.24 (apt-get install golang-go or go.dev)" >&2; exit 1; }

mkdir -p "$cache"
work="$(mktemp -d "$cache/.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

mod="$work/mod"
mkdir -p "$mod" "$work/bin"
(
    cd "$mod"
    export GOFLAGS="-mod=mod" GOBIN="$work/bin" CGO_ENABLED=1
    go mod init sworn.invalid/spire-build >&2
    # SPIRE 1.15 requires github.com/Keyfactor/ejbca-go-client-sdk v1.1.0, which the module
    # proxy refuses. It serves only SPIRE's EJBCA upstream-authority plugin, which the
    # benchmark never loads; v1.0.2 satisfies the build. RESULTS.md says the peer was built
    # this way.
    go mod edit -replace github.com/Keyfactor/ejbca-go-client-sdk=github.com/Keyfactor/ejbca-go-client-sdk@v1.0.2 >&2
    for name in spire-server spire-agent; do
        echo "build.sh: building $name $version" >&2
        go get -tool "github.com/spiffe/spire/cmd/$name@$version" >&2
        go install "github.com/spiffe/spire/cmd/$name" >&2
    done
)
"$work/bin/spire-server" --version >&2 || true

rm -rf "$cache/bin.old"
[[ -d "$bin" ]] && mv "$bin" "$cache/bin.old"
mv "$work/bin" "$bin"
rm -rf "$cache/bin.old"
echo "$bin"
