//! How the numbers are made, printed in every report so a reader need not open the code.

/// The method section of RESULTS.md.
pub const METHOD: &str = "\
- **Peer.** SPIRE v1.15.3, built from the Go module proxy by `bench/spire/build.sh` with one \
module replaced: `github.com/Keyfactor/ejbca-go-client-sdk` v1.1.0, which the proxy refuses, \
by v1.0.2 (`go mod edit -replace`). That module serves only SPIRE's EJBCA upstream-authority \
plugin, which the benchmark does not use; both `spire-server` and `spire-agent` report 1.15.3.
- **One system at a time.** Every run starts a fresh instance of one system (server and its \
agents), measures it, and stops it before the next run starts; the two systems never run \
during each other's measurement. The large-datastore instance of the memory and cold-start \
rows is built once per system and restarted per run, stopped in between.
- **Pairs, seeded order.** Each scenario runs at least 5 pairs in a full run (`size.pairs`); \
a pair runs each system once, and which goes first is a coin flip from a seeded generator \
(SplitMix64). The seed is `seed` in results.json and below; `orders` in results.json lists \
every pair's order. `--seed` reproduces the order.
- **Statistics.** Per row: each system's median over its runs; the ratio of medians (sworn ÷ \
SPIRE); a 95% percentile bootstrap interval of that ratio (10 000 resamples, each side \
resampled with replacement on its own, from the recorded seed). A winner is called only when \
the interval excludes 1; otherwise the row says \"no difference shown\". With 5 runs a side \
the interval is coarse by design: a call needs the runs to separate.
- **Same client.** Every workload is a `sworn-bench-worker` process (the public `spiffe` 0.19 \
crate) under its own uid, with one entry per workload on each system; both systems are \
driven by the same code from the same processes.
- **Settings both systems need in common** (everything else in SPIRE is at its defaults: \
5 s agent sync, SVID cache size, rotation, ...): SQLite datastore (SPIRE `sql` with \
`sqlite3`); P-256 CA keys (`ca_key_type = \"ec-p256\"`); X509-SVID TTL 1 h \
(`default_x509_svid_ttl = \"1h\"`), per-entry TTLs where a scenario sets one (storm); \
join-token node attestation; disk key managers (an agent keeps its identity across \
restarts); the `unix` workload attestor; loopback addresses; health listeners for \
readiness (`health_checks`, polled by the cold start and restart rows); and \
`discover_workload_path = true` only in runs whose entries require `unix:path` and \
`unix:sha256` (fetch, the path+sha256 cell of the attestation matrix): SPIRE derives \
neither selector without it, and its default (off) is used everywhere else.
- **Scenarios** (each module's docs in `bench/src/scenario/` say exactly what is measured):
  - fetch: warm FetchX509SVID on a connected client, entries requiring uid + path + sha256 \
of the stripped worker: N=1 p50/p99, and calls/s with N workloads in a closed loop.
  - issuance: N new workloads (entries created together, workloads retrying every 200 ms) \
until all served → SVID/s; server CPU (`/proc/<pid>/stat`) per 1000 SVIDs.
  - storm: N SVIDs with one short TTL, each held on an open stream; the agent is frozen \
(SIGSTOP) until every SVID is past its latest rotation point (the half-life counted from \
when the workload held it, which covers a rotation counted from receipt as sworn's is and \
one counted from the certificate's backdated notBefore as SPIRE's is), and resumed at T0, \
so all are due at one instant; drain = T0 → last rotated SVID pushed; jitter = spread of the rotation points.
  - memory: server RSS with 100k entries (spread over 100 agents that never connect) and \
its agent connected, 5 s after the first SVID.
  - coldstart: the same datastore, from stopped: server spawn → server ready → agent \
connected → first SVID (polled every 10 ms).
  - attest: one workload, 4 MiB executable: uid-only entries (SPIRE's default attestor) vs \
uid + path + sha256 entries.
  - idle: server + agent CPU over one 60 s window per run, 100 workloads holding SVIDs \
(5 pairs: 5 minutes per system).
  - agents: 10 agents × 100 new workloads against one server → SVID/s, server CPU, RSS.
  - restart: 500 workloads holding SVIDs; the agent is killed and spawned again; spawn → \
all served again (workloads retry every 50 ms).
  - k8s (sworn only: SPIRE's k8s workload attestor needs a real kubelet): a real \
kube-apiserver and etcd (`sworn-dev up --kubernetes`, whose process runs the sworn server and \
agents); pod reported Running (with its projected token) → the pod's workload holds its \
SVID, for pods created one every 100 ms and 100 at once.
- The machine has 2 cores: read ratios more than absolute values; the absolute targets hold \
only for this machine.";
