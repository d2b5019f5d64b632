#!/usr/bin/env bash
# Fuzz every parser sworn exposes to input it does not control, for a bounded time.
#
#   fuzz/run.sh SECONDS_PER_TARGET
#
# How CI runs it: `fuzz/run.sh 30` is test.sh's step "fuzz every parser (bounded)"
# (SWORN_FUZZ_SECONDS there). The script installs the pinned cargo-fuzz below from crates.io
# into the cache (dev/cargo-tool.sh, once per machine), builds every target of this
# workspace with one `cargo fuzz build`, then runs the targets two at a time
# (SWORN_FUZZ_JOBS, default 2: one per core) for SECONDS each, starting from the seeds in seeds/<target>/ and the
# tokens in dicts/<target>.dict when there is one. It stops at the first target that
# fails an invariant assertion (a panic), crashes, runs one input for more than 10 s, or
# grows past 2 GiB of RSS; it names the target, copies the input to artifacts/<target>/
# (git-ignored; libFuzzer's log also prints a small input in base64) and prints how to
# reproduce it. New corpus entries, and the files the
# targets make (token_path's kubelet root), go to a temporary directory removed at exit,
# so a run never dirties the repository.
#
# Why this way:
# - cargo-fuzz needs unstable rustc flags (sancov passes). The script uses a nightly
#   toolchain when rustup has one; otherwise it runs the pinned stable toolchain with
#   RUSTC_BOOTSTRAP=1, which unlocks those flags on stable (nothing is downloaded).
# - `--sanitizer none`: every sworn crate forbids unsafe code (workspace lints), so what
#   fuzzing can find in them is panics (failed invariants, overflow: debug assertions stay
#   on), hangs and memory blow-ups, which libFuzzer catches without a sanitizer through
#   -timeout and -rss_limit_mb. AddressSanitizer would watch only the unsafe code of
#   dependencies (ring, x509-parser's), at the cost of a build of its own and slower
#   executions; within 30 s per target the executions matter more.
#   (Without a sanitizer libFuzzer cannot hook malloc, so -malloc_limit_mb does not apply;
#   the RSS limit does.)
# - The build output lives in the cache outside the repository
#   (${SWORN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sworn}/fuzz-target), like
#   test.sh's other caches: the server and agent crates under instrumentation are most of
#   the cost, and a warm cache rebuilds only what changed. `--codegen-units 16` trades a
#   little execution speed for a build that uses both cores.
# - The workspace has its own [workspace], so normal `cargo build`/`cargo test` of the main
#   workspace never compiles it, and its dependencies build once for all targets.
set -euo pipefail

secs="${1:?usage: $0 SECONDS_PER_TARGET}"
case "$secs" in '' | *[!0-9]*) echo "SECONDS_PER_TARGET must be a whole number, got '$secs'" >&2; exit 2 ;; esac
here="$(cd "$(dirname "$0")" && pwd)"
CARGO_FUZZ_VERSION=0.13.2
cd "$here"

fuzz_bin="$("$here/../dev/cargo-tool.sh" cargo-fuzz "$CARGO_FUZZ_VERSION" | tail -n 1)"
export PATH="$fuzz_bin:$PATH"

toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    export RUSTC_BOOTSTRAP=1
fi

cache_root=${SWORN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sworn}
target_dir="$cache_root/fuzz-target"
triple=x86_64-unknown-linux-gnu
start=$SECONDS
cargo ${toolchain[@]+"${toolchain[@]}"} fuzz build --sanitizer none --codegen-units 16 \
    --target "$triple" --target-dir "$target_dir"
echo "run.sh: built every target in $((SECONDS - start)) s"

mapfile -t targets < <(cargo ${toolchain[@]+"${toolchain[@]}"} fuzz list)
for target in "${targets[@]}"; do
    [[ -d seeds/$target ]] || { echo "run.sh: target $target has no seeds/$target/ (make-seeds.sh)" >&2; exit 1; }
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# One target's run; its exit status is libFuzzer's.
run_target() {
    local target=$1
    mkdir -p "$work/corpus/$target" "$work/tmp/$target" "$work/artifacts/$target"
    local args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$work/artifacts/$target/")
    [[ -f dicts/$target.dict ]] && args+=(-dict="dicts/$target.dict")
    TMPDIR="$work/tmp/$target" "$target_dir/$triple/release/$target" "${args[@]}" \
        "$work/corpus/$target" "seeds/$target" >"$work/$target.log" 2>&1
}

# Reports a finished target; exits on a failure (after the other running target ends, so
# its output is not cut mid-line).
report() {
    local target=$1 rc=$2
    if [[ $rc -ne 0 ]]; then
        # Let the other running target end, so its output is not cut mid-line, and name it
        # too if it also failed (its log is in the same place).
        local pid other_rc
        for pid in "${!running[@]}"; do
            [[ ${running[$pid]} == "$target" ]] && continue
            wait "$pid" && other_rc=0 || other_rc=$?
            [[ $other_rc -eq 0 ]] || echo "run.sh: target ${running[$pid]} also FAILED (exit $other_rc)" >&2
        done
        tail -n 60 "$work/$target.log" >&2
        local artifact=none found
        for found in "$work/artifacts/$target"/*; do
            [[ -f $found ]] || continue
            mkdir -p "artifacts/$target"
            cp "$found" "artifacts/$target/"
            artifact="$here/artifacts/$target/$(basename "$found")"
        done
        echo "run.sh: target $target FAILED; input: $artifact" >&2
        echo "run.sh: reproduce: $target_dir/$triple/release/$target $artifact" >&2
        exit 1
    fi
    local runs
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$target.log")
    echo "run.sh: $target: ${runs:-?} inputs in ${secs} s, corpus $(ls "$work/corpus/$target" | wc -l) new + $(ls "seeds/$target" | wc -l) seeds, no failure"
}

# Two targets at a time, one per core: each is a single-threaded libFuzzer process, so the
# step takes ceil(targets / 2) x SECONDS instead of targets x SECONDS.
parallel=${SWORN_FUZZ_JOBS:-2}
declare -A running=()
start=$SECONDS
for target in "${targets[@]}"; do
    if [[ ${#running[@]} -ge $parallel ]]; then
        wait -n -p done_pid && rc=0 || rc=$?
        report "${running[$done_pid]}" "$rc"
        unset "running[$done_pid]"
    fi
    run_target "$target" &
    running[$!]=$target
done
while [[ ${#running[@]} -gt 0 ]]; do
    wait -n -p done_pid && rc=0 || rc=$?
    report "${running[$done_pid]}" "$rc"
    unset "running[$done_pid]"
done
echo "run.sh: ran ${#targets[@]} targets, $parallel at a time, in $((SECONDS - start)) s"
