//! Configurations the real `sworn-agent run` binary refuses before doing anything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// `danger_insecure_bootstrap` trusts whoever answers the first `Attest`; in Kubernetes mode
/// that would hand the agent's token and every workload's to a man in the middle. The binary
/// exits 64 naming the key, before it reads a token or opens a connection.
#[test]
fn danger_insecure_bootstrap_in_kubernetes_mode_exits_64_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "header.claims.signature").unwrap();
    let file = dir.path().join("agent.toml");
    std::fs::write(
        &file,
        format!(
            "trust_domain = \"example.org\"\ndata_dir = \"{data}\"\n\
             server_address = \"https://127.0.0.1:1\"\ndanger_insecure_bootstrap = true\n\
             attestation = \"k8s\"\ncluster = \"prod\"\nnode_name = \"node-a\"\n\
             agent_token_path = \"{token}\"\nsocket_path = \"{socket}\"\n\
             health_address = \"127.0.0.1:0\"\n",
            data = dir.path().join("data").display(),
            token = token.display(),
            socket = dir.path().join("agent.sock").display(),
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sworn-agent"))
        .args(["run", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("key `danger_insecure_bootstrap`") && stderr.contains("kubernetes mode"),
        "{stderr}"
    );
    assert!(!stderr.contains("header.claims.signature"), "{stderr}");
    assert!(
        !dir.path().join("agent.sock").exists(),
        "nothing was started"
    );
}
