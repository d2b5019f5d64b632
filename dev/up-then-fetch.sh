#!/usr/bin/env bash
# `sworn-dev up` followed at once by a fetch, N times (default 20).
#
# Each run starts the unix-mode quickstart (`sworn-dev --dir D up`) in a fresh
# directory and, the moment `sworn-dev --dir D env` answers (unix.json is
# written only once the agent holds the entry; `up` prints its "Press Ctrl-C"
# line after that), evaluates the exports and fetches with
# `sworn-agent fetch x509`, then with the go-spiffe and py-spiffe probes when
# tests/interop/setup.sh has exported them. Stops `up` with SIGINT.
#
# Exits 1 at the first failure, printing what `up` and the client said; keeps
# that run's directory. Prints "N/N fetches right after up succeeded" at the end.
#
# Usage: dev/up-then-fetch.sh [N]   (builds sworn-dev and sworn-agent first)
set -euo pipefail

runs=${1:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && cargo build -q -p sworn-dev -p sworn-agent)
dev_bin=$target/debug/sworn-dev
agent_bin=$target/debug/sworn-agent

dir=
up_pid=
fail() {
    set +e
    echo "run $run: FAILED: $*" >&2
    for f in "$dir"/*.out "$dir"/*.err; do
        [[ -f $f ]] && { echo "---- $f" >&2; tail -n 200 "$f" >&2; }
    done
    if [[ -n $up_pid ]]; then
        kill -INT "$up_pid" 2>/dev/null
        wait "$up_pid" 2>/dev/null
    fi
    echo "kept $dir" >&2
    exit 1
}

# Runs one client; it must succeed and print the quickstart's SPIFFE ID.
fetch() {
    local name=$1; shift
    local rc=0
    "$@" >"$dir/$name.out" 2>"$dir/$name.err" || rc=$?
    (( rc == 0 )) || fail "$name exited $rc"
    grep -q "spiffe://example.org/user/$(id -u)" "$dir/$name.out" ||
        fail "$name did not print spiffe://example.org/user/$(id -u)"
}

ok=0
for run in $(seq 1 "$runs"); do
    dir=$(mktemp -d /tmp/sworn-upfetch.XXXXXX)
    "$dev_bin" --dir "$dir" up >"$dir/up.out" 2>"$dir/up.err" &
    up_pid=$!
    start=$SECONDS
    # Bounded wait on the condition a user (or script) waits for; 10 ms polls.
    until "$dev_bin" --dir "$dir" env >"$dir/env.out" 2>"$dir/env.err"; do
        kill -0 "$up_pid" 2>/dev/null || fail "up exited before it was ready"
        (( SECONDS - start < 60 )) || fail "up not ready within 60 s"
        sleep 0.01
    done
    eval "$(cat "$dir/env.out")"
    fetch sworn-agent "$agent_bin" fetch x509
    if [[ -n ${SWORN_GO_SPIFFE_FETCH:-} ]]; then
        fetch go-spiffe "$SWORN_GO_SPIFFE_FETCH" -addr "$SPIFFE_ENDPOINT_SOCKET"
    fi
    if [[ -n ${SWORN_PY_SPIFFE:-} && -n ${SWORN_PY_SPIFFE_PROBE:-} ]]; then
        fetch py-spiffe "$SWORN_PY_SPIFFE" "$SWORN_PY_SPIFFE_PROBE" "$SPIFFE_ENDPOINT_SOCKET"
    fi
    kill -INT "$up_pid"
    rc=0
    wait "$up_pid" || rc=$?
    (( rc == 0 )) || fail "up exited $rc after SIGINT"
    up_pid=
    rm -rf "$dir"
    ok=$((ok + 1))
    echo "run $run: ok ($((SECONDS - start)) s)"
done
echo "$ok/$runs fetches right after up succeeded"
