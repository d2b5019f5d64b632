#!/usr/bin/env bash
# Fuzz the W1 cgroup parser (sworn_caller::parse_proc_cgroup) for a bounded time.
#
#   agent/caller/fuzz/run.sh SECONDS
#
# How CI runs it: `agent/caller/fuzz/run.sh 60` as its own step of test.sh. The script
# installs the pinned cargo-fuzz below from crates.io into the cache (dev/cargo-tool.sh,
# once per machine), builds the `cgroup` target with libFuzzer and AddressSanitizer, and
# runs it for SECONDS starting from the seeds in seeds/cgroup and the tokens in cgroup.dict.
# It exits non-zero if the target panics (an invariant assertion failed), crashes, leaks, or
# times out; libFuzzer then leaves the input in artifacts/cgroup/ and prints how to reproduce
# it (`cargo fuzz run cgroup artifacts/cgroup/<file>`).
#
# Why this way: cargo-fuzz needs unstable rustc flags (-Zsanitizer, sancov passes). The
# script uses a nightly toolchain when rustup has one; otherwise it runs the pinned stable
# toolchain with RUSTC_BOOTSTRAP=1, which unlocks those flags on stable (no download is
# needed: stable ships the sanitizer runtimes). The crate has its own [workspace] so normal
# `cargo build`/`cargo test` of the main workspace never compiles it, and it depends on
# sworn-caller without the `serve` feature, so the instrumented build skips tonic and tokio.
# New corpus entries go to a temporary directory, so a run never dirties the repository.
set -euo pipefail

secs="${1:?usage: $0 SECONDS}"
case "$secs" in '' | *[!0-9]*) echo "SECONDS must be a whole number, got '$secs'" >&2; exit 2 ;; esac
here="$(cd "$(dirname "$0")" && pwd)"
CARGO_FUZZ_VERSION=0.13.2
cd "$here"

fuzz_bin="$("$here/../../../dev/cargo-tool.sh" cargo-fuzz "$CARGO_FUZZ_VERSION" | tail -n 1)"
export PATH="$fuzz_bin:$PATH"

toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    export RUSTC_BOOTSTRAP=1
fi

cargo ${toolchain[@]+"${toolchain[@]}"} fuzz build cgroup

corpus="$(mktemp -d)"
trap 'rm -rf "$corpus"' EXIT
cargo ${toolchain[@]+"${toolchain[@]}"} fuzz run cgroup "$corpus" seeds/cgroup -- \
    -max_total_time="$secs" -dict=cgroup.dict -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
