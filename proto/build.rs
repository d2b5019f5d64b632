//! Generates Rust code for the three protocols with `protox`, a pure-Rust
//! protobuf compiler, so no system `protoc` is needed.

/// Messages with a secret field; each has its `Debug` in src/redact.rs.
const REDACTED: [&str; 7] = [
    ".sworn.agent.v1.JoinTokenAttestation",
    ".sworn.agent.v1.K8sAttestation",
    ".sworn.agent.v1.K8sEvidence",
    ".sworn.admin.v1.JoinToken",
    ".X509SVID",
    ".JWTSVID",
    ".ValidateJWTSVIDRequest",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/workload.proto",
        "proto/agent.proto",
        "proto/admin.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        // Messages that carry a token or a private key get a hand-written, redacted `Debug`
        // (src/redact.rs), so no log or error message can print the secret.
        .skip_debug(REDACTED)
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
