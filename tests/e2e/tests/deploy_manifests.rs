//! The Kubernetes deployment in `deploy/`: the kustomize base and
//! the Helm chart render the same objects, the shipped configs parse with the
//! real config parsers, the image definitions follow the rules, and the
//! manifests pass the real API server's validation, admission and RBAC
//! authorizer — least privilege checked with `kubectl auth can-i`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod deploy_support;

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::time::Instant;

use deploy_support::*;
use serde_yaml::Value;
use sworn_dev::k8s::ControlPlane;

const AGENT: &str = "system:serviceaccount:sworn-system:sworn-agent";
const SERVER: &str = "system:serviceaccount:sworn-system:sworn-server";

/// The first difference between two YAML values, as a path and both sides.
fn first_difference(path: &str, a: &Value, b: &Value) -> Option<String> {
    match (a, b) {
        (Value::Mapping(x), Value::Mapping(y)) => {
            for (k, va) in x {
                let ks = serde_yaml::to_string(k).unwrap().trim().to_owned();
                match y.get(k) {
                    None => return Some(format!("{path}.{ks}: only in kustomize")),
                    Some(vb) => {
                        if let Some(d) = first_difference(&format!("{path}.{ks}"), va, vb) {
                            return Some(d);
                        }
                    }
                }
            }
            y.keys()
                .find(|k| !x.contains_key(*k))
                .map(|k| format!("{path}.{}: only in helm", serde_yaml::to_string(k).unwrap()))
        }
        (Value::Sequence(x), Value::Sequence(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (va, vb))| first_difference(&format!("{path}[{i}]"), va, vb)),
        _ if a == b => None,
        _ => Some(format!("{path}: kustomize {a:?} != helm {b:?}")),
    }
}

fn config_text(docs: &[Value], configmap: &str, key: &str) -> String {
    let cm = of_kind(docs, "ConfigMap")
        .into_iter()
        .find(|d| d["metadata"]["name"] == configmap)
        .unwrap_or_else(|| panic!("no ConfigMap {configmap}"));
    cm["data"][key].as_str().unwrap().to_owned()
}

#[test]
fn helm_template_at_defaults_equals_the_kustomize_base() {
    let kustomize = parse_docs(&render_kustomize());
    let helm = parse_docs(&render_helm(&[]));
    let (k, h) = (by_key(&kustomize), by_key(&helm));
    assert_eq!(
        k.keys().collect::<Vec<_>>(),
        h.keys().collect::<Vec<_>>(),
        "the same objects"
    );
    for (key, doc) in &k {
        if let Some(d) = first_difference(key, doc, &h[key]) {
            panic!("helm and kustomize differ: {d}");
        }
    }
    // Spelled out, what the equality above covers.
    let expected = [
        "ClusterRole /sworn-agent",
        "ClusterRole /sworn-server",
        "ClusterRoleBinding /sworn-agent",
        "ClusterRoleBinding /sworn-server",
        "ConfigMap sworn-system/sworn-agent",
        "ConfigMap sworn-system/sworn-bundle",
        "ConfigMap sworn-system/sworn-server",
        "DaemonSet sworn-system/sworn-agent",
        "Deployment sworn-example/sworn-example",
        "Namespace /sworn-example",
        "Namespace /sworn-system",
        "Role sworn-system/sworn-server-bundle",
        "RoleBinding sworn-system/sworn-server-bundle",
        "Service sworn-system/sworn-server",
        "ServiceAccount sworn-example/sworn-example",
        "ServiceAccount sworn-system/sworn-agent",
        "ServiceAccount sworn-system/sworn-server",
        "StatefulSet sworn-system/sworn-server",
    ];
    assert_eq!(k.keys().map(String::as_str).collect::<Vec<_>>(), expected);
    // Selectors select the pod templates they govern.
    for d in kustomize
        .iter()
        .filter(|d| d["spec"]["template"].is_mapping())
    {
        let selector = d["spec"]["selector"]["matchLabels"].as_mapping().unwrap();
        let labels = d["spec"]["template"]["metadata"]["labels"]
            .as_mapping()
            .unwrap();
        for (k, v) in selector {
            assert_eq!(labels.get(k), Some(v), "{}: selector {k:?}", key(d));
        }
    }
    let svc = &k["Service sworn-system/sworn-server"];
    let sts = &k["StatefulSet sworn-system/sworn-server"];
    for (k, v) in svc["spec"]["selector"].as_mapping().unwrap() {
        assert_eq!(&sts["spec"]["template"]["metadata"]["labels"][k], v);
    }
}

#[test]
fn helm_values_reach_the_objects() {
    let chart = deploy_dir().join("helm/sworn");
    let lint = helm(&["lint", "--strict", chart.to_str().unwrap()]);
    assert!(lint.contains("0 chart(s) failed"), "{lint}");
    let docs = parse_docs(&render_helm(&[
        "--set",
        "trustDomain=corp.example,clusterName=prod-eu,example.enabled=false",
        "--set",
        "server.storage.storageClassName=fast,server.caTtl=48h",
        "--set",
        "agent.nodeSelector.pool=workers,server.image.repository=registry.example/sworn-server",
    ]));
    let keys = by_key(&docs);
    assert!(
        !keys.keys().any(|k| k.contains("sworn-example")),
        "example disabled: {:?}",
        keys.keys()
    );
    let server = config_text(&docs, "sworn-server", "server.toml");
    assert!(
        server.contains("trust_domain = \"corp.example\""),
        "{server}"
    );
    assert!(server.contains("name = \"prod-eu\""), "{server}");
    assert!(server.contains("ca_ttl = \"48h\""), "{server}");
    let agent = config_text(&docs, "sworn-agent", "agent.toml");
    assert!(agent.contains("cluster = \"prod-eu\""), "{agent}");
    let sts = &keys["StatefulSet sworn-system/sworn-server"];
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"],
        "fast"
    );
    assert_eq!(
        sts["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/sworn-server:0.1.0"
    );
    let ds = &keys["DaemonSet sworn-system/sworn-agent"];
    assert_eq!(
        ds["spec"]["template"]["spec"]["nodeSelector"]["pool"],
        "workers"
    );
    // Another namespace moves every reference along.
    let text = render_helm(&["--set", "namespace=identity"]);
    let docs = parse_docs(&text);
    assert!(
        !text.contains("sworn-system"),
        "a reference was left behind"
    );
    assert!(
        config_text(&docs, "sworn-server", "server.toml")
            .contains("agent_service_accounts = [\"identity:sworn-agent\"]")
    );
    assert!(
        config_text(&docs, "sworn-agent", "agent.toml")
            .contains("https://sworn-server.identity.svc:8081")
    );
    // PostgreSQL settings are accepted and, today, rendered nowhere.
    let pg = render_helm(&[
        "--set",
        "postgresql.host=db.example,postgresql.enabled=true",
    ]);
    assert!(!pg.contains("db.example"));
}

#[test]
fn shipped_configs_parse_with_the_real_parsers() {
    let docs = parse_docs(&render_kustomize());
    let server =
        sworn_server::config::Config::parse(&config_text(&docs, "sworn-server", "server.toml"))
            .unwrap();
    assert_eq!(server.health_address.to_string(), "0.0.0.0:8080");
    assert_eq!(server.clusters.len(), 1);
    assert!(server.clusters[0].kubeconfig.is_none(), "in-cluster");
    assert_eq!(
        server.admin_socket.to_str().unwrap(),
        "/var/lib/sworn/server/admin.sock"
    );
    let dir = tempfile::tempdir().unwrap();
    let agent_file = dir.path().join("agent.toml");
    std::fs::write(&agent_file, config_text(&docs, "sworn-agent", "agent.toml")).unwrap();
    let agent = sworn_agent::Config::from_file(&agent_file, Some("node-a".into())).unwrap();
    assert_eq!(agent.node_name.as_deref(), Some("node-a"));
    assert_eq!(agent.server_address.host, "sworn-server.sworn-system.svc");
    assert_eq!(agent.health_address.to_string(), "0.0.0.0:8082");
    match &agent.attestation {
        sworn_agent::NodeAttestation::K8s {
            cluster,
            token_path,
        } => {
            assert_eq!(cluster, &server.clusters[0].name);
            // Where the DaemonSet mounts its projected token.
            let ds = &by_key(&docs)["DaemonSet sworn-system/sworn-agent"];
            let pod = &ds["spec"]["template"]["spec"];
            let mount = pod["containers"][0]["volumeMounts"]
                .as_sequence()
                .unwrap()
                .iter()
                .find(|m| m["name"] == "agent-token")
                .unwrap();
            let vol = pod["volumes"]
                .as_sequence()
                .unwrap()
                .iter()
                .find(|v| v["name"] == "agent-token")
                .unwrap();
            let src = &vol["projected"]["sources"][0]["serviceAccountToken"];
            assert_eq!(src["audience"], "sworn-agent");
            assert_eq!(src["expirationSeconds"], 600);
            assert_eq!(
                token_path.to_str().unwrap(),
                format!(
                    "{}/{}",
                    mount["mountPath"].as_str().unwrap(),
                    src["path"].as_str().unwrap()
                )
            );
        }
        other => panic!("the deployed agent must attest with k8s, not {other:?}"),
    }
    assert_eq!(
        agent.bootstrap,
        sworn_agent::Bootstrap::BundleFile("/etc/sworn/bundle/bundle.pem".into())
    );
}

/// One build stage of a Dockerfile: its FROM line and instructions.
#[derive(Debug)]
struct Stage {
    from: String,
    instructions: Vec<(String, String)>,
}

/// Parses a Dockerfile into stages: comments and parser directives dropped,
/// continuation lines joined, instructions upper-cased.
fn dockerfile_stages(text: &str) -> Vec<Stage> {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(body) = trimmed.strip_suffix('\\') {
            current.push_str(body);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            logical.push(std::mem::take(&mut current));
        }
    }
    let mut stages: Vec<Stage> = Vec::new();
    for l in logical.into_iter().filter(|l| !l.trim().is_empty()) {
        let (op, args) = l.split_once(char::is_whitespace).unwrap_or((&l, ""));
        let op = op.to_uppercase();
        let args = args.trim().to_owned();
        if op == "FROM" {
            stages.push(Stage {
                from: args,
                instructions: Vec::new(),
            });
        } else {
            stages
                .last_mut()
                .expect("an instruction before the first FROM")
                .instructions
                .push((op, args));
        }
    }
    stages
}

#[test]
fn dockerfiles_are_multi_stage_distroless_and_shell_free() {
    let workspace = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    let rust_version = workspace
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    let kustomize = by_key(&parse_docs(&render_kustomize()));
    let image_of = |key: &str| {
        kustomize[key]["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    for (file, binary, user, deployed) in [
        (
            "Dockerfile.server",
            "sworn-server",
            "nonroot",
            image_of("StatefulSet sworn-system/sworn-server"),
        ),
        (
            "Dockerfile.agent",
            "sworn-agent",
            "0:0",
            image_of("DaemonSet sworn-system/sworn-agent"),
        ),
        (
            "Dockerfile.example",
            "sworn-agent",
            "nonroot",
            image_of("Deployment sworn-example/sworn-example"),
        ),
    ] {
        let path = deploy_dir().join("images").join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let stages = dockerfile_stages(&text);
        assert!(stages.len() >= 2, "{file}: multi-stage");
        for s in &stages {
            for (op, args) in &s.instructions {
                let url = args.contains("http://") || args.contains("https://");
                assert!(!(op == "ADD" && url), "{file}: ADD of a URL: {args}");
                assert!(op != "ADD", "{file}: use COPY, not ADD");
            }
            // Builders and helpers by version; distroless by its variant tag
            // (it publishes rolling tags per Debian release).
            let distroless = s.from.starts_with("gcr.io/distroless/");
            assert!(
                s.from.contains(':') && (distroless || !s.from.contains(":latest")),
                "{file}: pin {}",
                s.from
            );
        }
        let build = &stages[0];
        assert!(
            build
                .from
                .starts_with(&format!("docker.io/library/rust:{rust_version}-")),
            "{file}: builder on the workspace's rust-version {rust_version}: {}",
            build.from
        );
        assert!(
            build.instructions.iter().any(|(op, a)| op == "RUN"
                && a.contains("cargo build --release --locked")
                && a.contains(&format!("--bin {binary}"))),
            "{file}: builds {binary} with --locked"
        );
        let last = stages.last().unwrap();
        assert!(
            last.from.starts_with("gcr.io/distroless/"),
            "{file}: final stage distroless: {}",
            last.from
        );
        assert!(
            !last.from.contains("debug"),
            "{file}: distroless :debug images have a shell"
        );
        let ops: Vec<&str> = last.instructions.iter().map(|(o, _)| o.as_str()).collect();
        assert!(!ops.contains(&"RUN"), "{file}: no RUN in the final stage");
        for (op, args) in &last.instructions {
            if op == "COPY" {
                assert!(args.starts_with("--from="), "{file}: final COPY {args}");
            }
            if op == "ENTRYPOINT" || op == "CMD" {
                assert!(args.starts_with('['), "{file}: exec form, no shell: {args}");
            }
        }
        let users: Vec<&str> = last
            .instructions
            .iter()
            .filter(|(o, _)| o == "USER")
            .map(|(_, a)| a.as_str())
            .collect();
        assert_eq!(users, vec![user], "{file}: USER");
        // The deployed image name is the one the header tells people to build.
        let (name, _) = deployed.split_once(':').unwrap();
        assert!(
            text.contains(&format!("-t {deployed} .")),
            "{file}: build it as {deployed}"
        );
        assert!(
            deployed.ends_with(":0.1.0"),
            "{name}: tag is the crate version"
        );
    }
    // The server needs no root; the agent does, and says why.
    let agent = std::fs::read_to_string(deploy_dir().join("images/Dockerfile.agent")).unwrap();
    assert!(agent.contains("/proc/<pid>/cgroup") && agent.contains("/var/lib/kubelet/pods"));
}

/// `name` on this process's `PATH`.
fn on_path(name: &str) -> std::path::PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found on PATH"))
}

/// `deploy/helm/build.sh` run with exactly `vars` and a `PATH` holding only
/// `date`: no Go toolchain, so it can only answer from the cache or fail.
fn helm_build_sh(
    vars: &[(&str, std::path::PathBuf)],
    tools: &std::path::Path,
) -> std::process::Output {
    Command::new(on_path("bash"))
        .arg(deploy_dir().join("helm/build.sh"))
        .env_clear()
        .envs(vars.iter().map(|(k, v)| (*k, v)))
        .env("PATH", tools)
        .output()
        .unwrap()
}

/// The cache `deploy/helm/build.sh` keeps, tested on environments the test
/// sets itself (never the one it runs in): where the cache is for each way of
/// naming its root, that an empty cache means a build (which needs Go), and
/// that a filled one answers at once with the path `helm_bin` computes for
/// the same root (`<root>/k8s/helm-<HELM_VERSION>/bin/helm`).
#[test]
fn helm_build_script_is_cached_and_fast() {
    let script = std::fs::read_to_string(deploy_dir().join("helm/build.sh")).unwrap();
    assert!(
        script
            .lines()
            .any(|l| l == format!("HELM_VERSION={HELM_VERSION}")),
        "deploy/helm/build.sh pins helm {HELM_VERSION}"
    );
    let tools = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(on_path("date"), tools.path().join("date")).unwrap();
    // (variables set, the cache root they give); `NAME=` is set but empty.
    let cases: [(&[&str], &str); 5] = [
        (&["SWORN_CACHE_DIR"], "SWORN_CACHE_DIR"),
        (
            &["SWORN_CACHE_DIR", "XDG_CACHE_HOME", "HOME"],
            "SWORN_CACHE_DIR",
        ),
        (&["XDG_CACHE_HOME", "HOME"], "XDG_CACHE_HOME/sworn"),
        (&["HOME"], "HOME/.cache/sworn"),
        (
            &["HOME", "SWORN_CACHE_DIR=", "XDG_CACHE_HOME="],
            "HOME/.cache/sworn",
        ),
    ];
    for (names, root) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let vars: Vec<(&str, std::path::PathBuf)> = names
            .iter()
            .map(|n| match n.strip_suffix('=') {
                Some(empty) => (empty, std::path::PathBuf::new()),
                None => (*n, tmp.path().join(n)),
            })
            .collect();
        let helm = tmp
            .path()
            .join(root)
            .join(format!("k8s/helm-{HELM_VERSION}/bin/helm"));

        let out = helm_build_sh(&vars, tools.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("go toolchain not found"),
            "{names:?}: an empty cache means a build: {stderr}"
        );
        std::fs::create_dir_all(helm.parent().unwrap()).unwrap();
        std::fs::write(&helm, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&helm, std::fs::Permissions::from_mode(0o755)).unwrap();
        let started = Instant::now();
        let out = helm_build_sh(&vars, tools.path());
        assert!(out.status.success(), "{names:?}: {out:?}");
        assert_eq!(
            String::from_utf8(out.stdout).unwrap().lines().last(),
            helm.to_str(),
            "{names:?}"
        );
        assert!(
            started.elapsed().as_secs() < 10,
            "cached build.sh took {:?}",
            started.elapsed()
        );
    }
}

/// A Pod built from a workload's pod template, as its controller would.
fn pod_from_template(workload: &Value, name: &str, namespace: &str) -> Value {
    let template = &workload["spec"]["template"];
    let mut pod: Value = serde_yaml::from_str(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {namespace}\n"
    ))
    .unwrap();
    pod["metadata"]["labels"] = template["metadata"]["labels"].clone();
    pod["spec"] = template["spec"].clone();
    pod["spec"]["nodeName"] = "node-a".into();
    if let Some(claims) = workload["spec"]["volumeClaimTemplates"].as_sequence() {
        for c in claims {
            let vol: Value = serde_yaml::from_str(&format!(
                "name: {0}\npersistentVolumeClaim:\n  claimName: {0}-{name}\n",
                c["metadata"]["name"].as_str().unwrap()
            ))
            .unwrap();
            pod["spec"]["volumes"].as_sequence_mut().unwrap().push(vol);
        }
    }
    pod
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_pass_the_real_api_server_and_rbac_is_least_privilege() {
    let cp = ControlPlane::start().await.unwrap();
    let kustomize = render_kustomize();
    let docs = parse_docs(&kustomize);
    create_namespaces(&cp, &docs);

    // Server-side dry run: real schema validation (strict: unknown fields fail).
    let dry = |stream: &str, what: &str| {
        run_ok(
            admin_kubectl(&cp).args(["apply", "--dry-run=server", "--validate=strict", "-f", "-"]),
            Some(stream),
            what,
        )
    };
    let out = run_ok(
        admin_kubectl(&cp)
            .args(["apply", "--dry-run=server", "--validate=strict", "-k"])
            .arg(deploy_dir().join("kustomize")),
        None,
        "kubectl apply --dry-run=server -k deploy/kustomize",
    );
    assert!(
        out.contains("daemonset.apps/sworn-agent created (server dry run)"),
        "{out}"
    );
    let out = dry(&render_helm(&[]), "dry run of helm template");
    assert!(
        out.contains("statefulset.apps/sworn-server created (server dry run)"),
        "{out}"
    );
    dry(
        &render_helm(&[
            "--set",
            "server.storage.storageClassName=fast,example.enabled=false",
        ]),
        "dry run of helm template with values",
    );
    // Control: the same dry run refuses a field the schema does not have.
    let broken = kustomize.replace("hostPID: true", "hostPid: true");
    let out = run(
        admin_kubectl(&cp).args(["apply", "--dry-run=server", "--validate=strict", "-f", "-"]),
        Some(&broken),
    );
    assert!(
        !out.status.success(),
        "a misspelt field must fail the dry run"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("hostPid"));

    // Now for real (no controllers run here, so nothing starts).
    apply(&cp, &kustomize);

    // The pods the controllers would create pass admission, Pod Security
    // included, in their "privileged" namespaces...
    let objects = by_key(&docs);
    let agent_ds = &objects["DaemonSet sworn-system/sworn-agent"];
    let pods = [
        pod_from_template(agent_ds, "sworn-agent-x", "sworn-system"),
        pod_from_template(
            &objects["StatefulSet sworn-system/sworn-server"],
            "sworn-server-0",
            "sworn-system",
        ),
        pod_from_template(
            &objects["Deployment sworn-example/sworn-example"],
            "sworn-example-x",
            "sworn-example",
        ),
    ];
    let out = run_ok(
        admin_kubectl(&cp).args(["create", "--dry-run=server", "-f", "-"]),
        Some(&to_stream(&pods)),
        "dry run of the pods",
    );
    assert_eq!(out.matches("created (server dry run)").count(), 3, "{out}");
    // ...and are refused where Pod Security is "baseline": the hostPath needs
    // "privileged", for the agent and for every workload that mounts the socket.
    apply(
        &cp,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: baseline\n  labels:\n    pod-security.kubernetes.io/enforce: baseline\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sworn-agent\n  namespace: baseline\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sworn-example\n  namespace: baseline\n",
    );
    for (pod, why) in [
        (
            pod_from_template(agent_ds, "agent", "baseline"),
            "hostPID=true",
        ),
        (
            pod_from_template(
                &objects["Deployment sworn-example/sworn-example"],
                "app",
                "baseline",
            ),
            "hostPath volumes",
        ),
    ] {
        let out = run(
            admin_kubectl(&cp).args(["create", "--dry-run=server", "-f", "-"]),
            Some(&to_stream([&pod])),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "baseline must refuse {}", key(&pod));
        assert!(
            err.contains("violates PodSecurity \"baseline") && err.contains(why),
            "{err}"
        );
    }

    // Least privilege, asked of the real RBAC authorizer.
    let ns = Some("sworn-system");
    let all = None;
    let agent_may = [("list", "pods", all), ("watch", "pods", all)];
    let agent_may_not = [
        ("create", "tokenreviews.authentication.k8s.io", all),
        ("get", "secrets", ns),
        ("list", "secrets", all),
        ("get", "pods", all),
        ("get", "nodes", all),
        ("get", "configmaps/sworn-bundle", ns),
        ("update", "configmaps/sworn-bundle", ns),
        ("create", "serviceaccounts/token", ns),
        ("create", "pods", ns),
    ];
    let server_may = [
        ("create", "tokenreviews.authentication.k8s.io", all),
        ("get", "pods", all),
        ("get", "nodes", all),
        ("get", "configmaps/sworn-bundle", ns),
        ("update", "configmaps/sworn-bundle", ns),
    ];
    let server_may_not = [
        ("list", "secrets", all),
        ("get", "secrets", ns),
        ("list", "pods", all),
        ("watch", "pods", all),
        ("list", "nodes", all),
        ("list", "configmaps", ns),
        ("create", "configmaps", ns),
        ("delete", "configmaps/sworn-bundle", ns),
        ("patch", "configmaps/sworn-bundle", ns),
        ("update", "configmaps/sworn-server", ns),
        ("update", "configmaps/sworn-bundle", Some("default")),
        ("create", "serviceaccounts/token", ns),
        ("update", "pods", all),
    ];
    for (user, may, may_not) in [
        (AGENT, &agent_may[..], &agent_may_not[..]),
        (SERVER, &server_may[..], &server_may_not[..]),
    ] {
        for (verb, res, ns) in may {
            assert!(can_i(&cp, user, verb, res, *ns), "{user} must {verb} {res}");
        }
        for (verb, res, ns) in may_not {
            assert!(
                !can_i(&cp, user, verb, res, *ns),
                "{user} must not {verb} {res} in {ns:?}"
            );
        }
    }
    // The example workload's account gets nothing at all.
    assert!(!can_i(
        &cp,
        "system:serviceaccount:sworn-example:sworn-example",
        "list",
        "pods",
        all
    ));
    cp.stop().await;
}

fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no {name}"))
}

#[test]
fn agent_and_workload_pods_keep_their_security_properties() {
    let docs = by_key(&parse_docs(&render_kustomize()));
    let agent = &docs["DaemonSet sworn-system/sworn-agent"]["spec"]["template"]["spec"];
    assert_eq!(agent["hostPID"], true);
    assert_ne!(agent["hostNetwork"], true);
    let c = &agent["containers"][0];
    assert_ne!(c["securityContext"]["privileged"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    let pods = named(&c["volumeMounts"], "kubelet-pods");
    assert_eq!(pods["readOnly"], true);
    assert_eq!(pods["mountPropagation"], "HostToContainer");
    assert_eq!(
        named(&agent["volumes"], "sockets")["hostPath"]["type"],
        "DirectoryOrCreate"
    );
    assert_eq!(
        named(&c["env"], "MY_NODE_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.nodeName"
    );
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(c[probe]["httpGet"]["port"], "health", "{probe}");
    }
    assert!(c["resources"]["requests"].is_mapping() && c["resources"]["limits"].is_mapping());

    let server = &docs["StatefulSet sworn-system/sworn-server"]["spec"]["template"]["spec"];
    assert_eq!(server["securityContext"]["runAsNonRoot"], true);
    assert_ne!(server["hostPID"], true);

    // The example: the socket directory read-only, the sworn-audience token
    // volume mounted by the container (the kubelet fills only mounted ones).
    let wl = &docs["Deployment sworn-example/sworn-example"]["spec"]["template"]["spec"];
    let c = &wl["containers"][0];
    assert_eq!(named(&c["volumeMounts"], "sworn-socket")["readOnly"], true);
    let token_mount = named(&c["volumeMounts"], "sworn-token");
    assert_eq!(token_mount["readOnly"], true);
    let tokens: Vec<&Value> = wl["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|v| {
            v["projected"]["sources"].as_sequence().is_some_and(|s| {
                s.iter()
                    .any(|s| s["serviceAccountToken"]["audience"] == "sworn")
            })
        })
        .collect();
    assert_eq!(
        tokens.len(),
        1,
        "exactly one volume with the workload audience"
    );
    assert_eq!(tokens[0]["name"], "sworn-token");
    assert_eq!(
        named(&c["env"], "SPIFFE_ENDPOINT_SOCKET")["value"],
        "unix:///run/sworn/agent.sock"
    );
}
