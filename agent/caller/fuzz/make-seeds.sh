#!/usr/bin/env bash
# Regenerates seeds/cgroup/: starting inputs for the cgroup fuzz target. The first byte of
# each file selects the target's root set (0: defaults, 1: kind /docker/abc/kubepods,
# 2: /sworn-test/kubepods and a kind-style systemd root); the rest is /proc/<pid>/cgroup.
set -euo pipefail
cd "$(dirname "$0")/seeds/cgroup"
u=0c4a1a6e-3b5d-4f7e-9a2b-1c2d3e4f5a6b
u_=${u//-/_}
c=3f1c9a7be2d04c58a6e1b7d9f0a2c4e68b1d3f5a7c9e0b2d4f6a8c0e2b4d6f81
seed() {
    local first=$1 name=$2
    shift 2
    { printf "$first"; printf '%s\n' "$@"; } > "$name"
}
seed '\x00' cgroupfs_v2 "0::/kubepods/besteffort/pod$u/$c"
seed '\x00' cgroupfs_hybrid "4:memory:/kubepods/burstable/pod$u/$c" "0::/kubepods/burstable/pod$u/$c"
seed '\x00' systemd_containerd "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod$u_.slice/cri-containerd-$c.scope"
seed '\x00' systemd_colon_form "0::/kubepods.slice/kubepods-pod$u_.slice:cri-containerd:$c"
seed '\x00' cgroupns_dotdot "0::/../../kubepods/pod$u/crio-$c"
seed '\x01' kind_prefix "0::/docker/abc/kubepods/besteffort/pod$u/$c"
seed '\x02' kind_systemd "0::/x/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod$u_.slice/crio-$c.scope/container"
seed '\x00' forged_user_slice "0::/user.slice/user-1000.slice/kubepods/besteffort/pod$u/$c"
