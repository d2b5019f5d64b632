#!/usr/bin/env bash
# Build the pinned Kubernetes control-plane binaries used by sworn's tests and
# by `sworn-dev up --kubernetes`: kube-apiserver and kubectl from
# k8s.io/kubernetes, and etcd from go.etcd.io/etcd/server/v3, all fetched
# through the Go module proxy and built into a cache outside the repository.
#
# The cache directory is keyed by both versions and is only ever created by an
# atomic rename of a finished build, so a killed build never leaves a partial
# cache behind. Re-running with the cache present prints one line and exits.
#
# Environment:
#   SWORN_CACHE_DIR  cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/sworn)
#
# Prints the bin directory on its last line of stdout.
set -euo pipefail

K8S_VERSION=v1.37.2
ETCD_VERSION=v3.6.16

# k8s.io/kubernetes vX.Y.Z pairs with staging modules v0.Y.Z.
k8s_minor=${K8S_VERSION#v1.}
k8s_minor=${k8s_minor%%.*}
k8s_patch=${K8S_VERSION##*.}
STAGING_VERSION="v0.${k8s_minor}.${k8s_patch}"

cache_root=${SWORN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sworn}
k8s_cache="$cache_root/k8s"
key="${K8S_VERSION}-etcd${ETCD_VERSION#v}"
final="$k8s_cache/$key"

log() { printf '[build.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

have_all() {
  [[ -x "$final/bin/kube-apiserver" && -x "$final/bin/kubectl" && -x "$final/bin/etcd" ]]
}

if have_all; then
  echo "cached at $final/bin"
  exit 0
fi

command -v go >/dev/null || { log "go toolchain not found on PATH; install Go >= 1.26"; exit 1; }
mkdir -p "$k8s_cache"

# Serialise concurrent builds (a test run and a person, say).
exec 9>"$k8s_cache/.lock"
if ! flock -n 9; then
  log "another build holds $k8s_cache/.lock; waiting"
  flock 9
fi
if have_all; then
  echo "cached at $final/bin"
  exit 0
fi

# Leftovers of killed builds are safe to drop while we hold the lock.
rm -rf "$k8s_cache"/.tmp-"$key".* 
stage=$(mktemp -d "$k8s_cache/.tmp-$key.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/src/k8s" "$stage/src/etcd"

export CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false"
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}

ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${K8S_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${k8s_minor}"

log "go: $(go version)"
log "fetching k8s.io/kubernetes@${K8S_VERSION} go.mod"
kmod_json=$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}")
kgomod=$(printf '%s\n' "$kmod_json" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
[[ -f "$kgomod" ]] || { log "could not locate go.mod of k8s.io/kubernetes@${K8S_VERSION}"; printf '%s\n' "$kmod_json" >&2; exit 1; }

# Every staging module is replaced by a local path in that go.mod; point each
# at its published release instead.
mapfile -t staging < <(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._/-]*\) => \./staging/.*#\1#p' "$kgomod" | sort -u)
[[ ${#staging[@]} -gt 0 ]] || { log "no staging replace lines found in $kgomod"; exit 1; }
log "replacing ${#staging[@]} staging modules with ${STAGING_VERSION}"

{
  echo "module sworn.invalid/k8s-build"
  echo
  echo "go 1.26.0"
  echo
  echo "require k8s.io/kubernetes ${K8S_VERSION}"
  echo
  echo "replace ("
  for m in "${staging[@]}"; do echo "	$m => $m ${STAGING_VERSION}"; done
  echo ")"
} >"$stage/src/k8s/go.mod"

cd "$stage/src/k8s"
log "resolving kube-apiserver and kubectl dependencies (downloads on first run)"
go get "k8s.io/kubernetes/cmd/kube-apiserver@${K8S_VERSION}" "k8s.io/kubernetes/cmd/kubectl@${K8S_VERSION}"
log "building kube-apiserver ${K8S_VERSION} (several minutes)"
go build -trimpath -ldflags "$ldflags" -o "$stage/bin/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
log "building kubectl ${K8S_VERSION}"
go build -trimpath -ldflags "$ldflags" -o "$stage/bin/kubectl" k8s.io/kubernetes/cmd/kubectl

cat >"$stage/src/etcd/go.mod" <<GOMOD
module sworn.invalid/etcd-build

go 1.26.0

require go.etcd.io/etcd/server/v3 ${ETCD_VERSION}
GOMOD
cd "$stage/src/etcd"
log "resolving etcd ${ETCD_VERSION} dependencies"
# server/v3's own replace lines point at sibling directories of the etcd repo;
# pin those siblings to the same release.
go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" \
  "go.etcd.io/etcd/api/v3@${ETCD_VERSION}" \
  "go.etcd.io/etcd/client/pkg/v3@${ETCD_VERSION}" \
  "go.etcd.io/etcd/client/v3@${ETCD_VERSION}" \
  "go.etcd.io/etcd/pkg/v3@${ETCD_VERSION}"
log "building etcd ${ETCD_VERSION}"
go build -trimpath -ldflags "-s -w" -o "$stage/bin/etcd" go.etcd.io/etcd/server/v3

cd "$k8s_cache"
"$stage/bin/kube-apiserver" --version >&2
"$stage/bin/kubectl" version --client >&2
"$stage/bin/etcd" --version >&2

rm -rf "$stage/src"
chmod 0755 "$stage"
# rename(2) of a directory onto a missing path is atomic.
rm -rf "$final"
mv -T "$stage" "$final"
trap - EXIT
log "built into $final/bin"
echo "$final/bin"
