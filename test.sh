#!/usr/bin/env bash
# Runs every check sworn has, from a clean clone, with no standard input.
# This is the README's test command, and `.ci/run` calls exactly this.
#
# It installs what the tests need into caches outside the repository
# (~/.cache/sworn by default, keyed by version) and reuses them:
#   - kube-apiserver, etcd and kubectl built from Go modules (dev/k8s/build.sh);
#   - helm v3.22.0 from Go modules (deploy/helm/build.sh);
#   - the go-spiffe and py-spiffe interoperability clients (tests/interop/setup.sh).
# Then: rustfmt check, clippy with -D warnings, every test, a bounded fuzz run
# of the cgroup parser, and a benchmark smoke run.
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n==> %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

for tool in cargo go python3 openssl; do
  command -v "$tool" >/dev/null || { echo "test.sh: $tool is required but not on PATH" >&2; exit 1; }
done

step "control plane binaries (kube-apiserver, etcd, kubectl)"
SWORN_K8S_BIN=$(dev/k8s/build.sh | tail -n 1 | sed 's/^cached at //')
export SWORN_K8S_BIN

step "helm (for the deploy tests)"
SWORN_HELM=$(deploy/helm/build.sh | tail -n 1)
export SWORN_HELM

if [[ -x tests/interop/setup.sh ]]; then
  step "interoperability clients (go-spiffe, py-spiffe)"
  eval "$(tests/interop/setup.sh)"
fi

step "rustfmt"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
# Two cores: keep test binaries from starving each other's control planes.
cargo test --workspace --locked -- --test-threads="${SWORN_TEST_THREADS:-2}"

if [[ -x agent/caller/fuzz/run.sh ]]; then
  step "fuzz the cgroup parser (bounded)"
  agent/caller/fuzz/run.sh "${SWORN_FUZZ_SECONDS:-60}"
fi

if [[ -x bench/run ]]; then
  step "benchmark smoke run (not a timing gate)"
  bench/run --quick --smoke
fi

step "all checks passed"
