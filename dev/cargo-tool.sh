#!/usr/bin/env bash
# Install a pinned cargo subcommand from crates.io into a cache outside the
# repository, keyed by crate and version, and reuse it when present:
#
#   dev/cargo-tool.sh CRATE VERSION [EXTRA cargo install ARGS...]
#
# runs `cargo install CRATE --locked --version VERSION --root <cache>/CRATE-VERSION`
# (a source build: minutes on two cores, once per machine). test.sh installs
# cargo-nextest with it, and fuzz/run.sh cargo-fuzz.
#
# The versioned directory appears only by an atomic rename of a finished
# install, so a killed build never leaves a half-installed tool behind; with it
# present the script prints one line and exits (no network, no build).
#
# Environment:
#   SWORN_CACHE_DIR  cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/sworn)
#
# Prints the tool's bin directory on its last line of stdout.
set -euo pipefail

crate="${1:?usage: $0 CRATE VERSION [cargo install args...]}"
version="${2:?usage: $0 CRATE VERSION [cargo install args...]}"
shift 2

cache_root=${SWORN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sworn}
key="${crate#cargo-}-${version}"
final="$cache_root/$key"

log() { printf '[cargo-tool.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

if [[ -x "$final/bin/$crate" ]]; then
  echo "$final/bin"
  exit 0
fi

mkdir -p "$cache_root"
# Serialise concurrent installs of the same tool (two test runs, say).
exec 9>"$cache_root/.lock-$key"
if ! flock -n 9; then
  log "another install holds $cache_root/.lock-$key; waiting"
  flock 9
fi
if [[ -x "$final/bin/$crate" ]]; then
  echo "$final/bin"
  exit 0
fi

# Leftovers of killed installs are safe to drop while we hold the lock.
rm -rf "$cache_root"/.tmp-"$key".*
stage=$(mktemp -d "$cache_root/.tmp-$key.XXXXXX")
trap 'rm -rf "$stage"' EXIT

start=$SECONDS
log "building $crate $version from source (once per machine; minutes)"
# Redirected so that only the bin directory reaches stdout.
cargo install "$crate" --locked --version "$version" --root "$stage" "$@" >&2
# The way cargo will run it: `cargo nextest`, `cargo fuzz`.
PATH="$stage/bin:$PATH" cargo "${crate#cargo-}" --version >&2

chmod 0755 "$stage"
# rename(2) of a directory onto a missing path is atomic.
rm -rf "$final"
mv -T "$stage" "$final"
trap - EXIT
log "installed $crate $version into $final/bin in $(( (SECONDS - start) / 60 ))m$(( (SECONDS - start) % 60 ))s"
echo "$final/bin"
