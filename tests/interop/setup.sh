#!/usr/bin/env bash
# Prepares the unmodified public SPIFFE clients sworn is tested against, in a
# cache outside the repository keyed by version, and prints shell exports for
# the tests:
#   SWORN_GO_SPIFFE_FETCH  go-fetch built against github.com/spiffe/go-spiffe/v2
#   SWORN_PY_SPIFFE        a python3 with py-spiffe (`spiffe` on PyPI) installed
# Progress goes to stderr; stdout carries only the export lines.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${SWORN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sworn}/interop
GO_SPIFFE=v2.9.0
PY_SPIFFE=0.3.2
log() { printf '[interop setup] %s\n' "$*" >&2; }

go_bin="$cache/go-spiffe-$GO_SPIFFE/go-fetch"
src_sum=$(cat "$here/go-fetch/main.go" "$here/go-fetch/go.mod" | sha256sum | cut -c1-12)
if [[ ! -x "$go_bin" || "$(cat "$go_bin.src" 2>/dev/null)" != "$src_sum" ]]; then
  log "building go-fetch against go-spiffe $GO_SPIFFE"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cp "$here/go-fetch/main.go" "$here/go-fetch/go.mod" "$work/"
  (cd "$work" && go mod tidy >&2 && CGO_ENABLED=0 go build -o go-fetch . >&2)
  mkdir -p "$(dirname "$go_bin")"
  mv "$work/go-fetch" "$go_bin.tmp" && mv "$go_bin.tmp" "$go_bin"
  echo "$src_sum" > "$go_bin.src"
fi

venv="$cache/py-spiffe-$PY_SPIFFE"
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c "import spiffe" 2>/dev/null; then
  log "installing py-spiffe $PY_SPIFFE into $venv"
  rm -rf "$venv.tmp"
  python3 -m venv "$venv.tmp" >&2
  "$venv.tmp/bin/pip" install --quiet "spiffe==$PY_SPIFFE" >&2
  rm -rf "$venv"
  mv "$venv.tmp" "$venv"
  # A venv records its own path; recreate the scripts for the final location.
  python3 -m venv --upgrade "$venv" >&2
fi

echo "export SWORN_GO_SPIFFE_FETCH=$go_bin"
echo "export SWORN_PY_SPIFFE=$venv/bin/python"
echo "export SWORN_PY_SPIFFE_PROBE=$here/py_fetch.py"
