#!/bin/sh
# Builds the go-spiffe interop client into ~/.cache/sworn/interop/, cached by go-spiffe
# version and source hash; prints the binary path on its last line.
# Needs `go` (https://go.dev/dl/) and the Go module proxy.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src="$here/spiffetls-client"
version=$(awk '/go-spiffe\/v2 /{print $NF}' "$src/go.mod")
hash=$(cat "$src/main.go" "$src/go.mod" | sha256sum | cut -c1-12)
cache="${SWORN_CACHE_DIR:-$HOME/.cache/sworn}/interop"
out="$cache/spiffetls-client-go-spiffe-$version-$hash"
if [ ! -x "$out" ]; then
    command -v go >/dev/null 2>&1 || {
        echo "build.sh: 'go' not found; install Go >= 1.24 from https://go.dev/dl/ and put it on PATH" >&2
        exit 1
    }
    mkdir -p "$cache"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    cp "$src/main.go" "$src/go.mod" "$work/"
    # go.sum is resolved here, outside the repository, from the pinned go.mod.
    (cd "$work" && GOFLAGS=-mod=mod go mod tidy >&2 && CGO_ENABLED=0 go build -trimpath -o "$out.tmp" . >&2)
    mv "$out.tmp" "$out"
fi
echo "$out"
