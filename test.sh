#!/usr/bin/env bash
# Runs every check sworn has, from a clean clone, with no standard input.
# This is the README's test command, and `.ci/run` calls exactly this.
#
# It installs what the tests need into caches outside the repository
# (~/.cache/sworn by default, keyed by version) and reuses them:
#   - kube-apiserver, etcd and kubectl built from Go modules (dev/k8s/build.sh);
#   - helm v3.22.0 from Go modules (deploy/helm/build.sh);
#   - the go-spiffe and py-spiffe interoperability clients (tests/interop/setup.sh);
#   - cargo-nextest, pinned below, built from crates.io (dev/cargo-tool.sh).
# Then: rustfmt check, clippy with -D warnings, a bounded fuzz run of every parser
# (fuzz/run.sh), a benchmark smoke run, the doctests, and every other test under
# cargo-nextest (.config/nextest.toml: one process per test, a test still
# running after 3 x 120 s is killed and named, no retries). The tests come last
# so that nextest's summary ends the output; the time of each step follows it.
#
# Environment:
#   SWORN_TEST_THREADS  concurrent tests (default 2, from .config/nextest.toml)
#   SWORN_FUZZ_SECONDS  seconds each fuzz target runs (default 30)
#   SWORN_CACHE_DIR     cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/sworn)
set -euo pipefail
cd "$(dirname "$0")"

NEXTEST_VERSION=0.9.151

# Each step's name and start, for the table printed at the end (or on failure).
steps=()
starts=()
step() {
  steps+=("$*")
  starts+=("$SECONDS")
  printf '\n==> %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"
}
mmss() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }
report_times() {
  local rc=$? i end
  [[ ${#steps[@]} -gt 0 ]] || return "$rc"
  printf '\n==> step times\n'
  for i in "${!steps[@]}"; do
    end=${starts[i + 1]:-$SECONDS}
    printf '  %8s  %s\n' "$(mmss $((end - starts[i])))" "${steps[i]}"
  done
  printf '  %8s  total\n' "$(mmss "$SECONDS")"
  if [[ $rc -eq 0 ]]; then
    printf '\n==> all checks passed (%s)\n' "$(date -u +%H:%M:%S)"
  else
    printf '\ntest.sh: FAILED (exit %d) in step: %s\n' "$rc" "${steps[-1]}" >&2
  fi
}
trap report_times EXIT

for tool in cargo go python3 openssl flock; do
  command -v "$tool" >/dev/null || { echo "test.sh: $tool is required but not on PATH" >&2; exit 1; }
done
# Every step's script must be there and executable: a lost exec bit fails the
# run here, instead of silently dropping the step.
for script in dev/k8s/build.sh deploy/helm/build.sh tests/interop/setup.sh dev/cargo-tool.sh \
  fuzz/run.sh fuzz/make-seeds.sh bench/run .ci/import-cycles; do
  [[ -f $script ]] || { echo "test.sh: $script is missing" >&2; exit 1; }
  [[ -x $script ]] || { echo "test.sh: $script is not executable (chmod +x $script)" >&2; exit 1; }
done

step "control plane binaries (kube-apiserver, etcd, kubectl)"
SWORN_K8S_BIN=$(dev/k8s/build.sh | tail -n 1 | sed 's/^cached at //')
export SWORN_K8S_BIN

step "helm (for the deploy tests)"
SWORN_HELM=$(deploy/helm/build.sh | tail -n 1)
export SWORN_HELM

step "interoperability clients (go-spiffe, py-spiffe)"
# Captured first: `eval "$(cmd)"` would hide a failure of cmd.
interop_env=$(tests/interop/setup.sh)
eval "$interop_env"

step "cargo-nextest $NEXTEST_VERSION"
# Without the self-update feature: a pinned tool must not replace itself, and
# it is fewer crates to build.
nextest_bin=$(dev/cargo-tool.sh cargo-nextest "$NEXTEST_VERSION" \
  --no-default-features --features default-no-update | tail -n 1)
export PATH="$nextest_bin:$PATH"
cargo nextest --version

step "rustfmt"
cargo fmt --all -- --check
# The fuzz workspace is its own (fuzz/README.md); formatting it builds nothing.
cargo fmt --manifest-path fuzz/Cargo.toml -- --check

step "file-level import cycles (none allowed; docs/architecture.md, \"Layering\")"
.ci/import-cycles

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "fuzz every parser (bounded)"
fuzz/run.sh "${SWORN_FUZZ_SECONDS:-30}"

step "benchmark smoke run (not a timing gate)"
bench/run --quick --smoke

step "doctests"
cargo test --workspace --doc --locked

step "tests (cargo-nextest)"
threads=()
if [[ -n ${SWORN_TEST_THREADS:-} ]]; then
  threads=(--test-threads "$SWORN_TEST_THREADS")
fi
cargo nextest run --workspace --locked ${threads[@]+"${threads[@]}"}
