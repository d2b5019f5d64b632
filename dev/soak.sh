#!/usr/bin/env bash
# The soak: the whole test step (cargo-nextest over the workspace, as test.sh runs it)
# N times in a row (default 3) while `stress-ng --cpu 1` keeps one core busy, stopping at
# the first failure. A flaky test is a bug; this is how to find one before CI does.
#
#   dev/soak.sh [N]
#
# Needs stress-ng (Debian's package; installed with apt-get when missing and run as root).
# Uses the same caches and tools as test.sh (run test.sh once first on a new machine, or
# let the cached build scripts below build them). Prints each run's wall time and a summary.
set -euo pipefail
runs=${1:-3}
case "$runs" in '' | *[!0-9]*) echo "N must be a whole number, got '$runs'" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."

if ! command -v stress-ng >/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q stress-ng >/dev/null
  else
    echo "soak.sh: stress-ng is required (apt-get install stress-ng)" >&2
    exit 1
  fi
fi

NEXTEST_VERSION=$(sed -n 's/^NEXTEST_VERSION=//p' test.sh)
SWORN_K8S_BIN=$(dev/k8s/build.sh | tail -n 1 | sed 's/^cached at //')
SWORN_HELM=$(deploy/helm/build.sh | tail -n 1)
export SWORN_K8S_BIN SWORN_HELM
interop_env=$(tests/interop/setup.sh)
eval "$interop_env"
nextest_bin=$(dev/cargo-tool.sh cargo-nextest "$NEXTEST_VERSION" \
  --no-default-features --features default-no-update | tail -n 1)
export PATH="$nextest_bin:$PATH"
# Build first, so that every timed run is the tests alone.
cargo nextest run --workspace --locked --no-run

stress-ng --cpu 1 --timeout 0 --quiet &
stress_pid=$!
trap 'kill "$stress_pid" 2>/dev/null || true' EXIT
times=()
for ((run = 1; run <= runs; run++)); do
  printf '\n==> soak run %d/%d under stress-ng --cpu 1 (%s)\n' "$run" "$runs" "$(date -u +%H:%M:%S)"
  start=$SECONDS
  if ! cargo nextest run --workspace --locked; then
    echo "soak.sh: run $run of $runs FAILED after $((SECONDS - start)) s" >&2
    exit 1
  fi
  times+=("$((SECONDS - start))")
done
printf '\n==> %d/%d runs passed under stress-ng --cpu 1; wall times (s): %s\n' \
  "$runs" "$runs" "${times[*]}"
