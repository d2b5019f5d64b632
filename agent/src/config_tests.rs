#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: "test.toml".into(),
        message: e.to_string(),
    })?;
    raw.resolve(None)
}

const MINIMAL: &str = r#"
trust_domain = "example.org"
data_dir = "/var/lib/sworn/agent"
server_address = "https://sworn-server:8081"
bundle_file = "/etc/sworn/bundle.pem"
"#;

fn key_of(e: ConfigError) -> &'static str {
    match e {
        ConfigError::Invalid { key, .. } => key,
        other => panic!("expected an invalid key, got {other}"),
    }
}

#[test]
fn minimal_config_gets_documented_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.socket_path.as_path(), Path::new(DEFAULT_SOCKET_PATH));
    assert_eq!(c.health_address.to_string(), DEFAULT_HEALTH_ADDRESS);
    assert_eq!(c.server_address.host, "sworn-server");
    assert_eq!(c.server_address.port, 8081);
    assert_eq!(c.attestation, NodeAttestation::JoinToken(None));
    assert_eq!(c.log_format, LogFormat::Text);
}

#[test]
fn bad_values_name_their_key() {
    let cases = [
        ("server_address = \"http://x:1\"", "server_address"),
        ("server_address = \"https://x\"", "server_address"),
        ("server_address = \"https://bad!host:1\"", "server_address"),
        ("server_address = \"https://x]:1\"", "server_address"),
        ("server_address = \"https://[x]:1\"", "server_address"),
        ("socket_path = \"/tmp/", "socket_path"),
        ("health_address = \"localhost\"", "health_address"),
        ("attestation = \"tpm\"", "attestation"),
        ("attestation = \"k8s\"", "cluster"),
        ("trust_domain = \"Bad_Domain\"", "trust_domain"),
        (
            "danger_insecure_bootstrap = true",
            "danger_insecure_bootstrap",
        ),
        ("log_level = \"[[\"", "log_level"),
    ];
    for (line, key) in cases {
        let mut text = String::new();
        let field = line.split(' ').next().unwrap();
        for l in MINIMAL.lines().filter(|l| !l.starts_with(field)) {
            text.push_str(l);
            text.push('\n');
        }
        let line = if field == "socket_path" {
            format!("socket_path = \"/tmp/{}\"", "x".repeat(120))
        } else {
            line.to_owned()
        };
        text.push_str(&line);
        assert_eq!(key_of(parse(&text).unwrap_err()), key, "{line}");
    }
}

#[test]
fn server_addresses_keep_their_host_as_written() {
    for (address, host) in [
        ("https://sworn-server:8081", "sworn-server"),
        ("https://10.0.0.1:8081/", "10.0.0.1"),
        ("https://[::1]:8081", "::1"),
        ("https://sworn_server.local:8081", "sworn_server.local"),
    ] {
        let parsed = ServerAddress::parse(address).unwrap();
        assert_eq!(
            (parsed.host.as_str(), parsed.port),
            (host, 8081),
            "{address}"
        );
    }
}

#[test]
fn unknown_keys_are_refused() {
    let err = parse(&format!("{MINIMAL}\nsocket = \"/x\"\n")).unwrap_err();
    assert!(err.to_string().contains("socket"), "{err}");
}

#[test]
fn k8s_mode_defaults_the_token_path() {
    let c = parse(&format!(
        "{MINIMAL}\nattestation = \"k8s\"\ncluster = \"prod\"\nnode_name = \"node-a\"\n"
    ))
    .unwrap();
    assert_eq!(
        c.attestation,
        NodeAttestation::K8s {
            cluster: "prod".into(),
            token_path: DEFAULT_AGENT_TOKEN_PATH.into(),
        }
    );
}

#[test]
fn k8s_mode_requires_a_node_name() {
    let err = parse(&format!(
        "{MINIMAL}\nattestation = \"k8s\"\ncluster = \"prod\"\n"
    ))
    .unwrap_err();
    assert_eq!(key_of(err), "node_name");
}

#[test]
fn join_token_never_prints() {
    let c = parse(&format!("{MINIMAL}\njoin_token = \"s3cret-token\"\n")).unwrap();
    assert!(!format!("{c:?}").contains("s3cret"));
}

#[test]
fn workload_api_connection_bounds_default_and_parse() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.connections.max_connections, 8192);
    assert_eq!(
        c.connections.request_timeout,
        std::time::Duration::from_secs(10)
    );
    assert_eq!(
        c.connections.idle_timeout,
        std::time::Duration::from_secs(300)
    );
    let c = parse(&format!(
        "{MINIMAL}max_connections = 100\nworkload_api_request_timeout = \"2s\"\nworkload_api_idle_timeout = \"1m\"\n"
    ))
    .unwrap();
    assert_eq!(c.connections.max_connections, 100);
    assert_eq!(
        c.connections.request_timeout,
        std::time::Duration::from_secs(2)
    );
    assert_eq!(
        c.connections.idle_timeout,
        std::time::Duration::from_secs(60)
    );
    for (line, key) in [
        ("max_connections = 0", "max_connections"),
        (
            "workload_api_request_timeout = \"0s\"",
            "workload_api_request_timeout",
        ),
        (
            "workload_api_idle_timeout = \"30d\"",
            "workload_api_idle_timeout",
        ),
    ] {
        assert_eq!(
            key_of(parse(&format!("{MINIMAL}{line}\n")).unwrap_err()),
            key,
            "{line}"
        );
    }
}

#[test]
fn join_token_never_prints_from_the_file_as_written() {
    let raw: RawConfig =
        toml::from_str(&format!("{MINIMAL}\njoin_token = \"s3cret-token\"\n")).unwrap();
    let printed = format!("{raw:?}");
    assert!(!printed.contains("s3cret"), "{printed}");
    assert!(printed.contains("<redacted>"), "{printed}");
}

#[test]
fn max_exe_hash_bytes_defaults_to_256_mib_and_must_be_positive() {
    assert_eq!(
        parse(MINIMAL).unwrap().max_exe_hash_bytes,
        256 * 1024 * 1024
    );
    let c = parse(&format!("{MINIMAL}\nmax_exe_hash_bytes = 1048576\n")).unwrap();
    assert_eq!(c.max_exe_hash_bytes, 1 << 20);
    let err = parse(&format!("{MINIMAL}\nmax_exe_hash_bytes = 0\n")).unwrap_err();
    assert_eq!(key_of(err), "max_exe_hash_bytes");
}

#[test]
fn danger_insecure_bootstrap_is_refused_in_kubernetes_mode() {
    let text = MINIMAL.replace(
        "bundle_file = \"/etc/sworn/bundle.pem\"",
        "danger_insecure_bootstrap = true\nattestation = \"k8s\"\ncluster = \"prod\"\nnode_name = \"n\"",
    );
    let err = parse(&text).unwrap_err();
    assert!(err.to_string().contains("kubernetes mode"), "{err}");
    assert_eq!(key_of(err), "danger_insecure_bootstrap");
    // Unix mode keeps the option (join tokens are one-time; docs/architecture.md, "Trust model").
    let unix = MINIMAL.replace(
        "bundle_file = \"/etc/sworn/bundle.pem\"",
        "danger_insecure_bootstrap = true",
    );
    assert_eq!(parse(&unix).unwrap().bootstrap, Bootstrap::DangerInsecure);
}
