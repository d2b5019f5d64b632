#!/usr/bin/env bash
# Build the pinned helm CLI (helm.sh/helm/v3, cmd/helm) from the Go module
# proxy into the same cache as the control-plane binaries of dev/k8s/build.sh.
# Debian ships no helm package; the chart tests (tests/e2e/tests/deploy_*.rs)
# render deploy/helm/sworn with it.
#
# The build happens in a throwaway module outside the repository and the bin
# directory appears only by an atomic rename of a finished build, so a killed
# build never leaves a half-written helm behind. With the cache present the
# script prints one line and exits (no network, no Go toolchain needed).
#
# Environment:
#   SWORN_CACHE_DIR  cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/sworn)
#
# Prints the path of the helm binary on its last line of stdout.
set -euo pipefail

HELM_VERSION=v3.22.0

cache_root=${SWORN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sworn}
k8s_cache="$cache_root/k8s"
key="helm-${HELM_VERSION}"
final="$k8s_cache/$key"

log() { printf '[helm/build.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

if [[ -x "$final/bin/helm" ]]; then
  echo "$final/bin/helm"
  exit 0
fi

command -v go >/dev/null || { log "go toolchain not found on PATH; install Go >= 1.26"; exit 1; }
mkdir -p "$k8s_cache"

# Serialise concurrent builds; a lock of its own so a helm build never waits
# for (or blocks) a control-plane build.
exec 9>"$k8s_cache/.lock-$key"
if ! flock -n 9; then
  log "another build holds $k8s_cache/.lock-$key; waiting"
  flock 9
fi
if [[ -x "$final/bin/helm" ]]; then
  echo "$final/bin/helm"
  exit 0
fi

# Leftovers of killed builds are safe to drop while we hold the lock.
rm -rf "$k8s_cache"/.tmp-"$key".*
stage=$(mktemp -d "$k8s_cache/.tmp-$key.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/src"

export CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false"
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}

log "go: $(go version)"
cat >"$stage/src/go.mod" <<GOMOD
module sworn.invalid/helm-build

go 1.26.0

require helm.sh/helm/v3 ${HELM_VERSION}
GOMOD
cd "$stage/src"
log "resolving helm ${HELM_VERSION} dependencies (downloads on first run)"
go get "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
log "building helm ${HELM_VERSION}"
go build -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
  -o "$stage/bin/helm" helm.sh/helm/v3/cmd/helm

cd "$k8s_cache"
# helm wants writable config/cache dirs even for `version`; keep them in the stage.
HELM_CONFIG_HOME="$stage/tmp" HELM_CACHE_HOME="$stage/tmp" HELM_DATA_HOME="$stage/tmp" \
  "$stage/bin/helm" version --short >&2
rm -rf "$stage/src" "$stage/tmp"
chmod 0755 "$stage"
# rename(2) of a directory onto a missing path is atomic.
rm -rf "$final"
mv -T "$stage" "$final"
trap - EXIT
log "built into $final/bin"
echo "$final/bin/helm"
