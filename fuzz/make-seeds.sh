#!/usr/bin/env bash
# Regenerates seeds/<target>/ for every fuzz target: small starting inputs that reach each
# parser's accepting paths and its nearest refusals. run.sh starts each target from them
# (new corpus entries go elsewhere). The CSR seeds are made with `openssl req` from fresh
# keys, so they differ on every run; all other seeds are fixed text.
#
#   fuzz/make-seeds.sh            # every target
#   fuzz/make-seeds.sh TARGET...  # only these
set -euo pipefail
cd "$(dirname "$0")/seeds"

u=0c4a1a6e-3b5d-4f7e-9a2b-1c2d3e4f5a6b
u_=${u//-/_}
c=3f1c9a7be2d04c58a6e1b7d9f0a2c4e68b1d3f5a7c9e0b2d4f6a8c0e2b4d6f81
hex=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

# seed NAME FORMAT [ARGS...]: writes printf FORMAT ARGS into NAME in the current target.
seed() {
    local name=$1 format=$2
    shift 2
    # shellcheck disable=SC2059 # the format is the seed's text, escapes included
    printf "$format" "$@" > "$name"
}
# lines NAME LINE...: one line each.
lines() {
    local name=$1
    shift
    printf '%s\n' "$@" > "$name"
}

# The first byte selects the target's root set (0: defaults, 1: kind
# /docker/abc/kubepods, 2: /sworn-test/kubepods and a kind-style systemd root); the rest is
# /proc/<pid>/cgroup.
cgroup() {
    seed cgroupfs_v2 '\x00%s\n' "0::/kubepods/besteffort/pod$u/$c"
    seed cgroupfs_hybrid '\x00%s\n%s\n' "4:memory:/kubepods/burstable/pod$u/$c" "0::/kubepods/burstable/pod$u/$c"
    seed systemd_containerd '\x00%s\n' "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod$u_.slice/cri-containerd-$c.scope"
    seed systemd_colon_form '\x00%s\n' "0::/kubepods.slice/kubepods-pod$u_.slice:cri-containerd:$c"
    seed cgroupns_dotdot '\x00%s\n' "0::/../../kubepods/pod$u/crio-$c"
    seed kind_prefix '\x01%s\n' "0::/docker/abc/kubepods/besteffort/pod$u/$c"
    seed kind_systemd '\x02%s\n' "0::/x/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod$u_.slice/crio-$c.scope/container"
    seed forged_user_slice '\x00%s\n' "0::/user.slice/user-1000.slice/kubepods/besteffort/pod$u/$c"
}

# DER PKCS#10 requests: the one accepted kind and its nearest refusals.
csr() {
    local key
    key=$(mktemp)
    trap 'rm -f "$key"' RETURN
    req() { openssl req -new -nodes -keyout "$key" -subj /CN=seed -outform DER "$@" 2>/dev/null; }
    req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -out p256
    req -newkey ec -pkeyopt ec_paramgen_curve:secp384r1 -out p384
    req -newkey ed25519 -out ed25519
    req -newkey rsa:2048 -out rsa2048
    head -c 100 p256 > p256_truncated
    { cat p256; printf '\x00'; } > p256_trailing_byte
    # The same request with one bit of the signature flipped: no proof of possession.
    python3 -c 'import sys; b = bytearray(open("p256", "rb").read()); b[-5] ^= 1; sys.stdout.buffer.write(b)' > p256_bad_signature
}

# One input for every ID parser at once (the target tries them all).
spiffe_id() {
    seed workload '%s' spiffe://example.org/ns/default/sa/web
    seed agent_join '%s' "spiffe://example.org/sworn/agent/join/$u"
    seed agent_k8s '%s' "spiffe://example.org/sworn/agent/k8s/c1/$u/$u"
    seed agent_bare '%s' spiffe://example.org/sworn/agent
    seed server '%s' spiffe://example.org/sworn/server
    seed upper_case '%s' SPIFFE://Example.org/web
    seed dot_segment '%s' spiffe://example.org/a/../b
    seed trust_domain '%s' example.org
    seed uuid '%s' "$u"
    seed uuid_upper '%s' "${u^^}"
    seed container_id '%s' "$c"
    seed serial_text '%s' 0a1b2c
    seed der_integer '\x00\x9c\x00\x01'
    seed empty ''
}

selector() {
    local s
    for s in unix:uid:0 unix:uid:1000 unix:gid:4294967295 unix:path:/usr/bin/curl \
        "unix:sha256:$hex" k8s:ns:default k8s:sa:web k8s:pod-label:app.kubernetes.io/name:web \
        k8s:pod-label:tier: "k8s:pod-uid:$u" k8s:pod-name:web-7d9f k8s:container-name:app \
        "k8s:container-image:sha256:$hex" k8s:node-name:node-a unix:uid:007 \
        unix:path:/usr/../bin/sh k8s:container-image:nginx:latest; do
        seed "${s//[:\/.]/_}" '%s' "$s"
    done
}

# The template's first line, then pod facts (fuzz_targets/template.rs).
template() {
    lines ns_sa 'spiffe://example.org/ns/{namespace}/sa/{service_account}' ns=prod sa=db
    lines label 'spiffe://example.org/ns/{namespace}/app/{label:app}' label=app=web
    lines label_joined 'spiffe://example.org/svc/{namespace}-{label:app}' ns=prod-db label=app=admin
    lines pod_name "spiffe://example.org/ns/{namespace}/pod/{pod_name}" pod=web-1 "uid=$u"
    lines node 'spiffe://example.org/node/{node_name}/pod/{pod_uid}' node=node-a
    lines unscheduled 'spiffe://example.org/node/{node_name}' node=
    lines bad_value 'spiffe://example.org/ns/{namespace}/app/{label:app}' label=app=..
    lines reserved 'spiffe://example.org/sworn/{namespace}'
    lines no_namespace 'spiffe://example.org/app/{label:app}'
}

# Pod spec lines (fuzz_targets/token_path.rs describes the kubelet root they meet).
token_path() {
    lines kubelet_layout 'vol=t|sworn|token' mount=t
    lines nested 'vol=t|sworn|sub/nested' mount=t
    lines other_pod 'vol=t|sworn|token' mount=t uid=b
    lines init_mount 'vol=other|sworn|token' init=other
    lines escape_abs 'vol=t|sworn|abs' mount=t
    lines escape_sibling 'vol=t|sworn|sibling' mount=t
    lines escape_pod 'vol=t|sworn|pod_b' mount=t
    lines dotdot_path 'vol=t|sworn|../other/token' mount=t
    lines dotdot_volume 'vol=../../../../pods/1d5b2b7f-4c6e-4a8f-8b3c-2d3e4f5a6b7c/volumes/kubernetes.io~projected/t|sworn|token' \
        'mount=../../../../pods/1d5b2b7f-4c6e-4a8f-8b3c-2d3e4f5a6b7c/volumes/kubernetes.io~projected/t'
    lines slash_volume 'vol=t/..data|sworn|token' mount=t/..data
    lines two_volumes 'vol=t|sworn|token' 'vol=other|sworn|token' mount=t
    lines other_audience 'vol=t|sworn-agent|token' mount=t
    lines unmounted 'vol=t|sworn|token'
}

server_config() {
    lines minimal 'trust_domain = "example.org"' 'data_dir = "/var/lib/sworn"'
    lines every_key 'trust_domain = "example.org"' 'data_dir = "/var/lib/sworn"' \
        'admin_socket = "/run/sworn/admin.sock"' 'agent_api_address = "0.0.0.0:8081"' \
        'health_address = "127.0.0.1:8080"' 'default_svid_ttl = "1h"' 'agent_svid_ttl = "1h"' \
        'ca_ttl = "24h"' 'k8s_call_timeout = "5s"' 'key_type = "ec-p256"' 'log_format = "json"' \
        'log_level = "info,sworn=debug"' 'bundle_file = "/var/lib/sworn/bundle.pem"' \
        '[upstream_ca]' 'cert_file = "/etc/sworn/up.pem"' 'key_file = "/etc/sworn/up.key"'
    lines cluster 'trust_domain = "example.org"' 'data_dir = "/var/lib/sworn"' '[[clusters]]' \
        'name = "c1"' 'kubeconfig = "/etc/sworn/kubeconfig"' 'agent_audience = "sworn-agent"' \
        'agent_service_accounts = ["sworn-system:sworn-agent"]' 'workload_audience = "sworn"' \
        'default_identity = false' 'bundle_configmap = "sworn-system/sworn-bundle"'
    lines short_ca_ttl 'trust_domain = "example.org"' 'data_dir = "/d"' 'ca_ttl = "59s"'
}

agent_config() {
    lines join_token 'trust_domain = "example.org"' 'data_dir = "/var/lib/sworn-agent"' \
        'server_address = "https://sworn.example.org:8081"' 'bundle_file = "/etc/sworn/bundle.pem"' \
        'join_token = " 0123456789abcdef "' 'socket_path = "/run/sworn/agent.sock"' \
        'health_address = "127.0.0.1:8082"' 'log_format = "json"' 'log_level = "debug"'
    lines k8s 'trust_domain = "example.org"' 'data_dir = "/var/lib/sworn-agent"' \
        'server_address = "https://[::1]:8081/"' 'bundle_file = "/etc/sworn/bundle.pem"' \
        'attestation = "k8s"' 'cluster = "c1"' 'node_name = "node-a"' \
        'agent_token_path = "/var/run/secrets/tokens/sworn-agent"' 'kubelet_root = "/var/lib/kubelet"' \
        'cgroup_roots = ["/kubepods", "/kubepods.slice"]' 'workload_audience = "sworn"' \
        'allow_ephemeral = true' 'pod_wait = "10s"' 'kubeconfig = "/etc/sworn/kubeconfig"'
    lines insecure 'trust_domain = "example.org"' 'data_dir = "/d"' \
        'server_address = "https://127.0.0.1:8081"' 'danger_insecure_bootstrap = true'
    lines long_pod_wait 'trust_domain = "example.org"' 'data_dir = "/d"' \
        'server_address = "https://127.0.0.1:8081"' 'bundle_file = "/b"' 'pod_wait = "6m"'
}

# The first byte picks the read size (low 7 bits) and whether the target prepends the
# connection preface (bit 7); the rest is client bytes: a request, a split header block,
# padding and priority, a declared 16 MiB frame, a table size update to 1 MiB, DATA and
# RST_STREAM, and bytes that are not HTTP/2. Binary, so written by python3.
h2_rewriter() {
    python3 - <<'PY'
def frame(kind, flags, stream, payload, declared=None):
    n = len(payload) if declared is None else declared
    return n.to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload
def lit(n, v):
    return b"\x40" + bytes([len(n)]) + n + bytes([len(v)]) + v
req = (b"\x83\x86" + b"\x44\x20/SpiffeWorkloadAPI/FetchX509SVID"
       + lit(b":authority", b"tmp%2Frun%2Fagent.sock") + lit(b"workload.spiffe.io", b"true"))
seeds = {
    "request": bytes([0x80 | 7]) + frame(4, 0, 0, b"") + frame(1, 5, 1, req),
    "continuation": bytes([0x80 | 3]) + frame(1, 0, 1, req[:10]) + frame(9, 4, 1, req[10:]),
    "padded_priority": bytes([0x80 | 64]) + frame(1, 0x2D, 1, b"\x02" + b"\0\0\0\0\x10" + req + b"\0\0"),
    "oversized": bytes([0x80 | 9]) + frame(1, 0, 1, b"", declared=(1 << 24) - 1),
    "table_update": bytes([0x80 | 16]) + frame(1, 4, 1, b"\x3f\xe1\xff\x3f\x82"),
    "data_rst": bytes([0x80 | 5]) + frame(1, 4, 1, req) + frame(0, 1, 1, b"abc") + frame(3, 0, 1, b"\0\0\0\x08"),
    "not_preface": b"\x05GET / HTTP/1.1\r\n\r\n",
}
for name, data in seeds.items():
    open(name, "wb").write(data)
PY
}

all=(cgroup csr spiffe_id selector template token_path server_config agent_config h2_rewriter)
for target in "${@:-${all[@]}}"; do
    declare -F "$target" >/dev/null || { echo "make-seeds.sh: no target $target" >&2; exit 2; }
    rm -rf "$target"
    mkdir "$target"
    (cd "$target" && "$target")
done
